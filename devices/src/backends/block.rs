//! The block backend contract used by virtio-blk.

use std::io;

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
}
