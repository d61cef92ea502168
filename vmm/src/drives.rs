//! Attached drives: the backend chosen for each (raw image or block-store volume), the I/O
//! limits wrapped around it, and the handles the controller needs to resize, re-limit and
//! snapshot a drive while the guest runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blockstore::limits::{Direction, Limits, RateLimiter};
use devices::backends::{BlockBackend, IoDirection, RawFile, RawFileOptions};
use devices::bus::lock;
use devices::virtio::Block;

use crate::config::DriveConfig;
use crate::volume_backend::{SharedVolume, VolumeBackend};

/// Why a drive could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("drive {drive_id}: {message}")]
pub struct DriveError {
    /// The drive.
    pub drive_id: String,
    /// What went wrong.
    pub message: String,
}

/// Limits shared between a drive's backend and the controller (which changes them).
pub type SharedLimiter = Arc<Mutex<RateLimiter>>;

/// A backend with I/O limits in front of it.
pub struct Limited {
    inner: Box<dyn BlockBackend>,
    limiter: SharedLimiter,
}

impl BlockBackend for Limited {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.inner.discard(offset, len)
    }
    fn device_id(&self) -> &str {
        self.inner.device_id()
    }
    fn admit(&mut self, dir: IoDirection, bytes: u64) -> Option<Duration> {
        let dir = match dir {
            IoDirection::Read => Direction::Read,
            IoDirection::Write => Direction::Write,
        };
        lock(&self.limiter).admit(dir, bytes, Instant::now()).err()
    }
    fn resize(&mut self, bytes: u64) -> std::io::Result<()> {
        self.inner.resize(bytes)
    }
}

/// What the controller keeps of an attached drive.
pub struct DriveHandle {
    /// The configuration it was attached with (limits updated by PATCH).
    pub config: DriveConfig,
    /// The virtio-blk device (also on the MMIO bus and the event loop).
    pub block: Arc<Mutex<Block>>,
    /// Its I/O limits.
    pub limiter: SharedLimiter,
    /// The volume, when the drive is one.
    pub volume: Option<SharedVolume>,
}

impl DriveHandle {
    /// `raw` or `volume`.
    pub fn backend_kind(&self) -> &'static str {
        if self.volume.is_some() {
            "volume"
        } else {
            "raw"
        }
    }

    /// The image file or volume directory.
    pub fn path(&self) -> PathBuf {
        drive_path(&self.config).to_path_buf()
    }
}

/// The image file or volume directory of a drive configuration.
pub fn drive_path(config: &DriveConfig) -> &Path {
    config
        .volume_path
        .as_deref()
        .or(config.path_on_host.as_deref())
        .unwrap_or(Path::new(""))
}

/// An opened drive backend: the limited backend for the device, the shared limiter, and
/// the shared volume for a volume drive.
pub type OpenedBackend = (Box<dyn BlockBackend>, SharedLimiter, Option<SharedVolume>);

/// Opens the backend `config` names, wrapped in its I/O limits.
pub fn open_backend(config: &DriveConfig) -> Result<OpenedBackend, DriveError> {
    let err = |message: String| DriveError {
        drive_id: config.drive_id.clone(),
        message,
    };
    let (inner, volume): (Box<dyn BlockBackend>, Option<SharedVolume>) =
        match (&config.path_on_host, &config.volume_path) {
            (Some(path), None) => {
                let options = RawFileOptions {
                    read_only: config.is_read_only,
                    direct: config.io_direct,
                    device_id: config.drive_id.clone(),
                };
                (
                    Box::new(RawFile::open(path, &options).map_err(|e| err(e.to_string()))?),
                    None,
                )
            }
            (None, Some(dir)) => {
                let backend =
                    VolumeBackend::open(dir, &config.drive_id, config.is_read_only).map_err(err)?;
                let shared = backend.shared();
                (Box::new(backend), Some(shared))
            }
            _ => {
                return Err(err(
                    "give exactly one of path_on_host and volume_path".into()
                ))
            }
        };
    let limits = config.limits.unwrap_or_default();
    let limiter = RateLimiter::new(limits, Instant::now()).map_err(|e| err(e.to_string()))?;
    let limiter = Arc::new(Mutex::new(limiter));
    let backend = Box::new(Limited {
        inner,
        limiter: limiter.clone(),
    });
    Ok((backend, limiter, volume))
}

/// Replaces a drive's limits.
pub fn set_limits(limiter: &SharedLimiter, limits: Limits) -> Result<(), String> {
    lock(limiter)
        .set_limits(limits, Instant::now())
        .map_err(|e| e.to_string())
}
