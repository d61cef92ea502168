//! A description of a volume for humans and tools (`--json`).

use std::path::PathBuf;

use serde::Serialize;

use super::handle::Volume;
use super::manifest::Origin;
use super::snapshots::SnapshotInfo;
use crate::limits::Limits;

/// One layer of a volume's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    /// The layer id (file names `<store>/layers/<id>.*`).
    pub id: String,
    /// Whether it is the writable head (otherwise frozen and immutable).
    pub head: bool,
    /// Chunks it holds data for.
    pub data_chunks: u64,
    /// Chunks it marks as zero (hiding lower layers).
    pub zero_chunks: u64,
    /// Bytes its data file occupies on disk.
    pub bytes_on_disk: u64,
}

/// What a volume is and holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeInfo {
    /// The volume name.
    pub name: String,
    /// The volume directory.
    pub dir: PathBuf,
    /// Size in bytes (of the snapshot, for a snapshot view).
    pub size: u64,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// Whether this handle is read-only.
    pub read_only: bool,
    /// The snapshot shown, for a snapshot view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The chain, bottom to top.
    pub layers: Vec<LayerInfo>,
    /// The volume's snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Its I/O limits.
    pub limits: Limits,
    /// Where it was cloned from, for a clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Chunks that hold data.
    pub allocated_chunks: u64,
    /// Bytes that hold data (allocated chunks times the chunk size).
    pub allocated_bytes: u64,
    /// The manifest generation.
    pub generation: u64,
}

impl Volume {
    /// Describes the volume as this handle sees it.
    pub fn info(&self) -> VolumeInfo {
        let mut layers: Vec<LayerInfo> = self
            .layers
            .iter()
            .map(|l| LayerInfo {
                id: l.file.id.clone(),
                head: false,
                data_chunks: l.data_chunks,
                zero_chunks: l.zero_chunks,
                bytes_on_disk: l.file.bytes_on_disk(),
            })
            .collect();
        if self.head.is_none() && self.view.is_none() {
            // A read-only open of the volume: its last layer is the writer's head.
            if let Some(last) = layers.last_mut() {
                last.head = true;
            }
        }
        if let Some(h) = &self.head {
            let (data_chunks, zero_chunks) = h.counts();
            layers.push(LayerInfo {
                id: h.file.id.clone(),
                head: true,
                data_chunks,
                zero_chunks,
                bytes_on_disk: h.file.bytes_on_disk(),
            });
        }
        VolumeInfo {
            name: self.body.name.clone(),
            dir: self.paths.dir.clone(),
            size: self.size,
            chunk_size: self.body.chunk_size,
            read_only: self.read_only(),
            snapshot: self.view.clone(),
            layers,
            snapshots: self.snapshots(),
            limits: self.body.limits,
            origin: self.body.origin.clone(),
            allocated_chunks: self.allocated_chunks(),
            allocated_bytes: self.allocated_bytes(),
            generation: self.body.generation,
        }
    }
}
