//! The gdb architecture for Reprise guests: x86-64 core and SSE registers as gdb knows them,
//! plus the segment bases and the system registers (control registers, EFER and the swapped
//! GS base) in a feature of our own, so that `info registers` shows them.
//!
//! Register numbers follow the order of appearance in [`TARGET_XML`] (0 to 65), and
//! [`GuestRegs`] serializes the 'g' packet in the same order.

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::id::X86_64CoreRegId;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

/// Size in bytes of the core (general, x87 and SSE) part of the 'g' packet.
pub const CORE_REGS_LEN: usize = 0x218;

/// Number of 64-bit registers that follow the core part: fs_base, gs_base, k_gs_base, cr0,
/// cr2, cr3, cr4, cr8 and efer.
const EXTRA_REGS: usize = 9;

/// Size in bytes of the whole 'g' packet payload for [`GuestX86_64`].
pub const GUEST_REGS_LEN: usize = CORE_REGS_LEN + EXTRA_REGS * 8;

/// Number of registers described by [`TARGET_XML`].
pub const REG_COUNT: usize = 66;

/// The gdb architecture of a Reprise guest: x86-64 with segment bases and system registers.
///
/// Only whole-register-file access ('g'/'G') is meant to be offered; [`X86_64CoreRegId`]
/// names the core registers for gdbstub's type requirements.
pub enum GuestX86_64 {}

impl Arch for GuestX86_64 {
    type Usize = u64;
    type Registers = GuestRegs;
    type RegId = X86_64CoreRegId;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(TARGET_XML)
    }
}

/// The register file of one vCPU as gdb sees it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuestRegs {
    /// General, x87 and SSE registers, in gdb's core and SSE feature order.
    pub core: X86_64CoreRegs,
    /// The FS segment base.
    pub fs_base: u64,
    /// The GS segment base.
    pub gs_base: u64,
    /// The value `swapgs` exchanges with the GS base (MSR `IA32_KERNEL_GS_BASE`).
    pub k_gs_base: u64,
    /// Control register 0.
    pub cr0: u64,
    /// Control register 2 (the last page-fault address).
    pub cr2: u64,
    /// Control register 3 (the page-table root).
    pub cr3: u64,
    /// Control register 4.
    pub cr4: u64,
    /// Control register 8 (the task priority).
    pub cr8: u64,
    /// The extended feature enable register (MSR `IA32_EFER`).
    pub efer: u64,
}

impl GuestRegs {
    /// The registers that follow the core part of the 'g' packet, in packet order.
    fn extra(&self) -> [u64; EXTRA_REGS] {
        [
            self.fs_base,
            self.gs_base,
            self.k_gs_base,
            self.cr0,
            self.cr2,
            self.cr3,
            self.cr4,
            self.cr8,
            self.efer,
        ]
    }

    /// Mutable references to the registers that follow the core part, in packet order.
    fn extra_mut(&mut self) -> [&mut u64; EXTRA_REGS] {
        [
            &mut self.fs_base,
            &mut self.gs_base,
            &mut self.k_gs_base,
            &mut self.cr0,
            &mut self.cr2,
            &mut self.cr3,
            &mut self.cr4,
            &mut self.cr8,
            &mut self.efer,
        ]
    }
}

impl Registers for GuestRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for value in self.extra() {
            for byte in value.to_le_bytes() {
                write_byte(Some(byte));
            }
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.len() != GUEST_REGS_LEN {
            return Err(());
        }
        let (core_bytes, extra_bytes) = bytes.split_at(CORE_REGS_LEN);
        // Decode into copies so that a failure leaves `self` untouched.
        let mut core = self.core.clone();
        core.gdb_deserialize(core_bytes)?;
        let mut values = [0u64; EXTRA_REGS];
        for (value, chunk) in values.iter_mut().zip(extra_bytes.chunks_exact(8)) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(chunk);
            *value = u64::from_le_bytes(raw);
        }
        self.core = core;
        for (slot, value) in self.extra_mut().into_iter().zip(values) {
            *slot = value;
        }
        Ok(())
    }
}

