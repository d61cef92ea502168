//! What the debugger asks of a paused vCPU, done on the vCPU's own thread (it owns the fd).

use kvm_bindings::{kvm_guest_debug, Msrs};
use kvm_ioctls::VcpuFd;

use super::regs::VcpuRegs;
use crate::vstate::vcpu::{VcpuControl, VcpuReply, VcpuRequest};

/// `IA32_KERNEL_GS_BASE`, the `swapgs` shadow of the GS base.
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// A debugger's request to one vCPU.
#[derive(Debug, Clone)]
pub enum DebugOp {
    /// Read the registers gdb shows.
    Read,
    /// Write them back (after gdb changed some).
    Write(Box<VcpuRegs>),
    /// Set breakpoints, watchpoints and single-step (`KVM_SET_GUEST_DEBUG`).
    SetGuestDebug(Box<kvm_guest_debug>),
}

/// The answer to a [`DebugOp`].
#[derive(Debug)]
pub enum DebugReply {
    /// The registers read.
    Regs(Box<VcpuRegs>),
    /// The write or setting took effect.
    Done,
}

/// Asks paused vCPU `vcpu` to do `op` and waits for the answer.
pub fn request(control: &VcpuControl, vcpu: usize, op: DebugOp) -> Result<DebugReply, String> {
    match control.request_one(vcpu, VcpuRequest::Debug(op))? {
        VcpuReply::Debug(reply) => *reply,
        other => Err(format!("vCPU {vcpu}: unexpected reply {other:?}")),
    }
}

/// The registers of paused vCPU `vcpu`.
pub fn read(control: &VcpuControl, vcpu: usize) -> Result<VcpuRegs, String> {
    match request(control, vcpu, DebugOp::Read)? {
        DebugReply::Regs(r) => Ok(*r),
        DebugReply::Done => Err(format!("vCPU {vcpu}: no registers in the reply")),
    }
}

/// Does `op` on the vCPU whose fd this thread owns.
pub fn serve(fd: &mut VcpuFd, op: DebugOp) -> Result<DebugReply, String> {
    match op {
        DebugOp::Read => {
            // A port or MMIO exit already answered is completed first, so that the
            // registers show the instruction done.
            crate::vstate::vcpu::complete_pending_exit(0, fd);
            let regs = fd.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
            let sregs = fd.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
            let fpu = fd.get_fpu().map_err(|e| format!("KVM_GET_FPU: {e}"))?;
            let k_gs_base = read_msr(fd, MSR_KERNEL_GS_BASE).unwrap_or(0);
            Ok(DebugReply::Regs(Box::new(VcpuRegs {
                regs,
                sregs,
                fpu,
                k_gs_base,
            })))
        }
        DebugOp::Write(v) => {
            crate::vstate::vcpu::complete_pending_exit(0, fd);
            fd.set_regs(&v.regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            fd.set_sregs(&v.sregs)
                .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
            fd.set_fpu(&v.fpu)
                .map_err(|e| format!("KVM_SET_FPU: {e}"))?;
            write_msr(fd, MSR_KERNEL_GS_BASE, v.k_gs_base)?;
            Ok(DebugReply::Done)
        }
        DebugOp::SetGuestDebug(debug) => {
            fd.set_guest_debug(&debug)
                .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}"))?;
            Ok(DebugReply::Done)
        }
    }
}

fn read_msr(fd: &VcpuFd, index: u32) -> Result<u64, String> {
    let mut msrs = Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
        index,
        ..Default::default()
    }])
    .map_err(|e| format!("MSR list: {e:?}"))?;
    match fd.get_msrs(&mut msrs) {
        Ok(1) => Ok(msrs.as_slice()[0].data),
        Ok(_) => Err(format!("MSR {index:#x} cannot be read")),
        Err(e) => Err(format!("KVM_GET_MSRS: {e}")),
    }
}

fn write_msr(fd: &VcpuFd, index: u32, data: u64) -> Result<(), String> {
    let msrs = Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }])
    .map_err(|e| format!("MSR list: {e:?}"))?;
    match fd.set_msrs(&msrs) {
        Ok(1) => Ok(()),
        Ok(_) => Err(format!("MSR {index:#x} cannot be written")),
        Err(e) => Err(format!("KVM_SET_MSRS: {e}")),
    }
}
