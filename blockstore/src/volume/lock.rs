//! The writer lock: `<volume>/lock`, held with `flock(LOCK_EX | LOCK_NB)` for as long as a
//! volume is open for writing, with the holder's pid written in it for the message a second
//! writer gets. The kernel drops the lock when the holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::VolumeError;
use super::fsutil::{flock, is_would_block};
use super::paths::VolumePaths;

/// A held writer lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the writer lock of the volume at `paths` or says who holds it.
    pub fn acquire(paths: &VolumePaths) -> Result<Self, VolumeError> {
        let path = paths.lock();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| VolumeError::io(&paths.dir, &path, "open lock file", e))?;
        if let Err(e) = flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            if is_would_block(&e) {
                return Err(VolumeError::Locked {
                    volume: paths.dir.clone(),
                    file: path.clone(),
                    holder: lock_holder(&path),
                });
            }
            return Err(VolumeError::io(&paths.dir, &path, "lock", e));
        }
        // The pid is informative only: failing to record it does not make the lock weaker.
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = file
            .set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
        {
            log::warn!("{}: cannot record the holder's pid: {e}", path.display());
        }
        Ok(WriterLock { _file: file })
    }
}

/// "pid N" as recorded in the lock file at `path`, or a description of why it is unknown.
pub(crate) fn lock_holder(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(64).read_to_string(&mut text));
    match read {
        Ok(_) => match text.trim().parse::<u32>() {
            Ok(pid) => format!("pid {pid}"),
            Err(_) => "another process (its pid is not recorded yet)".to_string(),
        },
        Err(_) => "another process".to_string(),
    }
}
