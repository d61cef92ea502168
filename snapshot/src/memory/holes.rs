//! Finding the data in ranges of a sparse file that should be holes, with `SEEK_DATA` and
//! `SEEK_HOLE`, so that checking an image does not read gigabytes of holes (which the
//! kernel serves by zero-filling page-cache pages, at a few hundred MiB/s).

use std::fs::File;
use std::os::fd::AsRawFd;

/// Walks a file's data extents forwards.
pub(crate) struct DataExtents<'a> {
    file: &'a File,
    /// The cached extent `start..end`; `start == u64::MAX` when there is no more data.
    start: u64,
    end: u64,
}

impl<'a> DataExtents<'a> {
    pub fn new(file: &'a File) -> Self {
        DataExtents {
            file,
            start: 0,
            end: 0,
        }
    }

    fn seek(&self, from: u64, whence: libc::c_int) -> Option<u64> {
        // SAFETY: lseek on a descriptor borrowed for the lifetime of `self`; no memory is
        // involved.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), from as libc::off_t, whence) };
        (r >= 0).then_some(r as u64)
    }

    /// The first range of data inside `start..end`, if any; ranges must be asked for in
    /// increasing order. On a file system without `SEEK_DATA` everything is data.
    pub fn first_in(&mut self, start: u64, end: u64) -> Option<(u64, u64)> {
        if start >= end {
            return None;
        }
        if self.end <= start && self.start != u64::MAX {
            match self.seek(start, libc::SEEK_DATA) {
                Some(d) => {
                    self.start = d;
                    self.end = self.seek(d, libc::SEEK_HOLE).unwrap_or(u64::MAX);
                }
                None if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => {
                    self.start = u64::MAX;
                    self.end = u64::MAX;
                }
                None => {
                    self.start = start;
                    self.end = u64::MAX;
                }
            }
        }
        if self.start >= end {
            return None;
        }
        Some((self.start.max(start), self.end.min(end)))
    }
}
