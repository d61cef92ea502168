//! Volumes, layers, snapshots, clones and resize (placeholder until the implementation lands).

use std::path::Path;

/// Errors of volume operations.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

/// Shrink permissions.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResizeOptions {
    /// Permit a smaller size.
    pub allow_shrink: bool,
    /// Permit dropping data beyond the new size.
    pub discard_data: bool,
}

/// A snapshot record.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    /// Name.
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A volume.
pub struct Volume;

fn missing<T>() -> Result<T, VolumeError> {
    Err(VolumeError("volumes are not implemented yet".into()))
}

impl Volume {
    /// Opens for writing.
    pub fn open(_dir: &Path) -> Result<Volume, VolumeError> {
        missing()
    }
    /// Opens read-only.
    pub fn open_read_only(_dir: &Path) -> Result<Volume, VolumeError> {
        missing()
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        0
    }
    /// Reads.
    pub fn read_at(&mut self, _offset: u64, _buf: &mut [u8]) -> Result<(), VolumeError> {
        missing()
    }
    /// Writes.
    pub fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<(), VolumeError> {
        missing()
    }
    /// Discards.
    pub fn discard(&mut self, _offset: u64, _len: u64) -> Result<(), VolumeError> {
        missing()
    }
    /// Flushes.
    pub fn flush(&mut self) -> Result<(), VolumeError> {
        missing()
    }
    /// Resizes.
    pub fn resize(&mut self, _size: u64, _o: &ResizeOptions) -> Result<(), VolumeError> {
        missing()
    }
    /// Snapshots.
    pub fn snapshot(&mut self, _name: &str) -> Result<SnapshotInfo, VolumeError> {
        missing()
    }
    /// Lists snapshots.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        Vec::new()
    }
}
