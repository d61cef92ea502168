//! Snapshots and clones.
//!
//! A snapshot freezes the head (after a flush) and starts a new empty head: a manifest update
//! and an in-memory relabelling, no data copied. A clone is a new volume whose chain is a
//! snapshot's layers plus its own empty head; the layers are shared, never copied.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::error::VolumeError;
use super::fsutil::{fsync_dir, now_unix, parent_dir, remove_if_exists};
use super::gc;
use super::handle::{FrozenLayer, Volume};
use super::head::HeadLayer;
use super::layer_file::LayerFile;
use super::lock::WriterLock;
use super::manifest::{self, ManifestBody, Origin, SnapshotRecord, MAX_LAYERS, MAX_SNAPSHOTS};
use super::open::open_frozen_chain;
use super::paths::{valid_name, VolumePaths, MAX_NAME_LEN};

/// How many times a clone retries when the source's chain changed under it.
const CLONE_RETRIES: usize = 5;

/// A snapshot of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Its name, unique within the volume.
    pub name: String,
    /// When it was taken (Unix seconds).
    pub created: u64,
    /// The volume size at that time.
    pub size: u64,
    /// The layers it consists of, bottom to top.
    pub layers: Vec<String>,
}

impl From<&SnapshotRecord> for SnapshotInfo {
    fn from(s: &SnapshotRecord) -> Self {
        SnapshotInfo {
            name: s.name.clone(),
            created: s.created,
            size: s.size,
            layers: s.layers.clone(),
        }
    }
}

fn check_snapshot_name(dir: &Path, name: &str) -> Result<(), VolumeError> {
    if !valid_name(name) {
        return Err(VolumeError::invalid(
            dir,
            format!(
                "{name:?} is not a valid snapshot name (1-{MAX_NAME_LEN} of A-Z a-z 0-9 . _ -, \
                 not starting with . or -)"
            ),
        ));
    }
    Ok(())
}

impl Volume {
    /// Takes snapshot `name`: flushes, freezes the head, starts a new empty head. No data is
    /// copied; the cost does not depend on how much the volume holds.
    pub fn snapshot(&mut self, name: &str) -> Result<SnapshotInfo, VolumeError> {
        self.require_writable("snapshot")?;
        check_snapshot_name(&self.paths.dir, name)?;
        if self.body.snapshot(name).is_some() {
            return Err(VolumeError::SnapshotExists {
                volume: self.paths.dir.clone(),
                file: self.paths.manifest(),
                snapshot: name.to_string(),
            });
        }
        if self.body.snapshots.len() >= MAX_SNAPSHOTS || self.body.layers.len() >= MAX_LAYERS {
            return Err(VolumeError::invalid(
                &self.paths.dir,
                format!(
                    "snapshot {name:?}: the volume has {} snapshots and {} layers, the limits \
                     are {MAX_SNAPSHOTS} and {MAX_LAYERS}; delete snapshots first",
                    self.body.snapshots.len(),
                    self.body.layers.len()
                ),
            ));
        }
        self.flush()?;
        let new_head = match self.spare.take() {
            Some(spare) => spare,
            None => LayerFile::create(&self.paths, self.body.chunk_size)?,
        };
        let mut body = self.body.clone();
        let record = SnapshotRecord {
            name: name.to_string(),
            created: now_unix(),
            size: self.size,
            layers: body.layers.clone(),
        };
        body.layers.push(new_head.id.clone());
        body.snapshots.push(record.clone());
        body.generation += 1;
        if let Err(e) = manifest::write(&self.paths, &body) {
            let id = new_head.id.clone();
            drop(new_head);
            let _ = remove_if_exists(&self.paths.layer_index(&id));
            let _ = remove_if_exists(&self.paths.layer_data(&id));
            return Err(e);
        }
        self.body = body;
        let fresh = HeadLayer::new_empty(new_head, self.body.chunk_size);
        if let Some(old) = self.head.replace(fresh) {
            self.freeze(old);
        }
        log::info!(
            "volume {}: snapshot {name:?} taken",
            self.paths.dir.display()
        );
        Ok(SnapshotInfo::from(&record))
    }

    /// Does ahead of time what a [`Volume::snapshot`] about to be taken would otherwise do
    /// itself: flushes the head and creates the layer that becomes the next head. The
    /// snapshot then only flushes what was written in between and writes the manifest (a VMM
    /// calls this before pausing its guest, to keep the pause short).
    pub fn prepare_snapshot(&mut self) -> Result<(), VolumeError> {
        self.require_writable("snapshot")?;
        self.flush()?;
        if self.spare.is_none() {
            self.spare = Some(LayerFile::create(&self.paths, self.body.chunk_size)?);
        }
        Ok(())
    }

    /// Moves a flushed head into the frozen part of the chain. The chunk map already names
    /// its chunks under the position it keeps, so nothing else changes.
    fn freeze(&mut self, head: HeadLayer) {
        let (data_chunks, zero_chunks) = head.counts();
        self.layers.push(FrozenLayer {
            file: head.file,
            data_chunks,
            zero_chunks,
        });
    }

