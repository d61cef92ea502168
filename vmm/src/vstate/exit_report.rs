//! Why a VM stopped, in words a user can act on.

use kvm_bindings::{
    kvm_run, KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
};

use super::vm::host_is_pvm;

/// The reason a VM stopped running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest asked for a reset through the i8042 controller: a clean exit.
    GuestReset,
    /// The guest powered off or reset through KVM's system event.
    GuestSystemEvent(String),
    /// A triple fault: the guest could not handle an exception.
    TripleFault {
        /// vCPU index.
        vcpu: u8,
    },
    /// The API or a signal stopped the VM.
    Stopped,
    /// KVM could not run the guest; the message explains.
    Error(String),
}

impl ExitReason {
    /// Whether this is a normal end of the guest (not an error).
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            ExitReason::GuestReset | ExitReason::GuestSystemEvent(_) | ExitReason::Stopped
        )
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::GuestReset => write!(f, "the guest requested a reset (i8042)"),
            ExitReason::GuestSystemEvent(what) => write!(f, "the guest requested {what}"),
            ExitReason::TripleFault { vcpu } => {
                write!(
                    f,
                    "vCPU {vcpu} triple-faulted (the guest could not handle an exception)"
                )
            }
            ExitReason::Stopped => write!(f, "stopped by request"),
            ExitReason::Error(msg) => f.write_str(msg),
        }
    }
}

/// Details of a `KVM_EXIT_INTERNAL_ERROR`, read from the vCPU's run structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError {
    /// KVM's suberror code.
    pub suberror: u32,
    /// Bytes of the failing instruction, when KVM supplied them.
    pub insn_bytes: Vec<u8>,
}

impl InternalError {
    /// Decodes `run.internal` (call only after a `KVM_EXIT_INTERNAL_ERROR`).
    pub fn from_run(run: &kvm_run) -> Self {
        // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, so `internal` is the active
        // member of the union; every bit pattern is a valid u32/u64 array.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let mut insn_bytes = Vec::new();
        if internal.suberror == KVM_INTERNAL_ERROR_EMULATION
            && internal.ndata >= 2
            && internal.data[0] & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)
                != 0
        {
            // Layout of struct kvm_emulation_failure: flags (data[0]), then insn_size (one
            // byte) followed by up to 15 instruction bytes.
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&internal.data[1].to_le_bytes());
            raw[8..].copy_from_slice(&internal.data[2].to_le_bytes());
            let size = usize::from(raw[0]).min(15);
            insn_bytes.extend_from_slice(&raw[1..1 + size]);
        }
        InternalError {
            suberror: internal.suberror,
            insn_bytes,
        }
    }

    /// The user-facing message for this failure on vCPU `vcpu` at `rip` with privilege `cpl`.
    pub fn describe(&self, vcpu: u8, rip: u64, cpl: u8) -> String {
        let bytes = if self.insn_bytes.is_empty() {
            "not reported".to_string()
        } else {
            self.insn_bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if self.suberror == KVM_INTERNAL_ERROR_EMULATION {
            let host = if host_is_pvm() {
                " This host's /dev/kvm is PVM, which emulates all guest kernel-mode (CPL0) code \
                 and cannot emulate many instructions there (e.g. SSE arithmetic, xsave, popcnt, \
                 int3); the guest must avoid them in kernel mode, or run on a host with \
                 hardware virtualization."
            } else {
                ""
            };
            format!(
                "vCPU {vcpu}: the guest executed an instruction this host's KVM cannot emulate \
                 (RIP {rip:#x}, CPL {cpl}, instruction bytes: {bytes}).{host}"
            )
        } else {
            format!(
                "vCPU {vcpu}: KVM internal error, suberror {} (RIP {rip:#x}, CPL {cpl}, \
                 instruction bytes: {bytes})",
                self.suberror
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_emulation_failure_bytes() {
        let mut run = kvm_run::default();
        // SAFETY: writing plain integers into the union member used by the decoder.
        unsafe {
            let internal = &mut run.__bindgen_anon_1.internal;
            internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
            internal.ndata = 3;
            internal.data[0] = 1;
            // insn_size 3, bytes f3 0f b8 (popcnt prefix and opcode)
            internal.data[1] = u64::from_le_bytes([3, 0xf3, 0x0f, 0xb8, 0, 0, 0, 0]);
        }
        let e = InternalError::from_run(&run);
        assert_eq!(e.insn_bytes, vec![0xf3, 0x0f, 0xb8]);
        let msg = e.describe(0, 0x1000, 0);
        assert!(msg.contains("cannot emulate"), "{msg}");
        assert!(msg.contains("f3 0f b8"), "{msg}");
        assert!(msg.contains("RIP 0x1000"), "{msg}");
    }
}
