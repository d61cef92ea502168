//! `workload=dirty`: dirty guest pages at a steady rate so that dirty-page
//! tracking can be checked. Write k (k = 0, 1, 2, ...) stores the u64 k at the
//! start of page (k * 7919) % npages of the working set; every second the guest
//! reports the write count and an FNV-1a 64 checksum of each page's first u64.
//!
//! Options: `dirty.mib` (working set, default 16), `dirty.rate` (writes per
//! second, 0 = as fast as possible; default 1000), `dirty.seconds` (stop after
//! this many, 0 = never), `dirty.hz` (timer ticks per second, default 100: the
//! rate is kept per tick, and a rate-limited guest sleeps until the next one),
//! and `dirty.gap_us` (see [`Gaps`]; 0 = off, the default).

use super::Env;
use crate::io::rdtsc;
use crate::layout::image_end;
use crate::{cpl0, println, timer};

const PAGE: u64 = 4096;
const STRIDE: u64 = 7919;
/// Writes between looks at the clock when the rate is unlimited.
const BURST: u64 = 4096;
/// How long printing a line may take before it counts as lost time (see [`Gaps`]).
const PRINT_ALLOWANCE_US: u64 = 2000;

pub fn run(env: &Env) {
    let mib = env.cmdline.u64("dirty.mib", 16);
    let rate = env.cmdline.u64("dirty.rate", 1000);
    let seconds = env.cmdline.u64("dirty.seconds", 0);
    let hz = env.cmdline.u64("dirty.hz", 100).clamp(10, 1000);
    let gap_us = env.cmdline.u64("dirty.gap_us", 0);
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

    // Calibrate before the periodic timer starts (calibration uses the LAPIC timer).
    let mut gaps = (gap_us != 0).then(|| {
        let khz = timer::tsc_khz();
        println!(
            "dirty-gap: tsc_khz={} hz={} threshold_us={}",
            khz, hz, gap_us
        );
        Gaps::new(khz, hz, gap_us)
    });
    timer::start_periodic(hz);
    let start = timer::ticks();
    if let Some(g) = gaps.as_mut() {
        g.restart(start);
    }
    let mut writes: u64 = 0;
    let mut second: u64 = 0;
    let mut slept = false;
    loop {
        let seen = cpl0::events();
        let ticks = timer::ticks();
        if let Some(g) = gaps.as_mut() {
            g.woke(slept, ticks);
        }
        let now = ticks - start;
        let boundary = (second + 1) * hz;
        let target = if rate == 0 {
            writes + BURST
        } else {
            rate * now.min(boundary) / hz
        };
        while writes < target {
            let page = writes.wrapping_mul(STRIDE) % npages;
            mem[(page * PAGE / 8) as usize] = writes;
            writes += 1;
            if let Some(g) = gaps.as_mut() {
                if g.look() {
                    break;
                }
            }
        }
        slept = false;
        if let Some(g) = gaps.as_mut() {
            g.report_long();
        }
        if writes < target {
            // A gap was reported mid-burst (as soon as it was seen); finish the writes.
            continue;
        }
        if now >= boundary {
            second += 1;
            match gaps.as_mut() {
                None => println!(
                    "dirty: second={} writes={} checksum={:016x}",
                    second,
                    writes,
                    checksum(mem, npages)
                ),
                Some(g) => {
                    let began = g.begin_print();
                    println!(
                        "dirty: second={} writes={} checksum={:016x} max_gap_us={}",
                        second,
                        writes,
                        checksum(mem, npages),
                        g.take_max_us()
                    );
                    g.end_print(began);
                }
            }
            if seconds != 0 && second >= seconds {
                break;
            }
        } else if rate != 0 {
            if let Some(g) = gaps.as_mut() {
                g.look();
            }
            slept = true;
            cpl0::idle_wait(seen);
        }
    }
    timer::stop();
}

/// With `dirty.gap_us=N`, the guest watches for time it lost: stretches in which
/// the loop did not run although it meant to (the VMM paused it, or the host
/// did not schedule it), measured with the TSC between consecutive steps. A
/// stretch of N µs or more is reported as soon as the loop runs again, as
/// `dirty-gap: us=...`, and the per-second line gets the second's longest
/// stretch as `max_gap_us=`.
///
/// Sleeping until the next tick is not lost time: a sleep counts only from the
/// moment the tick it waited for was due (one tick period after the previous
/// tick woke the loop). A pause that begins while the guest sleeps therefore
/// shows up shortened by the part of the tick period that was left, at most
/// one tick period (`dirty.hz`). Printing a line (one port exit per byte) is not
/// lost time either, unless it takes longer than [`PRINT_ALLOWANCE_US`]: then
/// all of it counts, so that a pause during a print is not hidden.
struct Gaps {
    khz: u64,
    tick_cycles: u64,
    threshold: u64,
    /// TSC at the loop's previous step.
    last: u64,
    /// TSC when the loop last saw the tick count move.
    tick_seen_at: u64,
    ticks: u64,
    /// Longest stretch this second, and the longest not yet reported.
    max: u64,
    pending: u64,
}

impl Gaps {
    fn new(khz: u64, hz: u64, threshold_us: u64) -> Self {
        let now = rdtsc();
        Gaps {
            khz,
            tick_cycles: khz * 1000 / hz,
            threshold: threshold_us * khz / 1000,
            last: now,
            tick_seen_at: now,
            ticks: 0,
            max: 0,
            pending: 0,
        }
    }

    /// The timer has just started with the tick count at `ticks`.
    fn restart(&mut self, ticks: u64) {
        self.last = rdtsc();
        self.tick_seen_at = self.last;
        self.ticks = ticks;
    }

    fn lost(&mut self, cycles: u64) {
        self.max = self.max.max(cycles);
        self.pending = self.pending.max(cycles);
    }

    /// One step of the loop: the time since the previous step was all lost.
    /// Returns whether a stretch waits to be reported.
    fn look(&mut self) -> bool {
        let now = rdtsc();
        self.lost(now.saturating_sub(self.last));
        self.last = now;
        self.pending >= self.threshold
    }

    /// The loop is back at its top; if it `slept`, only the time past the tick it
    /// waited for counts.
    fn woke(&mut self, slept: bool, ticks: u64) {
        let now = rdtsc();
        let due = if slept {
            self.last.max(self.tick_seen_at + self.tick_cycles)
        } else {
            self.last
        };
        self.lost(now.saturating_sub(due));
        self.last = now;
        if ticks != self.ticks {
            self.ticks = ticks;
            self.tick_seen_at = now;
        }
    }

    /// Prints the longest unreported stretch if it reached the threshold.
    fn report_long(&mut self) {
        let pending = core::mem::take(&mut self.pending);
        if pending >= self.threshold {
            let began = self.begin_print();
            println!("dirty-gap: us={}", self.us(pending));
            self.end_print(began);
        }
    }

    /// The loop is about to print; returns the TSC to pass to [`Gaps::end_print`].
    fn begin_print(&mut self) -> u64 {
        self.look();
        self.last
    }

    /// The loop printed since `began`: that time was lost only if it was too long.
    fn end_print(&mut self, began: u64) {
        let now = rdtsc();
        let took = now.saturating_sub(began);
        if took > PRINT_ALLOWANCE_US * self.khz / 1000 {
            self.lost(took);
        }
        self.last = now;
    }

    /// Longest stretch since the last call, in µs.
    fn take_max_us(&mut self) -> u64 {
        let us = self.us(self.max);
        self.max = 0;
        us
    }

    fn us(&self, cycles: u64) -> u64 {
        cycles * 1000 / self.khz.max(1)
    }
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
