//! Errors: [`NbdError`] for setting up and running a server, [`ConnError`] for why one
//! connection ended.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a server could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// Listening on a Unix socket failed.
    #[error("cannot listen on Unix socket {}: {source}", path.display())]
    BindUnix {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Listening on a TCP address failed.
    #[error("cannot listen on TCP address {addr}: {source}")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// A TCP address that is not loopback was given without `allow_remote`.
    #[error(
        "refusing to listen on non-loopback address {addr}: NBD has no authentication; \
         allow remote clients explicitly to do this"
    )]
    RemoteNotAllowed {
        /// The address.
        addr: SocketAddr,
    },
    /// The server was given no socket to listen on.
    #[error("an NBD server needs at least one Unix socket or TCP address to listen on")]
    NoListeners,
    /// An export name the protocol cannot carry.
    #[error("invalid NBD export name {name:?}: {reason}")]
    InvalidExportName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Two exports with the same name.
    #[error("NBD export {0:?} is defined twice")]
    DuplicateExport(String),
    /// The default export names no export.
    #[error("default NBD export {0:?} is not among the exports")]
    UnknownDefaultExport(String),
    /// A thread could not be started.
    #[error("cannot start NBD server thread: {0}")]
    Spawn(io::Error),
    /// Preparing a listener or the wake-up channel failed.
    #[error("cannot set up NBD server sockets: {0}")]
    Setup(io::Error),
}

/// Why a connection ended other than by the client's orderly goodbye. These end only the
/// connection they happened on; they are logged, not returned to the server's owner.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading or writing the socket failed (including the client hanging up mid-message).
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The client set handshake flags this server does not know.
    #[error("client sent unknown handshake flags {0:#x}")]
    BadClientFlags(u32),
    /// An option did not start with `IHAVEOPT`.
    #[error("option magic {0:#018x} is not IHAVEOPT")]
    BadOptionMagic(u64),
    /// An option too long to skip.
    #[error("option {option} carries {len} bytes, more than the server reads")]
    OptionTooLong {
        /// The option.
        option: u32,
        /// Its data length.
        len: u32,
    },
    /// The client kept negotiating far longer than any real client does.
    #[error("more than {0} options in one negotiation")]
    TooManyOptions(usize),
    /// `NBD_OPT_EXPORT_NAME` named no export (that option cannot report an error).
    #[error("NBD_OPT_EXPORT_NAME for unknown or invalid export {0:?}")]
    ExportNameRefused(String),
    /// A request header did not start with the request magic.
    #[error("request magic {0:#010x} is wrong")]
    BadRequestMagic(u32),
}
