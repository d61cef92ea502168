//! `workload=ticks`: run the LAPIC timer and report every `ticks.every` ticks.

use super::Env;
use crate::{cpl0, println, timer};

pub fn run(env: &Env) {
    let hz = env.cmdline.u64("ticks.hz", 100).clamp(1, 5000);
    let every = env.cmdline.u64("ticks.every", hz).max(1);
    let total = env.cmdline.u64("ticks.total", 0);
    timer::start_periodic(hz);
    let start = timer::ticks();
    let mut next = every;
    loop {
        let seen = cpl0::events();
        let now = timer::ticks() - start;
        while next <= now && (total == 0 || next <= total) {
            println!("ticks: n={}", next);
            next += every;
        }
        if total != 0 && now >= total {
            break;
        }
        cpl0::idle_wait(seen);
    }
    timer::stop();
    println!("ticks: done");
}