/// The target description served to gdb as `target.xml`.
pub const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="reprise_eflags" size="4">
      <field name="CF" start="0" end="0"/>
      <field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/>
      <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/>
      <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/>
      <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/>
      <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="rax" bitsize="64" type="int64"/>
    <reg name="rbx" bitsize="64" type="int64"/>
    <reg name="rcx" bitsize="64" type="int64"/>
    <reg name="rdx" bitsize="64" type="int64"/>
    <reg name="rsi" bitsize="64" type="int64"/>
    <reg name="rdi" bitsize="64" type="int64"/>
    <reg name="rbp" bitsize="64" type="data_ptr"/>
    <reg name="rsp" bitsize="64" type="data_ptr"/>
    <reg name="r8" bitsize="64" type="int64"/>
    <reg name="r9" bitsize="64" type="int64"/>
    <reg name="r10" bitsize="64" type="int64"/>
    <reg name="r11" bitsize="64" type="int64"/>
    <reg name="r12" bitsize="64" type="int64"/>
    <reg name="r13" bitsize="64" type="int64"/>
    <reg name="r14" bitsize="64" type="int64"/>
    <reg name="r15" bitsize="64" type="int64"/>
    <reg name="rip" bitsize="64" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="reprise_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
  <feature name="org.gnu.gdb.i386.sse">
    <vector id="reprise_v4f" type="ieee_single" count="4"/>
    <vector id="reprise_v2d" type="ieee_double" count="2"/>
    <vector id="reprise_v16i8" type="int8" count="16"/>
    <vector id="reprise_v8i16" type="int16" count="8"/>
    <vector id="reprise_v4i32" type="int32" count="4"/>
    <vector id="reprise_v2i64" type="int64" count="2"/>
    <union id="reprise_vec128">
      <field name="v4_float" type="reprise_v4f"/>
      <field name="v2_double" type="reprise_v2d"/>
      <field name="v16_int8" type="reprise_v16i8"/>
      <field name="v8_int16" type="reprise_v8i16"/>
      <field name="v4_int32" type="reprise_v4i32"/>
      <field name="v2_int64" type="reprise_v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="reprise_mxcsr" size="4">
      <field name="IE" start="0" end="0"/>
      <field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/>
      <field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/>
      <field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/>
      <field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/>
      <field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/>
      <field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/>
      <field name="FZ" start="15" end="15"/>
    </flags>
    <reg name="xmm0" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm1" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm2" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm3" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm4" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm5" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm6" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm7" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm8" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm9" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm10" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm11" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm12" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm13" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm14" bitsize="128" type="reprise_vec128"/>
    <reg name="xmm15" bitsize="128" type="reprise_vec128"/>
    <reg name="mxcsr" bitsize="32" type="reprise_mxcsr" group="vector"/>
  </feature>
  <feature name="org.gnu.gdb.i386.segments">
    <reg name="fs_base" bitsize="64" type="int64"/>
    <reg name="gs_base" bitsize="64" type="int64"/>
  </feature>
  <feature name="org.reprise.x86.system">
    <reg name="k_gs_base" bitsize="64" type="int64" group="system"/>
    <reg name="cr0" bitsize="64" type="int64" group="system"/>
    <reg name="cr2" bitsize="64" type="int64" group="system"/>
    <reg name="cr3" bitsize="64" type="int64" group="system"/>
    <reg name="cr4" bitsize="64" type="int64" group="system"/>
    <reg name="cr8" bitsize="64" type="int64" group="system"/>
    <reg name="efer" bitsize="64" type="int64" group="system"/>
  </feature>
