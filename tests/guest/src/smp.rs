//! Application-processor start-up (INIT-SIPI-SIPI to a real-mode trampoline) and
//! the CPL3 loop the APs run.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::apic;
use crate::layout::{AP_USTACK_SIZE, MAX_CPUS, TRAMPOLINE_BASE};
use crate::timer::delay_us;

/// CPL3 stacks of the APs (index 0, the BSP's slot, is unused).
#[repr(C, align(16))]
pub struct ApStacks([[u8; AP_USTACK_SIZE]; MAX_CPUS]);

/// Referenced by `boot.s`: AP `i` starts with its stack top at `AP_STACKS + i * AP_USTACK_SIZE`.
pub static mut AP_STACKS: ApStacks = ApStacks([[0; AP_USTACK_SIZE]; MAX_CPUS]);

/// APIC ID reported by each AP (valid once its counter is non-zero).
static AP_APIC_ID: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Per-CPU loop counter, incremented by each AP.
static AP_COUNTER: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Set by the BSP once it has seen the APs run: they then stop for good.
static PARK: AtomicBool = AtomicBool::new(false);

/// First CPL3 code of an AP; `index` is its CPU index (1..MAX_CPUS).
pub extern "C" fn ap_main(index: u64) -> ! {
    let i = index as usize;
    AP_APIC_ID[i].store(crate::apic::apic_id(), Ordering::Relaxed);
    while !PARK.load(Ordering::Relaxed) {
        AP_COUNTER[i].fetch_add(1, Ordering::Release);
        crate::io::pause();
    }
    crate::cpl0::park()
}

/// Start the application processors and report them; `cpus` is the expected
/// CPU count (BSP included). The APs are parked once they have been seen.
pub fn start(cpus: usize) {
    if cpus > MAX_CPUS {
        crate::fatal!("cpus={} is more than the {} supported", cpus, MAX_CPUS);
    }
    extern "C" {
        static ap_trampoline_start: u8;
        static ap_trampoline_end: u8;
    }
    // SAFETY: the two symbols delimit the trampoline code in rodata; the
    // destination page below 1 MiB is user-mapped RAM that nothing else uses
    // once the start info has been read.
    unsafe {
        let start = core::ptr::addr_of!(ap_trampoline_start);
        let len = core::ptr::addr_of!(ap_trampoline_end) as usize - start as usize;
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE_BASE as *mut u8, len);
    }
    const INIT: u32 = 0x4500;
    const STARTUP: u32 = 0x4600;
    let vector = (TRAMPOLINE_BASE >> 12) as u32;
    apic::ipi_all_but_self(INIT);
    delay_us(10_000);
    apic::ipi_all_but_self(STARTUP | vector);
    delay_us(200);
    apic::ipi_all_but_self(STARTUP | vector);

    // Wait (at most 500 ms) for the expected check-ins, then (at most 100 ms)
    // for every AP that checked in to be seen counting.
    let checked_in = |i: usize| AP_COUNTER[i].load(Ordering::Acquire) != 0;
    for _ in 0..500 {
        if (1..MAX_CPUS).filter(|&i| checked_in(i)).count() >= cpus - 1 {
            break;
        }
        delay_us(1000);
    }
    let mut before = [0u64; MAX_CPUS];
    for (b, c) in before.iter_mut().zip(&AP_COUNTER) {
        *b = c.load(Ordering::Acquire);
    }
    let advanced = |i: usize| before[i] != 0 && AP_COUNTER[i].load(Ordering::Acquire) > before[i];
    for _ in 0..100 {
        if (1..MAX_CPUS).all(|i| before[i] == 0 || advanced(i)) {
            break;
        }
        delay_us(1000);
    }
    let mut seen = [(0u32, 0usize); MAX_CPUS];
    let mut n = 0;
    for (i, apic_id) in AP_APIC_ID.iter().enumerate().skip(1) {
        if advanced(i) {
            seen[n] = (apic_id.load(Ordering::Relaxed), i);
            n += 1;
        }
    }
    PARK.store(true, Ordering::Release);
    let seen = &mut seen[..n];
    seen.sort_unstable();
    crate::println!("cpus: {}", n + 1);
    for (k, (apic_id, _)) in seen.iter().enumerate() {
        crate::println!("cpu{}: apic={} running", k + 1, apic_id);
    }
}
