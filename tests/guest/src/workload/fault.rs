//! `workload=fault`: read the supervisor-only kernel region from CPL3, so the
//! page fault exercises the CPL0 exception reporter (which prints
//! `reprise-guest: EXCEPTION vector=e error=5 ...` and resets).

use super::Env;
use crate::layout::KERNEL_BASE;

pub fn run(_env: &Env) {
    // SAFETY: the read faults by design (the page is supervisor-only); the
    // exception handler resets the machine, so execution never continues.
    let value = unsafe { core::ptr::read_volatile(KERNEL_BASE as *const u64) };
    crate::fatal!(
        "fault: reading {:#x} from CPL3 returned {:#x}",
        KERNEL_BASE,
        value
    );
}
