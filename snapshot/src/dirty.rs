//! Dirty-page bookkeeping: which pages of guest memory changed since the last snapshot.
//!
//! The VMM merges two sources into a [`DirtyBitmap`]: KVM's dirty log (pages the guest
//! wrote, one `Vec<u64>` per memory slot from `KVM_GET_DIRTY_LOG`, or entries harvested from
//! the dirty ring) and its own record of pages it wrote on the guest's behalf (virtio
//! devices writing into guest buffers), which KVM does not see.

use crate::bitmap::PageBitmap;
use crate::error::{Result, SnapshotError};
use crate::limits::PAGE_SIZE;
use crate::memory::MemoryLayout;

/// One [`PageBitmap`] per region of a [`MemoryLayout`], 4 KiB pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyBitmap {
    layout: MemoryLayout,
    regions: Vec<PageBitmap>,
}

impl DirtyBitmap {
    /// An empty bitmap for `layout`.
    pub fn new(layout: &MemoryLayout) -> Self {
        DirtyBitmap {
            layout: layout.clone(),
            regions: layout
                .regions
                .iter()
                .map(|r| PageBitmap::new(r.pages()))
                .collect(),
        }
    }

    /// A bitmap with every page set (a full snapshot seen as a diff).
    pub fn all(layout: &MemoryLayout) -> Self {
        let mut b = DirtyBitmap::new(layout);
        for r in &mut b.regions {
            let words = vec![u64::MAX; r.words().len()];
            // The word count matches by construction; bits past the end are masked.
            let _ = r.union_words(&words);
        }
        b
    }

    /// A bitmap from one [`PageBitmap`] per region of `layout` (sizes already checked).
    pub(crate) fn from_regions(layout: &MemoryLayout, regions: Vec<PageBitmap>) -> Self {
        DirtyBitmap {
            layout: layout.clone(),
            regions,
        }
    }

    /// The layout the bitmap covers.
    pub fn layout(&self) -> &MemoryLayout {
        &self.layout
    }

    /// The bitmap of region `index`.
    pub fn region(&self, index: usize) -> &PageBitmap {
        &self.regions[index]
    }

    /// Marks page `page` of region `region` dirty.
    pub fn set(&mut self, region: usize, page: u64) -> Result<()> {
        let b = self.regions.get_mut(region).ok_or_else(|| {
            SnapshotError::InvalidInput(format!(
                "dirty page in region {region}, which does not exist"
            ))
        })?;
        if page >= b.pages() {
            return Err(SnapshotError::InvalidInput(format!(
                "dirty page {page} past the end of region {region} ({} pages)",
                b.pages()
            )));
        }
        b.set(page);
        Ok(())
    }

    /// Marks the page holding guest physical address `gpa` dirty; `false` if no region
    /// holds it.
    pub fn set_gpa(&mut self, gpa: u64) -> bool {
        match self.layout.find(gpa) {
            Some((r, off)) => {
                self.regions[r].set(off / PAGE_SIZE);
                true
            }
            None => false,
        }
    }

    /// Marks every page of guest physical range `gpa..gpa+len` dirty (a device wrote it);
    /// parts outside every region are ignored.
    pub fn set_range(&mut self, gpa: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = gpa.saturating_add(len);
        for (i, r) in self.layout.regions.iter().enumerate() {
            let s = gpa.max(r.gpa);
            let e = end.min(r.end());
            if s < e {
                for p in (s - r.gpa) / PAGE_SIZE..(e - r.gpa).div_ceil(PAGE_SIZE) {
                    self.regions[i].set(p);
                }
            }
        }
    }

    /// ORs KVM's dirty log of region `region` (`KVM_GET_DIRTY_LOG`'s words for the memory
    /// slot that maps exactly that region: bit `i` of word `j` is page `64 j + i`).
    pub fn union_kvm_log(&mut self, region: usize, words: &[u64]) -> Result<()> {
        let b = self.regions.get_mut(region).ok_or_else(|| {
            SnapshotError::InvalidInput(format!(
                "dirty log for region {region}, which does not exist"
            ))
        })?;
        b.union_words(words)
            .map_err(|e| SnapshotError::InvalidInput(format!("dirty log for region {region}: {e}")))
    }

    /// Sets every page set in `other`, which must be over the same layout.
    pub fn union(&mut self, other: &DirtyBitmap) -> Result<()> {
        if other.layout != self.layout {
            return Err(SnapshotError::InvalidInput(
                "cannot merge dirty bitmaps of different memory layouts".into(),
            ));
        }
        for (a, b) in self.regions.iter_mut().zip(&other.regions) {
            // Same layout, so same sizes.
            let _ = a.union(b);
        }
        Ok(())
    }

    /// The dirty pages as `(region, page)`, in order.
    pub fn iter_set_pages(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.regions
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.iter_set().map(move |p| (i, p)))
    }

    /// The guest physical addresses of the dirty pages, in order.
    pub fn iter_set_gpas(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter_set_pages()
            .map(|(r, p)| self.layout.regions[r].gpa + p * PAGE_SIZE)
    }

    /// The number of dirty pages.
    pub fn count(&self) -> u64 {
        self.regions.iter().map(PageBitmap::count).sum()
    }

    /// Whether no page is dirty.
    pub fn is_empty(&self) -> bool {
        self.regions.iter().all(PageBitmap::is_empty)
    }

    /// Clears every bit (after a snapshot has taken the pages).
    pub fn clear(&mut self) {
        for r in &mut self.regions {
            r.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_log_and_vmm_pages_merge() {
        let layout = MemoryLayout::new(&[(0, 100 * PAGE_SIZE), (1 << 32, 64 * PAGE_SIZE)]).unwrap();
        let mut kvm = DirtyBitmap::new(&layout);
        // KVM's log for region 0: pages 0, 3 and 65 (two words for 100 pages).
        kvm.union_kvm_log(0, &[0b1001, 0b10]).unwrap();
        assert!(kvm.union_kvm_log(0, &[1]).is_err());
        assert!(kvm.union_kvm_log(2, &[1]).is_err());
        let mut vmm = DirtyBitmap::new(&layout);
        assert!(vmm.set_gpa((1 << 32) + 5 * PAGE_SIZE + 17));
        assert!(!vmm.set_gpa(200 * PAGE_SIZE));
        vmm.set_range(99 * PAGE_SIZE + 10, 2 * PAGE_SIZE); // page 99 only: the rest is a gap
        vmm.set(0, 3).unwrap();
        assert!(vmm.set(1, 64).is_err());
        kvm.union(&vmm).unwrap();
        assert_eq!(kvm.count(), 5);
        assert_eq!(
            kvm.iter_set_pages().collect::<Vec<_>>(),
            [(0, 0), (0, 3), (0, 65), (0, 99), (1, 5)]
        );
        assert_eq!(kvm.iter_set_gpas().last(), Some((1 << 32) + 5 * PAGE_SIZE));
        let other = DirtyBitmap::new(&MemoryLayout::new(&[(0, PAGE_SIZE)]).unwrap());
        assert!(kvm.union(&other).is_err());
        kvm.clear();
        assert!(kvm.is_empty());
        assert_eq!(DirtyBitmap::all(&layout).count(), 164);
    }
}
