//! Capture rings: the record half of record/replay.
//!
//! A [`Recorder`] stamps each event with VM time and guest progress from the VMM's
//! [`Clock`] and fans it out to one or more capture buffers ([`BufferConfig`]), each with
//! its own directory, [`Filter`](crate::filter::Filter), [`Retention`], block mode and
//! [`OverflowPolicy`]. Each buffer has a bounded in-memory ring drained by a writer
//! thread into segment files ([`format`]); a [`reader`] lists, reads and verifies them.

pub mod clock;
pub mod config;
pub mod export;
pub mod format;
pub mod reader;
pub mod recorder;
mod resume;
pub mod retention;
mod ring;
mod segment_writer;
pub mod status;
mod writer;

pub use clock::{Clock, ManualClock, SnapshotExists};
pub use config::{BufferConfig, OverflowPolicy, Retention};
pub use format::header::{BlockMode, SegmentHeader, SegmentStart};
pub use recorder::Recorder;
pub use status::BufferStatus;
