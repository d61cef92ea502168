//! Conversions between a vCPU's KVM register state and the register file gdb sees.
//!
//! gdb can express less than KVM holds: the x87 tag word only says valid or empty per
//! register, the x87 instruction and operand pointers keep only their low 32 bits (their
//! segments read as 0), and segment registers carry only their selectors. [`apply_gdb`] writes
//! what gdb can express and leaves the rest of the KVM state as it was.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

use super::arch::GuestRegs;

/// The KVM state of one vCPU that the gdb register file is built from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VcpuRegs {
    /// General registers, `rip` and `rflags` (`KVM_GET_REGS`).
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers (`KVM_GET_SREGS`).
    pub sregs: kvm_sregs,
    /// x87 and SSE state (`KVM_GET_FPU`).
    pub fpu: kvm_fpu,
    /// MSR `IA32_KERNEL_GS_BASE`, the value `swapgs` exchanges with the GS base.
    pub k_gs_base: u64,
}

/// Bytes of an x87 register that gdb sees (the 80-bit extended value).
const ST_LEN: usize = 10;

/// The two full-tag-word bits that mark an x87 register empty.
const TAG_EMPTY: u16 = 0b11;

/// Converts the abridged (FXSAVE) x87 tag, one bit per physical register set when it holds
/// a value, into the full tag word, two bits per register: `0b00` for a register that holds a
/// value and `0b11` for an empty one.
pub fn full_tag_word(abridged: u8) -> u16 {
    (0..8).fold(0u16, |tag, i| {
        if abridged & (1 << i) == 0 {
            tag | (TAG_EMPTY << (2 * i))
        } else {
            tag
        }
    })
}

/// Converts a full x87 tag word into the abridged (FXSAVE) form: bit `i` is set unless
/// register `i` is tagged empty (`0b11`).
pub fn abridged_tag(full: u16) -> u8 {
    (0..8).fold(0u8, |tag, i| {
        if (full >> (2 * i)) & TAG_EMPTY == TAG_EMPTY {
            tag
        } else {
            tag | (1 << i)
        }
    })
}

/// The general registers in gdb's order: rax rbx rcx rdx rsi rdi rbp rsp r8..r15.
fn gprs(r: &kvm_regs) -> [u64; 16] {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ]
}

/// Mutable references to the general registers in gdb's order.
fn gprs_mut(r: &mut kvm_regs) -> [&mut u64; 16] {
    [
        &mut r.rax, &mut r.rbx, &mut r.rcx, &mut r.rdx, &mut r.rsi, &mut r.rdi, &mut r.rbp,
        &mut r.rsp, &mut r.r8, &mut r.r9, &mut r.r10, &mut r.r11, &mut r.r12, &mut r.r13,
        &mut r.r14, &mut r.r15,
    ]
}

/// Replaces the low 32 bits of `value`, keeping the high half.
fn set_low32(value: &mut u64, low: u32) {
    *value = (*value & !u64::from(u32::MAX)) | u64::from(low);
}

/// Sets a segment's selector when gdb changed it. The descriptor cache (base, limit and
/// attributes) is kept: the VMM does not reload it from the descriptor tables.
fn set_selector(seg: &mut kvm_segment, selector: u32) {
    // Selectors are 16 bits; gdb's register is 32 bits wide and the upper half is ignored.
    let selector = selector as u16;
    if seg.selector != selector {
        seg.selector = selector;
    }
}

