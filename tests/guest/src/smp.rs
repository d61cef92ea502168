//! Application-processor start-up (INIT-SIPI-SIPI to a real-mode trampoline) and
//! the CPL3 loop the APs run.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::layout::{AP_USTACK_SIZE, MAX_CPUS};

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
