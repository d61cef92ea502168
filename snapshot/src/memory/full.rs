//! Full memory images: every region at its own page-aligned offset, zero pages left as
//! holes, ready to be mapped `MAP_PRIVATE`.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::bitmap::{words_for, PageBitmap};
use crate::codec::{Decoder, Encoder};
use crate::error::{Result, SnapshotError};
use crate::fsutil::{self, AtomicFile};
use crate::limits::{BLOCK_PAGES, MAX_WRITE_BYTES, PAGE_SIZE};
use crate::memory::header::{self, Header, ImageKind, ImageStats, DATA_OFFSET};
use crate::memory::holes::DataExtents;
use crate::memory::zero::is_zero_page;
use crate::memory::MemoryLayout;

const PS: usize = PAGE_SIZE as usize;
const BLOCK_BYTES: u64 = BLOCK_PAGES * PAGE_SIZE;

/// File offsets of each region's data, back to back after the header page.
fn region_offsets(layout: &MemoryLayout) -> Vec<u64> {
    let mut off = DATA_OFFSET;
    layout
        .regions
        .iter()
        .map(|r| {
            let o = off;
            off += r.len;
            o
        })
        .collect()
}

/// Blocks in a region of `pages` pages.
pub(crate) fn blocks_for(pages: u64) -> u64 {
    pages.div_ceil(BLOCK_PAGES)
}

/// A full memory image opened for restore: its header and table are checked, its data is
/// not (see [`FullImage::verify`]).
#[derive(Debug)]
pub struct FullImage {
    path: PathBuf,
    file: File,
    layout: MemoryLayout,
    tag: String,
    offsets: Vec<u64>,
    present: Vec<PageBitmap>,
    crcs: Vec<Vec<u32>>,
}

impl FullImage {
    /// Opens `path` and checks its header, size and table (O(table), no data read).
    pub fn open(path: &Path) -> Result<FullImage> {
        let (file, hdr, meta) = header::open_image(path, ImageKind::Full)?;
        let mut d = Decoder::new(&meta, DATA_OFFSET + hdr.data_len, path);
        let (tag, base_tag, layout) = header::decode_common(&mut d, path)?;
        if !base_tag.is_empty() {
            return Err(SnapshotError::corrupt(
                path,
                "a full image with a base image tag",
            ));
        }
        if hdr.data_len != layout.total_bytes() {
            return Err(SnapshotError::Mismatch {
                path: path.into(),
                problem: format!(
                    "the memory image holds {} bytes of data but its layout ({}) needs {}",
                    hdr.data_len,
                    layout.describe(),
                    layout.total_bytes()
                ),
            });
        }
        let expected = meta_len(&tag, &layout);
        if expected != hdr.meta_len {
            return Err(SnapshotError::corrupt(
                path,
                format!(
                    "table is {} bytes, its layout needs {expected}",
                    hdr.meta_len
                ),
            ));
        }
        let mut present = Vec::with_capacity(layout.regions.len());
        for (i, r) in layout.regions.iter().enumerate() {
            let words = d.words(words_for(r.pages()), "page bitmap")?;
            let b = PageBitmap::from_words(words, r.pages()).ok_or_else(|| {
                SnapshotError::corrupt(
                    path,
                    format!("page bitmap of region {i} has bits past its end"),
                )
            })?;
            present.push(b);
        }
        let mut crcs = Vec::with_capacity(layout.regions.len());
        for r in &layout.regions {
            crcs.push(d.u32s(blocks_for(r.pages()) as usize, "block checksums")?);
        }
        if d.remaining() != 0 {
            return Err(SnapshotError::corrupt(
                path,
                "unexpected bytes at the end of the table",
            ));
        }
        let offsets = region_offsets(&layout);
        Ok(FullImage {
            path: path.into(),
            file,
            layout,
            tag,
            offsets,
            present,
            crcs,
        })
    }

    /// The file, to map each region with
    /// `mmap(NULL, region.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, region_offset(i))`:
    /// the guest's writes go to private copies and the file stays as it is.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The guest memory layout the image holds.
    pub fn layout(&self) -> &MemoryLayout {
        &self.layout
    }

    /// The tag the image was written with (the snapshot id).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// File offset of region `index`'s data (a multiple of the page size).
    pub fn region_offset(&self, index: usize) -> u64 {
        self.offsets[index]
    }

    /// Which pages of region `index` hold data (the others are zero, holes in the file).
    pub fn present(&self, index: usize) -> &PageBitmap {
        &self.present[index]
    }

    /// Bytes of non-zero pages stored.
    pub fn data_bytes(&self) -> u64 {
        self.present.iter().map(PageBitmap::count).sum::<u64>() * PAGE_SIZE
    }

