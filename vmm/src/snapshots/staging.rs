//! Staging copies of dirty pages, so a diff snapshot's pause only covers copying them in
//! memory; the file is written after the guest has resumed.

use snapshot::{DirtyBitmap, MemoryLayout};

/// Page size of the dirty bitmaps.
const PAGE: usize = 4096;

/// One anonymous mapping per guest memory region, holding copies of the dirty pages at
/// their own offsets (untouched pages cost nothing: they are never faulted in).
pub struct Staging {
    maps: Vec<(*mut u8, usize)>,
}

// SAFETY: the mappings are plain memory owned by this value; nothing else refers to them.
unsafe impl Send for Staging {}

impl Staging {
    /// Copies the pages `dirty` marks from `sources` (the guest's memory, paused).
    pub fn copy(
        layout: &MemoryLayout,
        sources: &[&[u8]],
        dirty: &DirtyBitmap,
    ) -> std::io::Result<Self> {
        let mut maps = Vec::with_capacity(sources.len());
        for region in &layout.regions {
            let len = region.len as usize;
            // SAFETY: a fresh private anonymous mapping; the result is checked.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                let err = std::io::Error::last_os_error();
                let staging = Staging { maps };
                drop(staging);
                return Err(err);
            }
            maps.push((ptr.cast::<u8>(), len));
        }
        let staging = Staging { maps };
        for (region, page) in dirty.iter_set_pages() {
            let (dst, len) = staging.maps[region];
            let at = page as usize * PAGE;
            if at + PAGE > len || at + PAGE > sources[region].len() {
                continue;
            }
            // SAFETY: `at + PAGE` is inside both the source region and the staging mapping,
            // which do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(sources[region].as_ptr().add(at), dst.add(at), PAGE)
            };
        }
        Ok(staging)
    }

    /// The staged regions, laid out like guest memory (only dirty pages are meaningful).
    pub fn sources(&self) -> Vec<&[u8]> {
        self.maps
            .iter()
            // SAFETY: each mapping is `len` bytes, alive as long as `self`.
            .map(|&(ptr, len)| unsafe { std::slice::from_raw_parts(ptr, len) })
            .collect()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for &(ptr, len) in &self.maps {
            // SAFETY: unmapping a mapping this value created and no longer lends out.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
    }
}
