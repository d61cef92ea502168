//! `workload=dirty`: dirty guest pages at a steady rate so that dirty-page
//! tracking can be checked. Write k (k = 0, 1, 2, ...) stores the u64 k at the
//! start of page (k * 7919) % npages of the working set; every second the guest
//! reports the write count and an FNV-1a 64 checksum of each page's first u64.

use super::Env;
use crate::layout::image_end;
use crate::{cpl0, println, timer};

const PAGE: u64 = 4096;
const STRIDE: u64 = 7919;
const TICK_HZ: u64 = 100;
/// Writes between looks at the clock when the rate is unlimited.
const BURST: u64 = 4096;

pub fn run(env: &Env) {
    let mib = env.cmdline.u64("dirty.mib", 16);
    let rate = env.cmdline.u64("dirty.rate", 1000);
    let seconds = env.cmdline.u64("dirty.seconds", 0);
    let base = image_end().next_multiple_of(2 << 20);
    let size = mib << 20;
    if mib == 0 || !env.boot.is_ram(base, base + size) || base + size > 0xc000_0000 {
        crate::fatal!("dirty: {} MiB at {:#x} is not usable RAM", mib, base);
    }
    let npages = size / PAGE;
    // SAFETY: [base, base + size) is RAM past the image (checked above) that
    // nothing else uses; it is identity mapped and user-accessible.
    let mem = unsafe { core::slice::from_raw_parts_mut(base as *mut u64, (size / 8) as usize) };
    mem.fill(0);

    timer::start_periodic(TICK_HZ);
    let start = timer::ticks();
    let mut writes: u64 = 0;
    let mut second: u64 = 0;
    loop {
        let seen = cpl0::events();
        let now = timer::ticks() - start;
        let boundary = (second + 1) * TICK_HZ;
        let target = if rate == 0 {
            writes + BURST
        } else {
            rate * now.min(boundary) / TICK_HZ
        };
        while writes < target {
            let page = writes.wrapping_mul(STRIDE) % npages;
            mem[(page * PAGE / 8) as usize] = writes;
            writes += 1;
        }
        if now >= boundary {
            second += 1;
            println!(
                "dirty: second={} writes={} checksum={:016x}",
                second,
                writes,
                checksum(mem, npages)
            );
            if seconds != 0 && second >= seconds {
                break;
            }
        } else if rate != 0 {
            cpl0::idle_wait(seen);
        }
    }
    timer::stop();
}

/// FNV-1a 64 over the little-endian bytes of each page's first u64, in page order.
fn checksum(mem: &[u64], npages: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in 0..npages {
        for b in mem[(p * PAGE / 8) as usize].to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
