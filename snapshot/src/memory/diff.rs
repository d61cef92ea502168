//! Diff memory images: the pages dirtied since a parent image, packed in page order.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::bitmap::{words_for, PageBitmap};
use crate::codec::{Decoder, Encoder};
use crate::dirty::DirtyBitmap;
use crate::error::{Result, SnapshotError};
use crate::fsutil::{self, AtomicFile};
use crate::limits::{BLOCK_PAGES, MAX_WRITE_BYTES, PAGE_SIZE};
use crate::memory::header::{self, Header, ImageKind, ImageStats, DATA_OFFSET};
use crate::memory::zero::is_zero_page;
use crate::memory::MemoryLayout;

const PS: usize = PAGE_SIZE as usize;

/// Checksums of consecutive groups of [`BLOCK_PAGES`] stored pages.
struct GroupCrcs {
    crcs: Vec<u32>,
    hasher: crc32fast::Hasher,
    in_group: u64,
}

impl GroupCrcs {
    fn new() -> Self {
        GroupCrcs {
            crcs: Vec::new(),
            hasher: crc32fast::Hasher::new(),
            in_group: 0,
        }
    }

    /// Adds the next stored pages (a whole number of pages).
    fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = ((BLOCK_PAGES - self.in_group) * PAGE_SIZE) as usize;
            let take = room.min(data.len());
            self.hasher.update(&data[..take]);
            self.in_group += (take / PS) as u64;
            if self.in_group == BLOCK_PAGES {
                let h = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new());
                self.crcs.push(h.finalize());
                self.in_group = 0;
            }
            data = &data[take..];
        }
    }

    fn finish(mut self) -> Vec<u32> {
        if self.in_group > 0 {
            self.crcs.push(self.hasher.finalize());
        }
        self.crcs
    }
}

/// Length of the table after the data of a diff image.
fn meta_len(tag: &str, base_tag: &str, layout: &MemoryLayout, stored: u64) -> u64 {
    let mut n =
        2 + tag.len() as u64 + 2 + base_tag.len() as u64 + 4 + 16 * layout.regions.len() as u64;
    for r in &layout.regions {
        n += 2 * 8 * words_for(r.pages()) as u64;
    }
    n + 4 * stored.div_ceil(BLOCK_PAGES)
}

/// A diff image opened for applying: header, table and bitmaps checked; the page data is
/// checked by [`DiffImage::verify`].
#[derive(Debug)]
pub struct DiffImage {
    path: PathBuf,
    file: File,
    layout: MemoryLayout,
    tag: String,
    base_tag: String,
    dirty: Vec<PageBitmap>,
    zero: Vec<PageBitmap>,
    stored: u64,
    crcs: Vec<u32>,
}

