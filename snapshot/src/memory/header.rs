//! The parts every memory image shares: the fixed header in the first page, and reading and
//! checking the table that follows the data.

use std::fs::File;
use std::path::Path;

use crate::codec::{Decoder, Encoder};
use crate::error::{Result, SnapshotError};
use crate::fsutil;
use crate::limits::{BLOCK_PAGES, MAX_IMAGE_META_BYTES, MAX_REGIONS, MAX_TAG_BYTES, PAGE_SIZE};
use crate::memory::{MemoryLayout, MemoryRegion};

/// The first bytes of a memory image.
pub const MEMORY_MAGIC: [u8; 8] = *b"RPRSMEM\0";
/// The memory-image format version written and read by this build.
pub const MEMORY_VERSION: u32 = 1;
/// Where the data starts: the header has the first page to itself, so that the data (and
/// each region of a full image) is page-aligned for `mmap`.
pub const DATA_OFFSET: u64 = PAGE_SIZE;
const FIXED_LEN: usize = 56;
const WHAT: &str = "Reprise memory image";

/// Whether an image holds all of memory or the pages changed since a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// Every region, at its own offset, zero pages left as holes.
    Full = 1,
    /// The dirty pages of a parent image, packed.
    Diff = 2,
}

impl ImageKind {
    fn name(self) -> &'static str {
        match self {
            ImageKind::Full => "full",
            ImageKind::Diff => "diff",
        }
    }
}

/// The fixed header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub kind: ImageKind,
    pub data_len: u64,
    pub meta_len: u64,
    pub meta_crc: u32,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.bytes(&MEMORY_MAGIC);
        e.u32(MEMORY_VERSION);
        e.u32(self.kind as u32);
        e.u32(PAGE_SIZE as u32);
        e.u32(BLOCK_PAGES as u32);
        e.u64(DATA_OFFSET);
        e.u64(self.data_len);
        e.u64(self.meta_len);
        e.u32(self.meta_crc);
        let crc = crc32fast::hash(&e.buf);
        e.u32(crc);
        debug_assert_eq!(e.buf.len(), FIXED_LEN);
        e.buf
    }
}

/// Opens a memory image of `kind`, checks its header and size, and returns the file, the
/// header and the checked table that follows the data.
pub(crate) fn open_image(path: &Path, kind: ImageKind) -> Result<(File, Header, Vec<u8>)> {
    let file = File::open(path).map_err(|e| SnapshotError::io(path, "open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| SnapshotError::io(path, "stat", e))?
        .len();
    let mut fixed = [0u8; FIXED_LEN];
    let have = (file_len as usize).min(FIXED_LEN);
    fsutil::read_exact_at(&file, path, &mut fixed[..have], 0, "header")?;
    let n = have.min(MEMORY_MAGIC.len());
    if fixed[..n] != MEMORY_MAGIC[..n] {
        return Err(SnapshotError::BadMagic {
            path: path.into(),
            expected: WHAT,
        });
    }
    let mut d = Decoder::new(&fixed[..have], 0, path);
    d.bytes(MEMORY_MAGIC.len(), "magic")?;
    let version = d.u32("format version")?;
    if version != MEMORY_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.into(),
            what: "memory image",
            found: version.into(),
            supported: MEMORY_VERSION.into(),
        });
    }
    let kind_raw = d.u32("image kind")?;
    let page_size = d.u32("page size")?;
    let block_pages = d.u32("block size")?;
    let data_offset = d.u64("data offset")?;
    let data_len = d.u64("data length")?;
    let meta_len = d.u64("table length")?;
    let meta_crc = d.u32("table checksum")?;
    let stored = d.u32("header checksum")?;
    let computed = crc32fast::hash(&fixed[..FIXED_LEN - 4]);
    if stored != computed {
        return Err(SnapshotError::Checksum {
            path: path.into(),
            what: "header".into(),
            stored,
            computed,
        });
    }
    let found = match kind_raw {
        1 => ImageKind::Full,
        2 => ImageKind::Diff,
        k => {
            return Err(SnapshotError::corrupt(
                path,
                format!("unknown image kind {k}"),
            ))
        }
    };
    if found != kind {
        return Err(SnapshotError::Mismatch {
            path: path.into(),
            problem: format!(
                "a {} memory image was expected, this is a {} image",
                kind.name(),
                found.name()
            ),
        });
    }
    if u64::from(page_size) != PAGE_SIZE
        || u64::from(block_pages) != BLOCK_PAGES
        || data_offset != DATA_OFFSET
    {
        return Err(SnapshotError::corrupt(
            path,
            format!("unsupported geometry: page size {page_size}, block of {block_pages} pages, data at {data_offset}"),
        ));
    }
    if meta_len > MAX_IMAGE_META_BYTES {
        return Err(SnapshotError::TooLarge {
            path: path.into(),
            what: "layout and checksum table".into(),
            size: meta_len,
            limit: MAX_IMAGE_META_BYTES,
        });
    }
    if data_len % PAGE_SIZE != 0 {
        return Err(SnapshotError::corrupt(
            path,
            format!("data length {data_len} is not a whole number of pages"),
        ));
    }
    let expected = DATA_OFFSET
        .checked_add(data_len)
        .and_then(|x| x.checked_add(meta_len))
        .ok_or_else(|| SnapshotError::corrupt(path, "lengths in the header overflow"))?;
    if file_len < expected {
        return Err(SnapshotError::Truncated {
            path: path.into(),
            offset: file_len,
            what: format!(
                "the memory image ends there but its header says it is {expected} bytes long"
            ),
        });
    }
    if file_len > expected {
        return Err(SnapshotError::Mismatch {
            path: path.into(),
            problem: format!("the memory image is {file_len} bytes, its header says {expected}"),
        });
    }
    let mut meta = vec![0u8; meta_len as usize];
    fsutil::read_exact_at(
        &file,
        path,
        &mut meta,
        DATA_OFFSET + data_len,
        "layout and checksum table",
    )?;
    let computed = crc32fast::hash(&meta);
    if computed != meta_crc {
        return Err(SnapshotError::Checksum {
            path: path.into(),
            what: "layout and checksum table".into(),
            stored: meta_crc,
            computed,
        });
    }
    Ok((
        file,
        Header {
            kind,
            data_len,
            meta_len,
            meta_crc,
        },
        meta,
    ))
}