    /// Fails with a clear error unless the image holds exactly `expected`.
    pub fn expect_layout(&self, expected: &MemoryLayout) -> Result<()> {
        if &self.layout != expected {
            return Err(SnapshotError::Mismatch {
                path: self.path.clone(),
                problem: format!(
                    "the memory image holds {} ({:?}) but the VM has {} ({:?})",
                    self.layout.describe(),
                    self.layout.regions,
                    expected.describe(),
                    expected.regions
                ),
            });
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes of region `index` at `offset` (zero pages read as zeros).
    pub fn read(&self, index: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.layout.regions.get(index).ok_or_else(|| {
            SnapshotError::InvalidInput(format!("{}: no region {index}", self.path.display()))
        })?;
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > r.len)
        {
            return Err(SnapshotError::InvalidInput(format!(
                "{}: read of {} bytes at {offset} is past the end of region {index}",
                self.path.display(),
                buf.len()
            )));
        }
        fsutil::read_exact_at(
            &self.file,
            &self.path,
            buf,
            self.offsets[index] + offset,
            "region data",
        )
    }

    /// The length of block `block` of region `index`.
    pub(crate) fn block_len(&self, index: usize, block: u64) -> usize {
        let len = self.layout.regions[index].len;
        (len - block * BLOCK_BYTES).min(BLOCK_BYTES) as usize
    }

    /// Reads block `block` of region `index` into `buf` and checks it against its checksum.
    /// Only the pages that hold data are read; the others are zero-filled. With `holes`, the
    /// pages that should be zero are checked too, reading only where the file has data.
    pub(crate) fn read_block_checked(
        &self,
        index: usize,
        block: u64,
        buf: &mut [u8],
        mut holes: Option<&mut DataExtents<'_>>,
    ) -> Result<()> {
        let base = self.offsets[index] + block * BLOCK_BYTES;
        let present = &self.present[index];
        let first = block * BLOCK_PAGES;
        let pages = buf.len() / PS;
        let mut p = 0;
        while p < pages {
            let has_data = present.get(first + p as u64);
            let mut q = p + 1;
            while q < pages && present.get(first + q as u64) == has_data {
                q += 1;
            }
            let range = &mut buf[p * PS..q * PS];
            let off = base + (p * PS) as u64;
            if has_data {
                fsutil::read_exact_at(&self.file, &self.path, range, off, "block data")?;
            } else {
                range.fill(0);
                if let Some(h) = holes.as_deref_mut() {
                    let end = off + range.len() as u64;
                    let mut at = off;
                    while let Some((s, e)) = h.first_in(at, end) {
                        let s = s - s % PAGE_SIZE;
                        let e = e.div_ceil(PAGE_SIZE) * PAGE_SIZE;
                        let part = &mut range[(s - off) as usize..(e - off) as usize];
                        fsutil::read_exact_at(&self.file, &self.path, part, s, "block data")?;
                        if let Some(z) = part.chunks(PS).position(|pg| !is_zero_page(pg)) {
                            let page = first + p as u64 + (s - off) / PAGE_SIZE + z as u64;
                            return Err(SnapshotError::corrupt(
                                &self.path,
                                format!("page {page} of region {index} should be zero (a hole) but holds data"),
                            ));
                        }
                        at = e;
                    }
                }
            }
            p = q;
        }
        let mut h = crc32fast::Hasher::new();
        for (i, page) in buf.chunks(PS).enumerate() {
            if present.get(first + i as u64) {
                h.update(page);
            }
        }
        let computed = h.finalize();
        let stored = self.crcs[index][block as usize];
        if computed != stored {
            let gpa = self.layout.regions[index].gpa + block * BLOCK_BYTES;
            return Err(SnapshotError::Checksum {
                path: self.path.clone(),
                what: format!("block {block} of region {index} (guest physical {gpa:#x})"),
                stored,
                computed,
            });
        }
        Ok(())
    }

    /// Reads every block of region `index` and checks its checksum.
    pub fn verify_region(&self, index: usize) -> Result<()> {
        let mut buf = vec![0u8; BLOCK_BYTES as usize];
        let mut holes = DataExtents::new(&self.file);
        for b in 0..blocks_for(self.layout.regions[index].pages()) {
            let n = self.block_len(index, b);
            self.read_block_checked(index, b, &mut buf[..n], Some(&mut holes))?;
        }
        Ok(())
    }

    /// Reads the image's data and checks every block's checksum, and that the pages recorded
    /// as zero read as zero (reading only where the file has data, so holes cost nothing).
    /// Restore does not need to wait for this: the VMM maps the file and can verify in the background (or not at all),
    /// since reading 2 GiB costs far more than mapping it.
    pub fn verify(&self) -> Result<()> {
        (0..self.layout.regions.len()).try_for_each(|i| self.verify_region(i))
    }
}

/// Length of the table after the data of a full image.
fn meta_len(tag: &str, layout: &MemoryLayout) -> u64 {
    let mut n = 2 + tag.len() as u64 + 2 + 4 + 16 * layout.regions.len() as u64;
    for r in &layout.regions {
        n += 8 * words_for(r.pages()) as u64 + 4 * blocks_for(r.pages());
    }
    n
}

/// Builds a full image block by block: from memory, or by copying blocks of another image.
pub(crate) struct FullWriter {
    out: AtomicFile,
    tag: String,
    layout: MemoryLayout,
    offsets: Vec<u64>,
    present: Vec<PageBitmap>,
    crcs: Vec<Vec<u32>>,
}

impl FullWriter {
    /// Starts writing `path` (under a temporary name until [`FullWriter::finish`]).
    pub fn create(path: &Path, tag: &str, layout: &MemoryLayout) -> Result<FullWriter> {
        header::check_tag(tag)?;
        layout.validate()?;
        let out = AtomicFile::create(path)?;
        out.file()
            .set_len(DATA_OFFSET + layout.total_bytes())
            .map_err(|e| SnapshotError::io(out.tmp_path(), "set length", e))?;
        Ok(FullWriter {
            out,
            tag: tag.into(),
            layout: layout.clone(),
            offsets: region_offsets(layout),
            present: layout
                .regions
                .iter()
                .map(|r| PageBitmap::new(r.pages()))
                .collect(),
            crcs: layout
                .regions
                .iter()
                .map(|r| vec![0; blocks_for(r.pages()) as usize])
                .collect(),
        })
    }

