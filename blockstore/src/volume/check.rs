//! Checking a volume's files and repairing what can be repaired without losing data.
//!
//! Safe to repair: temporary files of an interrupted manifest or index update (the committed
//! file is the truth), a partly written slot at the end of the head's data file, slots of the
//! head that the committed index does not name (data written after the last flush). Not
//! repairable: a manifest or index that fails its checksum or its checks, a missing or
//! truncated layer file, a chunk whose data fails its checksum; these are reported with the
//! file and the problem, and `repair` refuses rather than guess.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::VolumeError;
use super::fsutil::{remove_if_exists, slots_with_data};
use super::gc;
use super::handle::Volume;
use super::layer_file::LayerFile;
use super::layer_index::{self, ChunkState};
use super::lock::WriterLock;
use super::manifest;
use super::paths::VolumePaths;

/// Most checksum failures listed per layer (the rest are counted).
const MAX_LISTED_BAD_CHUNKS: usize = 20;

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckProblem {
    /// The file concerned.
    pub file: PathBuf,
    /// What is wrong.
    pub problem: String,
    /// Whether [`Volume::repair`] can fix it without losing data.
    pub repairable: bool,
}

/// The result of [`Volume::check`] or [`Volume::repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The volume directory.
    pub volume: PathBuf,
    /// Problems found.
    pub problems: Vec<CheckProblem>,
    /// What a repair did.
    pub repaired: Vec<String>,
    /// Observations that are not problems.
    pub notes: Vec<String>,
    /// Layers checked.
    pub layers_checked: usize,
    /// Chunks whose checksum was verified.
    pub chunks_verified: u64,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether every problem is repairable (the volume opens and reads correctly).
    pub fn is_repairable(&self) -> bool {
        self.problems.iter().all(|p| p.repairable)
    }

    /// The problems that cannot be repaired, as one line.
    fn unrepairable_summary(&self) -> String {
        self.problems
            .iter()
            .filter(|p| !p.repairable)
            .map(|p| format!("{}: {}", p.file.display(), p.problem))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn problem(&mut self, file: &Path, problem: impl Into<String>, repairable: bool) {
        self.problems.push(CheckProblem {
            file: file.to_path_buf(),
            problem: problem.into(),
            repairable,
        });
    }

    fn error(&mut self, fallback: &Path, e: VolumeError) {
        let (file, problem) = match e {
            VolumeError::Corrupt { file, problem, .. }
            | VolumeError::Unsupported { file, problem, .. } => (file, problem),
            VolumeError::ChecksumMismatch { ref file, .. } => (file.clone(), e.to_string()),
            VolumeError::Io { ref file, .. } => (file.clone(), e.to_string()),
            other => (fallback.to_path_buf(), other.to_string()),
        };
        self.problem(&file, problem, false);
    }
}

/// Checks the volume at `paths`; `locked` says whether the caller holds the writer lock (only
/// then are the head's uncommitted slots examined: a writer may be using them).
fn check_with(
    paths: &VolumePaths,
    verify_data: bool,
    locked: bool,
) -> Result<CheckReport, VolumeError> {
    let mut r = CheckReport {
        volume: paths.dir.clone(),
        ..Default::default()
    };
    let tmp = paths.manifest_tmp();
    if locked && tmp.exists() {
        r.problem(
            &tmp,
            "left over from a manifest update interrupted before its rename",
            true,
        );
    }
    let body = match manifest::read(paths) {
        Ok(b) => b,
        Err(e @ VolumeError::NotFound { .. }) => return Err(e),
        Err(e) => {
            r.error(&paths.manifest(), e);
            return Ok(r);
        }
    };
    if body.name != paths.name {
        r.notes.push(format!(
            "the manifest names the volume {:?}, its directory is {:?}",
            body.name, paths.name
        ));
    }
    let cs = u64::from(body.chunk_size);
    let n = body.layers.len();
    for (pos, id) in body.layers.iter().enumerate() {
        let head = pos + 1 == n;
        r.layers_checked += 1;
        let tmp = paths.layer_index_tmp(id);
        if (locked || !head) && tmp.exists() {
            r.problem(
                &tmp,
                "left over from an index commit interrupted before its rename",
                true,
            );
        }
        let file = match LayerFile::open(paths, id, false) {
            Ok(f) => f,
            Err(e) => {
                r.error(&paths.layer_data(id), e);
                continue;
            }
        };
        let len = match file.len() {
            Ok(l) => l,
            Err(e) => {
                r.error(
                    &file.path,
                    VolumeError::io(&paths.dir, &file.path, "stat", e),
                );
                continue;
            }
        };
        if len % cs != 0 {
            if head && locked {
                r.problem(
                    &file.path,
                    format!("ends with a partly written slot ({} bytes)", len % cs),
                    true,
                );
            } else if !head {
                r.notes.push(format!(
                    "{} ends with {} bytes of an unused partial slot",
                    file.path.display(),
                    len % cs
                ));
            }
        }
        let index = match layer_index::load(paths, id, body.chunk_size, len) {
            Ok(i) => i,
            Err(e) => {
                r.error(&paths.layer_index(id), e);
                continue;
            }
        };
        if verify_data {
            verify_chunks(&mut r, paths, &file, &index.entries, cs);
        }
        if head && locked {
            let used: HashSet<u64> = index
                .entries
                .iter()
                .filter_map(|(_, s)| match s {
                    ChunkState::Data { slot, .. } => Some(*slot),
                    ChunkState::Zero => None,
                })
                .collect();
            let leaked = match slots_with_data(file.file(), cs) {
                Ok(slots) => slots.iter().filter(|s| !used.contains(s)).count(),
                Err(e) => {
                    r.error(
                        &file.path,
                        VolumeError::io(&paths.dir, &file.path, "seek", e),
                    );
                    0
                }
            };
            if leaked > 0 {
                r.problem(
                    &file.path,
                    format!(
                        "{leaked} slots not named by the committed index hold data \
                         (written after the last flush before an interruption)"
                    ),
                    true,
                );
            }
        }
    }
    if !locked {
        r.notes.push(format!(
            "the volume is open for writing by {}: only its committed state was checked",
            super::lock::lock_holder(&paths.lock())
        ));
    }
    match gc::unreferenced_layers(paths) {
        Ok(ids) if !ids.is_empty() => r.notes.push(format!(
            "{} layers in the store are used by no volume (garbage collection removes them)",
            ids.len()
        )),
        Ok(_) => {}
        Err(e) => r.notes.push(format!("cannot list unused layers: {e}")),
    }
    Ok(r)
}

