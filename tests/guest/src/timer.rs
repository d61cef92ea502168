//! LAPIC timer (KVM's APIC bus runs at 1 GHz: one count per nanosecond with the
//! divider at 1) and the TSC frequency.

use crate::apic::{
    lapic_read, lapic_write, LAPIC_LVT_TIMER, LAPIC_TIMER_CURRENT, LAPIC_TIMER_DIVIDE,
    LAPIC_TIMER_INITIAL, LVT_MASKED,
};
use crate::io::{cpuid, pause, rdtsc};
use crate::layout::TIMER_VECTOR;

const DIVIDE_BY_1: u32 = 0xb;
const PERIODIC: u32 = 1 << 17;
/// Shortest period the guest programs (KVM's usual `min_timer_period_us`).
const MIN_PERIOD_NS: u64 = 200_000;

/// Start the periodic timer at `hz` interrupts per second (at most 5000).
pub fn start_periodic(hz: u64) {
    let period = (1_000_000_000 / hz.max(1)).max(MIN_PERIOD_NS);
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, PERIODIC | u32::from(TIMER_VECTOR));
    lapic_write(LAPIC_TIMER_INITIAL, period as u32);
}

/// Stop the timer.
pub fn stop() {
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
}

/// Timer interrupts taken so far.
pub fn ticks() -> u64 {
    crate::cpl0::irq_count(TIMER_VECTOR)
}

/// Start a masked one-shot countdown of `ns` nanoseconds (no interrupt).
fn start_countdown(ns: u32) {
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, ns);
}

/// Busy-wait for `us` microseconds (at most about 4 s) by polling the LAPIC
/// timer's current count. Must not be used while the periodic timer runs.
pub fn delay_us(us: u32) {
    start_countdown(us.saturating_mul(1000));
    while lapic_read(LAPIC_TIMER_CURRENT) != 0 {
        pause();
    }
}

/// TSC frequency in kHz: CPUID leaf 0x40000010 if the hypervisor provides it,
/// else measured against the LAPIC timer over 10 ms.
pub fn tsc_khz() -> u64 {
    let max_leaf = cpuid(0x4000_0000)[0];
    if (0x4000_0010..0x4000_0100).contains(&max_leaf) {
        let khz = cpuid(0x4000_0010)[0];
        if khz != 0 {
            return u64::from(khz);
        }
    }
    calibrate_tsc_khz()
}

fn calibrate_tsc_khz() -> u64 {
    const WINDOW_NS: u64 = 10_000_000;
    start_countdown(2 * WINDOW_NS as u32);
    // Pair a TSC value with a timer count; of a few tries keep the one whose
    // register read took least time (it was least disturbed).
    let sample = || {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..5 {
            let before = rdtsc();
            let count = u64::from(lapic_read(LAPIC_TIMER_CURRENT));
            let after = rdtsc();
            if after - before < best.0 {
                best = (after - before, before / 2 + after / 2, count);
            }
        }
        (best.1, best.2)
    };
    let (tsc0, count0) = sample();
    let (tsc1, count1) = loop {
        let s = sample();
        if count0 - s.1 >= WINDOW_NS {
            break s;
        }
        pause();
    };
    stop();
    (tsc1 - tsc0) * 1_000_000 / (count0 - count1)
}