    /// The volume's snapshots, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        self.body.snapshots.iter().map(SnapshotInfo::from).collect()
    }

    /// Deletes snapshot `name`, then merges layers that no snapshot or clone needs apart
    /// any more and removes layer files nothing refers to. Data another snapshot or a clone
    /// depends on is never touched: shared layers are immutable and only collected once no
    /// manifest names them and no one has them open.
    pub fn delete_snapshot(&mut self, name: &str) -> Result<(), VolumeError> {
        self.require_writable("delete snapshot")?;
        let Some(idx) = self.body.snapshots.iter().position(|s| s.name == name) else {
            return Err(VolumeError::SnapshotNotFound {
                volume: self.paths.dir.clone(),
                file: self.paths.manifest(),
                snapshot: name.to_string(),
                available: self.body.snapshot_names(),
            });
        };
        let mut body = self.body.clone();
        body.snapshots.remove(idx);
        body.generation += 1;
        manifest::write(&self.paths, &body)?;
        self.body = body;
        log::info!(
            "volume {}: snapshot {name:?} deleted",
            self.paths.dir.display()
        );
        if let Err(e) = self.reclaim() {
            log::warn!("{e} (the snapshot is deleted; its space is reclaimed later)");
        }
        if let Err(e) = gc::collect(&self.paths) {
            log::warn!("{e} (garbage collection of layer files is retried later)");
        }
        Ok(())
    }

    /// Creates volume `dst_dir` (in the same store) as a copy-on-write clone of snapshot
    /// `snapshot` of `src_dir`, and opens it for writing. The source may be open by a writer
    /// meanwhile: only its manifest is read. The clone shares the snapshot's layers.
    pub fn clone_from_snapshot(
        src_dir: &Path,
        snapshot: &str,
        dst_dir: &Path,
    ) -> Result<Volume, VolumeError> {
        let src = VolumePaths::new(src_dir)?;
        let dst = VolumePaths::new(dst_dir)?;
        let volumes = dst.volumes_dir();
        fs::create_dir_all(&volumes)
            .map_err(|e| VolumeError::io(dst_dir, &volumes, "create", e))?;
        let same_store = match (fs::canonicalize(&src.store), fs::canonicalize(&dst.store)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same_store {
            return Err(VolumeError::invalid(
                dst_dir,
                format!(
                    "a clone must be in the same store as its source {} (they share layers)",
                    src_dir.display()
                ),
            ));
        }
        let manifest_path = dst.manifest();
        if manifest_path.exists() {
            return Err(VolumeError::AlreadyExists {
                volume: dst_dir.to_path_buf(),
                file: manifest_path,
            });
        }
        // Hold the snapshot's layers (shared locks) while the clone's manifest is written,
        // so that a concurrent garbage collection cannot remove them in between.
        let mut attempt = 0;
        let (src_body, record, layers, map) = loop {
            let body = manifest::read(&src)?;
            let record =
                body.snapshot(snapshot)
                    .cloned()
                    .ok_or_else(|| VolumeError::SnapshotNotFound {
                        volume: src_dir.to_path_buf(),
                        file: src.manifest(),
                        snapshot: snapshot.to_string(),
                        available: body.snapshot_names(),
                    })?;
            match open_frozen_chain(&src, &record.layers, body.chunk_size) {
                Ok((layers, map)) => break (body, record, layers, map),
                Err(e) => {
                    attempt += 1;
                    let changed = manifest::read(&src)
                        .map(|b| b.generation != body.generation)
                        .unwrap_or(false);
                    if !changed || attempt >= CLONE_RETRIES {
                        return Err(e);
                    }
                }
            }
        };
        fs::create_dir_all(dst_dir).map_err(|e| VolumeError::io(dst_dir, dst_dir, "create", e))?;
        let lock = WriterLock::acquire(&dst)?;
        if dst.manifest().exists() {
            return Err(VolumeError::AlreadyExists {
                volume: dst_dir.to_path_buf(),
                file: dst.manifest(),
            });
        }
        let tmp = dst.manifest_tmp();
        remove_if_exists(&tmp).map_err(|e| VolumeError::io(dst_dir, &tmp, "remove", e))?;
        let head = LayerFile::create(&dst, src_body.chunk_size)?;
        let mut chain = record.layers.clone();
        chain.push(head.id.clone());
        let body = ManifestBody {
            name: dst.name.clone(),
            size: record.size,
            chunk_size: src_body.chunk_size,
            layers: chain,
            snapshots: Vec::new(),
            limits: src_body.limits,
            generation: 1,
            origin: Some(Origin {
                volume: src.name.clone(),
                snapshot: snapshot.to_string(),
            }),
        };
        manifest::write(&dst, &body)?;
        let parent = parent_dir(dst_dir);
        fsync_dir(&parent).map_err(|e| VolumeError::io(dst_dir, &parent, "fsync", e))?;
        log::info!(
            "volume {}: cloned from snapshot {snapshot:?} of {}",
            dst_dir.display(),
            src_dir.display()
        );
        Ok(Volume {
            size: body.size,
            head: Some(HeadLayer::new_empty(head, body.chunk_size)),
            body,
            paths: dst,
            view: None,
            layers,
            map,
            _lock: Some(lock),
            verify_reads: true,
            scratch: Vec::new(),
            spare: None,
        })
    }
}
