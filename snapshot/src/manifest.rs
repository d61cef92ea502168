//! The manifest of a snapshot directory: what the snapshot is and which files hold it.
//!
//! `manifest.json` is JSON:
//!
//! ```json
//! {
//!   "format": "reprise-snapshot",
//!   "version": 1,
//!   "id": "s-0042",
//!   "parent": "s-0041",
//!   "created": 1767225600000,
//!   "kind": "diff",
//!   "vm_config": { "...": "the VMM's configuration, opaque to this crate" },
//!   "volumes": [{ "drive_id": "root", "volume_path": "/vols/root", "snapshot_name": "s-0042" }],
//!   "memory": { "file": "memory.diff", "layout": { "regions": [{ "gpa": 0, "len": 268435456 }] },
//!               "page_size": 4096, "data_bytes": 1261568, "file_bytes": 1335296 },
//!   "state_file": "state.bin",
//!   "crc32": 2864434397
//! }
//! ```
//!
//! `created` is in milliseconds since the Unix epoch. A `full` snapshot has no parent; a
//! `diff` snapshot's memory holds the pages changed since its parent. `crc32` is the CRC32 of
//! the manifest serialised as compact JSON with `crc32` set to 0, so that a damaged manifest
//! that still parses is caught too.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SnapshotError};
use crate::fsutil;
use crate::limits::{MAX_MANIFEST_BYTES, PAGE_SIZE};
use crate::memory::MemoryLayout;

/// The value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "reprise-snapshot";
/// The manifest version written and read by this build.
pub const MANIFEST_VERSION: u32 = 1;
/// The manifest's file name in a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The VM-state file's name in a snapshot directory.
pub const STATE_FILE: &str = "state.bin";
/// The memory file's name in a full snapshot.
pub const FULL_MEMORY_FILE: &str = "memory.full";
/// The memory file's name in a diff snapshot.
pub const DIFF_MEMORY_FILE: &str = "memory.diff";
/// Longest snapshot id.
pub const MAX_ID_BYTES: usize = 64;

/// Whether a snapshot's memory is complete or a diff against its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Complete memory: restorable on its own.
    Full,
    /// The pages changed since the parent snapshot.
    Diff,
}

/// A point-in-time copy of a volume attached to the VM (made by the block store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSnapshot {
    /// The VM's drive id.
    pub drive_id: String,
    /// The volume.
    pub volume_path: String,
    /// The name of the volume's snapshot taken with this VM snapshot.
    pub snapshot_name: String,
}

/// Where a snapshot's memory is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// The memory image's file name in the snapshot directory.
    pub file: String,
    /// The guest memory layout.
    pub layout: MemoryLayout,
    /// The page size (4096).
    pub page_size: u64,
    /// Bytes of page data stored.
    pub data_bytes: u64,
    /// The image file's length.
    pub file_bytes: u64,
}

/// A snapshot's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// The snapshot id (its directory's name).
    pub id: String,
    /// The snapshot a diff applies to (`None` for a full snapshot).
    pub parent: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created: u64,
    /// Full or diff.
    pub kind: SnapshotKind,
    /// The VM's configuration, as the VMM gave it.
    pub vm_config: serde_json::Value,
    /// The volume snapshots taken with this snapshot.
    pub volumes: Vec<VolumeSnapshot>,
    /// The memory image.
    pub memory: MemoryInfo,
    /// The VM-state file's name in the snapshot directory.
    pub state_file: String,
    /// CRC32 of the manifest (see the module documentation).
    pub crc32: u32,
}

/// Checks that `id` can name a snapshot directory: 1 to [`MAX_ID_BYTES`] ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `.` and not ending with `.tmp`.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |problem: &str| {
        Err(SnapshotError::InvalidId {
            id: id.to_string(),
            problem: problem.to_string(),
        })
    };
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return bad("must be 1 to 64 characters long");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("may hold only ASCII letters, digits, '-', '_' and '.'");
    }
    if id.starts_with('.') {
        return bad("must not start with '.'");
    }
    if id.ends_with(".tmp") {
        return bad("must not end with '.tmp' (the suffix of half-written snapshots)");
    }
    Ok(())
}

fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