/// Builds gdb's view of a vCPU's registers from its KVM state.
pub fn to_gdb(v: &VcpuRegs) -> GuestRegs {
    let mut g = GuestRegs::default();
    let core = &mut g.core;
    core.regs = gprs(&v.regs);
    core.rip = v.regs.rip;
    // The upper half of RFLAGS is reserved (always zero).
    core.eflags = v.regs.rflags as u32;

    let s = &v.sregs;
    core.segments.cs = s.cs.selector.into();
    core.segments.ss = s.ss.selector.into();
    core.segments.ds = s.ds.selector.into();
    core.segments.es = s.es.selector.into();
    core.segments.fs = s.fs.selector.into();
    core.segments.gs = s.gs.selector.into();

    let f = &v.fpu;
    for (st, fpr) in core.st.iter_mut().zip(f.fpr.iter()) {
        st.copy_from_slice(&fpr[..ST_LEN]);
    }
    core.fpu.fctrl = f.fcw.into();
    core.fpu.fstat = f.fsw.into();
    core.fpu.ftag = full_tag_word(f.ftwx).into();
    core.fpu.fiseg = 0;
    core.fpu.fioff = f.last_ip as u32;
    core.fpu.foseg = 0;
    core.fpu.fooff = f.last_dp as u32;
    core.fpu.fop = f.last_opcode.into();
    for (xmm, raw) in core.xmm.iter_mut().zip(f.xmm.iter()) {
        *xmm = u128::from_le_bytes(*raw);
    }
    core.mxcsr = f.mxcsr;

    g.fs_base = s.fs.base;
    g.gs_base = s.gs.base;
    g.k_gs_base = v.k_gs_base;
    g.cr0 = s.cr0;
    g.cr2 = s.cr2;
    g.cr3 = s.cr3;
    g.cr4 = s.cr4;
    g.cr8 = s.cr8;
    g.efer = s.efer;
    g
}

