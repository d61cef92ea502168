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
