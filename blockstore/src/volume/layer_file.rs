//! A layer's data file, `<store>/layers/<id>.data`: chunk-sized slots addressed by number.
//!
//! Whoever has a layer open holds a shared `flock` on its data file for as long as it is
//! open; the garbage collector deletes a layer only after taking an exclusive one, so a layer
//! in use is never deleted under its reader.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::VolumeError;
use super::fsutil::{flock, fsync_dir, random_id, remove_if_exists};
use super::layer_index;
use super::paths::VolumePaths;

/// An open layer data file.
#[derive(Debug)]
pub(crate) struct LayerFile {
    /// The layer id.
    pub id: String,
    /// `<store>/layers/<id>.data`.
    pub path: PathBuf,
    file: File,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl LayerFile {
    /// Opens the data file of layer `id` (read-write for a head) and takes a shared lock on it.
    pub fn open(paths: &VolumePaths, id: &str, writable: bool) -> Result<Self, VolumeError> {
        let path = paths.layer_data(id);
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    VolumeError::corrupt(
                        &paths.dir,
                        &path,
                        "layer data file is missing (the manifest refers to this layer)",
                    )
                } else {
                    VolumeError::io(&paths.dir, &path, "open", e)
                }
            })?;
        flock(&file, libc::LOCK_SH)
            .map_err(|e| VolumeError::io(&paths.dir, &path, "lock (shared)", e))?;
        let meta = file
            .metadata()
            .map_err(|e| VolumeError::io(&paths.dir, &path, "stat", e))?;
        if meta.nlink() == 0 {
            return Err(VolumeError::corrupt(
                &paths.dir,
                &path,
                "layer data file was deleted while it was being opened",
            ));
        }
        Ok(Self::wrap(id, path, file))
    }

    /// Creates a new, empty layer with a fresh id: an empty data file (locked shared) and an
    /// empty committed index, both durable.
    pub fn create(paths: &VolumePaths, chunk_size: u32) -> Result<Self, VolumeError> {
        let dir = paths.layers_dir();
        fs::create_dir_all(&dir).map_err(|e| VolumeError::io(&paths.dir, &dir, "create", e))?;
        for _ in 0..16 {
            let id = random_id().map_err(|e| {
                VolumeError::io(&paths.dir, &PathBuf::from("/dev/urandom"), "read", e)
            })?;
            let path = paths.layer_data(&id);
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(VolumeError::io(&paths.dir, &path, "create", e)),
            };
            let made = (|| {
                flock(&file, libc::LOCK_SH)
                    .map_err(|e| VolumeError::io(&paths.dir, &path, "lock (shared)", e))?;
                let nlink = file
                    .metadata()
                    .map_err(|e| VolumeError::io(&paths.dir, &path, "stat", e))?
                    .nlink();
                if nlink == 0 {
                    // A garbage collector removed it between creation and locking: try again.
                    return Ok(false);
                }
                file.sync_all()
                    .map_err(|e| VolumeError::io(&paths.dir, &path, "fsync", e))?;
                layer_index::commit(paths, &id, chunk_size, 0, &[])?;
                fsync_dir(&dir).map_err(|e| VolumeError::io(&paths.dir, &dir, "fsync", e))?;
                Ok(true)
            })();
            match made {
                Ok(true) => return Ok(Self::wrap(&id, path, file)),
                Ok(false) => continue,
                Err(e) => {
                    let _ = remove_if_exists(&paths.layer_index(&id));
                    let _ = remove_if_exists(&path);
                    return Err(e);
                }
            }
        }
        Err(VolumeError::io(
            &paths.dir,
            &dir,
            "create a layer",
            io::Error::other("could not create a layer with a fresh id after 16 tries"),
        ))
    }

    fn wrap(id: &str, path: PathBuf, file: File) -> Self {
        LayerFile {
            id: id.to_string(),
            path,
            file,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The data file's length in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Bytes the data file occupies on disk (holes excluded).
    pub fn bytes_on_disk(&self) -> u64 {
        self.file.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
    }

    /// Reads `buf.len()` bytes at `offset` (one `pread`, counted).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.file.read_exact_at(buf, offset)
    }

    /// Writes `buf` at `offset` (counted).
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.file.write_all_at(buf, offset)
    }

    /// Reads and writes done through this handle.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}
