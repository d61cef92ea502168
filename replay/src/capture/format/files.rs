//! Reading headers and indexes from files, with errors naming the file and offset.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::header::{SegmentHeader, PREFIX_BYTES, SEGMENT_MAGIC, SEGMENT_VERSION};
use super::index::{SegmentIndex, INDEX_MAGIC, INDEX_VERSION};
use crate::error::{CaptureError, Result};
use crate::fsutil::read_limited;
use crate::limits::{MAX_HEADER_BYTES, MAX_INDEX_BYTES};

/// Checks a magic/version/length prefix and the CRC after the body; returns the body.
fn check_framed<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &'static str,
    version: u32,
) -> Result<&'a [u8]> {
    if bytes.len() < PREFIX_BYTES {
        return Err(CaptureError::corrupt(
            path,
            bytes.len() as u64,
            format!("{what} is cut short ({} bytes)", bytes.len()),
        ));
    }
    if &bytes[..8] != magic {
        return Err(CaptureError::BadMagic {
            path: path.into(),
            expected: what,
        });
    }
    let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if found != version {
        return Err(CaptureError::UnsupportedVersion {
            path: path.into(),
            what,
            found,
            supported: version,
        });
    }
    let n = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    let end = PREFIX_BYTES.saturating_add(n);
    if end.saturating_add(4) > bytes.len() {
        return Err(CaptureError::corrupt(
            path,
            12,
            format!(
                "{what} announces a {n}-byte body but the file has {} bytes",
                bytes.len()
            ),
        ));
    }
    let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
    let computed = crc32fast::hash(&bytes[..end]);
    if stored != computed {
        return Err(CaptureError::Checksum {
            path: path.into(),
            offset: 0,
            what,
            stored,
            computed,
        });
    }
    Ok(&bytes[PREFIX_BYTES..end])
}

/// Reads the header of the segment `file` (at `path`, `file_len` bytes long); returns it
/// and its length in bytes (the offset of the first record).
pub fn read_header(file: &File, path: &Path, file_len: u64) -> Result<(SegmentHeader, u64)> {
    if file_len < PREFIX_BYTES as u64 {
        return Err(CaptureError::Truncated {
            path: path.into(),
            offset: file_len,
            what: format!("the header needs at least {PREFIX_BYTES} bytes"),
        });
    }
    let mut prefix = [0u8; PREFIX_BYTES];
    file.read_exact_at(&mut prefix, 0)
        .map_err(|e| CaptureError::io(path, "read", e))?;
    if prefix[..8] != SEGMENT_MAGIC {
        return Err(CaptureError::BadMagic {
            path: path.into(),
            expected: "capture segment",
        });
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if version != SEGMENT_VERSION {
        return Err(CaptureError::UnsupportedVersion {
            path: path.into(),
            what: "capture segment",
            found: version,
            supported: SEGMENT_VERSION,
        });
    }
    let body_len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]) as usize;
    if body_len > MAX_HEADER_BYTES {
        return Err(CaptureError::corrupt(
            path,
            12,
            format!("header body of {body_len} bytes is over the limit of {MAX_HEADER_BYTES}"),
        ));
    }
    let total = PREFIX_BYTES + body_len + 4;
    if total as u64 > file_len {
        return Err(CaptureError::Truncated {
            path: path.into(),
            offset: file_len,
            what: format!("the header is {total} bytes long"),
        });
    }
    let mut bytes = vec![0u8; total];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| CaptureError::io(path, "read", e))?;
    let body = check_framed(
        path,
        &bytes,
        &SEGMENT_MAGIC,
        "capture segment",
        SEGMENT_VERSION,
    )?;
    let header = SegmentHeader::decode_body(body).map_err(|e| {
        CaptureError::corrupt(
            path,
            (PREFIX_BYTES + e.offset) as u64,
            format!("header: {}", e.problem),
        )
    })?;
    Ok((header, total as u64))
}

/// Reads the index file at `path`.
pub fn read_index(path: &Path) -> Result<SegmentIndex> {
    let bytes = read_limited(path, MAX_INDEX_BYTES)?;
    let body = check_framed(path, &bytes, &INDEX_MAGIC, "capture index", INDEX_VERSION)?;
    SegmentIndex::decode_body(body)
        .map_err(|e| CaptureError::corrupt(path, (PREFIX_BYTES + e.offset) as u64, e.problem))
}