/// Writes gdb's register file into a vCPU's KVM state.
///
/// Values wider than their KVM field are truncated (segment selectors, `fctrl`, `fstat`,
/// `fop` to 16 bits; `ftag` is reduced to valid/empty per register). `fioff` and `fooff`
/// replace the low 32 bits of the last instruction and operand pointers; `fiseg` and `foseg`
/// are ignored. A changed segment selector does not reload the segment's descriptor cache.
pub fn apply_gdb(g: &GuestRegs, v: &mut VcpuRegs) {
    let core = &g.core;
    for (reg, value) in gprs_mut(&mut v.regs).into_iter().zip(core.regs) {
        *reg = value;
    }
    v.regs.rip = core.rip;
    set_low32(&mut v.regs.rflags, core.eflags);

    let s = &mut v.sregs;
    set_selector(&mut s.cs, core.segments.cs);
    set_selector(&mut s.ss, core.segments.ss);
    set_selector(&mut s.ds, core.segments.ds);
    set_selector(&mut s.es, core.segments.es);
    set_selector(&mut s.fs, core.segments.fs);
    set_selector(&mut s.gs, core.segments.gs);
    s.fs.base = g.fs_base;
    s.gs.base = g.gs_base;
    s.cr0 = g.cr0;
    s.cr2 = g.cr2;
    s.cr3 = g.cr3;
    s.cr4 = g.cr4;
    s.cr8 = g.cr8;
    s.efer = g.efer;
    v.k_gs_base = g.k_gs_base;

    let f = &mut v.fpu;
    for (fpr, st) in f.fpr.iter_mut().zip(core.st.iter()) {
        fpr[..ST_LEN].copy_from_slice(st);
    }
    f.fcw = core.fpu.fctrl as u16;
    f.fsw = core.fpu.fstat as u16;
    f.ftwx = abridged_tag(core.fpu.ftag as u16);
    f.last_opcode = core.fpu.fop as u16;
    set_low32(&mut f.last_ip, core.fpu.fioff);
    set_low32(&mut f.last_dp, core.fpu.fooff);
    for (raw, xmm) in f.xmm.iter_mut().zip(core.xmm) {
        *raw = xmm.to_le_bytes();
    }
    f.mxcsr = core.mxcsr;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(selector: u16, base: u64) -> kvm_segment {
        kvm_segment {
            base,
            limit: 0xffff_ffff,
            selector,
            type_: 0xb,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        }
    }

    fn sample() -> VcpuRegs {
        let mut v = VcpuRegs::default();
        for (i, r) in gprs_mut(&mut v.regs).into_iter().enumerate() {
            *r = 0xa000 + i as u64;
        }
        v.regs.rip = 0xffff_ffff_8100_1234;
        v.regs.rflags = 0x246;
        v.sregs.cs = segment(0x10, 0);
        v.sregs.ss = segment(0x18, 0);
        v.sregs.ds = segment(0x18, 0);
        v.sregs.es = segment(0x18, 0);
        v.sregs.fs = segment(0, 0x7f12_3456_7000);
        v.sregs.gs = segment(0, 0xffff_8880_3fc0_0000);
        v.sregs.tr = segment(0x40, 0xffff_fe00_0000_3000);
        v.sregs.cr0 = 0x8005_0033;
        v.sregs.cr2 = 0x7f00_dead_b000;
        v.sregs.cr3 = 0x1_2345_6000;
        v.sregs.cr4 = 0x0030_06f0;
        v.sregs.cr8 = 2;
        v.sregs.efer = 0xd01;
        v.sregs.apic_base = 0xfee0_0900;
        for (i, fpr) in v.fpu.fpr.iter_mut().enumerate() {
            // The six bytes past the 80-bit value are padding, which gdb cannot see.
            *fpr = [0; 16];
            for (j, b) in fpr[..ST_LEN].iter_mut().enumerate() {
                *b = (i * 16 + j) as u8;
            }
        }
        v.fpu.fcw = 0x37f;
        v.fpu.fsw = 0x3800;
        v.fpu.ftwx = 0b1000_0001;
        v.fpu.last_opcode = 0x7d9;
        v.fpu.last_ip = 0xffff_ffff_8100_0ffe;
        v.fpu.last_dp = 0x0000_7fff_ffff_e000;
        for (i, x) in v.fpu.xmm.iter_mut().enumerate() {
            *x = [i as u8 ^ 0x5a; 16];
            x[0] = i as u8;
        }
        v.fpu.mxcsr = 0x1fa0;
        v.k_gs_base = 0x7f00_0000_0000;
        v
    }

    #[test]
    fn kvm_to_gdb_to_kvm_preserves_everything() {
        let original = sample();
        let g = to_gdb(&original);
        // Only the parts gdb cannot express come from the starting state.
        let mut back = VcpuRegs {
            sregs: original.sregs,
            ..Default::default()
        };
        back.fpu.last_ip = original.fpu.last_ip & !0xffff_ffff;
        back.fpu.last_dp = original.fpu.last_dp & !0xffff_ffff;
        apply_gdb(&g, &mut back);
        assert_eq!(back, original);
        // Applying onto the original state changes nothing.
        let mut same = original;
        apply_gdb(&g, &mut same);
        assert_eq!(same, original);
    }

    #[test]
    fn gdb_view_of_kvm_state() {
        let v = sample();
        let g = to_gdb(&v);
        assert_eq!(g.core.regs[0], v.regs.rax);
        assert_eq!(g.core.regs[1], v.regs.rbx);
        assert_eq!(g.core.regs[6], v.regs.rbp);
        assert_eq!(g.core.regs[7], v.regs.rsp);
        assert_eq!(g.core.regs[15], v.regs.r15);
        assert_eq!(g.core.rip, v.regs.rip);
        assert_eq!(g.core.eflags, 0x246);
        assert_eq!(g.core.segments.cs, 0x10);
        assert_eq!(g.core.segments.ss, 0x18);
        assert_eq!(g.fs_base, v.sregs.fs.base);
        assert_eq!(g.gs_base, v.sregs.gs.base);
        assert_eq!(g.k_gs_base, v.k_gs_base);
        assert_eq!(g.cr3, v.sregs.cr3);
        assert_eq!(g.efer, 0xd01);
        assert_eq!(g.core.st[1], v.fpu.fpr[1][..10]);
        assert_eq!(g.core.fpu.fctrl, 0x37f);
        assert_eq!(g.core.fpu.ftag, 0x3ffc);
        assert_eq!(g.core.fpu.fop, 0x7d9);
        assert_eq!(g.core.fpu.fioff, 0x8100_0ffe);
        assert_eq!(g.core.fpu.fooff, 0xffff_e000);
        assert_eq!(g.core.fpu.fiseg, 0);
        assert_eq!(g.core.fpu.foseg, 0);
        assert_eq!(g.core.xmm[3].to_le_bytes(), v.fpu.xmm[3]);
        assert_eq!(g.core.mxcsr, 0x1fa0);
    }

    #[test]
    fn gdb_edits_reach_kvm_state() {
        let mut v = sample();
        let mut g = to_gdb(&v);
        g.core.regs[2] = 0x1234; // rcx
        g.core.regs[8] = 0x5678; // r8
        g.core.rip = 0x40_0000;
        g.core.eflags = 0x202;
        g.core.st[7] = [0xee; 10];
        g.core.fpu.ftag = 0xffff;
        g.core.fpu.fioff = 0x1111_2222;
        g.core.xmm[15] = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10;
        g.cr3 = 0x9000;
        g.fs_base = 0x1000;
        apply_gdb(&g, &mut v);
        assert_eq!(v.regs.rcx, 0x1234);
        assert_eq!(v.regs.r8, 0x5678);
        assert_eq!(v.regs.rip, 0x40_0000);
        assert_eq!(v.regs.rflags, 0x202);
        assert_eq!(v.fpu.fpr[7][..10], [0xee; 10]);
        assert_eq!(v.fpu.fpr[7][10..], [0; 6]);
        assert_eq!(v.fpu.ftwx, 0);
        assert_eq!(v.fpu.last_ip, 0xffff_ffff_1111_2222);
        assert_eq!(v.fpu.xmm[15], g.core.xmm[15].to_le_bytes());
        assert_eq!(v.sregs.cr3, 0x9000);
        assert_eq!(v.sregs.fs.base, 0x1000);
        assert_eq!(to_gdb(&v), g);
    }

    #[test]
    fn gdb_to_kvm_to_gdb_preserves_what_kvm_holds() {
        let mut g = to_gdb(&sample());
        g.core.fpu.ftag = 0x0ff0; // registers 0, 1, 6, 7 valid; 2..=5 empty
        let mut v = VcpuRegs::default();
        apply_gdb(&g, &mut v);
        assert_eq!(to_gdb(&v), g);
    }

    #[test]
    fn tag_word_conversions() {
        assert_eq!(full_tag_word(0), 0xffff);
        assert_eq!(full_tag_word(0xff), 0);
        assert_eq!(full_tag_word(0b0000_0001), 0xfffc);
        assert_eq!(full_tag_word(0b1000_0000), 0x3fff);
        assert_eq!(abridged_tag(0xffff), 0);
        assert_eq!(abridged_tag(0), 0xff);
        assert_eq!(abridged_tag(0xfffc), 0b0000_0001);
        // Zero (0b01) and special (0b10) tags still mean the register holds a value.
        assert_eq!(abridged_tag(0xfff9), 0b0000_0011);
        for abridged in 0..=u8::MAX {
            assert_eq!(abridged_tag(full_tag_word(abridged)), abridged);
        }
    }

    #[test]
    fn unchanged_selector_keeps_descriptor_cache() {
        let mut v = sample();
        let before = v.sregs;
        let g = to_gdb(&v);
        apply_gdb(&g, &mut v);
        assert_eq!(v.sregs.cs, before.cs);
        assert_eq!(v.sregs.ss, before.ss);
        assert_eq!(v.sregs.gs, before.gs);
    }

    #[test]
    fn changed_selector_updates_only_the_selector() {
        let mut v = sample();
        let before = v.sregs;
        let mut g = to_gdb(&v);
        g.core.segments.ds = 0x2b;
        g.core.segments.es = 0x1_0023; // the upper half is ignored
        apply_gdb(&g, &mut v);
        assert_eq!(v.sregs.ds.selector, 0x2b);
        assert_eq!(v.sregs.es.selector, 0x23);
        let mut expected_ds = before.ds;
        expected_ds.selector = 0x2b;
        assert_eq!(v.sregs.ds, expected_ds);
        assert_eq!(v.sregs.cs, before.cs);
    }

    #[test]
    fn rflags_upper_half_is_kept() {
        let mut v = sample();
        v.regs.rflags = 0xffff_ffff_0000_0002;
        let mut g = to_gdb(&v);
        assert_eq!(g.core.eflags, 2);
        g.core.eflags = 0x202;
        apply_gdb(&g, &mut v);
        assert_eq!(v.regs.rflags, 0xffff_ffff_0000_0202);
    }
}
