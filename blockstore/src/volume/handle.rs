//! The [`Volume`] handle: what an open volume (or snapshot view) holds, its accessors, and
//! the options of the operations that create or change one.

use std::path::Path;

use super::chunk_map::ChunkMap;
use super::error::VolumeError;
use super::fsutil::remove_if_exists;
use super::head::HeadLayer;
use super::layer_file::LayerFile;
use super::lock::WriterLock;
use super::manifest::ManifestBody;
use super::paths::VolumePaths;
use crate::limits::Limits;

/// The default chunk size: 64 KiB.
///
/// A chunk is the unit of copy-on-write and of the index. The first write to a chunk after a
/// snapshot copies the whole chunk, so a 4 KiB guest write costs up to 16x its size once per
/// chunk per snapshot at 64 KiB (256x at 1 MiB); later writes to the same chunk go in place.
/// The index costs 24 bytes on disk per allocated chunk and the chunk map 16 bytes of memory
/// (plus about 40 for chunks in the head): a fully written 10 GiB volume has 163,840 chunks,
/// a 3.75 MiB head index rewritten at each flush and 2.5 MiB of map, where 4 KiB chunks would
/// make those 60 and 40 MiB. 64 KiB keeps both costs small (it is also the cluster size qcow2
/// settled on).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;

/// How to create a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Size in bytes: a positive multiple of 512.
    pub size: u64,
    /// Chunk size in bytes: a power of two from 4 KiB to 4 MiB, fixed for the volume's life
    /// (and shared by its clones).
    pub chunk_size: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            size: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// How a resize may proceed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResizeOptions {
    /// Allow a smaller size at all.
    pub allow_shrink: bool,
    /// Allow a shrink to drop data written beyond the new size.
    pub discard_data: bool,
}

/// Counters of the layer-file I/O done through this handle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoStats {
    /// Read calls on layer data files.
    pub layer_reads: u64,
    /// Write calls on layer data files.
    pub layer_writes: u64,
}

/// A frozen (immutable) layer of the open chain.
#[derive(Debug)]
pub(crate) struct FrozenLayer {
    pub file: LayerFile,
    pub data_chunks: u64,
    pub zero_chunks: u64,
}

/// An open volume, or a read-only view of one of its snapshots.
///
/// Reads go through a chunk map built at open (one lookup per chunk, whatever the depth of
/// the chain); writes go to the head layer, copy-on-write at chunk granularity. Nothing
/// written is durable before [`Volume::flush`] (which dropping a writable handle also does).
#[derive(Debug)]
pub struct Volume {
    pub(crate) paths: VolumePaths,
    pub(crate) body: ManifestBody,
    /// The snapshot this handle shows, for a snapshot view.
    pub(crate) view: Option<String>,
    pub(crate) size: u64,
    /// The frozen layers, bottom to top (for a read-only handle, every layer).
    pub(crate) layers: Vec<FrozenLayer>,
    /// The writable head, for a handle open for writing.
    pub(crate) head: Option<HeadLayer>,
    /// Where each chunk of the frozen layers is.
    pub(crate) map: ChunkMap,
    pub(crate) _lock: Option<WriterLock>,
    pub(crate) verify_reads: bool,
    pub(crate) scratch: Vec<u8>,
    /// A layer made ahead of time for the next snapshot's head (see
    /// [`Volume::prepare_snapshot`]); removed if the handle closes without using it.
    pub(crate) spare: Option<LayerFile>,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Volume>();
};

impl Volume {
    /// The volume size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.body.chunk_size
    }

    /// The volume name.
    pub fn name(&self) -> &str {
        &self.body.name
    }

    /// The volume directory.
    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    /// Whether this handle cannot write (a read-only open or a snapshot view).
    pub fn read_only(&self) -> bool {
        self.head.is_none()
    }

    /// For a snapshot view, the snapshot's name.
    pub fn snapshot_name(&self) -> Option<&str> {
        self.view.as_deref()
    }

    /// The I/O limits recorded for the volume.
    pub fn limits(&self) -> Limits {
        self.body.limits
    }

    /// The manifest generation this handle last wrote or read.
    pub fn generation(&self) -> u64 {
        self.body.generation
    }

    /// Number of layers in the chain this handle reads.
    pub fn layer_count(&self) -> usize {
        self.layers.len() + usize::from(self.head.is_some())
    }

    /// Whether reads verify chunk checksums (on by default). Each chunk is verified the
    /// first time it is read through this handle.
    pub fn verify_reads(&self) -> bool {
        self.verify_reads
    }

    /// Turns checksum verification of reads on or off.
    pub fn set_verify_reads(&mut self, on: bool) {
        self.verify_reads = on;
    }

    /// Layer-file I/O done through this handle so far.
    pub fn io_stats(&self) -> IoStats {
        let mut s = IoStats::default();
        let files = self
            .layers
            .iter()
            .map(|l| &l.file)
            .chain(self.head.as_ref().map(|h| &h.file));
        for f in files {
            let (r, w) = f.counts();
            s.layer_reads += r;
            s.layer_writes += w;
        }
        s
    }

    /// Chunks that hold data (not zeros) as this handle sees the volume.
    pub fn allocated_chunks(&self) -> u64 {
        self.map.len() as u64
    }

    /// Bytes of the volume that hold data (allocated chunks times the chunk size).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_chunks() * u64::from(self.body.chunk_size)
    }

    pub(crate) fn require_writable(&self, what: &str) -> Result<&VolumePaths, VolumeError> {
        if self.head.is_none() {
            return Err(VolumeError::ReadOnly {
                volume: self.paths.dir.clone(),
                what: what.to_string(),
            });
        }
        Ok(&self.paths)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let id = spare.id.clone();
            drop(spare);
            let _ = remove_if_exists(&self.paths.layer_index(&id));
            let _ = remove_if_exists(&self.paths.layer_data(&id));
        }
        if let Some(head) = self.head.as_mut() {
            if let Err(e) = head.flush(&self.paths) {
                log::error!("closing volume: flush failed: {e}");
            }
        }
    }
}
