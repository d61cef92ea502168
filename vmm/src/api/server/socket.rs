//! The socket file: replacing a stale one before binding, and removing ours afterwards.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::ApiServerError;

/// Removes a socket file left behind at `path` by a process that is gone. Refuses to touch a
/// file that is not a socket, or a socket that a live server still accepts connections on.
pub(super) fn remove_stale(path: &Path) -> Result<(), ApiServerError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ApiServerError::Inspect {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ApiServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ApiServerError::InUse {
            path: path.to_path_buf(),
        });
    }
    std::fs::remove_file(path).map_err(|source| ApiServerError::RemoveStale {
        path: path.to_path_buf(),
        source,
    })
}

/// The socket file this server created, identified by device and inode so that a file
/// someone else put at the same path later is left alone.
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    /// Binds a listening socket at `path` (which must not exist).
    pub(super) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ApiServerError> {
        let listener = UnixListener::bind(path).map_err(|source| ApiServerError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
        let identity = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok((
            listener,
            SocketFile {
                path: path.to_path_buf(),
                identity,
            },
        ))
    }

    /// The socket's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file if it is still the one this server bound.
    pub(super) fn remove(&self) {
        let current = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current.is_some() && current == self.identity {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!(
                    "could not remove the API socket {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}