impl DiffImage {
    /// Opens `path` and checks its header, size, table and bitmaps.
    pub fn open(path: &Path) -> Result<DiffImage> {
        let (file, hdr, meta) = header::open_image(path, ImageKind::Diff)?;
        let mut d = Decoder::new(&meta, DATA_OFFSET + hdr.data_len, path);
        let (tag, base_tag, layout) = header::decode_common(&mut d, path)?;
        let stored = hdr.data_len / PAGE_SIZE;
        let expected = meta_len(&tag, &base_tag, &layout, stored);
        if expected != hdr.meta_len {
            return Err(SnapshotError::corrupt(
                path,
                format!(
                    "table is {} bytes, its layout and {stored} stored pages need {expected}",
                    hdr.meta_len
                ),
            ));
        }
        let mut read_bitmaps = |what: &str| -> Result<Vec<PageBitmap>> {
            let mut v = Vec::with_capacity(layout.regions.len());
            for (i, r) in layout.regions.iter().enumerate() {
                let words = d.words(words_for(r.pages()), what)?;
                v.push(PageBitmap::from_words(words, r.pages()).ok_or_else(|| {
                    SnapshotError::corrupt(
                        path,
                        format!("{what} of region {i} has bits past its end"),
                    )
                })?);
            }
            Ok(v)
        };
        let dirty = read_bitmaps("dirty page bitmap")?;
        let zero = read_bitmaps("zero page bitmap")?;
        let crcs = d.u32s(stored.div_ceil(BLOCK_PAGES) as usize, "block checksums")?;
        if d.remaining() != 0 {
            return Err(SnapshotError::corrupt(
                path,
                "unexpected bytes at the end of the table",
            ));
        }
        let mut counted = 0;
        for (i, (dw, zw)) in dirty.iter().zip(&zero).enumerate() {
            for (a, b) in dw.words().iter().zip(zw.words()) {
                if b & !a != 0 {
                    return Err(SnapshotError::corrupt(
                        path,
                        format!("region {i}: a zero page that is not dirty"),
                    ));
                }
                counted += (a & !b).count_ones() as u64;
            }
        }
        if counted != stored {
            return Err(SnapshotError::corrupt(
                path,
                format!("the bitmaps name {counted} stored pages, the data holds {stored}"),
            ));
        }
        Ok(DiffImage {
            path: path.into(),
            file,
            layout,
            tag,
            base_tag,
            dirty,
            zero,
            stored,
            crcs,
        })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The memory layout.
    pub fn layout(&self) -> &MemoryLayout {
        &self.layout
    }

    /// The tag of the memory state this diff produces (the snapshot id).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The tag of the image this diff applies to (the parent snapshot id).
    pub fn base_tag(&self) -> &str {
        &self.base_tag
    }

    /// The pages of region `index` the diff replaces.
    pub fn dirty(&self, index: usize) -> &PageBitmap {
        &self.dirty[index]
    }

    /// The dirty pages of region `index` that became zero (stored as a bit only).
    pub fn zero(&self, index: usize) -> &PageBitmap {
        &self.zero[index]
    }

    /// All dirty pages, as a [`DirtyBitmap`].
    pub fn dirty_bitmap(&self) -> DirtyBitmap {
        DirtyBitmap::from_regions(&self.layout, self.dirty.clone())
    }

    /// The number of dirty pages.
    pub fn dirty_pages(&self) -> u64 {
        self.dirty.iter().map(PageBitmap::count).sum()
    }

    /// The number of pages stored (dirty and not zero).
    pub fn stored_pages(&self) -> u64 {
        self.stored
    }

    /// Reads stored pages from slot `first` on into `buf` (whole pages).
    pub(crate) fn read_slots(&self, first: u64, buf: &mut [u8]) -> Result<()> {
        debug_assert!(first + (buf.len() / PS) as u64 <= self.stored);
        fsutil::read_exact_at(
            &self.file,
            &self.path,
            buf,
            DATA_OFFSET + first * PAGE_SIZE,
            "stored pages",
        )
    }

    /// The stored checksum of group `g` (stored pages `g * 256 ..`).
    pub(crate) fn group_crc(&self, g: usize) -> Option<u32> {
        self.crcs.get(g).copied()
    }

    /// Reads all stored pages and checks their checksums.
    pub fn verify(&self) -> Result<()> {
        let group = (BLOCK_PAGES * PAGE_SIZE) as usize;
        let mut buf = vec![0u8; group.min((self.stored * PAGE_SIZE) as usize)];
        for (g, &stored) in self.crcs.iter().enumerate() {
            let first = g as u64 * BLOCK_PAGES;
            let n = (self.stored - first).min(BLOCK_PAGES) as usize * PS;
            self.read_slots(first, &mut buf[..n])?;
            let computed = crc32fast::hash(&buf[..n]);
            if computed != stored {
                return Err(SnapshotError::Checksum {
                    path: self.path.clone(),
                    what: format!("stored pages {first}..{}", first + (n / PS) as u64),
                    stored,
                    computed,
                });
            }
        }
        Ok(())
    }
}

/// Writes a diff image to `path`: the pages set in `dirty`, read from `sources` (the host
/// mapping of each region of `layout`, the VM paused), packed in page order. Dirty pages
/// that are now zero are recorded in a bitmap and not stored. `tag` names the state the
/// diff produces and `base_tag` the image it applies to; applying it to another image is
/// refused. The file is renamed into place once flushed.
pub fn write_diff(
    path: &Path,
    tag: &str,
    base_tag: &str,
    layout: &MemoryLayout,
    dirty: &DirtyBitmap,
    sources: &[&[u8]],
) -> Result<ImageStats> {
    header::check_sources(layout, sources)?;
    header::check_tag(tag)?;
    header::check_tag(base_tag)?;
    if dirty.layout() != layout {
        return Err(SnapshotError::InvalidInput(
            "the dirty bitmap is for another memory layout".into(),
        ));
    }
    let out = AtomicFile::create(path)?;
    let mut zero: Vec<PageBitmap> = layout
        .regions
        .iter()
        .map(|r| PageBitmap::new(r.pages()))
        .collect();
    let mut crcs = GroupCrcs::new();
    let mut slot = 0u64;
    // (region, byte range in the region, first slot) waiting to be written.
    let mut run: Option<(usize, usize, usize, u64)> = None;
    let flush = |run: (usize, usize, usize, u64), crcs: &mut GroupCrcs| -> Result<()> {
        let (r, s, e, first) = run;
        let data = &sources[r][s..e];
        crcs.push(data);
        fsutil::write_all_at(
            out.file(),
            out.tmp_path(),
            data,
            DATA_OFFSET + first * PAGE_SIZE,
        )
    };
    for (r, p) in dirty.iter_set_pages() {
        let at = p as usize * PS;
        if is_zero_page(&sources[r][at..at + PS]) {
            zero[r].set(p);
            continue;
        }
        run = match run {
            Some((rr, s, e, f)) if rr == r && e == at && e - s < MAX_WRITE_BYTES => {
                Some((rr, s, at + PS, f))
            }
            Some(prev) => {
                flush(prev, &mut crcs)?;
                Some((r, at, at + PS, slot))
            }
            None => Some((r, at, at + PS, slot)),
        };
        slot += 1;
    }
    if let Some(prev) = run {
        flush(prev, &mut crcs)?;
    }
    let crcs = crcs.finish();
    let mut e = Encoder::new();
    header::encode_common(&mut e, tag, base_tag, layout);
    for i in 0..layout.regions.len() {
        e.words(dirty.region(i).words());
    }
    for z in &zero {
        e.words(z.words());
    }
    e.u32s(&crcs);
    debug_assert_eq!(e.buf.len() as u64, meta_len(tag, base_tag, layout, slot));
    let data_len = slot * PAGE_SIZE;
    let hdr = Header {
        kind: ImageKind::Diff,
        data_len,
        meta_len: e.buf.len() as u64,
        meta_crc: crc32fast::hash(&e.buf),
    };
    fsutil::write_all_at(out.file(), out.tmp_path(), &e.buf, DATA_OFFSET + data_len)?;
    fsutil::write_all_at(out.file(), out.tmp_path(), &hdr.encode(), 0)?;
    let stats = ImageStats {
        file_bytes: DATA_OFFSET + data_len + hdr.meta_len,
        data_bytes: data_len,
        pages: dirty.count(),
    };
    out.commit()?;
    Ok(stats)
}
