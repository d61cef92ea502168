//! Listening sockets (Unix and TCP), accepted connections, and waiting on several
//! sockets at once.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::NbdError;

/// A bound, non-blocking listening socket.
pub(crate) enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// Device and inode of the socket file we created, to remove only that file.
        id: (u64, u64),
    },
    Tcp {
        listener: TcpListener,
        addr: SocketAddr,
    },
}

impl Listener {
    /// Binds a Unix socket at `path`. A stale socket file left by a server that is gone
    /// is replaced; a live one, or any other file, is an error.
    pub fn bind_unix(path: &Path) -> Result<Listener, NbdError> {
        let fail = |source: io::Error| NbdError::BindUnix {
            path: path.to_owned(),
            source,
        };
        if let Ok(meta) = fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(fail(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                )));
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(fail(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another server is listening there",
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!("NBD: replacing stale socket {}", path.display());
                    fs::remove_file(path).map_err(fail)?;
                }
                Err(_) => {}
            }
        }
        let listener = UnixListener::bind(path).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let meta = fs::symlink_metadata(path).map_err(fail)?;
        Ok(Listener::Unix {
            listener,
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Binds a TCP address; refuses addresses other than loopback unless `allow_remote`.
    pub fn bind_tcp(addr: SocketAddr, allow_remote: bool) -> Result<Listener, NbdError> {
        if !allow_remote && !addr.ip().to_canonical().is_loopback() {
            return Err(NbdError::RemoteNotAllowed { addr });
        }
        let fail = |source| NbdError::BindTcp { addr, source };
        let listener = TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let bound = listener.local_addr().map_err(fail)?;
        Ok(Listener::Tcp {
            listener,
            addr: bound,
        })
    }

    /// Accepts one pending connection, if any.
    pub fn accept(&self) -> io::Result<Option<(Stream, String)>> {
        let res = match self {
            Listener::Unix { listener, path, .. } => listener
                .accept()
                .map(|(s, _)| (Stream::Unix(s), format!("unix:{}", path.display()))),
            Listener::Tcp { listener, .. } => listener.accept().map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), format!("tcp:{peer}"))
            }),
        };
        match res {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                Ok(Some((stream, peer)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The socket file of a Unix listener.
    pub fn socket_file(&self) -> Option<SocketFile> {
        match self {
            Listener::Unix { path, id, .. } => Some(SocketFile {
                path: path.clone(),
                id: *id,
            }),
            Listener::Tcp { .. } => None,
        }
    }
}

/// A Unix socket file the server created.
pub(crate) struct SocketFile {
    pub path: PathBuf,
    id: (u64, u64),
}

impl SocketFile {
    /// Removes the file if it is still the socket we created (not a later replacement).
    pub fn remove(&self) {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("NBD: cannot remove socket {}: {e}", self.path.display());
                }
            }
            _ => {}
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
            Listener::Tcp { listener, .. } => listener.as_raw_fd(),
        }
    }
}

/// An accepted connection.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tcp(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a stream with an overall deadline: each read may wait only for the time left,
/// so a client cannot stretch the handshake by trickling bytes. Clearing the shared
/// deadline lifts the limit.
pub(crate) struct DeadlineReader {
    stream: Stream,
    deadline: Rc<Cell<Option<Instant>>>,
}

impl DeadlineReader {
    pub fn new(stream: Stream, deadline: Rc<Cell<Option<Instant>>>) -> DeadlineReader {
        DeadlineReader { stream, deadline }
    }
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not finish the handshake in time",
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

/// Blocks until at least one of `fds` is readable (or has an error or hang-up pending);
/// returns which ones are. `EINTR` yields an all-false answer.
pub(crate) fn wait_readable(fds: &[RawFd]) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a live, exclusively borrowed array of exactly `pollfds.len()`
    // initialised `pollfd` structures, which is all poll(2) reads and writes.
    let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, -1) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pollfds.iter().map(|p| p.revents != 0).collect())
}
