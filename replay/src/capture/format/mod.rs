//! The on-disk formats of a capture buffer directory (version 1).
//!
//! ```text
//! <dir>/<first seq, 20 digits>.seg   a segment: header, then records
//! <dir>/<first seq, 20 digits>.idx   its index, rewritten atomically (`.idx.partial` first)
//! ```
//!
//! - [`header`]: the segment header (magic `RPRSCAPT`, version, buffer name, first seq,
//!   why the segment starts, the wall-clock/VM-time anchors, block mode, source table),
//!   closed by a CRC32.
//! - [`record`]: each record is `u32 len | u32 crc32(len ‖ payload) | payload`, the payload
//!   being one event ([`crate::codec::event`]).
//! - [`index`]: sparse `(seq, vm_time, offset)` entries plus a summary, for seeking by time
//!   or seq without scanning; a reader falls back to scanning when it is missing or stale.
//!
//! All integers are little-endian; CRCs are CRC-32 (IEEE) as `crc32fast` computes them.

pub mod files;
pub mod header;
pub mod index;
pub mod record;

use std::path::{Path, PathBuf};

/// File name suffix of segments.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of indexes.
pub const INDEX_SUFFIX: &str = ".idx";

/// The segment file for first sequence number `first_seq` in `dir`.
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

/// The index file of the segment at `segment`.
pub fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension(&INDEX_SUFFIX[1..])
}

/// The first sequence number encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = segment_path(Path::new("/x"), 42);
        assert_eq!(p, Path::new("/x/00000000000000000042.seg"));
        assert_eq!(index_path(&p), Path::new("/x/00000000000000000042.idx"));
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000042.idx"), None);
    }
}
