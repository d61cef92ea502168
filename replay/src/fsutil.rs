//! File helpers: files that appear under their final name only once complete and durable,
//! directory syncs, and bounded reads.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{CaptureError, Result};

/// Flushes a directory, so that entries created, renamed or removed in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| CaptureError::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| CaptureError::io(dir, "fsync directory", e))
}

/// Writes `data` to `path` atomically: to `<path>.partial`, fsync, rename into place, fsync
/// the directory. A reader never sees a half-written file, and a crash leaves the previous
/// file (if any) in place.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let mut name = path
        .file_name()
        .ok_or_else(|| CaptureError::io(path, "name", std::io::ErrorKind::InvalidInput.into()))?
        .to_os_string();
    name.push(".partial");
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| CaptureError::io(&tmp, "create", e))?;
        f.write_all(data)
            .map_err(|e| CaptureError::io(&tmp, "write", e))?;
        f.sync_all()
            .map_err(|e| CaptureError::io(&tmp, "fsync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| CaptureError::io(path, "rename into place", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads all of `path`, refusing (before allocating) a file larger than `limit`.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| CaptureError::io(path, "open", e))?;
    let mut buf = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CaptureError::io(path, "read", e))?;
    if buf.len() as u64 > limit {
        return Err(CaptureError::corrupt(
            path,
            0,
            format!("the file is over the limit of {limit} bytes"),
        ));
    }
    Ok(buf)
}
