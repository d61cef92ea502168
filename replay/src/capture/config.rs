//! How each capture buffer records: where, what, how long, and what to do when the disk
//! cannot keep up.

use std::path::PathBuf;
use std::time::Duration;

use super::format::header::BlockMode;
use crate::error::{CaptureError, Result};
use crate::filter::Filter;
use crate::source::check_name;

/// What `record()` does when a buffer's in-memory ring is full.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum OverflowPolicy {
    /// Block the caller until the writer has made room (nothing is lost; the guest's
    /// device slows down to the disk's pace).
    #[default]
    Backpressure,
    /// Drop the event; a `Gap` marker counting what was dropped is written before the next
    /// event that fits.
    Drop,
}

/// How much of a buffer is kept on disk. Old segments are deleted whole, only where a
/// replayable unit starts (see the crate documentation on retention).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retention {
    /// Keep (at least) the last this many nanoseconds of VM time.
    pub window_ns: Option<u64>,
    /// Keep at most about this many bytes of segments.
    pub max_bytes: Option<u64>,
    /// Cut only where a segment starts at a snapshot that still exists (default). Without
    /// it any segment boundary is a cut point, for captures kept only for inspection.
    pub require_snapshot: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            window_ns: None,
            max_bytes: None,
            require_snapshot: true,
        }
    }
}

impl Retention {
    /// Whether anything is ever deleted.
    pub fn is_unlimited(&self) -> bool {
        self.window_ns.is_none() && self.max_bytes.is_none()
    }
}

/// One capture buffer.
#[derive(Clone, Debug)]
pub struct BufferConfig {
    /// Its name (printable ASCII, no spaces, at most 64 bytes), stored in segment headers.
    pub name: String,
    /// Its directory (created if missing; a directory holding an earlier recording of the
    /// same buffer is continued, with a new session).
    pub dir: PathBuf,
    /// Which events it keeps (markers are always kept).
    pub filter: Filter,
    /// How much it keeps.
    pub retention: Retention,
    /// Whether block data is stored, or only its hash.
    pub block_mode: BlockMode,
    /// What happens when the writer falls behind.
    pub overflow: OverflowPolicy,
    /// Bytes of events the in-memory ring holds before the overflow policy applies.
    pub ring_bytes: usize,
    /// A segment is closed and a new one started once it reaches this size.
    pub max_segment_bytes: u64,
    /// While events arrive, the writer makes them durable (fsync) and rewrites the index
    /// at least this often.
    pub sync_interval: Duration,
}

impl BufferConfig {
    /// A buffer keeping everything, with default sizes: an 8 MiB ring, 64 MiB segments,
    /// a sync every second, backpressure, full block data, no retention limit.
    pub fn new(name: &str, dir: impl Into<PathBuf>) -> BufferConfig {
        BufferConfig {
            name: name.to_string(),
            dir: dir.into(),
            filter: Filter::all(),
            retention: Retention::default(),
            block_mode: BlockMode::Full,
            overflow: OverflowPolicy::Backpressure,
            ring_bytes: 8 << 20,
            max_segment_bytes: 64 << 20,
            sync_interval: Duration::from_secs(1),
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| CaptureError::InvalidConfig {
            buffer: self.name.clone(),
            problem,
        };
        check_name(&self.name).map_err(|p| bad(format!("name: {p}")))?;
        if self.ring_bytes < 4096 {
            return Err(bad(format!(
                "ring_bytes {} is below the minimum of 4096",
                self.ring_bytes
            )));
        }
        if self.max_segment_bytes < 4096 {
            return Err(bad(format!(
                "max_segment_bytes {} is below the minimum of 4096",
                self.max_segment_bytes
            )));
        }
        if self.sync_interval.is_zero() {
            return Err(bad("sync_interval must be positive".to_string()));
        }
        Ok(())
    }
}
