//! The CPL0 part of the guest (assembly only) and the CPL3 side of its interface:
//! interrupt counters, the event counter and the `int3` service calls.
//!
//! No compiled Rust ever runs at CPL0: on PVM hosts CPL0 code is emulated, slowly
//! and without SSE, so boot, interrupt stubs and the exception reporter are all
//! in `src/asm/*.s`.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::layout;

/// Interrupts taken per vector (incremented by the CPL0 stubs).
static IRQ_COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// Interrupts taken in total (incremented by the CPL0 stubs).
static EVENT_COUNT: AtomicU64 = AtomicU64::new(0);

global_asm!(
    concat!(
        include_str!("asm/boot.s"),
        include_str!("asm/isr.s"),
        include_str!("asm/trampoline.s"),
        include_str!("asm/mem.s"),
    ),
    KERNEL_BASE = const layout::KERNEL_BASE,
    KERNEL_END = const layout::KERNEL_END,
    MAX_CPUS = const layout::MAX_CPUS,
    KSTACK_SIZE = const layout::KSTACK_SIZE,
    AP_USTACK_SIZE = const layout::AP_USTACK_SIZE,
    TRAMPOLINE_BASE = const layout::TRAMPOLINE_BASE,
    BSP_MAIN = sym crate::bsp_main,
    AP_MAIN = sym crate::smp::ap_main,
    AP_STACKS = sym crate::smp::AP_STACKS,
    IRQ_COUNTS = sym IRQ_COUNTS,
    EVENT_COUNT = sym EVENT_COUNT,
    options(att_syntax)
);

/// Total number of interrupts taken so far.
pub fn events() -> u64 {
    EVENT_COUNT.load(Ordering::Acquire)
}

/// Number of interrupts taken on `vector` so far.
pub fn irq_count(vector: u8) -> u64 {
    IRQ_COUNTS[usize::from(vector)].load(Ordering::Acquire)
}

/// Service 0: sleep until an interrupt arrives, unless one already arrived after
/// the caller read `seen` from [`events`] (the check and `sti; hlt` happen with
/// interrupts disabled, so no wake-up is lost).
pub fn idle_wait(seen: u64) {
    // SAFETY: int3 enters the CPL0 service stub through the DPL3 gate; it returns
    // with all registers but rax/rdi intact, and memory may have changed (the
    // interrupt handlers ran), which the default asm memory clobber covers.
    unsafe { asm!("int3", inout("rax") 0u64 => _, inout("rdi") seen => _, options(nostack)) }
}

/// Service 1: reset by triple fault (empty IDT, then `ud2`).
pub fn triple_fault() -> ! {
    // SAFETY: service 1 never returns.
    unsafe { asm!("int3", in("rax") 1u64, options(noreturn, nostack)) }
}

/// Service 2: stop this CPU for good (`hlt` with interrupts disabled).
pub fn park() -> ! {
    // SAFETY: service 2 never returns.
    unsafe { asm!("int3", in("rax") 2u64, options(noreturn, nostack)) }
}

/// Service 3: `popcnt` of `value`, executed at CPL0. On PVM hosts KVM cannot emulate
/// it and the VMM stops the guest with a report; elsewhere it returns the count.
pub fn cpl0_popcnt(value: u64) -> u64 {
    let out: u64;
    // SAFETY: int3 enters the CPL0 service stub through the DPL3 gate; service 3
    // only computes into rax and returns.
    unsafe { asm!("int3", inout("rax") 3u64 => out, in("rdi") value, options(nostack)) };
    out
}