    /// Writes `data`, the contents of region `index` from the start of block `first_block`
    /// (whole blocks, the last one possibly cut by the region's end): zero pages are skipped,
    /// runs of non-zero pages are written with one call each (up to [`MAX_WRITE_BYTES`]).
    pub fn write_blocks(&mut self, index: usize, first_block: u64, data: &[u8]) -> Result<()> {
        let first_page = first_block * BLOCK_PAGES;
        debug_assert_eq!(data.len() % PS, 0);
        debug_assert!(first_page * PAGE_SIZE + data.len() as u64 <= self.layout.regions[index].len);
        let base = self.offsets[index] + first_page * PAGE_SIZE;
        let mut run: Option<(usize, usize)> = None; // byte range of `data` waiting to be written
        for (bi, block) in data.chunks(BLOCK_BYTES as usize).enumerate() {
            let block_start = bi * BLOCK_BYTES as usize;
            let mut h = crc32fast::Hasher::new();
            for (pi, page) in block.chunks(PS).enumerate() {
                if is_zero_page(page) {
                    continue;
                }
                h.update(page);
                let at = block_start + pi * PS;
                self.present[index].set(first_page + (at / PS) as u64);
                run = match run {
                    Some((s, e)) if e == at && e - s < MAX_WRITE_BYTES => Some((s, at + PS)),
                    Some((s, e)) => {
                        fsutil::write_all_at(
                            self.out.file(),
                            self.out.tmp_path(),
                            &data[s..e],
                            base + s as u64,
                        )?;
                        Some((at, at + PS))
                    }
                    None => Some((at, at + PS)),
                };
            }
            self.crcs[index][(first_block + bi as u64) as usize] = h.finalize();
        }
        if let Some((s, e)) = run {
            fsutil::write_all_at(
                self.out.file(),
                self.out.tmp_path(),
                &data[s..e],
                base + s as u64,
            )?;
        }
        Ok(())
    }

    /// Writes every region from `sources` (checked against the layout by the caller).
    pub fn write_all(&mut self, sources: &[&[u8]]) -> Result<()> {
        let chunk = MAX_WRITE_BYTES - MAX_WRITE_BYTES % BLOCK_BYTES as usize;
        for (i, src) in sources.iter().enumerate() {
            for (c, data) in src.chunks(chunk).enumerate() {
                self.write_blocks(i, (c * chunk) as u64 / BLOCK_BYTES, data)?;
            }
        }
        Ok(())
    }

    /// Copies blocks `first..first + count` of region `index` from `src` (same layout) as
    /// they are, checksums included, without reading them into memory.
    pub fn copy_blocks(
        &mut self,
        index: usize,
        first: u64,
        count: u64,
        src: &FullImage,
    ) -> Result<()> {
        let pages = self.layout.regions[index].pages();
        let start = first * BLOCK_PAGES;
        let end = ((first + count) * BLOCK_PAGES).min(pages);
        let sp = &src.present[index];
        // Blocks are whole words of the bitmap (256 pages = 4 words).
        let (ws, we) = ((start / 64) as usize, (end.div_ceil(64)) as usize);
        let dst = &mut self.present[index];
        dst.union_words_range(ws, &sp.words()[ws..we]);
        for b in first..first + count {
            self.crcs[index][b as usize] = src.crcs[index][b as usize];
        }
        let mut run: Option<(u64, u64)> = None;
        for p in sp.iter_set_in(start, end) {
            run = match run {
                Some((s, e)) if e == p && (e - s) * PAGE_SIZE < MAX_WRITE_BYTES as u64 * 4 => {
                    Some((s, p + 1))
                }
                Some((s, e)) => {
                    self.copy_run(index, src, s, e)?;
                    Some((p, p + 1))
                }
                None => Some((p, p + 1)),
            };
        }
        if let Some((s, e)) = run {
            self.copy_run(index, src, s, e)?;
        }
        Ok(())
    }

