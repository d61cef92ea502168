//! Register state at the PVH entry point: 32-bit protected mode, flat segments, paging off.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;

fn flat_segment(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// General registers for a PVH entry: `rip` = entry, `rbx` = `hvm_start_info`.
pub fn pvh_regs(entry: u64, start_info: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rbx: start_info,
        rflags: 0x2,
        ..Default::default()
    }
}

/// Updates `sregs` (as read from KVM) for a PVH entry.
pub fn pvh_sregs(sregs: &mut kvm_sregs) {
    sregs.cs = flat_segment(0x10, 0xb); // execute/read, accessed
    let data = flat_segment(0x18, 0x3); // read/write, accessed
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        limit: 0x67,
        type_: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
}

/// x87/SSE control words at reset.
pub fn initial_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}
