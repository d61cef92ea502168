//! Garbage collection of layer files: a layer that no manifest in the store names and that
//! no one has open is deleted.
//!
//! Readers hold a shared `flock` on a layer's data file while they use it, so the collector
//! takes an exclusive non-blocking lock before deleting: a layer in use is skipped. Between
//! listing and deleting, the manifests are read again (a clone may have started to use a
//! layer meanwhile; it holds the layer's shared lock while it writes its manifest, so either
//! the collector sees that manifest or the clone sees the layer gone and retries). If any
//! manifest in the store cannot be read, nothing is deleted: it may name any layer.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::Path;

use serde::Serialize;

use super::error::VolumeError;
use super::fsutil::{flock, fsync_dir, is_would_block, remove_if_exists};
use super::handle::Volume;
use super::manifest;
use super::paths::{valid_layer_id, VolumePaths};

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Ids of the layers whose files were deleted.
    pub removed: Vec<String>,
    /// Ids of unreferenced layers left alone because someone has them open.
    pub busy: Vec<String>,
}

/// Every layer id named by a manifest in the store, except those of the volume `skip`.
fn referenced_layers(
    paths: &VolumePaths,
    skip: Option<&str>,
) -> Result<HashSet<String>, VolumeError> {
    let mut out = HashSet::new();
    let dir = paths.volumes_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(VolumeError::io(&paths.dir, &dir, "list", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io(&paths.dir, &dir, "list", e))?;
        let vol = entry.path();
        if skip.is_some_and(|s| entry.file_name() == s) {
            continue;
        }
        let manifest_path = vol.join("manifest.json");
        match manifest::read_file(&vol, &manifest_path) {
            Ok(body) => {
                out.extend(body.layers);
                for s in body.snapshots {
                    out.extend(s.layers);
                }
            }
            Err(VolumeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Layer ids that volumes other than `paths`'s use.
pub(crate) fn layers_used_elsewhere(paths: &VolumePaths) -> Result<HashSet<String>, VolumeError> {
    referenced_layers(paths, Some(&paths.name))
}

/// The layer ids in the store's layers directory, with whether each has a data file.
fn layer_files(paths: &VolumePaths) -> Result<BTreeMap<String, bool>, VolumeError> {
    let dir = paths.layers_dir();
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(VolumeError::io(&paths.dir, &dir, "list", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io(&paths.dir, &dir, "list", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((id, ext)) = name.split_once('.') else {
            continue;
        };
        if !valid_layer_id(id) || !matches!(ext, "data" | "index" | "index.tmp") {
            continue;
        }
        let has_data = out.entry(id.to_string()).or_insert(false);
        *has_data |= ext == "data";
    }
    Ok(out)
}

/// Layer ids present in the store that no manifest names.
pub(crate) fn unreferenced_layers(paths: &VolumePaths) -> Result<Vec<String>, VolumeError> {
    let referenced = referenced_layers(paths, None)?;
    Ok(layer_files(paths)?
        .into_keys()
        .filter(|id| !referenced.contains(id))
        .collect())
}

/// Deletes the layer files of the store of `paths` that nothing uses.
pub(crate) fn collect(paths: &VolumePaths) -> Result<GcReport, VolumeError> {
    let mut report = GcReport::default();
    let referenced = referenced_layers(paths, None)?;
    let mut candidates: Vec<(String, Option<File>)> = Vec::new();
    for (id, has_data) in layer_files(paths)? {
        if referenced.contains(&id) {
            continue;
        }
        if !has_data {
            candidates.push((id, None));
            continue;
        }
        let data = paths.layer_data(&id);
        let file = match File::open(&data) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(VolumeError::io(&paths.dir, &data, "open", e)),
        };
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => candidates.push((id, Some(file))),
            Err(e) if is_would_block(&e) => report.busy.push(id),
            Err(e) => return Err(VolumeError::io(&paths.dir, &data, "lock", e)),
        }
    }
    if candidates.is_empty() {
        return Ok(report);
    }
    let referenced = referenced_layers(paths, None)?;
    for (id, _lock) in candidates {
        if referenced.contains(&id) {
            continue;
        }
        for path in [
            paths.layer_index_tmp(&id),
            paths.layer_index(&id),
            paths.layer_data(&id),
        ] {
            remove_if_exists(&path).map_err(|e| VolumeError::io(&paths.dir, &path, "remove", e))?;
        }
        report.removed.push(id);
    }
    let dir = paths.layers_dir();
    fsync_dir(&dir).map_err(|e| VolumeError::io(&paths.dir, &dir, "fsync", e))?;
    if !report.removed.is_empty() {
        log::info!(
            "store {}: removed {} unused layers",
            paths.store.display(),
            report.removed.len()
        );
    }
    Ok(report)
}

impl Volume {
    /// Deletes the layer files in the store of the volume `dir` that no manifest names and
    /// no one has open.
    pub fn gc(dir: &Path) -> Result<GcReport, VolumeError> {
        collect(&VolumePaths::new(dir)?)
    }
}