    fn copy_run(&self, index: usize, src: &FullImage, start: u64, end: u64) -> Result<()> {
        fsutil::copy_range(
            &src.file,
            &src.path,
            src.offsets[index] + start * PAGE_SIZE,
            self.out.file(),
            self.out.tmp_path(),
            self.offsets[index] + start * PAGE_SIZE,
            (end - start) * PAGE_SIZE,
        )
    }

    /// Writes what has been written so far to disk (the image is not complete yet).
    pub fn sync_data(&self) -> Result<()> {
        self.out
            .file()
            .sync_data()
            .map_err(|e| SnapshotError::io(self.out.tmp_path(), "fdatasync", e))
    }

    /// Replaces page `page` of region `index` with `data` (one page): written when non-zero,
    /// made a hole when zero. The page's block checksum is stale until [`Self::rehash_block`].
    pub fn patch_page(&mut self, index: usize, page: u64, data: &[u8]) -> Result<()> {
        debug_assert_eq!(data.len(), PS);
        let at = self.offsets[index] + page * PAGE_SIZE;
        if is_zero_page(data) {
            if self.present[index].get(page) {
                fsutil::zero_range(self.out.file(), self.out.tmp_path(), at, PAGE_SIZE)?;
                self.present[index].unset(page);
            }
        } else {
            fsutil::write_all_at(self.out.file(), self.out.tmp_path(), data, at)?;
            self.present[index].set(page);
        }
        Ok(())
    }

    /// Recomputes the checksum of block `block` of region `index` from what the file holds.
    pub fn rehash_block(&mut self, index: usize, block: u64) -> Result<()> {
        let pages = self.layout.regions[index].pages();
        let start = block * BLOCK_PAGES;
        let end = (start + BLOCK_PAGES).min(pages);
        let mut buf = vec![0u8; ((end - start) * PAGE_SIZE) as usize];
        let base = self.offsets[index] + start * PAGE_SIZE;
        fsutil::read_exact_at(
            self.out.file(),
            self.out.tmp_path(),
            &mut buf,
            base,
            "block",
        )?;
        let mut h = crc32fast::Hasher::new();
        for p in self.present[index].iter_set_in(start, end) {
            let at = ((p - start) * PAGE_SIZE) as usize;
            h.update(&buf[at..at + PS]);
        }
        self.crcs[index][block as usize] = h.finalize();
        Ok(())
    }

    /// Writes the table and the header, flushes, and renames the image into place.
    pub fn finish(self) -> Result<ImageStats> {
        let mut e = Encoder::new();
        header::encode_common(&mut e, &self.tag, "", &self.layout);
        for b in &self.present {
            e.words(b.words());
        }
        for c in &self.crcs {
            e.u32s(c);
        }
        debug_assert_eq!(e.buf.len() as u64, meta_len(&self.tag, &self.layout));
        let data_len = self.layout.total_bytes();
        let hdr = Header {
            kind: ImageKind::Full,
            data_len,
            meta_len: e.buf.len() as u64,
            meta_crc: crc32fast::hash(&e.buf),
        };
        let f = self.out.file();
        fsutil::write_all_at(f, self.out.tmp_path(), &e.buf, DATA_OFFSET + data_len)?;
        fsutil::write_all_at(f, self.out.tmp_path(), &hdr.encode(), 0)?;
        let stats = ImageStats {
            file_bytes: DATA_OFFSET + data_len + hdr.meta_len,
            data_bytes: self.present.iter().map(PageBitmap::count).sum::<u64>() * PAGE_SIZE,
            pages: self.layout.total_pages(),
        };
        self.out.commit()?;
        Ok(stats)
    }
}

/// Writes a full image of guest memory to `path`: `sources[i]` is the host mapping of
/// region `i` of `layout` (the VM paused). Streams from the mappings straight to the file
/// (no copy of guest memory is made), leaves zero pages as holes, checksums each 1 MiB
/// block, and renames the file into place once it is flushed.
pub fn write_full(
    path: &Path,
    tag: &str,
    layout: &MemoryLayout,
    sources: &[&[u8]],
) -> Result<ImageStats> {
    header::check_sources(layout, sources)?;
    let mut w = FullWriter::create(path, tag, layout)?;
    w.write_all(sources)?;
    w.finish()
}