/// Encodes the start of the table: tag, base tag, regions.
pub(crate) fn encode_common(e: &mut Encoder, tag: &str, base_tag: &str, layout: &MemoryLayout) {
    e.str16(tag);
    e.str16(base_tag);
    e.u32(layout.regions.len() as u32);
    for r in &layout.regions {
        e.u64(r.gpa);
        e.u64(r.len);
    }
}

/// Decodes and validates the start of the table.
pub(crate) fn decode_common(
    d: &mut Decoder<'_>,
    path: &Path,
) -> Result<(String, String, MemoryLayout)> {
    let tag = d.str16(MAX_TAG_BYTES, "image tag")?.to_string();
    let base_tag = d.str16(MAX_TAG_BYTES, "base image tag")?.to_string();
    let count = d.u32("region count")? as usize;
    if count > MAX_REGIONS {
        return Err(SnapshotError::corrupt(
            path,
            format!("{count} regions, over the limit of {MAX_REGIONS}"),
        ));
    }
    let mut regions = Vec::with_capacity(count);
    for _ in 0..count {
        let gpa = d.u64("region address")?;
        let len = d.u64("region length")?;
        regions.push(MemoryRegion { gpa, len });
    }
    let layout = MemoryLayout { regions };
    layout
        .validate()
        .map_err(|e| SnapshotError::corrupt(path, e.to_string()))?;
    Ok((tag, base_tag, layout))
}

/// Checks a tag given to a writer.
pub(crate) fn check_tag(tag: &str) -> Result<()> {
    if tag.len() > MAX_TAG_BYTES {
        return Err(SnapshotError::InvalidInput(format!(
            "image tag {tag:?} is over {MAX_TAG_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks that `sources` are one slice per region of `layout`, of the region's length.
pub(crate) fn check_sources(layout: &MemoryLayout, sources: &[&[u8]]) -> Result<()> {
    layout.validate()?;
    if sources.len() != layout.regions.len() {
        return Err(SnapshotError::InvalidInput(format!(
            "{} memory slices given for {} regions",
            sources.len(),
            layout.regions.len()
        )));
    }
    for (i, (s, r)) in sources.iter().zip(&layout.regions).enumerate() {
        if s.len() as u64 != r.len {
            return Err(SnapshotError::InvalidInput(format!(
                "memory slice {i} is {} bytes, region {i} is {} bytes",
                s.len(),
                r.len
            )));
        }
    }
    Ok(())
}

/// What a written image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageStats {
    /// The file's length (holes included).
    pub file_bytes: u64,
    /// Bytes of page data actually stored (non-zero pages).
    pub data_bytes: u64,
    /// Pages described: every page of the layout for a full image, the dirty pages for a diff.
    pub pages: u64,
}
