//! What the API says about recordings: the buffers to start (with their filters and
//! retention) and the status it reports, and their translation to the `replay` crate.

use std::path::PathBuf;
use std::str::FromStr;

use replay::capture::format::header::BlockMode;
use replay::filter::{Ipv4Prefix, ProtocolMatch};
use replay::frame::MacAddr;
use replay::{BufferConfig, BufferStatus, Direction, Filter, KindClass, OverflowPolicy};
use replay::{Retention, SourceTable};
use serde::{Deserialize, Serialize};

/// `PUT /recording`: start recording into these buffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingStart {
    /// One or more capture buffers, each with its own directory, filter and retention.
    pub buffers: Vec<BufferSpec>,
}

/// Block data kept by a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockData {
    /// The bytes of every read and write.
    Full,
    /// Only their hashes.
    Compact,
}

/// What a buffer does when its writer falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// The recorded device waits (nothing is lost).
    Backpressure,
    /// Events are dropped and a gap marker counts them.
    Drop,
}

/// One capture buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSpec {
    /// Its name (printable ASCII without spaces, at most 64 bytes).
    pub name: String,
    /// Its directory (created if missing; an earlier recording there is continued).
    pub dir: PathBuf,
    /// Which events it keeps (all when omitted; markers always).
    #[serde(default)]
    pub filter: FilterSpec,
    /// Keep at least the last this many seconds of VM time (all when omitted).
    #[serde(default)]
    pub window_secs: Option<u64>,
    /// Keep at most about this many bytes (no limit when omitted).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// `full` (default) or `compact` block data.
    #[serde(default)]
    pub block_data: Option<BlockData>,
    /// `backpressure` (default) or `drop`.
    #[serde(default)]
    pub overflow: Option<Overflow>,
    /// Bytes the in-memory ring holds (default 8 MiB).
    #[serde(default)]
    pub ring_bytes: Option<usize>,
    /// Segment size at which a new one starts (default 64 MiB).
    #[serde(default)]
    pub max_segment_bytes: Option<u64>,
}

/// A filter, in text: each criterion that is given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// `net`, `blk`, `serial`, `marker`.
    #[serde(default)]
    pub classes: Vec<String>,
    /// `in` or `out`.
    #[serde(default)]
    pub direction: Option<String>,
    /// Device names (`serial`, drive ids, interface ids).
    #[serde(default)]
    pub sources: Vec<String>,
    /// MAC addresses (either end of a frame).
    #[serde(default)]
    pub macs: Vec<String>,
    /// IPv4 addresses or prefixes (`10.0.0.7`, `10.0.0.0/24`; either end).
    #[serde(default)]
    pub ipv4: Vec<String>,
    /// TCP/UDP ports (either end).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// `arp`, `ipv4`, `ipv6`, `icmp`, `tcp`, `udp`, ...
    #[serde(default)]
    pub protocols: Vec<String>,
}

fn parse_all<T: FromStr>(values: &[String]) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    values
        .iter()
        .map(|v| T::from_str(v).map_err(|e| e.to_string()))
        .collect()
}

impl FilterSpec {
    /// The filter, with device names resolved in `sources`.
    pub fn to_filter(&self, sources: &SourceTable) -> Result<Filter, String> {
        let mut f = Filter::all();
        if !self.classes.is_empty() {
            f.classes = Some(parse_all::<KindClass>(&self.classes)?.into_iter().collect());
        }
        if let Some(d) = &self.direction {
            f.direction = Some(Direction::from_str(d).map_err(|e| e.to_string())?);
        }
        if !self.sources.is_empty() {
            f.sources = Some(sources.ids_of(&self.sources)?);
        }
        f.net.macs = parse_all::<MacAddr>(&self.macs)?;
        f.net.ipv4 = parse_all::<Ipv4Prefix>(&self.ipv4)?;
        f.net.ports = self.ports.clone();
        f.net.protocols = parse_all::<ProtocolMatch>(&self.protocols)?;
        Ok(f)
    }
}

impl BufferSpec {
    /// The buffer's configuration for the recorder.
    pub fn to_config(&self, sources: &SourceTable) -> Result<BufferConfig, String> {
        let fail = |e: String| format!("buffer {:?}: {e}", self.name);
        let mut c = BufferConfig::new(&self.name, self.dir.clone());
        c.filter = self.filter.to_filter(sources).map_err(fail)?;
        c.retention = Retention {
            window_ns: self.window_secs.map(|s| s.saturating_mul(1_000_000_000)),
            max_bytes: self.max_bytes,
            ..Retention::default()
        };
        if let Some(b) = self.block_data {
            c.block_mode = match b {
                BlockData::Full => BlockMode::Full,
                BlockData::Compact => BlockMode::Compact,
            };
        }
        if let Some(o) = self.overflow {
            c.overflow = match o {
                Overflow::Backpressure => OverflowPolicy::Backpressure,
                Overflow::Drop => OverflowPolicy::Drop,
            };
        }
        if let Some(r) = self.ring_bytes {
            c.ring_bytes = r;
        }
        if let Some(m) = self.max_segment_bytes {
            c.max_segment_bytes = m;
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// `GET /recording`: whether a recording runs, and each buffer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// Whether a recording runs.
    pub recording: bool,
    /// The buffers of the running (or last) recording.
    pub buffers: Vec<BufferState>,
}

/// One buffer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferState {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Events recorded in this recording (markers included).
    pub events: u64,
    /// Bytes of the segments kept on disk.
    pub bytes: u64,
    /// VM time of the oldest event kept, in nanoseconds.
    pub oldest_vm_time_ns: Option<u64>,
    /// VM time of the newest event, in nanoseconds.
    pub newest_vm_time_ns: Option<u64>,
    /// Events dropped (`drop` overflow, failed writes), counted in gap markers.
    pub dropped_events: u64,
    /// Segments kept on disk.
    pub segments: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
}

impl From<&BufferStatus> for BufferState {
    fn from(s: &BufferStatus) -> Self {
        BufferState {
            name: s.name.clone(),
            dir: s.dir.clone(),
            events: s.events,
            bytes: s.bytes,
            oldest_vm_time_ns: s.oldest_vm_time_ns,
            newest_vm_time_ns: s.newest_vm_time_ns,
            dropped_events: s.dropped_events,
            segments: s.segments as u64,
            last_error: s.last_error.clone(),
        }
    }
}
