//! What this host's KVM cannot do for a debugger, and the words gdb's user is told.
//!
//! On PVM hosts (guest kernel-mode code emulated, user-mode code run natively) single-step
//! and hardware breakpoints trap to the VMM only in kernel-mode (CPL0) code; in user mode
//! (CPL3) the trap goes to the guest's own IDT, and `int3` at CPL0 fails emulation. So:
//! breakpoints in kernel code use debug registers (gdb's software breakpoints too), and
//! breakpoints, watchpoints and steps that cannot trap are reported, never silently lost.
//! Data watchpoints do not fire at all there: accesses at CPL3 are not trapped, and KVM's
//! instruction emulator, which runs CPL0 code, does not check data breakpoints (measured:
//! a write watchpoint on a counter the interrupt entry increments never fired).

/// Told when the guest has asked for a reset that the debugger holds.
pub const HELD_RESET: &str = "the guest asked for a reset (i8042); it is held while gdb is \
attached, so the state before it can be inspected. `monitor restart [SNAPSHOT]` clones \
again; `detach` lets the reset happen.\n";

/// A single step asked for in user-mode code on a PVM host.
pub fn step_in_user_mode(vcpu: usize, rip: u64) -> String {
    format!(
        "vCPU {vcpu} is in user-mode (CPL3) code at {rip:#x}: on this host (PVM) single-step \
         traps only in kernel-mode (CPL0) code, so it was not stepped. Break in kernel code \
         (e.g. an interrupt entry) and continue, or advance the replay with `monitor step`.\n"
    )
}

/// A single step of an instruction that returns to user mode, on a PVM host.
pub fn step_into_user_mode(vcpu: usize, rip: u64) -> String {
    format!(
        "vCPU {vcpu}: the instruction at {rip:#x} returns to user mode (CPL3), where this host \
         (PVM) cannot trap a step (the trap would go to the guest); it was not stepped. \
         Set a breakpoint where kernel code runs next and continue.\n"
    )
}

/// Whether `code` (the bytes at a kernel-mode rip) starts with `iret`, `sysret` or
/// `sysexit`, with an optional REX prefix.
pub fn returns_to_user_mode(code: &[u8]) -> bool {
    let code = match code.first() {
        Some(&b) if (0x40..=0x4f).contains(&b) => &code[1..],
        _ => code,
    };
    matches!(code, [0xcf, ..] | [0x0f, 0x07, ..] | [0x0f, 0x35, ..])
}

/// A breakpoint in user-mode code on a PVM host.
pub fn user_breakpoint(addr: u64) -> String {
    format!(
        "the breakpoint at {addr:#x} is in user-mode (CPL3) code: this host (PVM) traps \
         breakpoints only in kernel-mode (CPL0) code, so it will not be hit. Use a kernel \
         entry point, or `monitor run-until` to stop the replay at an input.\n"
    )
}

/// A watchpoint on a PVM host.
pub fn user_watchpoint(addr: u64) -> String {
    format!(
        "the watchpoint at {addr:#x} will not fire on this host (PVM): user-mode (CPL3) \
         accesses run natively and are not trapped, and the emulator that runs kernel-mode \
         (CPL0) code does not check data breakpoints. Break where the data is written, or \
         compare it between `monitor step`s.\n"
    )
}

/// `monitor host`.
pub fn summary(pvm: bool) -> String {
    if pvm {
        "host KVM: PVM. Kernel-mode (CPL0) guest code is emulated: single-step, hardware \
         breakpoints and watchpoints trap there; software breakpoints in kernel code use debug \
         registers (int3 cannot run there), at most 4 in all. User-mode (CPL3) code runs \
         natively: steps and breakpoints do not trap there (each is reported). Watchpoints \
         fire nowhere: the kernel-mode emulator does not check data breakpoints."
            .into()
    } else {
        "host KVM: hardware virtualization. Software breakpoints (int3), 4 hardware \
         breakpoints/watchpoints and single-step work in kernel and user mode."
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_to_user_mode_recognizes_iret_sysret_and_sysexit_with_or_without_rex() {
        for code in [
            &[0x48, 0xcf][..],
            &[0xcf],
            &[0x0f, 0x07],
            &[0x48, 0x0f, 0x07],
            &[0x0f, 0x35],
        ] {
            assert!(returns_to_user_mode(code), "{code:x?}");
        }
        for code in [
            &[0xf0, 0x48, 0xff][..],
            &[0x58],
            &[],
            &[0x48],
            &[0x0f, 0x05],
        ] {
            assert!(!returns_to_user_mode(code), "{code:x?}");
        }
    }
}
