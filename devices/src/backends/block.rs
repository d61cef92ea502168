//! The block backend contract used by virtio-blk.

use std::io;
use std::time::Duration;

/// Direction of a request, for I/O limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDirection {
    /// Data leaves the disk (IN).
    Read,
    /// Data reaches the disk (OUT, DISCARD, WRITE_ZEROES).
    Write,
}

/// Storage behind a virtio-blk device. Offsets and lengths are in bytes and are multiples of
/// 512 (the virtio sector); the device model validates requests before calling in.
pub trait BlockBackend: Send {
    /// Size of the disk in bytes.
    fn capacity(&self) -> u64;
    /// Whether writes and discards must be refused.
    fn read_only(&self) -> bool;
    /// Fills `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Releases `len` bytes at `offset`; later reads return zeros.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// The serial string returned for VIRTIO_BLK_T_GET_ID (at most 20 bytes are used).
    fn device_id(&self) -> &str;
    /// Admission control for I/O limits: `None` lets a request of `bytes` in `dir` start
    /// now; `Some(wait)` asks the device to hold its queue and come back after `wait`.
    fn admit(&mut self, _dir: IoDirection, _bytes: u64) -> Option<Duration> {
        None
    }
    /// Changes the disk's size (online resize). Backends that cannot resize refuse.
    fn resize(&mut self, _bytes: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backend cannot be resized",
        ))
    }
}
