//! Writing a new snapshot: in `<root>/<id>.tmp/`, renamed to `<root>/<id>/` by
//! [`PendingSnapshot::commit`] once every file is written and flushed.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::dirty::DirtyBitmap;
use crate::error::{Result, SnapshotError};
use crate::fsutil;
use crate::limits::PAGE_SIZE;
use crate::manifest::{
    validate_id, Manifest, MemoryInfo, SnapshotKind, VolumeSnapshot, DIFF_MEMORY_FILE,
    FULL_MEMORY_FILE, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, STATE_FILE,
};
use crate::memory::{write_diff, write_full, ImageStats, MemoryLayout, PrecopiedImage};
use crate::state::StateWriter;
use crate::store::{SnapshotStore, PARTIAL_SUFFIX};

/// A lock file held (with `flock`) by the process writing a `.tmp` directory, so that
/// [`SnapshotStore::clean_partial`] and [`SnapshotStore::list`] can tell a snapshot being
/// written from one whose writer died.
pub(crate) const WRITER_LOCK: &str = ".writer.lock";

/// The current time in milliseconds since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a new snapshot is, besides its state and memory.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// Its id (see [`validate_id`]).
    pub id: String,
    /// Creation time, milliseconds since the Unix epoch ([`unix_ms_now`]).
    pub created: u64,
    /// The VM's configuration, stored as given.
    pub vm_config: serde_json::Value,
    /// The volume snapshots taken with it.
    pub volumes: Vec<VolumeSnapshot>,
}

/// A snapshot being written. Dropping it without [`PendingSnapshot::commit`] removes its
/// directory; if the process dies instead, the directory stays as a half-written snapshot.
pub struct PendingSnapshot {
    store: SnapshotStore,
    new: NewSnapshot,
    tmp: PathBuf,
    state_written: bool,
    memory: Option<(Option<String>, MemoryInfo)>,
    _writer_lock: File,
    done: bool,
}

