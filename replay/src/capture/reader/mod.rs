//! Reading capture buffers: list segments with their seq and time ranges and snapshots,
//! iterate events (by range and filter), and verify everything (headers, CRCs, indexes,
//! seq continuity), reporting each problem with its file, byte offset and seq and reading
//! on past it where possible.
//!
//! A reader never changes a file. It works on a buffer being written too: each segment is
//! read up to the length it had when the reader looked.

mod iter;
mod problem;
mod query;
mod scan;
mod verify;

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use iter::{Events, RecordedEvent};
pub use problem::{Problem, ProblemKind, Severity};
pub use query::Query;
pub use verify::VerifyReport;

use self::scan::{Scanned, Scanner};
use super::format::files::{read_header, read_index};
use super::format::header::SegmentHeader;
use super::format::index::SegmentIndex;
use super::format::{index_path, parse_segment_name, SEGMENT_SUFFIX};
use crate::codec::event::decode_event;
use crate::error::{CaptureError, Result};
use crate::event::EventKind;

/// The state of a segment's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IndexState {
    /// No index file.
    Missing,
    /// The index file cannot be read, or does not belong to the segment.
    Bad {
        /// Why.
        problem: String,
    },
    /// The index covers part of the segment.
    Stale {
        /// Bytes covered.
        covered_bytes: u64,
    },
    /// The index covers the whole segment, which may still grow.
    Current,
    /// The index covers the whole segment, which the writer closed.
    Closed,
}

/// One segment of a buffer.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// The first seq its file name says.
    pub name_seq: u64,
    /// Its length when listed.
    pub file_len: u64,
    /// Its header, if readable.
    pub header: Option<SegmentHeader>,
    /// Why the header is not readable.
    pub header_error: Option<String>,
    /// The file ends inside its header (the writer was interrupted creating it).
    pub header_torn: bool,
    /// The offset of its first record.
    pub header_len: u64,
    /// Its index, if readable and belonging to it.
    pub index: Option<SegmentIndex>,
    /// The index's state.
    pub index_state: IndexState,
    /// Good records.
    pub records: u64,
    /// The seq of its last good record.
    pub last_seq: Option<u64>,
    /// The seq after its last good record.
    pub next_seq: Option<u64>,
    /// VM time of its first good record.
    pub first_vm_ns: Option<u64>,
    /// VM time of its last good record.
    pub last_vm_ns: Option<u64>,
    /// Bytes a readable index of this segment says were written (even if the file is
    /// shorter now): damage before that point is not a torn write.
    claimed_bytes: u64,
}

impl SegmentInfo {
    /// The snapshot the segment starts at, if it does.
    pub fn snapshot(&self) -> Option<&str> {
        self.header.as_ref().and_then(|h| h.start.snapshot())
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Bytes of the segment the index covers (0 without a usable index).
    pub(crate) fn covered(&self) -> u64 {
        self.index.as_ref().map_or(0, |i| i.covered_bytes)
    }

    /// Bytes the writer had completed by its index's account.
    pub(crate) fn claimed(&self) -> u64 {
        self.claimed_bytes
    }

    fn open_file(&self) -> Result<File> {
        File::open(&self.path).map_err(|e| CaptureError::io(&self.path, "open", e))
    }
}

/// A capture buffer directory, opened for reading.
#[derive(Debug)]
pub struct CaptureReader {
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
}

/// The seq a record after `seq` holding `kind` gets.
pub(crate) fn seq_after(seq: u64, kind: &EventKind) -> u64 {
    match kind {
        EventKind::Gap { lost_events, .. } => seq.saturating_add((*lost_events).max(1)),
        _ => seq.saturating_add(1),
    }
}

impl CaptureReader {
    /// Opens the buffer in `dir`: lists its segments, reads their headers and indexes, and
    /// summarises each (from its index, scanning what the index does not cover).
    pub fn open(dir: &Path) -> Result<CaptureReader> {
        let rd = std::fs::read_dir(dir).map_err(|e| CaptureError::io(dir, "read directory", e))?;
        let mut found = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| CaptureError::io(dir, "read directory", e))?;
            let name = entry.file_name();
            if let Some(seq) = name.to_str().and_then(parse_segment_name) {
                found.push((seq, entry.path()));
            }
        }
        found.sort();
        let mut segments = Vec::with_capacity(found.len());
        for (seq, path) in found {
            segments.push(load_segment(seq, path)?);
        }
        Ok(CaptureReader {
            dir: dir.to_path_buf(),
            segments,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The buffer's name (from the newest readable header).
    pub fn buffer_name(&self) -> Option<&str> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.header.as_ref().map(|h| h.buffer.as_str()))
    }

    /// The newest readable header (for its source table).
    pub fn latest_header(&self) -> Option<&SegmentHeader> {
        self.segments.iter().rev().find_map(|s| s.header.as_ref())
    }

    /// Snapshots at which segments start, with the segment's first seq and VM time.
    pub fn snapshots(&self) -> Vec<(String, u64, Option<u64>)> {
        self.segments
            .iter()
            .filter_map(|s| {
                s.snapshot()
                    .map(|id| (id.to_string(), s.name_seq, s.first_vm_ns))
            })
            .collect()
    }

