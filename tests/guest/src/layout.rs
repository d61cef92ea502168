//! Fixed guest-physical addresses and sizes shared by the assembly and Rust code
//! (identity mapped: guest-physical = virtual). See also `link.ld` and README.md.

/// First byte of the supervisor-only kernel region (the image is loaded at 1 MiB).
pub const KERNEL_BASE: usize = 0x10_0000;
/// End of the kernel region; user code and data follow.
pub const KERNEL_END: usize = 0x14_0000;
/// Most CPUs the guest can bring up (BSP included).
pub const MAX_CPUS: usize = 16;
/// Kernel (CPL0) stack per CPU.
pub const KSTACK_SIZE: usize = 4096;
/// CPL3 stack per application processor.
pub const AP_USTACK_SIZE: usize = 16384;
/// Page below 1 MiB to which the AP start-up code is copied (SIPI vector 0x08).
pub const TRAMPOLINE_BASE: usize = 0x8000;

/// Interrupt vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Interrupt vector of COM1 (GSI 4).
pub const SERIAL_VECTOR: u8 = 0x28;
/// Interrupt vector of virtio-mmio slot 0 (slot i uses this + i).
pub const VIRTIO_VECTOR_BASE: u8 = 0x30;
/// Spurious-interrupt vector programmed in the LAPIC.
pub const SPURIOUS_VECTOR: u8 = 0xff;

extern "C" {
    static __image_end: u8;
}

/// First byte after the loaded image (end of user bss).
pub fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}
