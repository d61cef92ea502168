//! Applying diffs to a full image, producing a new full image.

use std::path::Path;

use crate::error::{Result, SnapshotError};
use crate::limits::{BLOCK_PAGES, PAGE_SIZE};
use crate::memory::diff::DiffImage;
use crate::memory::full::{blocks_for, FullImage, FullWriter};
use crate::memory::header::ImageStats;

const PS: usize = PAGE_SIZE as usize;

/// Applies `diffs` (oldest first) to the full image `base` and writes the resulting memory
/// as a new full image at `out` (which may be `base` itself: the new image is written beside
/// it and renamed over it once complete and flushed).
///
/// Each diff must apply to the image before it (its base tag is the previous image's tag)
/// and have the same layout; each diff's data is verified first. Blocks of `base` that no
/// diff touches are copied by the kernel (`copy_file_range`, extents shared on file systems
/// with reflinks) with their checksums; touched blocks are read, checked against `base`'s
/// checksums, patched, and written sparsely with new checksums. The result's tag is the last
/// diff's tag.
pub fn consolidate(base: &Path, diffs: &[&Path], out: &Path) -> Result<ImageStats> {
    let base = FullImage::open(base)?;
    let mut chain = Vec::with_capacity(diffs.len());
    let mut tag = base.tag().to_string();
    for p in diffs {
        let d = DiffImage::open(p)?;
        if d.layout() != base.layout() {
            return Err(SnapshotError::Mismatch {
                path: p.to_path_buf(),
                problem: format!(
                    "the diff is of memory layout {} but the base image {} has {}",
                    d.layout().describe(),
                    base.path().display(),
                    base.layout().describe()
                ),
            });
        }
        if d.base_tag() != tag {
            return Err(SnapshotError::Mismatch {
                path: p.to_path_buf(),
                problem: format!(
                    "the diff applies to image {:?}, not to image {tag:?}",
                    d.base_tag()
                ),
            });
        }
        d.verify()?;
        tag = d.tag().to_string();
        chain.push(d);
    }
    let layout = base.layout().clone();
    let mut w = FullWriter::create(out, &tag, &layout)?;
    let mut next_slot = vec![0u64; chain.len()];
    let mut buf = vec![0u8; (BLOCK_PAGES * PAGE_SIZE) as usize];
    for (r, region) in layout.regions.iter().enumerate() {
        let pages = region.pages();
        let blocks = blocks_for(pages);
        let mut untouched_from: Option<u64> = None;
        for b in 0..blocks {
            let (ps, pe) = (b * BLOCK_PAGES, ((b + 1) * BLOCK_PAGES).min(pages));
            if !chain.iter().any(|d| d.dirty(r).any_in(ps, pe)) {
                untouched_from.get_or_insert(b);
                continue;
            }
            if let Some(f) = untouched_from.take() {
                w.copy_blocks(r, f, b - f, &base)?;
            }
            let block = &mut buf[..base.block_len(r, b)];
            base.read_block_checked(r, b, block, None)?;
            for (k, d) in chain.iter().enumerate() {
                // Consecutive non-zero dirty pages have consecutive slots: one read per run.
                let mut run: Option<(usize, usize, u64)> = None;
                for p in d.dirty(r).iter_set_in(ps, pe) {
                    let i = (p - ps) as usize;
                    if d.zero(r).get(p) {
                        block[i * PS..(i + 1) * PS].fill(0);
                        continue;
                    }
                    let slot = next_slot[k];
                    next_slot[k] += 1;
                    run = match run {
                        Some((s, e, f)) if e == i => Some((s, i + 1, f)),
                        Some((s, e, f)) => {
                            d.read_slots(f, &mut block[s * PS..e * PS])?;
                            Some((i, i + 1, slot))
                        }
                        None => Some((i, i + 1, slot)),
                    };
                }
                if let Some((s, e, f)) = run {
                    d.read_slots(f, &mut block[s * PS..e * PS])?;
                }
            }
            w.write_blocks(r, b, block)?;
        }
        if let Some(f) = untouched_from {
            w.copy_blocks(r, f, blocks - f, &base)?;
        }
    }
    w.finish()
}

/// Applies one diff to the full image at `full`, replacing it (see [`consolidate`]).
pub fn apply_diff(full: &Path, diff: &Path) -> Result<ImageStats> {
    consolidate(full, &[diff], full)
}