    /// The seq the next record appended to this buffer should get (0 if it is empty).
    pub fn next_seq(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| s.next_seq)
            .max()
            .unwrap_or(0)
    }

    /// Total good records.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// The events the query selects, in seq order, with the problems met on the way.
    pub fn events(&self, query: &Query) -> Result<Events<'_>> {
        let mut q = query.clone();
        if let Some(id) = &query.from_snapshot {
            let seg = self
                .segments
                .iter()
                .rev()
                .find(|s| s.snapshot() == Some(id.as_str()))
                .ok_or_else(|| CaptureError::UnknownSnapshot {
                    dir: self.dir.clone(),
                    id: id.clone(),
                })?;
            q.from_seq = Some(q.from_seq.map_or(seg.name_seq, |s| s.max(seg.name_seq)));
        }
        Ok(Events::new(self, q))
    }

    /// Checks everything: headers, every record's CRC and decoding, seq continuity, VM
    /// time order, and each index against its segment.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(self)
    }
}

/// Finds buffer directories: `root` itself if it holds segments, else its subdirectories
/// that do (sorted by name).
pub fn find_buffers(root: &Path) -> Result<Vec<PathBuf>> {
    if holds_segments(root)? {
        return Ok(vec![root.to_path_buf()]);
    }
    let rd = std::fs::read_dir(root).map_err(|e| CaptureError::io(root, "read directory", e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| CaptureError::io(root, "read directory", e))?;
        let p = entry.path();
        if p.is_dir() && holds_segments(&p)? {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn holds_segments(dir: &Path) -> Result<bool> {
    let rd = std::fs::read_dir(dir).map_err(|e| CaptureError::io(dir, "read directory", e))?;
    for entry in rd {
        let entry = entry.map_err(|e| CaptureError::io(dir, "read directory", e))?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(SEGMENT_SUFFIX)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn load_segment(name_seq: u64, path: PathBuf) -> Result<SegmentInfo> {
    let file = File::open(&path).map_err(|e| CaptureError::io(&path, "open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| CaptureError::io(&path, "stat", e))?
        .len();
    let mut info = SegmentInfo {
        path: path.clone(),
        name_seq,
        file_len,
        header: None,
        header_error: None,
        header_torn: false,
        header_len: 0,
        index: None,
        index_state: IndexState::Missing,
        records: 0,
        last_seq: None,
        next_seq: None,
        first_vm_ns: None,
        last_vm_ns: None,
        claimed_bytes: 0,
    };
    match read_header(&file, &path, file_len) {
        Ok((h, len)) => {
            info.header = Some(h);
            info.header_len = len;
        }
        Err(CaptureError::Io { source, .. }) => {
            return Err(CaptureError::io(&path, "read header", source))
        }
        Err(e) => {
            info.header_torn = matches!(e, CaptureError::Truncated { .. });
            info.header_error = Some(e.to_string());
            return Ok(info);
        }
    }
    let ipath = index_path(&path);
    if ipath.exists() {
        match read_index(&ipath) {
            Ok(idx) if Some(idx.first_seq) != info.header.as_ref().map(|h| h.first_seq) => {
                info.index_state = IndexState::Bad {
                    problem: format!("it belongs to a segment starting at seq {}", idx.first_seq),
                };
            }
            Ok(idx) if idx.covered_bytes > file_len || idx.covered_bytes < info.header_len => {
                info.claimed_bytes = idx.covered_bytes;
                info.index_state = IndexState::Bad {
                    problem: format!(
                        "it covers {} bytes of a {file_len}-byte segment",
                        idx.covered_bytes
                    ),
                };
            }
            Ok(idx) => {
                info.claimed_bytes = idx.covered_bytes;
                info.index_state = if idx.covered_bytes < file_len {
                    IndexState::Stale {
                        covered_bytes: idx.covered_bytes,
                    }
                } else if idx.closed {
                    IndexState::Closed
                } else {
                    IndexState::Current
                };
                info.index = Some(idx);
            }
            Err(e) => {
                info.index_state = IndexState::Bad {
                    problem: e.to_string(),
                }
            }
        }
    }
    summarise(&mut info, file)?;
    Ok(info)
}

/// Fills the record counts and ranges: from the index for what it covers, by scanning for
/// the rest.
fn summarise(info: &mut SegmentInfo, file: File) -> Result<()> {
    let mut from = info.header_len;
    if let Some(idx) = &info.index {
        let s = idx.summary;
        if s.records > 0 {
            info.records = s.records;
            info.last_seq = Some(s.last_seq);
            info.next_seq = Some(s.next_seq);
            info.first_vm_ns = Some(s.first_vm_ns);
            info.last_vm_ns = Some(s.last_vm_ns);
        }
        from = idx.covered_bytes;
    }
    let mut scanner = Scanner::new(file, &info.path, info.file_len, from);
    while let Some(item) = scanner.next() {
        if let Scanned::Record { payload, .. } = item? {
            let Ok(ev) = decode_event(&payload) else {
                continue;
            };
            info.records += 1;
            info.first_vm_ns.get_or_insert(ev.vm_time_ns);
            info.last_vm_ns = Some(ev.vm_time_ns);
            info.last_seq = Some(ev.seq);
            info.next_seq = Some(seq_after(ev.seq, &ev.kind));
        }
    }
    Ok(())
}
