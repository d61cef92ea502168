//! Staging copies of dirty pages, so that a snapshot's pause only covers copying them in
//! memory; files are written after the guest has resumed.

use snapshot::{DirtyBitmap, MemoryLayout};

/// Page size of the dirty bitmaps.
const PAGE: usize = 4096;

/// One anonymous mapping per guest memory region, holding copies of dirty pages at their own
/// offsets. It is kept from one snapshot to the next: pages a previous snapshot staged are
/// already faulted in, so staging the same working set again costs only the copy (untouched
/// pages cost nothing: they are never faulted in).
pub struct Staging {
    maps: Vec<(*mut u8, usize)>,
}

// SAFETY: the mappings are plain memory owned by this value; nothing else refers to them.
unsafe impl Send for Staging {}

impl Staging {
    /// Maps (without reserving) room for every region of `layout`.
    pub fn new(layout: &MemoryLayout) -> std::io::Result<Self> {
        let mut staging = Staging {
            maps: Vec::with_capacity(layout.regions.len()),
        };
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
                // `staging` unmaps what was mapped so far.
                return Err(std::io::Error::last_os_error());
            }
            staging.maps.push((ptr.cast::<u8>(), len));
        }
        Ok(staging)
    }

    /// Whether this staging area fits `layout`.
    pub fn fits(&self, layout: &MemoryLayout) -> bool {
        self.maps.len() == layout.regions.len()
            && self
                .maps
                .iter()
                .zip(&layout.regions)
                .all(|(&(_, len), r)| len as u64 == r.len)
    }

    /// Copies the pages `dirty` marks from `sources` (the guest's memory). A page the guest
    /// writes while it is copied may be staged torn; callers copy such pages again with the
    /// guest paused (they are dirty again by then).
    pub fn copy(&mut self, sources: &[&[u8]], dirty: &DirtyBitmap) {
        for (region, page) in dirty.iter_set_pages() {
            let (Some(&(dst, len)), Some(src)) = (self.maps.get(region), sources.get(region))
            else {
                continue;
            };
            let at = page as usize * PAGE;
            if at + PAGE > len || at + PAGE > src.len() {
                continue;
            }
            // SAFETY: `at + PAGE` is inside both the source region and the staging mapping,
            // which do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().add(at), dst.add(at), PAGE) };
        }
    }

    /// The staged regions, laid out like guest memory (only staged pages are meaningful).
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
