//! A [`NetBackend`] attached to nothing: frames the guest sends are dropped (and counted),
//! and nothing is ever received.
//!
//! It stands in for a host backend when a network interface must stay in the guest (same
//! device, same guest-visible state) but must not reach any network: for example a clone
//! restored next to the original, which must not answer on the original's socket or TAP.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::NetBackend;

/// A network backend connected to nothing.
pub struct NullNet {
    /// Never written: polling it never reports a frame.
    ready: EventFd,
    dropped_frames: u64,
    dropped_bytes: u64,
}

impl NullNet {
    /// A backend connected to nothing.
    pub fn new() -> io::Result<Self> {
        Ok(NullNet {
            ready: EventFd::new(EFD_NONBLOCK)?,
            dropped_frames: 0,
            dropped_bytes: 0,
        })
    }

    /// Frames the guest sent, all dropped.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Bytes of the frames the guest sent.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }
}

impl NetBackend for NullNet {
    fn recv(&mut self, _buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(None)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.dropped_frames += 1;
        self.dropped_bytes += frame.len() as u64;
        Ok(())
    }

    fn ready_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_what_is_sent_and_receives_nothing() {
        let mut null = NullNet::new().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(null.recv(&mut buf).unwrap(), None);
        null.send(&[1u8; 60]).unwrap();
        null.send(&[2u8; 1514]).unwrap();
        assert_eq!(null.recv(&mut buf).unwrap(), None);
        assert_eq!(null.dropped_frames(), 2);
        assert_eq!(null.dropped_bytes(), 1574);
        // The ready fd never polls readable.
        let mut fds = [libc::pollfd {
            fd: null.ready_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        assert_eq!(n, 0);
    }
}
