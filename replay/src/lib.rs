//! Record and replay for Reprise: the event model and the capture rings.
//!
//! The VMM's recording taps call a [`Recorder`](capture::Recorder) with every event that
//! crosses the guest boundary ([`event`]); the recorder stamps VM time and guest progress
//! and fans events out to capture buffers: bounded, segmented, checksummed, indexed logs
//! on disk that keep a window of VM time or bytes, cut at snapshots so that "snapshot S +
//! the events after S" always replays together. [`capture::reader`] lists, reads and
//! verifies them; [`capture::export`] writes network events as pcapng.
//!
//! - [`event`]: `Event`, `EventKind` (inputs, outputs, markers).
//! - [`source`]: the table naming devices.
//! - [`filter`] and [`frame`]: selecting events (class, direction, source, MAC, IPv4
//!   prefix, port, protocol).
//! - [`capture`]: recorder, buffers, formats, retention, reader, export.
//! - [`codec`]: the binary encoding of records; [`hash`]: the block data hash (XXH3-128).
//! - [`pcapng`]: the pcapng writer.
//! - [`player`]: what a replay delivers: the part of a capture, include/exclude rules,
//!   seeded fault injection.
//!
//! This crate knows nothing of KVM or HTTP. Everything read from disk is untrusted: sizes
//! are checked against [`limits`] before allocation, every record carries a CRC32, and
//! errors name the file and offset.

pub mod capture;
pub mod codec;
pub mod error;
pub mod event;
pub mod filter;
pub mod frame;
pub mod fsutil;
pub mod hash;
pub mod limits;
pub mod pcapng;
pub mod player;
pub mod source;

pub use capture::{BufferConfig, BufferStatus, Clock, OverflowPolicy, Recorder, Retention};
pub use error::{CaptureError, Result};
pub use event::{
    BlkData, BlkRequestType, Direction, Event, EventKind, GapReason, KindClass, SourceId,
};
pub use filter::Filter;
pub use hash::Hash128;
pub use source::{SourceInfo, SourceTable};
