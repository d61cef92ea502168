//! The network backend contract used by virtio-net.

use std::io;
use std::os::fd::RawFd;

/// Ethernet frames in and out of a virtio-net device. Frames carry no virtio-net header.
pub trait NetBackend: Send {
    /// Receives one frame into `buf` without blocking: `Ok(None)` when nothing is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// A file descriptor that polls readable when `recv` has a frame.
    fn ready_fd(&self) -> RawFd;
}
