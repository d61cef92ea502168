//! Full images written while the guest still runs ("pre-copy"): all of memory is streamed
//! to the file first, then, with the guest paused for only that long, the pages written in
//! the meantime are captured and patched in. The result is the memory of the paused instant.

use std::collections::BTreeSet;
use std::path::Path;

use crate::dirty::DirtyBitmap;
use crate::error::{Result, SnapshotError};
use crate::limits::{BLOCK_PAGES, PAGE_SIZE};
use crate::memory::full::FullWriter;
use crate::memory::header::{self, ImageStats};
use crate::memory::MemoryLayout;

const PS: usize = PAGE_SIZE as usize;

/// A full image being built by pre-copy (see the module documentation).
pub struct PrecopiedImage {
    writer: FullWriter,
    layout: MemoryLayout,
}

impl PrecopiedImage {
    /// Starts the image at `path` (under a temporary name until [`Self::finish`]).
    pub fn create(path: &Path, tag: &str, layout: &MemoryLayout) -> Result<PrecopiedImage> {
        Ok(PrecopiedImage {
            writer: FullWriter::create(path, tag, layout)?,
            layout: layout.clone(),
        })
    }

    /// Streams all of memory from `sources` (the host mapping of each region). Pages the
    /// guest writes during the copy may be captured torn: dirty tracking must have been reset
    /// before this call, and every page written since must then be given to [`Self::patch`].
    pub fn copy_live(&mut self, sources: &[&[u8]]) -> Result<()> {
        header::check_sources(&self.layout, sources)?;
        self.writer.write_all(sources)
    }

    /// Writes the data copied so far to disk, so that the file system has nothing of it left
    /// to write when the guest is paused (where another file's flush could wait for it).
    pub fn sync_data(&self) -> Result<()> {
        self.writer.sync_data()
    }

    /// Replaces the pages `dirty` marks with their contents in `sources` (laid out like
    /// guest memory; only the marked pages are read) and re-checksums the blocks they fall in.
    pub fn patch(&mut self, dirty: &DirtyBitmap, sources: &[&[u8]]) -> Result<()> {
        header::check_sources(&self.layout, sources)?;
        if dirty.layout() != &self.layout {
            return Err(SnapshotError::InvalidInput(
                "the dirty bitmap is for another memory layout".into(),
            ));
        }
        let mut blocks = BTreeSet::new();
        for (region, page) in dirty.iter_set_pages() {
            let at = page as usize * PS;
            self.writer
                .patch_page(region, page, &sources[region][at..at + PS])?;
            blocks.insert((region, page / BLOCK_PAGES));
        }
        for (region, block) in blocks {
            self.writer.rehash_block(region, block)?;
        }
        Ok(())
    }

    /// Writes the table and header, flushes, and renames the image into place.
    pub fn finish(self) -> Result<ImageStats> {
        self.writer.finish()
    }
}
