//! Limits enforced on everything read from disk, checked before anything of that size is
//! allocated.

/// Largest state file read (and written).
pub const MAX_STATE_FILE_BYTES: u64 = 64 << 20;
/// Most sections in one state file.
pub const MAX_SECTIONS: usize = 4096;
/// Longest section name, in bytes.
pub const MAX_SECTION_NAME_BYTES: usize = 64;
/// The page size of memory images (and of dirty bitmaps).
pub const PAGE_SIZE: u64 = 4096;
/// Pages per checksummed block of a memory image (1 MiB).
pub const BLOCK_PAGES: u64 = 256;
/// Most guest memory regions in a layout.
pub const MAX_REGIONS: usize = 1024;
/// Most guest memory described by one layout (1 TiB).
pub const MAX_GUEST_MEMORY: u64 = 1 << 40;
/// Longest memory image tag (the snapshot id it belongs to), in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Longest chain of diff snapshots followed before giving up.
pub const MAX_CHAIN_LEN: usize = 100_000;
/// Largest layout-and-checksum table (the part after the data) of a memory image: enough
/// for the bitmaps and checksums of [`MAX_GUEST_MEMORY`].
pub const MAX_IMAGE_META_BYTES: u64 = 80 << 20;
/// Largest single write issued while writing a memory image.
pub const MAX_WRITE_BYTES: usize = 16 << 20;
