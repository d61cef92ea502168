//! Local APIC and IOAPIC programming from CPL3 (both are user-mapped MMIO).
//! (The legacy 8259 PICs are masked by the CPL0 boot code, see `asm/boot.s`.)

use crate::io::{mmio_read32, mmio_write32};
use crate::layout::SPURIOUS_VECTOR;

const LAPIC_BASE: usize = 0xfee0_0000;
pub const LAPIC_ID: usize = 0x20;
const LAPIC_TPR: usize = 0x80;
const LAPIC_SVR: usize = 0xf0;
const LAPIC_ICR_LOW: usize = 0x300;
const LAPIC_ICR_HIGH: usize = 0x310;
pub const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_LVT_LINT0: usize = 0x350;
const LAPIC_LVT_LINT1: usize = 0x360;
const LAPIC_LVT_ERROR: usize = 0x370;
pub const LAPIC_TIMER_INITIAL: usize = 0x380;
pub const LAPIC_TIMER_CURRENT: usize = 0x390;
pub const LAPIC_TIMER_DIVIDE: usize = 0x3e0;
pub const LVT_MASKED: u32 = 1 << 16;

/// IOAPIC for GSIs 0-23.
const IOAPIC0: usize = 0xfec0_0000;
/// Second IOAPIC (QEMU microvm `ioapic2`) for GSIs 24 and up.
const IOAPIC1: usize = 0xfec1_0000;
const IOAPIC_PINS: u32 = 24;

/// Read a local APIC register.
pub fn lapic_read(reg: usize) -> u32 {
    mmio_read32(LAPIC_BASE + reg)
}

/// Write a local APIC register.
pub fn lapic_write(reg: usize, value: u32) {
    mmio_write32(LAPIC_BASE + reg, value)
}

/// This CPU's APIC ID (from the LAPIC, never from CPUID).
pub fn apic_id() -> u32 {
    lapic_read(LAPIC_ID) >> 24
}

/// Software-enable the BSP's LAPIC with every local interrupt source masked.
pub fn lapic_init() {
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(LAPIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
}

/// Route `gsi` to `vector` on the CPU with APIC ID `dest`: fixed delivery,
/// physical destination, edge triggered, active high.
pub fn ioapic_route(gsi: u32, vector: u8, dest: u32) {
    let (base, pin) = if gsi < IOAPIC_PINS {
        (IOAPIC0, gsi)
    } else {
        (IOAPIC1, gsi - IOAPIC_PINS)
    };
    let reg = 0x10 + 2 * pin;
    ioapic_write(base, reg + 1, dest << 24);
    ioapic_write(base, reg, u32::from(vector));
}

fn ioapic_write(base: usize, reg: u32, value: u32) {
    mmio_write32(base, reg);
    mmio_write32(base + 0x10, value);
}

/// Send an IPI: `icr_low` to every CPU but this one.
pub fn ipi_all_but_self(icr_low: u32) {
    lapic_write(LAPIC_ICR_HIGH, 0);
    lapic_write(LAPIC_ICR_LOW, icr_low | (0b11 << 18));
}
