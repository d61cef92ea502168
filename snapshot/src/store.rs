//! A directory of snapshots: `<root>/<id>/` holding `manifest.json`, `state.bin` and
//! `memory.full` or `memory.diff`.
//!
//! A snapshot is written in `<root>/<id>.tmp/`, flushed, and renamed to `<root>/<id>/`, so a
//! directory without the `.tmp` suffix is always complete; one with it is half-written (the
//! writer was killed) and is ignored and reported by [`SnapshotStore::list`], never deleted
//! except by [`SnapshotStore::clean_partial`]. A directory whose manifest is missing or
//! damaged is reported too and left alone. Changes to the set of snapshots (commit, delete,
//! the switch of a consolidated snapshot to its full image) take an exclusive `flock` on
//! `<root>/.lock`, so that writers in several threads or processes do not break chains.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Result, SnapshotError};
use crate::fsutil;
use crate::limits::MAX_CHAIN_LEN;
use crate::manifest::{
    validate_id, Manifest, SnapshotKind, DIFF_MEMORY_FILE, FULL_MEMORY_FILE, MANIFEST_FILE,
};
use crate::memory::{consolidate, DiffImage, FullImage, ImageStats};
use crate::pending::{try_flock, WRITER_LOCK};
use crate::state::StateFile;

/// The suffix of directories that are not (or no longer) complete snapshots.
pub const PARTIAL_SUFFIX: &str = ".tmp";
/// The suffix given to a snapshot directory while it is being deleted.
pub const DELETING_SUFFIX: &str = ".deleted.tmp";
const LOCK_FILE: &str = ".lock";

/// An entry of the store's directory that is not a usable snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The entry's name.
    pub name: String,
    /// Why it is not a snapshot.
    pub reason: String,
    /// Whether it is a half-written (`*.tmp`) directory, which [`SnapshotStore::clean_partial`]
    /// removes.
    pub partial: bool,
}

/// What [`SnapshotStore::list`] found.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The complete snapshots, oldest first.
    pub snapshots: Vec<Manifest>,
    /// Everything else, with the reason.
    pub ignored: Vec<Ignored>,
}

impl Listing {
    /// The snapshot `id`, if listed.
    pub fn get(&self, id: &str) -> Option<&Manifest> {
        self.snapshots.iter().find(|m| m.id == id)
    }

    /// The chain of `id`: its newest full ancestor first, `id` last.
    pub fn chain(&self, id: &str) -> Result<Vec<String>> {
        let by_id: HashMap<&str, &Manifest> =
            self.snapshots.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut m = *by_id
            .get(id)
            .ok_or_else(|| SnapshotError::NotFound { id: id.to_string() })?;
        let mut chain = vec![m.id.clone()];
        let mut seen = HashSet::from([m.id.as_str()]);
        while m.kind == SnapshotKind::Diff {
            let Some(parent) = m.parent.as_deref() else {
                return Err(SnapshotError::BrokenChain {
                    id: id.into(),
                    problem: format!("{} has no parent", m.id),
                });
            };
            m = by_id
                .get(parent)
                .ok_or_else(|| SnapshotError::BrokenChain {
                    id: id.into(),
                    problem: format!("parent {parent:?} of {:?} is missing or unreadable", m.id),
                })?;
            if !seen.insert(m.id.as_str()) || chain.len() >= MAX_CHAIN_LEN {
                return Err(SnapshotError::BrokenChain {
                    id: id.into(),
                    problem: "the chain of parents loops".into(),
                });
            }
            if m.memory.layout != by_id[id].memory.layout {
                return Err(SnapshotError::BrokenChain {
                    id: id.into(),
                    problem: format!("{:?} has another memory layout", m.id),
                });
            }
            chain.push(m.id.clone());
        }
        chain.reverse();
        Ok(chain)
    }

    /// The diff snapshots whose parent is `id`.
    pub fn dependents(&self, id: &str) -> Vec<String> {
        self.snapshots
            .iter()
            .filter(|m| m.kind == SnapshotKind::Diff && m.parent.as_deref() == Some(id))
            .map(|m| m.id.clone())
            .collect()
    }
}

/// An exclusive lock on the store, held while the set of snapshots changes.
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    fn take(root: &Path) -> Result<StoreLock> {
        let path = root.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SnapshotError::io(&path, "open", e))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(StoreLock { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SnapshotError::io(&path, "lock", e));
            }
        }
    }
}