</target>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GuestRegs {
        let mut core = X86_64CoreRegs::default();
        for (i, r) in core.regs.iter_mut().enumerate() {
            *r = 0x1111_0000_0000_0000 + i as u64;
        }
        core.rip = 0xffff_ffff_8100_0000;
        core.eflags = 0x246;
        core.segments.cs = 0x10;
        core.segments.ss = 0x18;
        core.segments.gs = 0x2b;
        for (i, st) in core.st.iter_mut().enumerate() {
            *st = [i as u8; 10];
        }
        core.fpu.fctrl = 0x37f;
        core.fpu.ftag = 0xffff;
        core.fpu.fop = 0x5d9;
        for (i, x) in core.xmm.iter_mut().enumerate() {
            *x = u128::MAX - i as u128;
        }
        core.mxcsr = 0x1f80;
        GuestRegs {
            core,
            fs_base: 0x7f00_0000_1000,
            gs_base: 0xffff_8880_0000_0000,
            k_gs_base: 0x7f00_0000_2000,
            cr0: 0x8005_0033,
            cr2: 0xdead_b000,
            cr3: 0x1000,
            cr4: 0x3006f0,
            cr8: 0xf,
            efer: 0xd01,
        }
    }

    fn serialize(regs: &GuestRegs) -> Vec<u8> {
        let mut out = Vec::new();
        regs.gdb_serialize(|b| out.push(b.expect("every register is present")));
        out
    }

    #[test]
    fn round_trip() {
        let regs = sample();
        let bytes = serialize(&regs);
        assert_eq!(bytes.len(), GUEST_REGS_LEN);
        let mut back = GuestRegs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, regs);
        assert_eq!(back.pc(), regs.core.rip);
    }

    #[test]
    fn extras_follow_the_core_little_endian() {
        let regs = sample();
        let bytes = serialize(&regs);
        let extra = &bytes[CORE_REGS_LEN..];
        assert_eq!(&extra[..8], &regs.fs_base.to_le_bytes());
        assert_eq!(&extra[8..16], &regs.gs_base.to_le_bytes());
        assert_eq!(&extra[64..72], &regs.efer.to_le_bytes());
    }

    #[test]
    fn deserialize_rejects_wrong_lengths() {
        let bytes = serialize(&sample());
        let mut regs = GuestRegs::default();
        assert!(regs.gdb_deserialize(&bytes[..bytes.len() - 1]).is_err());
        assert!(regs.gdb_deserialize(&bytes[..CORE_REGS_LEN]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(regs.gdb_deserialize(&longer).is_err());
        assert!(regs.gdb_deserialize(&[]).is_err());
        assert_eq!(regs, GuestRegs::default());
    }

    /// Name and bit size of every `<reg>` element, in order.
    fn described_regs() -> Vec<(String, usize)> {
        TARGET_XML
            .split("<reg ")
            .skip(1)
            .map(|element| {
                let attr = |key: &str| {
                    let start = element.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
                    let len = element[start..].find('"').unwrap();
                    element[start..start + len].to_string()
                };
                (attr("name"), attr("bitsize").parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn description_matches_the_packet_layout() {
        let xml = GuestX86_64::target_description_xml().unwrap();
        assert_eq!(xml.matches("<reg ").count(), REG_COUNT);
        assert_eq!(xml.matches("<feature ").count(), 4);
        assert_eq!(xml.matches("</feature>").count(), 4);
        assert!(xml.contains("<architecture>i386:x86-64</architecture>"));

        let regs = described_regs();
        assert_eq!(regs.len(), REG_COUNT);
        let total_bits: usize = regs.iter().map(|(_, bits)| bits).sum();
        assert_eq!(total_bits, GUEST_REGS_LEN * 8);

        let mut expected: Vec<String> = Vec::new();
        for name in ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] {
            expected.push(name.into());
        }
        expected.extend((8..16).map(|i| format!("r{i}")));
        expected.push("rip".into());
        expected.push("eflags".into());
        for name in ["cs", "ss", "ds", "es", "fs", "gs"] {
            expected.push(name.into());
        }
        expected.extend((0..8).map(|i| format!("st{i}")));
        for name in [
            "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop",
        ] {
            expected.push(name.into());
        }
        expected.extend((0..16).map(|i| format!("xmm{i}")));
        for name in [
            "mxcsr",
            "fs_base",
            "gs_base",
            "k_gs_base",
            "cr0",
            "cr2",
            "cr3",
            "cr4",
            "cr8",
            "efer",
        ] {
            expected.push(name.into());
        }
        let names: Vec<String> = regs.into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn description_types_are_defined() {
        for id in ["reprise_eflags", "reprise_vec128", "reprise_mxcsr"] {
            assert!(TARGET_XML.contains(&format!("id=\"{id}\"")), "{id}");
        }
        // Every opening tag that is not self-closing has a closing tag.
        for tag in ["target", "feature", "flags", "union"] {
            let open = TARGET_XML.matches(&format!("<{tag} ")).count()
                + TARGET_XML.matches(&format!("<{tag}>")).count();
            assert_eq!(
                open,
                TARGET_XML.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }
}
