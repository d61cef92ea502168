//! Creating, opening and deleting volumes.

use std::fs;
use std::path::Path;

use super::chunk_map::ChunkMap;
use super::error::VolumeError;
use super::fsutil::{fsync_dir, parent_dir, remove_if_exists};
use super::gc;
use super::handle::{CreateOptions, FrozenLayer, Volume};
use super::head::HeadLayer;
use super::layer_file::LayerFile;
use super::layer_index;
use super::lock::WriterLock;
use super::manifest::{self, check_chunk_size, check_size, ManifestBody};
use super::paths::VolumePaths;
use crate::limits::Limits;

/// How many times a read-only open retries when the chain changed under it.
const OPEN_RETRIES: usize = 5;

/// Opens the frozen layers `ids` (bottom to top) and builds their chunk map.
pub(crate) fn open_frozen_chain(
    paths: &VolumePaths,
    ids: &[String],
    chunk_size: u32,
) -> Result<(Vec<FrozenLayer>, ChunkMap), VolumeError> {
    let mut layers = Vec::with_capacity(ids.len());
    let mut map = ChunkMap::default();
    for (pos, id) in ids.iter().enumerate() {
        let file = LayerFile::open(paths, id, false)?;
        let len = file
            .len()
            .map_err(|e| VolumeError::io(&paths.dir, &file.path, "stat", e))?;
        let index = layer_index::load(paths, id, chunk_size, len)?;
        map.apply(pos as u32, &index);
        let (data_chunks, zero_chunks) = index.counts();
        layers.push(FrozenLayer {
            file,
            data_chunks,
            zero_chunks,
        });
    }
    Ok((layers, map))
}