/// Snapshots in one directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    /// The store in `root`, which is created if missing.
    pub fn open(root: &Path) -> Result<SnapshotStore> {
        std::fs::create_dir_all(root)
            .map_err(|e| SnapshotError::io(root, "create directory", e))?;
        Ok(SnapshotStore {
            root: root.to_path_buf(),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of snapshot `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn lock(&self) -> Result<StoreLock> {
        StoreLock::take(&self.root)
    }

    /// Lists the complete snapshots (oldest first) and reports everything else: half-written
    /// `*.tmp` directories, directories whose manifest is missing or damaged or whose files
    /// are missing or of the wrong size. Nothing is changed.
    pub fn list(&self) -> Result<Listing> {
        let rd = std::fs::read_dir(&self.root)
            .map_err(|e| SnapshotError::io(&self.root, "read directory", e))?;
        let mut snapshots = Vec::new();
        let mut ignored = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SnapshotError::io(&self.root, "read directory", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == LOCK_FILE {
                continue;
            }
            let mut ignore = |reason: String, partial: bool| {
                ignored.push(Ignored {
                    name: name.clone(),
                    reason,
                    partial,
                })
            };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir {
                ignore("not a directory".into(), false);
            } else if name.ends_with(DELETING_SUFFIX) {
                ignore("a snapshot whose deletion was interrupted".into(), true);
            } else if name.ends_with(PARTIAL_SUFFIX) {
                if self.being_written(&name) {
                    ignore("a snapshot being written".into(), false);
                } else {
                    ignore(
                        "a half-written snapshot (its writer stopped before it was complete)"
                            .into(),
                        true,
                    );
                }
            } else {
                match self.check_dir(&name) {
                    Ok(m) => snapshots.push(m),
                    Err(e) => ignore(e.to_string(), false),
                }
            }
        }
        for ig in &ignored {
            log::debug!(
                "{}: ignoring {}: {}",
                self.root.display(),
                ig.name,
                ig.reason
            );
        }
        snapshots.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        ignored.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing { snapshots, ignored })
    }

    /// Whether a live writer holds the lock of `.tmp` directory `name`.
    fn being_written(&self, name: &str) -> bool {
        match File::open(self.root.join(name).join(WRITER_LOCK)) {
            // Taking the lock (released at once when `f` is closed) fails while a writer has it.
            Ok(f) => !try_flock(&f),
            Err(_) => false,
        }
    }

    /// Reads snapshot directory `name`'s manifest and checks that its files are there.
    fn check_dir(&self, name: &str) -> Result<Manifest> {
        let dir = self.root.join(name);
        let path = dir.join(MANIFEST_FILE);
        let m = Manifest::read(&path)?;
        if m.id != name {
            return Err(SnapshotError::corrupt(
                &path,
                format!("the manifest is for snapshot {:?}", m.id),
            ));
        }
        let mem = dir.join(&m.memory.file);
        let len = std::fs::metadata(&mem)
            .map_err(|e| SnapshotError::io(&mem, "stat", e))?
            .len();
        if len != m.memory.file_bytes {
            return Err(SnapshotError::Mismatch {
                path: mem,
                problem: format!(
                    "the memory image is {len} bytes, the manifest says {}",
                    m.memory.file_bytes
                ),
            });
        }
        let state = dir.join(&m.state_file);
        std::fs::metadata(&state).map_err(|e| SnapshotError::io(&state, "stat", e))?;
        Ok(m)
    }

    /// The manifest of snapshot `id`.
    pub fn get(&self, id: &str) -> Result<Manifest> {
        validate_id(id)?;
        if !self.dir(id).is_dir() {
            return Err(SnapshotError::NotFound { id: id.into() });
        }
        self.check_dir(id)
    }

    /// The chain of `id`: its newest full ancestor first, `id` last (just `[id]` for a full
    /// snapshot).
    pub fn chain(&self, id: &str) -> Result<Vec<String>> {
        validate_id(id)?;
        self.list()?.chain(id)
    }

    /// Reads snapshot `id`'s VM-state file.
    pub fn open_state(&self, id: &str) -> Result<StateFile> {
        let m = self.get(id)?;
        StateFile::read(&self.dir(id).join(&m.state_file))
    }

    /// Opens snapshot `id`'s memory for restore; only a full snapshot can be restored from
    /// directly (consolidate a diff first, or export its memory).
    pub fn open_memory(&self, id: &str) -> Result<FullImage> {
        let m = self.get(id)?;
        if m.kind != SnapshotKind::Full {
            return Err(SnapshotError::InvalidInput(format!(
                "snapshot {id:?} is a diff against {:?}: consolidate it (or export its memory) before restoring",
                m.parent.unwrap_or_default()
            )));
        }
        let img = FullImage::open(&self.dir(id).join(&m.memory.file))?;
        img.expect_layout(&m.memory.layout)?;
        Ok(img)
    }

    /// Opens the memory of snapshot `id` for restore as its chain: the newest full image
    /// before it (to map) and the diffs after that, oldest first (to lay over it with
    /// [`DiffImage::apply_to`]); each checked to apply to the one before.
    pub fn open_memory_chain(&self, id: &str) -> Result<(FullImage, Vec<DiffImage>)> {
        let chain = self.chain(id)?;
        let (base_id, diff_ids) = chain
            .split_first()
            .ok_or_else(|| SnapshotError::NotFound { id: id.into() })?;
        let base = self.open_memory(base_id)?;
        let mut tag = base.tag().to_string();
        let mut diffs = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let m = self.get(d)?;
            let path = self.dir(d).join(&m.memory.file);
            let diff = DiffImage::open(&path)?;
            if diff.layout() != base.layout() || diff.base_tag() != tag {
                return Err(SnapshotError::Mismatch {
                    path,
                    problem: format!(
                        "the diff applies to image {:?} of layout {}, not to {tag:?} of {}",
                        diff.base_tag(),
                        diff.layout().describe(),
                        base.layout().describe()
                    ),
                });
            }
            tag = diff.tag().to_string();
            diffs.push(diff);
        }
        Ok((base, diffs))
    }

    /// Writes the complete memory of snapshot `id` (its chain applied) as a full image at
    /// `out`, leaving the store unchanged.
    pub fn export_full_memory(&self, id: &str, out: &Path) -> Result<ImageStats> {
        let listing = self.list()?;
        let chain = listing.chain(id)?;
        let base = self.dir(&chain[0]).join(FULL_MEMORY_FILE);
        let diffs: Vec<PathBuf> = chain[1..]
            .iter()
            .map(|d| self.dir(d).join(DIFF_MEMORY_FILE))
            .collect();
        let refs: Vec<&Path> = diffs.iter().map(|p| p.as_path()).collect();
        consolidate(&base, &refs, out)
    }

    /// Turns diff snapshot `id` into a full snapshot: its chain is applied into a new full
    /// image in its directory, then its manifest is switched to the full image without a
    /// parent (atomically), and the diff image is removed. Its memory and its dependents are
    /// unchanged; its former ancestors may then be deleted if nothing else needs them. A
    /// full snapshot is returned as it is. A crash at any point leaves either the old or the
    /// new manifest, each with its own memory file present.
    pub fn consolidate(&self, id: &str) -> Result<Manifest> {
        let m = self.get(id)?;
        if m.kind == SnapshotKind::Full {
            return Ok(m);
        }
        let dir = self.dir(id);
        let started = std::time::Instant::now();
        let stats = self.export_full_memory(id, &dir.join(FULL_MEMORY_FILE))?;
        let _lock = self.lock()?;
        let mut current = self.get(id)?;
        if current != m {
            return Err(SnapshotError::AlreadyExists {
                id: id.into(),
                problem: "changed while being consolidated".into(),
            });
        }
        current.kind = SnapshotKind::Full;
        current.parent = None;
        current.memory.file = FULL_MEMORY_FILE.into();
        current.memory.data_bytes = stats.data_bytes;
        current.memory.file_bytes = stats.file_bytes;
        current.write(&dir.join(MANIFEST_FILE))?;
        let old = dir.join(DIFF_MEMORY_FILE);
        std::fs::remove_file(&old).map_err(|e| SnapshotError::io(&old, "remove", e))?;
        fsutil::fsync_dir(&dir)?;
        log::info!(
            "snapshot {id}: consolidated into a full image ({} bytes of data) in {:?}",
            stats.data_bytes,
            started.elapsed()
        );
        Ok(current)
    }

    /// Deletes snapshot `id`, unless a diff snapshot depends on it ([`SnapshotError::InUse`]).
    /// The directory is first renamed to `<id>.deleted.tmp` (so a crash never leaves a
    /// half-deleted snapshot that looks complete), then removed. Volume snapshots named in
    /// its manifest are the caller's to delete.
    pub fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let _lock = self.lock()?;
        let listing = self.list()?;
        if listing.get(id).is_none() {
            return Err(if self.dir(id).exists() {
                SnapshotError::InvalidInput(format!(
                    "{id:?} is not a readable snapshot; it is left as it is"
                ))
            } else {
                SnapshotError::NotFound { id: id.into() }
            });
        }
        let dependents = listing.dependents(id);
        if !dependents.is_empty() {
            return Err(SnapshotError::InUse {
                id: id.into(),
                dependents,
            });
        }
        let doomed = self.root.join(format!("{id}{DELETING_SUFFIX}"));
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed)
                .map_err(|e| SnapshotError::io(&doomed, "remove", e))?;
        }
        std::fs::rename(self.dir(id), &doomed)
            .map_err(|e| SnapshotError::io(self.dir(id), "rename", e))?;
        fsutil::fsync_dir(&self.root)?;
        std::fs::remove_dir_all(&doomed).map_err(|e| SnapshotError::io(&doomed, "remove", e))?;
        fsutil::fsync_dir(&self.root)
    }

    /// Removes the half-written (`*.tmp`) directories that [`SnapshotStore::list`] reports,
    /// and returns their names. Directories still being written (their writer is alive) are
    /// left alone, and so is everything else: a complete snapshot whose manifest is damaged
    /// is left for a person to look at.
    pub fn clean_partial(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        for ig in self.list()?.ignored {
            if ig.partial {
                let p = self.root.join(&ig.name);
                std::fs::remove_dir_all(&p).map_err(|e| SnapshotError::io(&p, "remove", e))?;
                log::info!("removed {} ({})", p.display(), ig.reason);
                removed.push(ig.name);
            }
        }
        if !removed.is_empty() {
            fsutil::fsync_dir(&self.root)?;
        }
        Ok(removed)
    }
}
