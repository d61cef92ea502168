//! A Unix datagram socket pair of paths as a [`NetBackend`]: one Ethernet frame per datagram.
//!
//! The device binds a socket at a local path and sends every frame to a peer path; whatever
//! arrives at the local socket (from any sender) is a received frame. This is the same model
//! as QEMU's `-netdev dgram` with Unix sockets, so two VMs, or a VM and a test harness, can
//! be wired together without TAP devices or privileges. A peer that is not there (yet) is
//! not an error: the frame is dropped, logged at debug level and counted. A peer whose queue
//! is full gets up to 20 ms to make room before the frame is dropped that way.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::debug;

use super::NetBackend;

/// Errors setting up a Unix datagram backend.
#[derive(Debug, thiserror::Error)]
pub enum UnixDgramError {
    /// Something that is not a socket occupies the local path.
    #[error("cannot bind Unix datagram socket at {}: the path exists and is not a socket", path.display())]
    NotASocket {
        /// The local path.
        path: PathBuf,
    },
    /// A stale socket file could not be inspected or removed.
    #[error("cannot remove stale socket {}: {source}", path.display())]
    RemoveStale {
        /// The local path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Binding failed.
    #[error("cannot bind Unix datagram socket at {}: {source}", path.display())]
    Bind {
        /// The local path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The socket could not be made non-blocking.
    #[error("cannot make Unix datagram socket at {} non-blocking: {source}", path.display())]
    NonBlocking {
        /// The local path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A network backend over a Unix datagram socket.
pub struct UnixDgram {
    socket: UnixDatagram,
    local: PathBuf,
    peer: PathBuf,
    dropped: u64,
}

impl UnixDgram {
    /// Binds at `local` (replacing a stale socket file left there) and sends to `peer`.
    pub fn bind(local: impl AsRef<Path>, peer: impl AsRef<Path>) -> Result<Self, UnixDgramError> {
        let local = local.as_ref().to_path_buf();
        remove_stale_socket(&local)?;
        let socket = UnixDatagram::bind(&local).map_err(|source| UnixDgramError::Bind {
            path: local.clone(),
            source,
        })?;
        socket
            .set_nonblocking(true)
            .map_err(|source| UnixDgramError::NonBlocking {
                path: local.clone(),
                source,
            })?;
        Ok(UnixDgram {
            socket,
            local,
            peer: peer.as_ref().to_path_buf(),
            dropped: 0,
        })
    }

    /// The path this socket is bound to.
    pub fn local_path(&self) -> &Path {
        &self.local
    }

    /// The path frames are sent to.
    pub fn peer_path(&self) -> &Path {
        &self.peer
    }

    /// Frames dropped because the peer was absent or could not take them.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }
}

fn remove_stale_socket(path: &Path) -> Result<(), UnixDgramError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path).map_err(|source| UnixDgramError::RemoveStale {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(_) => Err(UnixDgramError::NotASocket {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(UnixDgramError::RemoveStale {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl NetBackend for UnixDgram {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.send_waiting(frame) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ECONNREFUSED | libc::EAGAIN | libc::ENOTCONN)
                ) =>
            {
                self.dropped += 1;
                debug!(
                    "unix datagram backend {}: dropped a {}-byte frame for {}: {e}",
                    self.local.display(),
                    frame.len(),
                    self.peer.display()
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn ready_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// How long a frame waits for room in a full peer queue before it is dropped.
const FULL_PEER_WAIT: Duration = Duration::from_millis(20);

impl UnixDgram {
    /// Sends `frame`; while the peer's queue is full, retries for up to [`FULL_PEER_WAIT`]
    /// (the peer is a local process that is reading, so room comes soon) before giving up.
    fn send_waiting(&self, frame: &[u8]) -> io::Result<usize> {
        let mut waited = Duration::ZERO;
        let mut step = Duration::from_micros(20);
        loop {
            match self.socket.send_to(frame, &self.peer) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && waited < FULL_PEER_WAIT => {
                    std::thread::sleep(step);
                    waited += step;
                    step = (step * 2).min(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }
}

impl Drop for UnixDgram {
    fn drop(&mut self) {
        // Best effort: leave no socket file behind.
        let _ = fs::remove_file(&self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::tempdir::TempDir;

    #[test]
    fn two_sockets_exchange_frames() {
        let dir = TempDir::new_with_prefix("/tmp/reprise-dgram").unwrap();
        let a_path = dir.as_path().join("a.sock");
        let b_path = dir.as_path().join("b.sock");
        let mut a = UnixDgram::bind(&a_path, &b_path).unwrap();
        let mut b = UnixDgram::bind(&b_path, &a_path).unwrap();
        let frame: Vec<u8> = (0..1514).map(|i| (i * 7) as u8).collect();
        let mut buf = vec![0u8; 2048];
        assert_eq!(b.recv(&mut buf).unwrap(), None);
        a.send(&frame).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), Some(frame.len()));
        assert_eq!(&buf[..frame.len()], &frame[..]);
        b.send(&frame[..60]).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), Some(60));
        assert_eq!(a.recv(&mut buf).unwrap(), None);
        assert_eq!(a.dropped_frames(), 0);
        drop(a);
        assert!(!a_path.exists());
    }

    #[test]
    fn missing_peer_drops_and_counts() {
        let dir = TempDir::new_with_prefix("/tmp/reprise-dgram").unwrap();
        let mut a = UnixDgram::bind(
            dir.as_path().join("a.sock"),
            dir.as_path().join("gone.sock"),
        )
        .unwrap();
        a.send(&[0u8; 64]).unwrap();
        a.send(&[0u8; 64]).unwrap();
        assert_eq!(a.dropped_frames(), 2);
    }

    #[test]
    fn replaces_stale_socket_but_not_other_files() {
        let dir = TempDir::new_with_prefix("/tmp/reprise-dgram").unwrap();
        let stale = dir.as_path().join("stale.sock");
        drop(UnixDatagram::bind(&stale).unwrap());
        assert!(stale.exists());
        let s = UnixDgram::bind(&stale, dir.as_path().join("peer.sock")).unwrap();
        assert_eq!(s.local_path(), stale);

        let file = dir.as_path().join("data");
        fs::write(&file, b"keep me").unwrap();
        let err = UnixDgram::bind(&file, dir.as_path().join("peer.sock"))
            .err()
            .unwrap();
        assert!(matches!(err, UnixDgramError::NotASocket { .. }));
        assert!(err.to_string().contains("data"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"keep me");
    }
}
