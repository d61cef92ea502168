//! What a capture buffer reports about itself.

use std::path::PathBuf;

use serde::Serialize;

/// The state of one capture buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BufferStatus {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Records written by this recorder (markers included).
    pub events: u64,
    /// Records in the segments kept on disk.
    pub events_retained: u64,
    /// Bytes of the segments kept on disk.
    pub bytes: u64,
    /// VM time of the oldest record kept on disk.
    pub oldest_vm_time_ns: Option<u64>,
    /// VM time of the newest record written.
    pub newest_vm_time_ns: Option<u64>,
    /// Events lost (ring overflow under the `Drop` policy, failed writes, too large).
    pub dropped_events: u64,
    /// Their payload bytes.
    pub dropped_bytes: u64,
    /// Segments kept on disk.
    pub segments: usize,
    /// Segments deleted by retention since the recorder started.
    pub segments_deleted: u64,
    /// Bytes waiting in the ring.
    pub queued_bytes: usize,
    /// The seq the next event will get.
    pub next_seq: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
    /// Whether the buffer has been stopped.
    pub stopped: bool,
}