/// Takes an exclusive `flock` on `file`, failing at once if another holds it.
pub(crate) fn try_flock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl SnapshotStore {
    /// Starts writing snapshot `new.id` in `<root>/<id>.tmp/`. Fails if a snapshot of that
    /// id, complete or half-written, exists.
    pub fn begin(&self, new: NewSnapshot) -> Result<PendingSnapshot> {
        validate_id(&new.id)?;
        let _lock = self.lock()?;
        let id = new.id.clone();
        if self.dir(&id).exists() {
            return Err(SnapshotError::AlreadyExists {
                id,
                problem: "already exists".into(),
            });
        }
        let tmp = self.root().join(format!("{id}{PARTIAL_SUFFIX}"));
        if tmp.exists() {
            return Err(SnapshotError::AlreadyExists {
                id,
                problem: format!(
                    "a half-written {} is in the way (see clean_partial)",
                    tmp.display()
                ),
            });
        }
        std::fs::create_dir(&tmp).map_err(|e| SnapshotError::io(&tmp, "create directory", e))?;
        let lock_path = tmp.join(WRITER_LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SnapshotError::io(&lock_path, "create", e))?;
        if !try_flock(&lock) {
            return Err(SnapshotError::io(
                &lock_path,
                "lock",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(PendingSnapshot {
            store: self.clone(),
            new,
            tmp,
            state_written: false,
            memory: None,
            _writer_lock: lock,
            done: false,
        })
    }
}

impl PendingSnapshot {
    /// The snapshot's id.
    pub fn id(&self) -> &str {
        &self.new.id
    }

    /// The directory being written.
    pub fn dir(&self) -> &std::path::Path {
        &self.tmp
    }

    /// Sets the snapshot's time (milliseconds since the epoch): the instant of the cut, when
    /// memory was copied before it.
    pub fn set_created(&mut self, unix_ms: u64) {
        self.new.created = unix_ms;
    }

    /// Writes the VM-state file.
    pub fn write_state(&mut self, state: &StateWriter) -> Result<()> {
        state.write_to(&self.tmp.join(STATE_FILE))?;
        self.state_written = true;
        Ok(())
    }

    fn set_memory(
        &mut self,
        parent: Option<String>,
        file: &str,
        layout: &MemoryLayout,
        s: ImageStats,
    ) {
        let info = MemoryInfo {
            file: file.into(),
            layout: layout.clone(),
            page_size: PAGE_SIZE,
            data_bytes: s.data_bytes,
            file_bytes: s.file_bytes,
        };
        self.memory = Some((parent, info));
    }

    /// Writes all of memory (see [`write_full`]): `sources[i]` is region `i`'s mapping.
    pub fn write_full_memory(
        &mut self,
        layout: &MemoryLayout,
        sources: &[&[u8]],
    ) -> Result<ImageStats> {
        self.check_no_memory()?;
        let s = write_full(
            &self.tmp.join(FULL_MEMORY_FILE),
            &self.new.id,
            layout,
            sources,
        )?;
        self.set_memory(None, FULL_MEMORY_FILE, layout, s);
        Ok(s)
    }

    /// Starts a full memory image to be written while the guest runs (see
    /// [`PrecopiedImage`]); hand it back with [`Self::finish_precopied_memory`].
    pub fn begin_precopied_memory(&self, layout: &MemoryLayout) -> Result<PrecopiedImage> {
        self.check_no_memory()?;
        PrecopiedImage::create(&self.tmp.join(FULL_MEMORY_FILE), &self.new.id, layout)
    }

    /// Completes a memory image started with [`Self::begin_precopied_memory`].
    pub fn finish_precopied_memory(
        &mut self,
        image: PrecopiedImage,
        layout: &MemoryLayout,
    ) -> Result<ImageStats> {
        self.check_no_memory()?;
        let s = image.finish()?;
        self.set_memory(None, FULL_MEMORY_FILE, layout, s);
        Ok(s)
    }

    /// Writes the pages dirtied since snapshot `parent` (see [`write_diff`]). `parent` must
    /// be a complete snapshot of the same memory layout.
    pub fn write_diff_memory(
        &mut self,
        parent: &str,
        layout: &MemoryLayout,
        dirty: &DirtyBitmap,
        sources: &[&[u8]],
    ) -> Result<ImageStats> {
        self.check_no_memory()?;
        let pm = self.store.get(parent)?;
        if &pm.memory.layout != layout {
            return Err(SnapshotError::InvalidInput(format!(
                "snapshot {:?}: parent {parent:?} has memory layout {}, this VM {}",
                self.new.id,
                pm.memory.layout.describe(),
                layout.describe()
            )));
        }
        let s = write_diff(
            &self.tmp.join(DIFF_MEMORY_FILE),
            &self.new.id,
            parent,
            layout,
            dirty,
            sources,
        )?;
        self.set_memory(Some(parent.into()), DIFF_MEMORY_FILE, layout, s);
        Ok(s)
    }

    fn check_no_memory(&self) -> Result<()> {
        if self.memory.is_some() {
            return Err(SnapshotError::InvalidInput(format!(
                "snapshot {:?}: memory written twice",
                self.new.id
            )));
        }
        Ok(())
    }

    /// Writes the manifest, flushes the directory and renames it into place: from now on
    /// the snapshot is listed. A diff's parent must still exist.
    pub fn commit(mut self) -> Result<Manifest> {
        let id = self.new.id.clone();
        let Some((parent, memory)) = self.memory.clone() else {
            return Err(SnapshotError::InvalidInput(format!(
                "snapshot {id:?}: no memory written"
            )));
        };
        if !self.state_written {
            return Err(SnapshotError::InvalidInput(format!(
                "snapshot {id:?}: no state written"
            )));
        }
        let mut m = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            id: id.clone(),
            kind: if parent.is_some() {
                SnapshotKind::Diff
            } else {
                SnapshotKind::Full
            },
            parent,
            created: self.new.created,
            vm_config: self.new.vm_config.clone(),
            volumes: self.new.volumes.clone(),
            memory,
            state_file: STATE_FILE.into(),
            crc32: 0,
        };
        m.write(&self.tmp.join(MANIFEST_FILE))?;
        let _lock = self.store.lock()?;
        if let Some(p) = &m.parent {
            self.store.get(p).map_err(|e| SnapshotError::BrokenChain {
                id: id.clone(),
                problem: format!("parent {p:?} is gone: {e}"),
            })?;
        }
        let dest = self.store.dir(&id);
        if dest.exists() {
            return Err(SnapshotError::AlreadyExists {
                id,
                problem: "already exists".into(),
            });
        }
        let lock_path = self.tmp.join(WRITER_LOCK);
        std::fs::remove_file(&lock_path).map_err(|e| SnapshotError::io(&lock_path, "remove", e))?;
        fsutil::fsync_dir(&self.tmp)?;
        std::fs::rename(&self.tmp, &dest)
            .map_err(|e| SnapshotError::io(&dest, "rename into place", e))?;
        self.done = true;
        fsutil::fsync_dir(self.store.root())?;
        Ok(m)
    }

    /// Gives up: removes the directory being written.
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        std::fs::remove_dir_all(&self.tmp).map_err(|e| SnapshotError::io(&self.tmp, "remove", e))
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if !self.done {
            // Our own unfinished directory (an error or a panic stopped the writer).
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
