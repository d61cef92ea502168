//! The virtio-blk feature bits and configuration space (virtio 1.2 §5.2.3–5.2.4).

use crate::virtio::VIRTIO_F_VERSION_1;

/// Feature bit: `seg_max` in config space is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
/// Feature bit: the device is read-only.
pub const VIRTIO_BLK_F_RO: u32 = 5;
/// Feature bit: `blk_size` in config space is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
/// Feature bit: the FLUSH request is supported.
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// Feature bit: the DISCARD request is supported.
pub const VIRTIO_BLK_F_DISCARD: u32 = 13;
/// Feature bit: the WRITE_ZEROES request is supported.
pub const VIRTIO_BLK_F_WRITE_ZEROES: u32 = 14;

/// Size of a virtio-blk sector: capacity and request sectors are counted in these.
pub const SECTOR_SIZE: u64 = 512;
/// Largest DISCARD segment, in sectors (just under 4 GiB).
pub const MAX_DISCARD_SECTORS: u32 = u32::MAX / SECTOR_SIZE as u32;
/// Most segments in one DISCARD request.
pub const MAX_DISCARD_SEG: u32 = 32;
/// Alignment hint for discards, in sectors (4 KiB, the usual file system block).
pub const DISCARD_SECTOR_ALIGNMENT: u32 = 8;
/// Largest WRITE_ZEROES segment, in sectors.
pub const MAX_WRITE_ZEROES_SECTORS: u32 = MAX_DISCARD_SECTORS;
/// Most segments in one WRITE_ZEROES request.
pub const MAX_WRITE_ZEROES_SEG: u32 = MAX_DISCARD_SEG;

/// Length of the configuration space we expose (through `write_zeroes_may_unmap` and its
/// padding; the secure-erase and zoned fields that follow are not offered).
pub const CONFIG_LEN: usize = 0x3c;

/// Features offered for a disk of the given writability and queue size.
pub fn avail_features(read_only: bool) -> u64 {
    let mut features = (1u64 << VIRTIO_F_VERSION_1)
        | (1 << VIRTIO_BLK_F_SEG_MAX)
        | (1 << VIRTIO_BLK_F_BLK_SIZE)
        | (1 << VIRTIO_BLK_F_FLUSH);
    if read_only {
        features |= 1 << VIRTIO_BLK_F_RO;
    } else {
        features |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
    }
    features
}

/// The configuration space for a disk of `capacity_sectors` served by a queue of
/// `queue_size` entries.
pub fn config_space(capacity_sectors: u64, queue_size: u16) -> [u8; CONFIG_LEN] {
    let mut c = [0u8; CONFIG_LEN];
    let mut put =
        |offset: usize, bytes: &[u8]| c[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(0x00, &capacity_sectors.to_le_bytes());
    // size_max (0x08) is not offered.
    // A request needs a header and a status descriptor besides its data segments.
    put(
        0x0c,
        &u32::from(queue_size.saturating_sub(2).max(1)).to_le_bytes(),
    );
    // geometry (0x10) is not offered.
    put(0x14, &(SECTOR_SIZE as u32).to_le_bytes());
    // topology (0x18..0x20), writeback (0x20) are not offered.
    put(0x22, &1u16.to_le_bytes());
    put(0x24, &MAX_DISCARD_SECTORS.to_le_bytes());
    put(0x28, &MAX_DISCARD_SEG.to_le_bytes());
    put(0x2c, &DISCARD_SECTOR_ALIGNMENT.to_le_bytes());
    put(0x30, &MAX_WRITE_ZEROES_SECTORS.to_le_bytes());
    put(0x34, &MAX_WRITE_ZEROES_SEG.to_le_bytes());
    put(0x38, &[1]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_spec() {
        let c = config_space(0x1234_5678_9abc, 256);
        assert_eq!(
            u64::from_le_bytes(c[0..8].try_into().unwrap()),
            0x1234_5678_9abc
        );
        assert_eq!(u32::from_le_bytes(c[0x0c..0x10].try_into().unwrap()), 254);
        assert_eq!(u32::from_le_bytes(c[0x14..0x18].try_into().unwrap()), 512);
        assert_eq!(u32::from_le_bytes(c[0x28..0x2c].try_into().unwrap()), 32);
        assert_eq!(u32::from_le_bytes(c[0x2c..0x30].try_into().unwrap()), 8);
        assert_eq!(c[0x38], 1);
        assert_eq!(avail_features(true) & (1 << VIRTIO_BLK_F_DISCARD), 0);
        assert_ne!(avail_features(true) & (1 << VIRTIO_BLK_F_RO), 0);
        assert_ne!(avail_features(false) & (1 << VIRTIO_BLK_F_DISCARD), 0);
    }
}
