//! Saving and restoring one vCPU's KVM state.
//!
//! Save order (with the vCPU paused on its own thread): complete any pending I/O exit
//! (`immediate_exit` + `KVM_RUN`, which returns `EINTR`), then read mp_state, regs, sregs,
//! xsave, xcrs, debug registers, LAPIC, MSRs, vCPU events and CPUID. Restore writes CPUID
//! first, then mp_state, regs, sregs, xsave, xcrs, debug registers, LAPIC, MSRs and the
//! events last (they may carry a pending exception or NMI).

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs,
};
use kvm_ioctls::{Kvm, VcpuFd};
use serde::{Deserialize, Serialize};

/// Most MSRs and CPUID entries accepted from a state file.
const MAX_ENTRIES: usize = 1024;

/// Everything KVM holds for one vCPU.
#[derive(Serialize, Deserialize)]
pub struct VcpuState {
    /// vCPU index (its APIC ID).
    pub index: u8,
    /// Runnable, halted, waiting for SIPI, ...
    pub mp_state: kvm_mp_state,
    /// General registers.
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers.
    pub sregs: kvm_sregs,
    /// x87/SSE/AVX state.
    pub xsave: kvm_xsave,
    /// Extended control registers.
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// The in-kernel LAPIC.
    pub lapic: kvm_lapic_state,
    /// Model-specific registers (those KVM lists and could read).
    pub msrs: Vec<kvm_msr_entry>,
    /// Pending exceptions, interrupts, NMIs, SMI state.
    pub events: kvm_vcpu_events,
    /// The CPUID the guest saw.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// TSC frequency KVM reported, in kHz.
    pub tsc_khz: Option<u32>,
}

impl std::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VcpuState(vcpu {}, rip {:#x})",
            self.index, self.regs.rip
        )
    }
}

/// A vCPU state operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("vCPU {index}: {what}: {detail}")]
pub struct VcpuStateError {
    /// vCPU index.
    pub index: u8,
    /// The operation.
    pub what: &'static str,
    /// What went wrong.
    pub detail: String,
}

