//! Backends: where bytes cross the guest boundary.
//!
//! Device models talk only to these traits. Recording wraps a real backend with a tap that logs
//! what passes; replay substitutes a backend fed from a capture. Devices cannot tell which.

pub mod block;
pub mod net;
pub mod null;
pub mod raw_file;
pub mod tap;
pub mod unix_dgram;

pub use block::{BlockBackend, IoDirection};
pub use net::NetBackend;
pub use null::NullNet;
pub use raw_file::{RawFile, RawFileError, RawFileOptions};
pub use tap::{Tap, TapError};
pub use unix_dgram::{UnixDgram, UnixDgramError};