impl Manifest {
    /// The checksum of this manifest with `crc32` taken as 0.
    pub fn compute_crc(&self) -> u32 {
        let mut m = self.clone();
        m.crc32 = 0;
        // Serialising plain data (strings, numbers, JSON values) cannot fail.
        let bytes = serde_json::to_vec(&m).unwrap_or_default();
        crc32fast::hash(&bytes)
    }

    /// Sets `crc32` to the manifest's checksum.
    pub fn seal(&mut self) {
        self.crc32 = self.compute_crc();
    }

    /// Checks every field: format, version, checksum, id, kind and parent, file names,
    /// layout. `path` is used in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |p: String| Err(SnapshotError::corrupt(path, p));
        if self.format != MANIFEST_FORMAT {
            return Err(SnapshotError::BadMagic {
                path: path.into(),
                expected: "Reprise snapshot manifest",
            });
        }
        if self.version != MANIFEST_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                path: path.into(),
                what: "snapshot manifest",
                found: self.version.into(),
                supported: MANIFEST_VERSION.into(),
            });
        }
        let computed = self.compute_crc();
        if computed != self.crc32 {
            return Err(SnapshotError::Checksum {
                path: path.into(),
                what: "manifest".into(),
                stored: self.crc32,
                computed,
            });
        }
        validate_id(&self.id).or_else(|e| bad(e.to_string()))?;
        match (self.kind, &self.parent) {
            (SnapshotKind::Full, Some(p)) => {
                return bad(format!("a full snapshot with a parent ({p:?})"))
            }
            (SnapshotKind::Diff, None) => return bad("a diff snapshot without a parent".into()),
            (SnapshotKind::Diff, Some(p)) => {
                validate_id(p).or_else(|e| bad(format!("parent: {e}")))?;
                if p == &self.id {
                    return bad("a snapshot that is its own parent".into());
                }
            }
            (SnapshotKind::Full, None) => {}
        }
        let expected_mem = match self.kind {
            SnapshotKind::Full => FULL_MEMORY_FILE,
            SnapshotKind::Diff => DIFF_MEMORY_FILE,
        };
        if self.memory.file != expected_mem {
            return bad(format!(
                "memory file {:?}, expected {expected_mem:?}",
                self.memory.file
            ));
        }
        if !plain_file_name(&self.state_file)
            || self.state_file == self.memory.file
            || self.state_file == MANIFEST_FILE
        {
            return bad(format!(
                "state file name {:?} is not a plain file name of its own",
                self.state_file
            ));
        }
        if self.memory.page_size != PAGE_SIZE {
            return bad(format!(
                "page size {}, expected {PAGE_SIZE}",
                self.memory.page_size
            ));
        }
        self.memory
            .layout
            .validate()
            .or_else(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// Reads and validates the manifest at `path` (at most [`MAX_MANIFEST_BYTES`]).
    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes = fsutil::read_limited(path, MAX_MANIFEST_BYTES, "manifest")?;
        // Look at format and version first, so that a manifest of another version is
        // reported as such rather than as fields that do not parse.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            SnapshotError::corrupt(path, format!("manifest is not valid JSON: {e}"))
        })?;
        if value.get("format").and_then(|f| f.as_str()) != Some(MANIFEST_FORMAT) {
            return Err(SnapshotError::BadMagic {
                path: path.into(),
                expected: "Reprise snapshot manifest",
            });
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(MANIFEST_VERSION) => {}
            Some(v) => {
                return Err(SnapshotError::UnsupportedVersion {
                    path: path.into(),
                    what: "snapshot manifest",
                    found: v,
                    supported: MANIFEST_VERSION.into(),
                })
            }
            None => return Err(SnapshotError::corrupt(path, "manifest has no version")),
        }
        let m: Manifest = serde_json::from_value(value)
            .map_err(|e| SnapshotError::corrupt(path, format!("manifest: {e}")))?;
        m.validate(path)?;
        Ok(m)
    }

    /// Seals and writes the manifest to `path` atomically.
    pub fn write(&mut self, path: &Path) -> Result<()> {
        self.seal();
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| {
            SnapshotError::InvalidInput(format!("manifest does not serialise: {e}"))
        })?;
        fsutil::write_atomically(path, &bytes)
    }
}
