//! An NBD server (newstyle, fixed handshake, simple replies).
//!
//! [`NbdServer`] serves named exports (anything implementing [`NbdExport`]; [`MemExport`]
//! keeps one in memory) on Unix sockets and/or TCP, one thread per connection, so that
//! ordinary clients (`qemu-img`, `nbdinfo`, `nbdcopy`, `nbd-client`) can read and write
//! them:
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use blockstore::nbd::{MemExport, NbdServer};
//!
//! let server = NbdServer::builder()
//!     .export("scratch", Arc::new(Mutex::new(MemExport::new(16 << 20))))
//!     .unix_socket("/tmp/nbd.sock")
//!     .start()?;
//! // qemu-img info 'nbd+unix:///scratch?socket=/tmp/nbd.sock'
//! server.shutdown();
//! # Ok::<(), blockstore::nbd::NbdError>(())
//! ```
//!
//! Protocol choices:
//! - Handshake: fixed newstyle with `NBD_FLAG_NO_ZEROES`; options `NBD_OPT_EXPORT_NAME`,
//!   `NBD_OPT_ABORT`, `NBD_OPT_LIST`, `NBD_OPT_INFO` and `NBD_OPT_GO` (replying
//!   `NBD_INFO_EXPORT`, `NBD_INFO_BLOCK_SIZE` and, on request, `NBD_INFO_NAME`). Structured
//!   replies, TLS and everything else get `NBD_REP_ERR_UNSUP`.
//! - Transmission: `READ`, `WRITE`, `DISC`, `FLUSH`, `TRIM`, `WRITE_ZEROES` (with
//!   `NO_HOLE` passed to the export), `CACHE` (checked, then ignored); `FUA` flushes after
//!   the write. Flags advertised: `HAS_FLAGS`, `SEND_FLUSH`, `CAN_MULTI_CONN`, and
//!   `SEND_FUA`, `SEND_TRIM`, `SEND_WRITE_ZEROES` for writable exports or `READ_ONLY`.
//! - Block sizes: minimum = the export's [`NbdExport::block_size`], preferred =
//!   max(4096, minimum), maximum payload = 32 MiB. Unaligned requests get `NBD_EINVAL`.
//! - Errors: reads and trims past the end `NBD_EINVAL`, writes and zeroing past the end
//!   `NBD_ENOSPC` (as the protocol recommends), changes to a read-only export `NBD_EPERM`,
//!   reads or writes over 32 MiB `NBD_EINVAL` (a write's payload is skipped, the
//!   connection stays), unknown commands or flags `NBD_EINVAL`, export failures `NBD_EIO`
//!   (see [`NbdExport`] for the mapping). Input the protocol cannot recover from (bad
//!   magic, unknown client flags, an unknown name in `NBD_OPT_EXPORT_NAME`) closes that
//!   connection only.
//! - Limits: option data up to 64 KiB is read (longer options are skipped, up to 16 MiB,
//!   and answered `NBD_REP_ERR_TOO_BIG`), names up to 4096 bytes, 10,000 options per
//!   handshake, one deadline for the whole handshake (30 s by default), 128 connections
//!   at once by default.
//! - Access: NBD has no authentication. TCP listeners must be loopback unless remote
//!   clients are allowed explicitly; a Unix socket is as reachable as its directory
//!   lets it be (the file gets the process umask).

mod connection;
mod error;
mod export;
mod exports;
mod handshake;
mod listener;
mod mem;
pub mod proto;
mod server;
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;
mod transmission;

pub use error::NbdError;
pub use export::{NbdExport, SharedExport};
pub use exports::MAX_NAME_LEN;
pub use handshake::{MAX_OPTIONS, MAX_OPTION_LEN, MAX_OPTION_SKIP, MAX_PAYLOAD};
pub use mem::MemExport;
pub use server::{NbdServer, NbdServerBuilder, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
