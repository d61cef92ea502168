//! The volume manifest: `<volume>/manifest.json`, a small, versioned, checksummed JSON
//! document naming the layer chain, the snapshots and the settings of one volume.
//!
//! ```text
//! {
//!   "format": "reprise-volume",
//!   "version": 1,
//!   "body": { "name": ..., "size": ..., "chunk_size": ..., "layers": [...], ... },
//!   "crc32": "<8 hex digits: crc32 of the body's bytes exactly as they appear in the file>"
//! }
//! ```
//!
//! It is replaced atomically (write `manifest.json.tmp`, fsync, rename, fsync the directory)
//! and checked when read: size of the file, format, version, checksum, then every field.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::VolumeError;
use super::fsutil::{read_limited, write_atomic};
use super::paths::{valid_layer_id, valid_name, VolumePaths};
use crate::limits::Limits;

/// The `format` field of every manifest.
pub const MANIFEST_FORMAT: &str = "reprise-volume";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Most layers in a chain.
pub const MAX_LAYERS: usize = 4096;
/// Most snapshots of one volume.
pub const MAX_SNAPSHOTS: usize = 4096;
/// Largest volume: 1 PiB.
pub const MAX_VOLUME_SIZE: u64 = 1 << 50;
/// Smallest chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// Largest chunk size.
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;

/// Where a clone came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The source volume's name (in the same store).
    pub volume: String,
    /// The snapshot of it the clone was made from.
    pub snapshot: String,
}

/// One snapshot as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotRecord {
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// The volume size at snapshot time.
    pub size: u64,
    /// The chain at snapshot time, bottom to top; all frozen. Always a prefix of the volume's
    /// chain.
    pub layers: Vec<String>,
}

/// The checksummed part of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestBody {
    pub name: String,
    /// Bytes, a multiple of 512.
    pub size: u64,
    pub chunk_size: u32,
    /// Layer ids, bottom to top; the last is the writable head.
    pub layers: Vec<String>,
    #[serde(default)]
    pub snapshots: Vec<SnapshotRecord>,
    #[serde(default)]
    pub limits: Limits,
    /// Incremented by every manifest update.
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format: &'a str,
    version: u32,
    body: &'a RawValue,
    crc32: String,
}

#[derive(Deserialize)]
struct EnvelopeHead {
    format: String,
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn<'a> {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    version: u64,
    #[serde(borrow)]
    body: &'a RawValue,
    crc32: String,
}

/// Checks a volume size: positive, a multiple of 512, at most [`MAX_VOLUME_SIZE`].
pub(crate) fn check_size(size: u64) -> Result<(), String> {
    if size == 0 {
        return Err("a size of 0 bytes is not allowed (at least 512)".into());
    }
    if !size.is_multiple_of(512) {
        return Err(format!("size {size} is not a multiple of 512 bytes"));
    }
    if size > MAX_VOLUME_SIZE {
        return Err(format!(
            "size {size} is larger than the largest volume ({MAX_VOLUME_SIZE} bytes)"
        ));
    }
    Ok(())
}

/// Checks a chunk size: a power of two from 4 KiB to 4 MiB.
pub(crate) fn check_chunk_size(chunk_size: u32) -> Result<(), String> {
    if !chunk_size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(format!(
            "chunk size {chunk_size} is not a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}"
        ));
    }
    Ok(())
}

