//! `GET /vm/vcpus`: the registers of a paused VM's vCPUs, as the API shows them.

use serde::{Deserialize, Serialize};

/// One vCPU's registers (general, flags, segment selectors, control).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuRegisters {
    /// The vCPU's index (gdb's thread index − 1).
    pub index: u32,
    /// Its privilege level (CS.DPL): 0 kernel mode, 3 user mode.
    pub cpl: u8,
    /// General registers by name: rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rip rflags.
    pub rax: u64,
    /// rbx.
    pub rbx: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// rbp.
    pub rbp: u64,
    /// rsp.
    pub rsp: u64,
    /// r8.
    pub r8: u64,
    /// r9.
    pub r9: u64,
    /// r10.
    pub r10: u64,
    /// r11.
    pub r11: u64,
    /// r12.
    pub r12: u64,
    /// r13.
    pub r13: u64,
    /// r14.
    pub r14: u64,
    /// r15.
    pub r15: u64,
    /// rip.
    pub rip: u64,
    /// rflags.
    pub rflags: u64,
    /// Segment selectors.
    pub cs: u16,
    /// ss.
    pub ss: u16,
    /// ds.
    pub ds: u16,
    /// es.
    pub es: u16,
    /// fs.
    pub fs: u16,
    /// gs.
    pub gs: u16,
    /// Control registers.
    pub cr0: u64,
    /// cr2.
    pub cr2: u64,
    /// cr3.
    pub cr3: u64,
    /// cr4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

impl VcpuRegisters {
    /// The view of vCPU `index`'s KVM registers.
    pub fn new(
        index: u32,
        r: &kvm_bindings::kvm_regs,
        s: &kvm_bindings::kvm_sregs,
    ) -> VcpuRegisters {
        VcpuRegisters {
            index,
            cpl: s.cs.dpl,
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            rsp: r.rsp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
            cs: s.cs.selector,
            ss: s.ss.selector,
            ds: s.ds.selector,
            es: s.es.selector,
            fs: s.fs.selector,
            gs: s.gs.selector,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }
}
