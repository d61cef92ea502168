//! What a reader found wrong, and exactly where.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a problem is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected after a crash, nothing that was completely written is lost (a torn last
    /// record, an index missing or behind its segment).
    Warning,
    /// Data is damaged or inconsistent.
    Error,
}

/// What is wrong.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProblemKind {
    /// The segment header cannot be read (bad magic, unsupported version, checksum, cut
    /// short): the segment is skipped.
    BadHeader {
        /// Why.
        problem: String,
    },
    /// The header contradicts the file name or the buffer's other segments.
    HeaderMismatch {
        /// How.
        problem: String,
    },
    /// A record is damaged (bad length, checksum mismatch, undecodable payload); reading
    /// went on at the next good record.
    BadRecord {
        /// Why.
        problem: String,
        /// Bytes skipped to reach the next good record (or the end of the segment).
        skipped_bytes: u64,
    },
    /// The segment ends inside a record: the writer was interrupted while appending it.
    TornTail {
        /// Bytes after the last complete record.
        bytes: u64,
    },
    /// Sequence numbers jump forward: records are missing.
    SeqGap {
        /// The seq expected.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// A sequence number is not greater than the previous one.
    SeqBackwards {
        /// The seq expected.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// VM time goes backwards within a recording session.
    TimeBackwards {
        /// The previous record's VM time.
        previous_ns: u64,
        /// This record's.
        found_ns: u64,
    },
    /// The segment has no index (a reader scans it).
    IndexMissing,
    /// The index describes fewer bytes than the segment holds (the writer appended since).
    IndexStale {
        /// Bytes the index covers.
        covered_bytes: u64,
        /// The segment's length.
        segment_bytes: u64,
    },
    /// The index cannot be read.
    BadIndex {
        /// Why.
        problem: String,
    },
    /// The index disagrees with the segment.
    IndexMismatch {
        /// How.
        problem: String,
    },
}

/// A problem in a capture buffer, with its place.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Problem {
    /// The segment (or index) file.
    pub file: PathBuf,
    /// The byte offset in that file, where it applies.
    pub offset: Option<u64>,
    /// The seq of the record concerned; for a damaged record, the seq the next record was
    /// expected to have.
    pub seq: Option<u64>,
    /// How bad.
    pub severity: Severity,
    /// What.
    pub kind: ProblemKind,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::BadHeader { problem } => write!(f, "unreadable header: {problem}"),
            ProblemKind::HeaderMismatch { problem } => write!(f, "header mismatch: {problem}"),
            ProblemKind::BadRecord {
                problem,
                skipped_bytes,
            } => write!(f, "bad record: {problem} ({skipped_bytes} bytes skipped)"),
            ProblemKind::TornTail { bytes } => {
                write!(
                    f,
                    "torn last record: {bytes} bytes after the last complete record"
                )
            }
            ProblemKind::SeqGap { expected, found } => write!(
                f,
                "seq jumps from {expected} to {found}: {} records missing",
                found - expected
            ),
            ProblemKind::SeqBackwards { expected, found } => {
                write!(
                    f,
                    "seq {found} where {expected} was expected (goes backwards)"
                )
            }
            ProblemKind::TimeBackwards {
                previous_ns,
                found_ns,
            } => write!(
                f,
                "VM time goes backwards from {previous_ns} ns to {found_ns} ns"
            ),
            ProblemKind::IndexMissing => write!(f, "no index (the segment is scanned)"),
            ProblemKind::IndexStale {
                covered_bytes,
                segment_bytes,
            } => write!(
                f,
                "index covers {covered_bytes} of {segment_bytes} bytes (the rest is scanned)"
            ),
            ProblemKind::BadIndex { problem } => write!(f, "unreadable index: {problem}"),
            ProblemKind::IndexMismatch { problem } => write!(f, "index mismatch: {problem}"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: {}", self.file.display())?;
        if let Some(o) = self.offset {
            write!(f, ": offset {o}")?;
        }
        if let Some(s) = self.seq {
            write!(f, ": seq {s}")?;
        }
        write!(f, ": {}", self.kind)
    }
}