impl ManifestBody {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!("volume name {:?} is not valid", self.name));
        }
        check_size(self.size)?;
        check_chunk_size(self.chunk_size)?;
        if self.layers.is_empty() {
            return Err("the layer chain is empty".into());
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(format!(
                "{} layers, more than the limit of {MAX_LAYERS}",
                self.layers.len()
            ));
        }
        let mut seen = HashSet::new();
        for id in &self.layers {
            if !valid_layer_id(id) {
                return Err(format!("layer id {id:?} is not 32 lowercase hex digits"));
            }
            if !seen.insert(id.as_str()) {
                return Err(format!("layer {id} appears twice in the chain"));
            }
        }
        if self.snapshots.len() > MAX_SNAPSHOTS {
            return Err(format!(
                "{} snapshots, more than the limit of {MAX_SNAPSHOTS}",
                self.snapshots.len()
            ));
        }
        let mut names = HashSet::new();
        for s in &self.snapshots {
            if !valid_name(&s.name) {
                return Err(format!("snapshot name {:?} is not valid", s.name));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("snapshot {:?} appears twice", s.name));
            }
            check_size(s.size).map_err(|e| format!("snapshot {:?}: {e}", s.name))?;
            if s.layers.is_empty()
                || s.layers.len() >= self.layers.len()
                || s.layers[..] != self.layers[..s.layers.len()]
            {
                return Err(format!(
                    "snapshot {:?}: its layers are not a proper prefix of the volume's chain",
                    s.name
                ));
            }
        }
        self.limits.validate().map_err(|e| format!("limits: {e}"))?;
        if let Some(o) = &self.origin {
            if !valid_name(&o.volume) || !valid_name(&o.snapshot) {
                return Err(format!("origin {o:?} has an invalid name"));
            }
        }
        Ok(())
    }

    /// The snapshot called `name`.
    pub fn snapshot(&self, name: &str) -> Option<&SnapshotRecord> {
        self.snapshots.iter().find(|s| s.name == name)
    }

    /// The snapshot names, comma-separated, for messages.
    pub fn snapshot_names(&self) -> String {
        if self.snapshots.is_empty() {
            return "none".into();
        }
        self.snapshots
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The id of the head layer.
    pub fn head(&self) -> &str {
        self.layers.last().map(|s| s.as_str()).unwrap_or("")
    }
}

/// Serializes a manifest (envelope and checksummed body).
pub(crate) fn encode(body: &ManifestBody) -> Result<Vec<u8>, serde_json::Error> {
    // Indented one level so that it lines up inside the envelope (newlines cannot occur
    // inside JSON strings, so this only changes whitespace between tokens).
    let body_text = serde_json::to_string_pretty(body)?.replace('\n', "\n  ");
    let crc = crc32fast::hash(body_text.as_bytes());
    let raw = RawValue::from_string(body_text)?;
    let env = EnvelopeOut {
        format: MANIFEST_FORMAT,
        version: MANIFEST_VERSION,
        body: &raw,
        crc32: format!("{crc:08x}"),
    };
    let mut out = serde_json::to_vec_pretty(&env)?;
    out.push(b'\n');
    Ok(out)
}

/// Why a manifest could not be decoded.
pub(crate) enum DecodeError {
    /// Damaged or inconsistent.
    Corrupt(String),
    /// A format or version this build does not read.
    Unsupported(String),
}

/// Parses and checks a manifest.
pub(crate) fn decode(bytes: &[u8]) -> Result<ManifestBody, DecodeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::Corrupt(format!("not UTF-8 text: {e}")))?;
    let head: EnvelopeHead = serde_json::from_str(text)
        .map_err(|e| DecodeError::Corrupt(format!("not a manifest (bad JSON: {e})")))?;
    if head.format != MANIFEST_FORMAT {
        return Err(DecodeError::Unsupported(format!(
            "format {:?} is not {MANIFEST_FORMAT:?}",
            head.format
        )));
    }
    if head.version != u64::from(MANIFEST_VERSION) {
        return Err(DecodeError::Unsupported(format!(
            "manifest version {} is not supported (this build reads version {MANIFEST_VERSION})",
            head.version
        )));
    }
    let env: EnvelopeIn = serde_json::from_str(text)
        .map_err(|e| DecodeError::Corrupt(format!("bad manifest envelope: {e}")))?;
    let actual = crc32fast::hash(env.body.get().as_bytes());
    let stored = u32::from_str_radix(env.crc32.trim(), 16)
        .map_err(|_| DecodeError::Corrupt(format!("crc32 {:?} is not hex", env.crc32)))?;
    if actual != stored {
        return Err(DecodeError::Corrupt(format!(
            "checksum mismatch: the manifest says crc32 {stored:08x}, its body has {actual:08x}"
        )));
    }
    let body: ManifestBody = serde_json::from_str(env.body.get())
        .map_err(|e| DecodeError::Corrupt(format!("bad manifest body: {e}")))?;
    body.validate().map_err(DecodeError::Corrupt)?;
    Ok(body)
}

