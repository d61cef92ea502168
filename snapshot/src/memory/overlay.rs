//! Applying diffs straight onto guest memory (a restore maps the chain's full image and lays
//! its diffs over it, instead of writing a consolidated image first).

use crate::error::{Result, SnapshotError};
use crate::limits::{BLOCK_PAGES, PAGE_SIZE};
use crate::memory::diff::DiffImage;

const PS: usize = PAGE_SIZE as usize;

/// Checksums stored pages in slot order, a group of [`BLOCK_PAGES`] at a time.
struct GroupCheck<'a> {
    diff: &'a DiffImage,
    hasher: crc32fast::Hasher,
    pages: u64,
}

impl GroupCheck<'_> {
    fn page(&mut self, page: &[u8]) -> Result<()> {
        self.hasher.update(page);
        self.pages += 1;
        if self.pages.is_multiple_of(BLOCK_PAGES) {
            self.finish_group()?;
        }
        Ok(())
    }

    fn finish_group(&mut self) -> Result<()> {
        let g = ((self.pages - 1) / BLOCK_PAGES) as usize;
        let computed = std::mem::take(&mut self.hasher).finalize();
        let stored = self.diff.group_crc(g).unwrap_or(!computed);
        if stored != computed {
            let first = g as u64 * BLOCK_PAGES;
            return Err(SnapshotError::Checksum {
                path: self.diff.path().to_path_buf(),
                what: format!("stored pages {first}..{}", self.pages),
                stored,
                computed,
            });
        }
        Ok(())
    }
}

impl DiffImage {
    /// Writes this diff's pages into `memory` (one slice per region, laid out like guest
    /// memory): stored pages read from the file, checked against their checksums as they go;
    /// pages that became zero zeroed. Returns the number of pages written. On a checksum
    /// error `memory` holds part of the diff and must not be used.
    pub fn apply_to(&self, memory: &mut [&mut [u8]]) -> Result<u64> {
        let regions = &self.layout().regions;
        if memory.len() != regions.len()
            || memory
                .iter()
                .zip(regions)
                .any(|(m, r)| m.len() as u64 != r.len)
        {
            return Err(SnapshotError::InvalidInput(format!(
                "{}: the memory given does not have the diff's layout {}",
                self.path().display(),
                self.layout().describe()
            )));
        }
        let mut check = GroupCheck {
            diff: self,
            hasher: crc32fast::Hasher::new(),
            pages: 0,
        };
        let mut written = 0;
        for (r, mem) in memory.iter_mut().enumerate() {
            // Consecutive non-zero dirty pages have consecutive slots: one read per run.
            let mut run: Option<(u64, u64)> = None; // pages [start, end) of this region
            for p in self.dirty(r).iter_set() {
                written += 1;
                if self.zero(r).get(p) {
                    if let Some(prev) = run.take() {
                        self.read_run(mem, prev, &mut check)?;
                    }
                    mem[p as usize * PS..(p as usize + 1) * PS].fill(0);
                    continue;
                }
                run = match run {
                    Some((s, e)) if e == p && (e - s) < BLOCK_PAGES => Some((s, p + 1)),
                    Some(prev) => {
                        self.read_run(mem, prev, &mut check)?;
                        Some((p, p + 1))
                    }
                    None => Some((p, p + 1)),
                };
            }
            if let Some(prev) = run {
                self.read_run(mem, prev, &mut check)?;
            }
        }
        if !check.pages.is_multiple_of(BLOCK_PAGES) {
            check.finish_group()?;
        }
        Ok(written)
    }

    /// Reads the stored pages for pages `[run.0, run.1)` of a region (the next slots).
    fn read_run(&self, mem: &mut [u8], run: (u64, u64), check: &mut GroupCheck<'_>) -> Result<()> {
        let (s, e) = run;
        let buf = &mut mem[s as usize * PS..e as usize * PS];
        self.read_slots(check.pages, buf)?;
        for page in buf.chunks(PS) {
            check.page(page)?;
        }
        Ok(())
    }
}
