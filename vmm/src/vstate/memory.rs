//! Guest RAM: anonymous memory, or a hugetlbfs-backed memfd.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use devices::GuestMemory;
use vm_memory::{FileOffset, GuestAddress};

use crate::arch::layout;

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The mmap of guest RAM failed.
    #[error("cannot allocate {mib} MiB of guest memory: {source}")]
    Allocate {
        /// Requested size.
        mib: u64,
        /// The underlying error.
        source: vm_memory::mmap::FromRangesError,
    },
    /// memfd_create or ftruncate failed.
    #[error("cannot create hugetlbfs-backed guest memory ({mib} MiB): {source}; are enough 2 MiB huge pages reserved in /proc/sys/vm/nr_hugepages?")]
    HugePages {
        /// Requested size.
        mib: u64,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Allocates `mem_mib` MiB of guest RAM laid out around the MMIO hole.
pub fn create_guest_memory(mem_mib: u64, huge_pages: bool) -> Result<GuestMemory, MemoryError> {
    let bytes = mem_mib << 20;
    let ranges = layout::ram_ranges(bytes);
    let file = if huge_pages {
        Some(
            hugetlb_memfd(bytes).map_err(|source| MemoryError::HugePages {
                mib: mem_mib,
                source,
            })?,
        )
    } else {
        None
    };
    let mut regions: Vec<(GuestAddress, usize, Option<FileOffset>)> = Vec::new();
    let mut file_offset = 0;
    for &(start, len) in &ranges {
        let fo = match &file {
            Some(f) => Some(FileOffset::new(
                f.try_clone().map_err(|source| MemoryError::HugePages {
                    mib: mem_mib,
                    source,
                })?,
                file_offset,
            )),
            None => None,
        };
        file_offset += len;
        regions.push((GuestAddress(start), len as usize, fo));
    }
    GuestMemory::from_ranges_with_files(regions).map_err(|source| MemoryError::Allocate {
        mib: mem_mib,
        source,
    })
}

fn hugetlb_memfd(bytes: u64) -> std::io::Result<File> {
    let name = c"reprise-guest-ram";
    // SAFETY: `name` is a valid NUL-terminated string; the flags are valid memfd flags.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_HUGETLB) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(bytes)?;
    // Reserve every huge page now: hugetlbfs allocates lazily, and a page missing later
    // would fault the VMM or the guest instead of failing here with a clear message.
    let len = libc::off_t::try_from(bytes)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `file` is an open memfd; fallocate only changes its backing allocation.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// Maps guest RAM copy-on-write (`MAP_PRIVATE`) from a memory image: region `i` of
/// `regions` (guest address, length) lies at file offset `offsets[i]`. Restoring this way
/// copies nothing up front; the guest reads the image and its writes stay private, so the
/// image is never modified.
pub fn map_guest_memory_private(
    file: &File,
    regions: &[(u64, u64)],
    offsets: &[u64],
) -> Result<GuestMemory, std::io::Error> {
    use vm_memory::bitmap::{AtomicBitmap, NewBitmap};
    use vm_memory::mmap::MmapRegionBuilder;
    use vm_memory::GuestRegionMmap;
    if regions.len() != offsets.len() {
        return Err(std::io::Error::other("memory layout and offsets disagree"));
    }
    let mut mapped = Vec::with_capacity(regions.len());
    for (&(gpa, len), &offset) in regions.iter().zip(offsets) {
        let len = usize::try_from(len).map_err(|_| std::io::Error::other("region too large"))?;
        let region = MmapRegionBuilder::new_with_bitmap(len, AtomicBitmap::with_len(len))
            .with_file_offset(FileOffset::new(file.try_clone()?, offset))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| std::io::Error::other(format!("mapping the memory image: {e}")))?;
        let region = GuestRegionMmap::new(region, GuestAddress(gpa))
            .ok_or_else(|| std::io::Error::other("memory region address overflows"))?;
        mapped.push(region);
    }
    GuestMemory::from_regions(mapped)
        .map_err(|e| std::io::Error::other(format!("guest memory layout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn private_mapping_reads_the_image_and_never_writes_it() {
        let path = std::env::temp_dir().join(format!("reprise-mem-{}.img", std::process::id()));
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        // Two regions: the first page at GPA 0, the next two at GPA 1 MiB.
        let mem =
            map_guest_memory_private(&file, &[(0, 4096), (1 << 20, 8192)], &[0, 4096]).unwrap();
        let mut buf = vec![0u8; 8192];
        mem.read_slice(&mut buf, GuestAddress(1 << 20)).unwrap();
        assert_eq!(buf, data[4096..]);
        mem.write_slice(&[0xff; 16], GuestAddress(0)).unwrap();
        let mut head = [0u8; 16];
        mem.read_slice(&mut head, GuestAddress(0)).unwrap();
        assert_eq!(head, [0xff; 16]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            data,
            "the image must stay untouched"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
