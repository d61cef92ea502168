//! File helpers: bounded reads, positioned I/O with errors that name the file, and files
//! that appear under their final name only once complete and durable.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, SnapshotError};

/// Reads all of `path`, refusing (before allocating) a file larger than `limit`.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| SnapshotError::io(path, "open", e))?;
    let len = file
        .metadata()
        .map_err(|e| SnapshotError::io(path, "stat", e))?
        .len();
    if len > limit {
        return Err(SnapshotError::TooLarge {
            path: path.into(),
            what: what.to_string(),
            size: len,
            limit,
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    // Read one byte more than the limit allows, in case the file grows meanwhile.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SnapshotError::io(path, "read", e))?;
    if buf.len() as u64 > limit {
        return Err(SnapshotError::TooLarge {
            path: path.into(),
            what: what.to_string(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

/// Reads exactly `buf.len()` bytes at `offset`; a short file is [`SnapshotError::Truncated`].
pub fn read_exact_at(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            SnapshotError::Truncated {
                path: path.into(),
                offset,
                what: format!("{what} ({} bytes) is cut short", buf.len()),
            }
        } else {
            SnapshotError::io(path, "read", e)
        }
    })
}

/// Writes all of `buf` at `offset`.
pub fn write_all_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    file.write_all_at(buf, offset)
        .map_err(|e| SnapshotError::io(path, "write", e))
}

/// Makes `len` bytes at `offset` read as zeros: a hole where the file system can punch one,
/// written zeros where it cannot. The file keeps its size.
pub fn zero_range(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) {
        // SAFETY: fallocate takes a file descriptor and integers only; `file` is borrowed,
        // so the descriptor stays valid for the call.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                l,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        write_all_at(file, path, &zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Flushes a directory, so that entries created, renamed or removed in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| SnapshotError::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| SnapshotError::io(dir, "fsync directory", e))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Copies `len` bytes from `src` at `src_off` to `dst` at `dst_off`, in the kernel when the
/// file system can (`copy_file_range`, which shares extents on reflink file systems), with a
/// read/write fallback.
pub fn copy_range(
    src: &File,
    src_path: &Path,
    mut src_off: u64,
    dst: &File,
    dst_path: &Path,
    mut dst_off: u64,
    mut len: u64,
) -> Result<()> {
    while len > 0 {
        let mut so = src_off as libc::loff_t;
        let mut d_o = dst_off as libc::loff_t;
        let chunk = len.min(1 << 30) as usize;
        // SAFETY: both descriptors are open files owned by the callers for the duration of
        // the call, and the offset pointers refer to live locals.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut so,
                dst.as_raw_fd(),
                &mut d_o,
                chunk,
                0,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EXDEV)
                | Some(libc::ENOSYS)
                | Some(libc::EOPNOTSUPP)
                | Some(libc::EINVAL) => {
                    copy_range_slow(src, src_path, src_off, dst, dst_path, dst_off, len)
                }
                Some(libc::EINTR) => continue,
                _ => Err(SnapshotError::io(dst_path, "copy_file_range", err)),
            };
        }
        if n == 0 {
            return Err(SnapshotError::Truncated {
                path: src_path.into(),
                offset: src_off,
                what: format!("{len} bytes to copy are missing"),
            });
        }
        src_off += n as u64;
        dst_off += n as u64;
        len -= n as u64;
    }
    Ok(())
}

fn copy_range_slow(
    src: &File,
    src_path: &Path,
    mut src_off: u64,
    dst: &File,
    dst_path: &Path,
    mut dst_off: u64,
    mut len: u64,
) -> Result<()> {
    let mut buf = vec![0u8; len.min(8 << 20) as usize];
    while len > 0 {
        let n = len.min(buf.len() as u64) as usize;
        read_exact_at(src, src_path, &mut buf[..n], src_off, "data to copy")?;
        write_all_at(dst, dst_path, &buf[..n], dst_off)?;
        src_off += n as u64;
        dst_off += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// A file written under a temporary name beside its final one (`<name>.partial`) and renamed
/// into place by [`AtomicFile::commit`] after an fsync: a reader never sees it half-written,
/// and a crash leaves the previous file (if any) in place.
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates (or truncates) the temporary file for `path`.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let mut name = path
            .file_name()
            .ok_or_else(|| {
                SnapshotError::InvalidInput(format!("{}: not a file name", path.display()))
            })?
            .to_os_string();
        name.push(".partial");
        let tmp = path.with_file_name(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| SnapshotError::io(&tmp, "create", e))?;
        Ok(AtomicFile {
            file,
            tmp,
            path: path.to_path_buf(),
            committed: false,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes the file, renames it to its final name and flushes the directory.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| SnapshotError::io(&self.tmp, "fsync", e))?;
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| SnapshotError::io(&self.path, "rename into place", e))?;
        self.committed = true;
        fsync_dir(parent_dir(&self.path))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Our own unfinished output: remove it so that it does not linger.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `data` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let f = AtomicFile::create(path)?;
    write_all_at(f.file(), f.tmp_path(), data, 0)?;
    f.commit()
}
