//! virtio-blk over a block-store volume.

use std::path::Path;
use std::sync::{Arc, Mutex};

use blockstore::volume::{ResizeOptions, Volume};
use devices::backends::BlockBackend;
use devices::bus::lock;

/// A volume shared by the drive's backend and the controller (snapshots, resize).
pub type SharedVolume = Arc<Mutex<Volume>>;

/// The block backend of a drive whose storage is a volume.
pub struct VolumeBackend {
    volume: SharedVolume,
    device_id: String,
    read_only: bool,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl VolumeBackend {
    /// Opens the volume in `dir` (as its one writer, unless `read_only`).
    pub fn open(dir: &Path, device_id: &str, read_only: bool) -> Result<Self, String> {
        let volume = if read_only {
            Volume::open_read_only(dir)
        } else {
            Volume::open(dir)
        };
        let volume = volume.map_err(|e| e.to_string())?;
        Ok(VolumeBackend {
            volume: Arc::new(Mutex::new(volume)),
            device_id: device_id.to_string(),
            read_only,
        })
    }

    /// The shared handle.
    pub fn shared(&self) -> SharedVolume {
        self.volume.clone()
    }
}

impl BlockBackend for VolumeBackend {
    fn capacity(&self) -> u64 {
        lock(&self.volume).size()
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        lock(&self.volume).read_at(offset, buf).map_err(io_err)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        lock(&self.volume).write_at(offset, buf).map_err(io_err)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        lock(&self.volume).flush().map_err(io_err)
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        lock(&self.volume).discard(offset, len).map_err(io_err)
    }
    fn device_id(&self) -> &str {
        &self.device_id
    }
    fn resize(&mut self, bytes: u64) -> std::io::Result<()> {
        let mut volume = lock(&self.volume);
        let options = ResizeOptions {
            allow_shrink: bytes < volume.size(),
            discard_data: false,
        };
        volume.resize(bytes, &options).map_err(io_err)
    }
}
