//! Port I/O, MMIO and a few CPU instructions, for CPL3 code. Ports are reachable
//! through the TSS I/O bitmap; MMIO windows are user-mapped and uncached.

use core::arch::asm;

/// Write a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the I/O bitmap allows every port; port writes have no memory effects.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Read a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Read a 32-bit MMIO register at physical address `addr`.
pub fn mmio_read32(addr: usize) -> u32 {
    // SAFETY: callers pass addresses of device registers in the identity-mapped
    // 3-4 GiB MMIO range, which is mapped user-accessible.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Write a 32-bit MMIO register at physical address `addr`.
pub fn mmio_write32(addr: usize, value: u32) {
    // SAFETY: as for `mmio_read32`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Spin-loop hint.
pub fn pause() {
    core::hint::spin_loop();
}

/// Execute CPUID (leaf, subleaf 0) and return eax, ebx, ecx, edx.
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}