/// Reads every data chunk of a layer and compares it with its checksum.
fn verify_chunks(
    r: &mut CheckReport,
    paths: &VolumePaths,
    file: &LayerFile,
    entries: &[(u64, ChunkState)],
    cs: u64,
) {
    let mut buf = vec![0u8; cs as usize];
    let mut bad = 0usize;
    for &(chunk, state) in entries {
        let ChunkState::Data { slot, crc } = state else {
            continue;
        };
        if let Err(e) = file.read_exact_at(&mut buf, slot * cs) {
            r.error(
                &file.path,
                VolumeError::io(&paths.dir, &file.path, "read", e),
            );
            return;
        }
        r.chunks_verified += 1;
        let actual = crc32fast::hash(&buf);
        if actual != crc {
            bad += 1;
            if bad <= MAX_LISTED_BAD_CHUNKS {
                r.problem(
                    &file.path,
                    format!(
                        "chunk {chunk} (slot {slot}) fails its checksum: stored crc32 \
                         {crc:08x}, data has {actual:08x}"
                    ),
                    false,
                );
            }
        }
    }
    if bad > MAX_LISTED_BAD_CHUNKS {
        r.problem(
            &file.path,
            format!(
                "{} more chunks fail their checksums",
                bad - MAX_LISTED_BAD_CHUNKS
            ),
            false,
        );
    }
}

impl Volume {
    /// Checks the volume in `dir`: its manifest, every layer's files and index, and with
    /// `verify_data` every chunk's checksum. Problems are listed in the report (an `Err` means
    /// the check itself could not run, e.g. there is no volume). Takes the writer lock while
    /// it runs if it is free; if a writer has the volume open, checks the committed state.
    pub fn check(dir: &Path, verify_data: bool) -> Result<CheckReport, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        if !paths.manifest().exists() {
            return Err(VolumeError::NotFound {
                volume: dir.to_path_buf(),
                file: paths.manifest(),
            });
        }
        let lock = match WriterLock::acquire(&paths) {
            Ok(l) => Some(l),
            Err(VolumeError::Locked { .. }) => None,
            Err(e) => return Err(e),
        };
        let report = check_with(&paths, verify_data, lock.is_some())?;
        drop(lock);
        Ok(report)
    }

    /// Repairs the volume in `dir` if every problem found is safe to repair (see the module
    /// documentation), or refuses with [`VolumeError::Unrepairable`] listing the problems.
    /// Takes the writer lock. Also removes unused layer files from the store.
    pub fn repair(dir: &Path) -> Result<CheckReport, VolumeError> {
        let paths = VolumePaths::new(dir)?;
        if !paths.manifest().exists() {
            return Err(VolumeError::NotFound {
                volume: dir.to_path_buf(),
                file: paths.manifest(),
            });
        }
        let lock = WriterLock::acquire(&paths)?;
        let mut report = check_with(&paths, false, true)?;
        if !report.is_repairable() {
            return Err(VolumeError::Unrepairable {
                volume: dir.to_path_buf(),
                problems: report.unrepairable_summary(),
            });
        }
        let mut repairs = Vec::new();
        if let Ok(body) = manifest::read(&paths) {
            for id in &body.layers[..body.layers.len() - 1] {
                let tmp = paths.layer_index_tmp(id);
                if remove_if_exists(&tmp).map_err(|e| VolumeError::io(dir, &tmp, "remove", e))? {
                    repairs.push(format!("removed {}", tmp.display()));
                }
            }
        }
        let vol = Volume::open_locked(paths.clone(), lock, &mut repairs)?;
        drop(vol);
        match gc::collect(&paths) {
            Ok(g) if !g.removed.is_empty() => repairs.push(format!(
                "removed {} unused layers from the store",
                g.removed.len()
            )),
            Ok(_) => {}
            Err(e) => report
                .notes
                .push(format!("garbage collection skipped: {e}")),
        }
        for r in &repairs {
            log::warn!("volume {}: repaired: {r}", dir.display());
        }
        report.repaired = repairs;
        if let Ok(lock) = WriterLock::acquire(&paths) {
            let after = check_with(&paths, false, true)?;
            drop(lock);
            if !after.is_clean() {
                return Err(VolumeError::Unrepairable {
                    volume: dir.to_path_buf(),
                    problems: after
                        .problems
                        .iter()
                        .map(|p| format!("{}: {}", p.file.display(), p.problem))
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
        }
        Ok(report)
    }
}