fn err(index: u8, what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VcpuStateError {
    move |e| VcpuStateError {
        index,
        what,
        detail: e.to_string(),
    }
}

/// The MSR indexes to save: what KVM lists (`KVM_GET_MSR_INDEX_LIST`).
pub fn msr_index_list() -> Result<Vec<u32>, kvm_ioctls::Error> {
    let kvm = Kvm::new()?;
    Ok(kvm.get_msr_index_list()?.as_slice().to_vec())
}

/// Reads every MSR in `indexes` that KVM lets us read (some listed MSRs may not be).
fn read_msrs(
    fd: &VcpuFd,
    index: u8,
    indexes: &[u32],
) -> Result<Vec<kvm_msr_entry>, VcpuStateError> {
    let mut out = Vec::with_capacity(indexes.len());
    let mut rest: &[u32] = indexes;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&i| kvm_msr_entry {
                index: i,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(|e| VcpuStateError {
            index,
            what: "building the MSR list",
            detail: format!("{e:?}"),
        })?;
        let read = fd.get_msrs(&mut msrs).map_err(err(index, "KVM_GET_MSRS"))?;
        out.extend_from_slice(&msrs.as_slice()[..read]);
        // KVM stops at the first MSR it cannot read: skip it and go on.
        rest = &rest[(read + 1).min(rest.len())..];
    }
    Ok(out)
}

impl VcpuState {
    /// Captures the state of a paused vCPU (call on its thread, after completing any
    /// pending exit).
    pub fn save(fd: &VcpuFd, index: u8, msr_indexes: &[u32]) -> Result<Self, VcpuStateError> {
        Ok(VcpuState {
            index,
            mp_state: fd.get_mp_state().map_err(err(index, "KVM_GET_MP_STATE"))?,
            regs: fd.get_regs().map_err(err(index, "KVM_GET_REGS"))?,
            sregs: fd.get_sregs().map_err(err(index, "KVM_GET_SREGS"))?,
            xsave: fd.get_xsave().map_err(err(index, "KVM_GET_XSAVE"))?,
            xcrs: fd.get_xcrs().map_err(err(index, "KVM_GET_XCRS"))?,
            debugregs: fd
                .get_debug_regs()
                .map_err(err(index, "KVM_GET_DEBUGREGS"))?,
            lapic: fd.get_lapic().map_err(err(index, "KVM_GET_LAPIC"))?,
            msrs: read_msrs(fd, index, msr_indexes)?,
            events: fd
                .get_vcpu_events()
                .map_err(err(index, "KVM_GET_VCPU_EVENTS"))?,
            cpuid: fd
                .get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(err(index, "KVM_GET_CPUID2"))?
                .as_slice()
                .to_vec(),
            tsc_khz: fd.get_tsc_khz().ok(),
        })
    }

    /// Checks the parts of an untrusted state that KVM would not check for us.
    pub fn validate(&self, expected_index: u8) -> Result<(), VcpuStateError> {
        let bad = |detail: String| VcpuStateError {
            index: expected_index,
            what: "validating the saved state",
            detail,
        };
        if self.index != expected_index {
            return Err(bad(format!("the state is for vCPU {}", self.index)));
        }
        if self.msrs.len() > MAX_ENTRIES || self.cpuid.len() > MAX_ENTRIES {
            return Err(bad(format!(
                "{} MSRs / {} CPUID entries is too many",
                self.msrs.len(),
                self.cpuid.len()
            )));
        }
        if self.mp_state.mp_state > 8 {
            return Err(bad(format!(
                "mp_state {} is not a KVM MP state",
                self.mp_state.mp_state
            )));
        }
        Ok(())
    }

    /// Writes the state into a new vCPU (created but not yet run).
    pub fn restore(&self, fd: &VcpuFd) -> Result<(), VcpuStateError> {
        let index = self.index;
        let cpuid = CpuId::from_entries(&self.cpuid).map_err(|e| VcpuStateError {
            index,
            what: "building CPUID",
            detail: format!("{e:?}"),
        })?;
        fd.set_cpuid2(&cpuid)
            .map_err(err(index, "KVM_SET_CPUID2"))?;
        fd.set_mp_state(self.mp_state)
            .map_err(err(index, "KVM_SET_MP_STATE"))?;
        fd.set_regs(&self.regs)
            .map_err(err(index, "KVM_SET_REGS"))?;
        fd.set_sregs(&self.sregs)
            .map_err(err(index, "KVM_SET_SREGS"))?;
        // SAFETY: `self.xsave` is a complete kvm_xsave of the legacy 4 KiB size, which is
        // what KVM_SET_XSAVE reads.
        unsafe { fd.set_xsave(&self.xsave) }.map_err(err(index, "KVM_SET_XSAVE"))?;
        fd.set_xcrs(&self.xcrs)
            .map_err(err(index, "KVM_SET_XCRS"))?;
        fd.set_debug_regs(&self.debugregs)
            .map_err(err(index, "KVM_SET_DEBUGREGS"))?;
        fd.set_lapic(&self.lapic)
            .map_err(err(index, "KVM_SET_LAPIC"))?;
        let msrs = Msrs::from_entries(&self.msrs).map_err(|e| VcpuStateError {
            index,
            what: "building the MSR list",
            detail: format!("{e:?}"),
        })?;
        let written = fd.set_msrs(&msrs).map_err(err(index, "KVM_SET_MSRS"))?;
        if written != self.msrs.len() {
            let failed = self.msrs.get(written).map(|m| m.index).unwrap_or(0);
            return Err(VcpuStateError {
                index,
                what: "KVM_SET_MSRS",
                detail: format!(
                    "KVM accepted {written} of {} MSRs (refused {failed:#x})",
                    self.msrs.len()
                ),
            });
        }
        fd.set_vcpu_events(&self.events)
            .map_err(err(index, "KVM_SET_VCPU_EVENTS"))?;
        Ok(())
    }
}