/// Reads the manifest at `path` for the volume `volume` (used in errors).
pub(crate) fn read_file(volume: &Path, path: &Path) -> Result<ManifestBody, VolumeError> {
    let bytes = match read_limited(path, MAX_MANIFEST_BYTES) {
        Ok(Ok(b)) => b,
        Ok(Err(len)) => {
            return Err(VolumeError::corrupt(
                volume,
                path,
                format!("manifest is {len} bytes, more than the limit of {MAX_MANIFEST_BYTES}"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VolumeError::NotFound {
                volume: volume.to_path_buf(),
                file: path.to_path_buf(),
            })
        }
        Err(e) => return Err(VolumeError::io(volume, path, "read", e)),
    };
    decode(&bytes).map_err(|e| match e {
        DecodeError::Corrupt(problem) => VolumeError::corrupt(volume, path, problem),
        DecodeError::Unsupported(problem) => VolumeError::Unsupported {
            volume: volume.to_path_buf(),
            file: path.to_path_buf(),
            problem,
        },
    })
}

/// Reads the manifest of the volume at `paths`.
pub(crate) fn read(paths: &VolumePaths) -> Result<ManifestBody, VolumeError> {
    read_file(&paths.dir, &paths.manifest())
}

/// Replaces the manifest of the volume at `paths` atomically.
pub(crate) fn write(paths: &VolumePaths, body: &ManifestBody) -> Result<(), VolumeError> {
    body.validate().map_err(|problem| {
        VolumeError::invalid(
            &paths.dir,
            format!("refusing to write a bad manifest: {problem}"),
        )
    })?;
    let bytes = encode(body).map_err(|e| {
        VolumeError::io(
            &paths.dir,
            &paths.manifest(),
            "serialize",
            io::Error::other(e),
        )
    })?;
    write_atomic(&paths.dir, &paths.manifest(), &paths.manifest_tmp(), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> ManifestBody {
        ManifestBody {
            name: "v".into(),
            size: 1 << 20,
            chunk_size: 65536,
            layers: vec!["0".repeat(32), "1".repeat(32)],
            snapshots: vec![SnapshotRecord {
                name: "s".into(),
                created: 1,
                size: 1 << 20,
                layers: vec!["0".repeat(32)],
            }],
            limits: Limits::default(),
            generation: 3,
            origin: None,
        }
    }

    #[test]
    fn round_trip_and_checksum() {
        let bytes = encode(&body()).unwrap();
        assert!(matches!(decode(&bytes), Ok(b) if b == body()));
        let text = String::from_utf8(bytes).unwrap();
        let bad = text.replace("1048576", "1048064");
        assert!(
            matches!(decode(bad.as_bytes()), Err(DecodeError::Corrupt(p)) if p.contains("checksum"))
        );
        let newer = text.replace("\"version\": 1", "\"version\": 2");
        assert!(
            matches!(decode(newer.as_bytes()), Err(DecodeError::Unsupported(p)) if p.contains("version 2"))
        );
    }

    #[test]
    fn snapshot_chain_must_be_a_prefix() {
        let mut b = body();
        b.snapshots[0].layers = vec!["1".repeat(32)];
        assert!(b.validate().unwrap_err().contains("prefix"));
        let mut b = body();
        b.size = 1000;
        assert!(b.validate().unwrap_err().contains("multiple of 512"));
    }
}
