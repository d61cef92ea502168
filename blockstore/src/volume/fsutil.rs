//! Small file-system helpers: atomic replacement, directory fsync, hole punching, fresh ids.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::VolumeError;

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the entries of `dir` (creations, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` by `bytes` so that a crash leaves either the old or the new content:
/// write `tmp`, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn write_atomic(
    volume: &Path,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> Result<(), VolumeError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| VolumeError::io(volume, tmp, "create", e))?;
    f.write_all(bytes)
        .map_err(|e| VolumeError::io(volume, tmp, "write", e))?;
    f.sync_all()
        .map_err(|e| VolumeError::io(volume, tmp, "fsync", e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| VolumeError::io(volume, path, "rename into place", e))?;
    let dir = parent_dir(path);
    fsync_dir(&dir).map_err(|e| VolumeError::io(volume, &dir, "fsync directory", e))
}

/// Reads a whole file, refusing one larger than `max` bytes (before reading it).
pub(crate) fn read_limited(path: &Path, max: u64) -> io::Result<Result<Vec<u8>, u64>> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        return Ok(Err(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(Err(buf.len() as u64));
    }
    Ok(Ok(buf))
}

/// A fresh 128-bit random id as 32 lowercase hex digits.
pub(crate) fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Returns the space of `len` bytes at `offset` to the file system; the range then reads
/// as zeros and the file keeps its size. File systems without hole punching keep the data
/// (it is dead anyway) and this returns `Ok`.
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: fallocate takes a file descriptor and integers only; the descriptor is valid
    // for the duration of the call because `file` is borrowed.
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
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
        _ => Err(e),
    }
}

/// `lseek` with `whence` (SEEK_DATA or SEEK_HOLE).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek takes a file descriptor and integers only; the descriptor is valid for
    // the duration of the call because `file` is borrowed. Only positioned I/O (pread,
    // pwrite) is used on these files, so moving the file offset affects nothing else.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u64)
}

/// The byte ranges of a file that hold data (not holes), in order. Where the file system
/// cannot tell, the whole file.
pub(crate) fn data_extents(file: &File) -> io::Result<Vec<(u64, u64)>> {
    let len = file.metadata()?.len();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match seek(file, pos, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
                ) =>
            {
                out.push((pos, len));
                break;
            }
            Err(e) => return Err(e),
        };
        let end = seek(file, start, libc::SEEK_HOLE)?.min(len);
        if end <= start {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// The slots (of `slot_size` bytes) of a file that hold some data, in order.
pub(crate) fn slots_with_data(file: &File, slot_size: u64) -> io::Result<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for (start, end) in data_extents(file)? {
        let first = start / slot_size;
        let first = match out.last() {
            Some(&last) if last >= first => last + 1,
            _ => first,
        };
        out.extend(first..end.div_ceil(slot_size));
    }
    Ok(out)
}

/// Takes or releases a `flock` lock, retrying on EINTR.
pub(crate) fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a file descriptor and an integer operation only; the descriptor
        // is valid for the duration of the call because `file` is borrowed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `e` is "the lock is held by someone else" from a non-blocking `flock`.
pub(crate) fn is_would_block(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn finds_slots_with_data_and_punches_holes() {
        let path = std::env::temp_dir().join(format!("reprise-fsutil-{}", std::process::id()));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(8 * 4096).unwrap();
        for slot in [1u64, 3, 4] {
            f.write_all_at(&[7u8; 4096], slot * 4096).unwrap();
        }
        assert_eq!(slots_with_data(&f, 4096).unwrap(), vec![1, 3, 4]);
        punch_hole(&f, 3 * 4096, 4096).unwrap();
        assert_eq!(slots_with_data(&f, 4096).unwrap(), vec![1, 4]);
        let mut b = [1u8; 4096];
        f.read_exact_at(&mut b, 3 * 4096).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        drop(f);
        fs::remove_file(&path).unwrap();
    }
}
