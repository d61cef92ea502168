//! Guest memory images: full images to map `MAP_PRIVATE` at restore, and diffs of the pages
//! dirtied since a parent.
//!
//! # Format (version 1, integers little-endian)
//!
//! Both kinds of image are one file: a header in the first 4 KiB page, the data from
//! offset 4096, then a *table* (layout, bitmaps, checksums) after the data. The table comes
//! last because its size is only known once the data is written (a diff does not store its
//! zero pages); the header, written last, points to it.
//!
//! Header: magic `RPRSMEM\0`, version `u32` (1), kind `u32` (1 full, 2 diff), page size `u32`
//! (4096), block size in pages `u32` (256), data offset `u64` (4096), data length `u64`,
//! table length `u64`, table CRC32 `u32`, header CRC32 `u32` (of the 52 bytes before it).
//! The file is exactly data offset + data length + table length bytes long.
//!
//! Table: tag (`u16` length + UTF-8, the snapshot id), base tag (the parent's id for a diff,
//! empty for a full image), region count `u32`, regions (`gpa: u64`, `len: u64`), then
//! - full: per region a page bitmap of the pages that hold data (one bit per page, `u64`
//!   words), then per region one CRC32 per block of 256 pages (1 MiB) over the block's
//!   *non-zero* pages (zero pages are holes and are not hashed: writing costs no hashing of
//!   empty memory);
//! - diff: per region the dirty-page bitmap, per region the bitmap of dirty pages that are
//!   now zero (not stored), then one CRC32 per group of 256 stored pages.
//!
//! Full image data: region `i` at offset `4096 + sum of the lengths of regions before i`, so
//! every region is page-aligned and can be mapped on its own. Zero pages are not written:
//! the file is sparse, its allocated size about the memory actually used.
//!
//! Diff data: the dirty non-zero pages, in region then page order, packed.
//!
//! # Checksums and when they are verified
//!
//! Opening an image checks the header, the file size and the table (a few KiB to a few
//! MiB), never the data: restoring from a 2 GiB image must not read 2 GiB. Data is checked by
//! [`FullImage::verify`] (which a VMM may run in the background after restore, or a tool on
//! demand), by [`consolidate`] (each diff in full, and each block of the base it rewrites),
//! and blocks copied unchanged keep their checksums. Per-block checksums (not one per region)
//! let a check read and report one 1 MiB block at a time and let consolidation carry
//! untouched blocks' checksums over without reading them.

mod consolidate;
mod diff;
mod full;
mod header;
mod holes;
mod layout;
mod overlay;
mod precopy;
mod zero;

pub use consolidate::{apply_diff, consolidate};
pub use diff::{write_diff, DiffImage};
pub use full::{write_full, FullImage};
pub use header::{ImageKind, ImageStats, DATA_OFFSET, MEMORY_MAGIC, MEMORY_VERSION};
pub use layout::{MemoryLayout, MemoryRegion};
pub use precopy::PrecopiedImage;
pub use zero::is_zero_page;
