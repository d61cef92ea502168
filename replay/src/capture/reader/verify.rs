//! Checking a whole buffer.

use std::collections::HashMap;

use serde::Serialize;

use super::problem::{Problem, ProblemKind, Severity};
use super::{seq_after, CaptureReader, IndexState, Query};
use crate::capture::format::index_path;
use crate::error::Result;

/// The outcome of [`CaptureReader::verify`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Good records read.
    pub records: u64,
    /// Everything found wrong, in file order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Problems of severity `Error`.
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Whether no error was found (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
}

/// What the scan saw of a segment, up to its index's covered bytes.
#[derive(Default)]
struct Seen {
    records: u64,
    first_vm: Option<u64>,
    last_vm: Option<u64>,
    last_seq: Option<u64>,
    next_seq: Option<u64>,
    /// Record offset -> (seq, VM time).
    at: HashMap<u64, (u64, u64)>,
}

pub(super) fn verify(reader: &CaptureReader) -> Result<VerifyReport> {
    let segs = reader.segments();
    let mut report = VerifyReport {
        segments: segs.len(),
        ..VerifyReport::default()
    };
    let mut seen: Vec<Seen> = segs.iter().map(|_| Seen::default()).collect();
    for item in reader.events(&Query::default())? {
        match item {
            Ok(r) => {
                report.records += 1;
                let seg = &segs[r.segment];
                if r.offset < seg.covered() {
                    let s = &mut seen[r.segment];
                    s.records += 1;
                    s.first_vm.get_or_insert(r.event.vm_time_ns);
                    s.last_vm = Some(r.event.vm_time_ns);
                    s.last_seq = Some(r.event.seq);
                    s.next_seq = Some(seq_after(r.event.seq, &r.event.kind));
                    s.at.insert(r.offset, (r.event.seq, r.event.vm_time_ns));
                }
            }
            Err(p) => report.problems.push(p),
        }
    }
    for (seg, seen) in segs.iter().zip(&seen) {
        if seg.header.is_none() {
            continue;
        }
        let ipath = index_path(&seg.path);
        let problem = |severity, kind| Problem {
            file: ipath.clone(),
            offset: None,
            seq: None,
            severity,
            kind,
        };
        match &seg.index_state {
            IndexState::Missing => report
                .problems
                .push(problem(Severity::Warning, ProblemKind::IndexMissing)),
            IndexState::Bad { problem: p } => report.problems.push(problem(
                Severity::Error,
                ProblemKind::BadIndex { problem: p.clone() },
            )),
            IndexState::Stale { covered_bytes } => report.problems.push(problem(
                Severity::Warning,
                ProblemKind::IndexStale {
                    covered_bytes: *covered_bytes,
                    segment_bytes: seg.file_len,
                },
            )),
            IndexState::Current | IndexState::Closed => {}
        }
        let Some(idx) = &seg.index else {
            continue;
        };
        let mut mismatch = |what: String| {
            report.problems.push(problem(
                Severity::Error,
                ProblemKind::IndexMismatch { problem: what },
            ))
        };
        let s = idx.summary;
        if s.records != seen.records {
            mismatch(format!(
                "it counts {} records where the segment has {} good ones",
                s.records, seen.records
            ));
        } else if s.records > 0 {
            let scanned = (seen.last_seq, seen.next_seq, seen.first_vm, seen.last_vm);
            let indexed = (
                Some(s.last_seq),
                Some(s.next_seq),
                Some(s.first_vm_ns),
                Some(s.last_vm_ns),
            );
            if scanned != indexed {
                mismatch(format!(
                    "summary (last seq, next seq, first and last VM time) {indexed:?} \
                     differs from the segment's {scanned:?}"
                ));
            }
        }
        for e in &idx.entries {
            match seen.at.get(&e.offset) {
                Some(&(seq, t)) if seq == e.seq && t == e.vm_time_ns => {}
                Some(&(seq, t)) => mismatch(format!(
                    "entry at offset {} says seq {} at {} ns; the record there is seq {seq} at {t} ns",
                    e.offset, e.seq, e.vm_time_ns
                )),
                None => mismatch(format!(
                    "entry for seq {} points at offset {}, where no good record starts",
                    e.seq, e.offset
                )),
            }
        }
    }
    Ok(report)
}