impl Volume {
    /// Creates a volume in `dir` (`<store>/volumes/<name>`, store directories made as
    /// needed) and opens it for writing. Refuses a directory that already holds a volume.
    pub fn create(dir: &Path, opts: &CreateOptions) -> Result<Volume, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        check_size(opts.size).map_err(|p| VolumeError::invalid(dir, p))?;
        check_chunk_size(opts.chunk_size).map_err(|p| VolumeError::invalid(dir, p))?;
        let manifest = paths.manifest();
        if manifest.exists() {
            return Err(VolumeError::AlreadyExists {
                volume: dir.to_path_buf(),
                file: manifest,
            });
        }
        fs::create_dir_all(dir).map_err(|e| VolumeError::io(dir, dir, "create", e))?;
        let lock = WriterLock::acquire(&paths)?;
        if manifest.exists() {
            return Err(VolumeError::AlreadyExists {
                volume: dir.to_path_buf(),
                file: manifest,
            });
        }
        let tmp = paths.manifest_tmp();
        remove_if_exists(&tmp).map_err(|e| VolumeError::io(dir, &tmp, "remove", e))?;
        let head = LayerFile::create(&paths, opts.chunk_size)?;
        let body = ManifestBody {
            name: paths.name.clone(),
            size: opts.size,
            chunk_size: opts.chunk_size,
            layers: vec![head.id.clone()],
            snapshots: Vec::new(),
            limits: Limits::default(),
            generation: 1,
            origin: None,
        };
        manifest::write(&paths, &body)?;
        let parent = parent_dir(dir);
        fsync_dir(&parent).map_err(|e| VolumeError::io(dir, &parent, "fsync", e))?;
        log::info!(
            "volume {}: created ({} bytes, {}-byte chunks)",
            dir.display(),
            opts.size,
            opts.chunk_size
        );
        Ok(Volume {
            size: body.size,
            head: Some(HeadLayer::new_empty(head, opts.chunk_size)),
            body,
            paths,
            view: None,
            layers: Vec::new(),
            map: ChunkMap::default(),
            _lock: Some(lock),
            verify_reads: true,
            scratch: Vec::new(),
            spare: None,
        })
    }

    /// Opens the volume in `dir` for writing. Only one writer at a time: a second one gets
    /// [`VolumeError::Locked`] naming the holder's pid. What an interrupted run left behind
    /// (temporary files, data written after the last flush) is cleaned up and logged; damage
    /// that cannot be repaired safely is refused with an error naming the file.
    pub fn open(dir: &Path) -> Result<Volume, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        if !paths.manifest().exists() && !paths.manifest_tmp().exists() {
            return Err(VolumeError::NotFound {
                volume: dir.to_path_buf(),
                file: paths.manifest(),
            });
        }
        let lock = WriterLock::acquire(&paths)?;
        let mut repairs = Vec::new();
        let vol = Self::open_locked(paths, lock, &mut repairs)?;
        for r in &repairs {
            log::warn!("volume {}: repaired: {r}", dir.display());
        }
        if !repairs.is_empty() {
            // The interrupted run may also have left layers no manifest names (a snapshot or
            // merge cut short): collect them now rather than at the next snapshot deletion.
            if let Err(e) = gc::collect(&vol.paths) {
                log::warn!("{e} (garbage collection of layer files is retried later)");
            }
        }
        Ok(vol)
    }

    /// Opens for writing with the writer lock already held, repairing what is safe.
    pub(crate) fn open_locked(
        paths: VolumePaths,
        lock: WriterLock,
        repairs: &mut Vec<String>,
    ) -> Result<Volume, VolumeError> {
        let tmp = paths.manifest_tmp();
        if remove_if_exists(&tmp).map_err(|e| VolumeError::io(&paths.dir, &tmp, "remove", e))? {
            repairs.push(format!(
                "removed {} (a manifest update interrupted before its rename)",
                tmp.display()
            ));
        }
        let body = manifest::read(&paths)?;
        let n = body.layers.len();
        let (layers, mut map) = open_frozen_chain(&paths, &body.layers[..n - 1], body.chunk_size)?;
        let mut head = HeadLayer::open(&paths, body.head(), body.chunk_size, repairs)?;
        head.overlay(&mut map, (n - 1) as u32);
        Ok(Volume {
            size: body.size,
            head: Some(head),
            body,
            paths,
            view: None,
            layers,
            map,
            _lock: Some(lock),
            verify_reads: true,
            scratch: Vec::new(),
            spare: None,
        })
    }

    /// Opens the volume in `dir` for reading only, without the writer lock. It shows the
    /// state of the last flush at the time of opening; if a writer has the volume open, its
    /// later writes may change what this handle reads (take a snapshot and use
    /// [`Volume::open_snapshot`] for a stable view).
    pub fn open_read_only(dir: &Path) -> Result<Volume, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        Self::open_view(paths, None)
    }

    /// Opens a read-only view of snapshot `name` of the volume in `dir`; works while a
    /// writer has the volume open.
    pub fn open_snapshot(dir: &Path, name: &str) -> Result<Volume, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        Self::open_view(paths, Some(name))
    }

    fn open_view(paths: VolumePaths, snapshot: Option<&str>) -> Result<Volume, VolumeError> {
        let mut attempt = 0;
        loop {
            let body = manifest::read(&paths)?;
            let (ids, size) = match snapshot {
                None => (body.layers.clone(), body.size),
                Some(name) => {
                    let s = body
                        .snapshot(name)
                        .ok_or_else(|| VolumeError::SnapshotNotFound {
                            volume: paths.dir.clone(),
                            file: paths.manifest(),
                            snapshot: name.to_string(),
                            available: body.snapshot_names(),
                        })?;
                    (s.layers.clone(), s.size)
                }
            };
            match open_frozen_chain(&paths, &ids, body.chunk_size) {
                Ok((layers, map)) => {
                    return Ok(Volume {
                        size,
                        head: None,
                        body,
                        paths,
                        view: snapshot.map(str::to_string),
                        layers,
                        map,
                        _lock: None,
                        verify_reads: true,
                        scratch: Vec::new(),
                        spare: None,
                    })
                }
                Err(e) => {
                    // The writer may have merged layers and collected the old ones between
                    // our reading the manifest and opening them: read it again.
                    attempt += 1;
                    let changed = manifest::read(&paths)
                        .map(|b| b.generation != body.generation)
                        .unwrap_or(false);
                    if !changed || attempt >= OPEN_RETRIES {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Deletes the volume in `dir` (taking its writer lock first) and collects the layers
    /// nothing else uses. Clones of its snapshots keep the layers they share.
    pub fn delete(dir: &Path) -> Result<(), VolumeError> {
        let paths = VolumePaths::new(dir)?;
        let manifest = paths.manifest();
        if !manifest.exists() {
            return Err(VolumeError::NotFound {
                volume: dir.to_path_buf(),
                file: manifest,
            });
        }
        let lock = WriterLock::acquire(&paths)?;
        remove_if_exists(&manifest).map_err(|e| VolumeError::io(dir, &manifest, "remove", e))?;
        fsync_dir(dir).map_err(|e| VolumeError::io(dir, dir, "fsync", e))?;
        drop(lock);
        fs::remove_dir_all(dir).map_err(|e| VolumeError::io(dir, dir, "remove", e))?;
        let parent = parent_dir(dir);
        fsync_dir(&parent).map_err(|e| VolumeError::io(dir, &parent, "fsync", e))?;
        gc::collect(&paths)?;
        log::info!("volume {}: deleted", dir.display());
        Ok(())
    }

    /// Re-reads the indexes of the frozen layers and rebuilds the chunk map (after the chain
    /// changed shape).
    pub(crate) fn rebuild_map(&mut self) -> Result<(), VolumeError> {
        let mut map = ChunkMap::default();
        for (pos, layer) in self.layers.iter_mut().enumerate() {
            let len = layer
                .file
                .len()
                .map_err(|e| VolumeError::io(&self.paths.dir, &layer.file.path, "stat", e))?;
            let index = layer_index::load(&self.paths, &layer.file.id, self.body.chunk_size, len)?;
            map.apply(pos as u32, &index);
            (layer.data_chunks, layer.zero_chunks) = index.counts();
        }
        let pos = self.head_pos();
        if let Some(head) = self.head.as_mut() {
            head.overlay(&mut map, pos);
        }
        self.map = map;
        Ok(())
    }
}
