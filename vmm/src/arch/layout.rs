//! The guest physical address map.
//!
//! ```text
//! 0x0000_0000 ..              RAM (low part, up to MMIO_HOLE_START)
//!   0x0000_6000               hvm_start_info, then the module list
//!   0x0000_7000               PVH memory map
//!   0x0002_0000               kernel command line (CMDLINE_MAX_SIZE)
//!   0x0010_0000               kernel (ELF segments at their physical addresses)
//! 0xc000_0000 .. 0x1_0000_0000  MMIO hole
//!   0xd000_0000               virtio-mmio windows, MMIO_WINDOW_SIZE apart
//!   0xfec0_0000               IOAPIC;  0xfee0_0000 LAPIC
//!   0xfffb_c000               KVM identity map + TSS (Intel VMX needs them)
//! 0x1_0000_0000 ..            RAM (high part, if any)
//! ```

/// Start of the hole below 4 GiB reserved for MMIO.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the MMIO hole (4 GiB), where high RAM starts.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// Physical address of the PVH `hvm_start_info` structure.
pub const PVH_INFO_START: u64 = 0x6000;
/// Physical address of the PVH module list (right after `hvm_start_info`).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// Physical address of the PVH memory map.
pub const PVH_MEMMAP_START: u64 = 0x7000;
/// Most memory-map entries that fit before the command line.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = 64;
/// Physical address of the kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Largest command line (bytes, including the terminating NUL).
pub const CMDLINE_MAX_SIZE: usize = 4096;
/// Lowest address a kernel may be loaded at (the ELF loader refuses lower segments).
pub const HIMEM_START: u64 = 0x10_0000;
/// First virtio-mmio window.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// First GSI for virtio devices: IOAPIC pins 16..=23 are not shared with the 8259s.
pub const VIRTIO_GSI_BASE: u32 = 16;
/// Number of virtio devices the IOAPIC pins allow.
pub const VIRTIO_MAX_DEVICES: u32 = 8;
/// KVM's three-page TSS area (`KVM_SET_TSS_ADDR`).
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// KVM's identity-map page (`KVM_SET_IDENTITY_MAP_ADDR`).
pub const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;
/// Where the initrd goes: page-aligned, below this address, at the top of low RAM.
pub const INITRD_MAX_END: u64 = MMIO_HOLE_START;

/// RAM ranges `(start, length)` for a guest with `mem_bytes` of memory.
pub fn ram_ranges(mem_bytes: u64) -> Vec<(u64, u64)> {
    if mem_bytes <= MMIO_HOLE_START {
        vec![(0, mem_bytes)]
    } else {
        vec![
            (0, MMIO_HOLE_START),
            (MMIO_HOLE_END, mem_bytes - MMIO_HOLE_START),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_skips_the_mmio_hole() {
        assert_eq!(ram_ranges(128 << 20), vec![(0, 128 << 20)]);
        let r = ram_ranges(4 << 30);
        assert_eq!(
            r,
            vec![
                (0, MMIO_HOLE_START),
                (MMIO_HOLE_END, (4 << 30) - MMIO_HOLE_START)
            ]
        );
    }
}
