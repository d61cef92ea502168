//! Where guest RAM is: a list of regions of guest physical memory.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SnapshotError};
use crate::limits::{MAX_GUEST_MEMORY, MAX_REGIONS, PAGE_SIZE};

/// One contiguous range of guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRegion {
    /// Guest physical address of the first byte (page-aligned).
    pub gpa: u64,
    /// Length in bytes (a whole number of pages, not zero).
    pub len: u64,
}

impl MemoryRegion {
    /// The first guest physical address past the region.
    pub fn end(&self) -> u64 {
        self.gpa + self.len
    }

    /// The number of 4 KiB pages.
    pub fn pages(&self) -> u64 {
        self.len / PAGE_SIZE
    }
}

/// Guest RAM as regions in increasing, non-overlapping order; see [`MemoryLayout::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLayout {
    /// The regions.
    pub regions: Vec<MemoryRegion>,
}

impl MemoryLayout {
    /// A layout from `(guest physical address, length)` pairs, validated.
    pub fn new(regions: &[(u64, u64)]) -> Result<Self> {
        let l = MemoryLayout {
            regions: regions
                .iter()
                .map(|&(gpa, len)| MemoryRegion { gpa, len })
                .collect(),
        };
        l.validate()?;
        Ok(l)
    }

    /// Checks that there are 1 to [`MAX_REGIONS`] regions, each page-aligned, a whole
    /// number of pages long and not empty, in increasing order without overlap, not past the
    /// end of the address space, and at most [`MAX_GUEST_MEMORY`] in total.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SnapshotError::InvalidLayout(m));
        if self.regions.is_empty() {
            return bad("no regions".into());
        }
        if self.regions.len() > MAX_REGIONS {
            return bad(format!(
                "{} regions, over the limit of {MAX_REGIONS}",
                self.regions.len()
            ));
        }
        let mut total: u64 = 0;
        let mut prev_end: Option<u64> = None;
        for (i, r) in self.regions.iter().enumerate() {
            if r.gpa % PAGE_SIZE != 0 || r.len % PAGE_SIZE != 0 || r.len == 0 {
                return bad(format!(
                    "region {i} ({:#x}, {:#x} bytes) is empty or not aligned to {PAGE_SIZE} bytes",
                    r.gpa, r.len
                ));
            }
            let Some(end) = r.gpa.checked_add(r.len) else {
                return bad(format!(
                    "region {i} ({:#x}, {:#x} bytes) runs past the address space",
                    r.gpa, r.len
                ));
            };
            if let Some(p) = prev_end {
                if r.gpa < p {
                    return bad(format!(
                        "region {i} at {:#x} overlaps or precedes the region before it",
                        r.gpa
                    ));
                }
            }
            prev_end = Some(end);
            total = total.saturating_add(r.len);
        }
        if total > MAX_GUEST_MEMORY {
            return bad(format!(
                "{total} bytes of memory, over the limit of {MAX_GUEST_MEMORY}"
            ));
        }
        Ok(())
    }

    /// Total bytes of guest RAM.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }

    /// Total pages of guest RAM.
    pub fn total_pages(&self) -> u64 {
        self.total_bytes() / PAGE_SIZE
    }

    /// The region holding `gpa` and the offset of `gpa` in it.
    pub fn find(&self, gpa: u64) -> Option<(usize, u64)> {
        let i = self.regions.partition_point(|r| r.end() <= gpa);
        let r = self.regions.get(i)?;
        (gpa >= r.gpa).then(|| (i, gpa - r.gpa))
    }

    /// A short description for messages, e.g. `2 regions, 256 MiB`.
    pub fn describe(&self) -> String {
        format!(
            "{} region(s), {} bytes",
            self.regions.len(),
            self.total_bytes()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(MemoryLayout::new(&[(0, 4096), (8192, 4096)]).is_ok());
        assert!(MemoryLayout::new(&[]).is_err());
        assert!(MemoryLayout::new(&[(1, 4096)]).is_err());
        assert!(MemoryLayout::new(&[(0, 4095)]).is_err());
        assert!(MemoryLayout::new(&[(0, 0)]).is_err());
        assert!(MemoryLayout::new(&[(0, 8192), (4096, 4096)]).is_err());
        assert!(MemoryLayout::new(&[(8192, 4096), (0, 4096)]).is_err());
        assert!(MemoryLayout::new(&[(u64::MAX - 4095, 8192)]).is_err());
        assert!(MemoryLayout::new(&[(0, MAX_GUEST_MEMORY + 4096)]).is_err());
    }

    #[test]
    fn find() {
        let l = MemoryLayout::new(&[(0, 0x1000), (0x10_0000, 0x2000)]).unwrap();
        assert_eq!(l.find(0xfff), Some((0, 0xfff)));
        assert_eq!(l.find(0x1000), None);
        assert_eq!(l.find(0x10_1000), Some((1, 0x1000)));
        assert_eq!(l.find(0x10_2000), None);
    }
}
