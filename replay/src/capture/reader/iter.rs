//! Iterating a buffer's events in seq order, checking continuity on the way.

use std::collections::VecDeque;

use super::problem::{Problem, ProblemKind, Severity};
use super::scan::{Scanned, Scanner};
use super::{seq_after, CaptureReader, Query, SegmentInfo};
use crate::codec::event::decode_event;
use crate::event::{Event, EventKind};

/// An event and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The event.
    pub event: Event,
    /// The index of its segment in [`CaptureReader::segments`].
    pub segment: usize,
    /// The record's byte offset in the segment file.
    pub offset: u64,
}

/// The events a [`Query`] selects, interleaved with the problems met on the way (as
/// `Err`). Iteration goes on after a problem wherever the data allows.
pub struct Events<'r> {
    reader: &'r CaptureReader,
    query: Query,
    next_segment: usize,
    current: Option<(usize, Scanner)>,
    expected: Option<u64>,
    last_time: Option<(u64, u64)>,
    pending: VecDeque<Result<RecordedEvent, Problem>>,
    finished: bool,
}

impl<'r> Events<'r> {
    pub(super) fn new(reader: &'r CaptureReader, query: Query) -> Events<'r> {
        // Skip the segments wholly before the start seq.
        let first = match query.from_seq {
            Some(s) => {
                let segs = reader.segments();
                let mut i = 0;
                while i + 1 < segs.len() && segs[i + 1].name_seq <= s {
                    i += 1;
                }
                i
            }
            None => 0,
        };
        Events {
            reader,
            query,
            next_segment: first,
            current: None,
            expected: None,
            last_time: None,
            pending: VecDeque::new(),
            finished: false,
        }
    }

    /// Opens the next segment; false when there is none.
    fn open_next(&mut self) -> bool {
        let segs = self.reader.segments();
        while self.next_segment < segs.len() {
            let i = self.next_segment;
            self.next_segment += 1;
            let seg = &segs[i];
            let Some(header) = &seg.header else {
                // A header cut short in the newest segment is a segment the writer was
                // creating when it stopped: it holds nothing.
                let severity = if seg.header_torn && i + 1 == segs.len() {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let p = make_problem(
                    seg,
                    Some(0),
                    None,
                    severity,
                    ProblemKind::BadHeader {
                        problem: seg.header_error.clone().unwrap_or_default(),
                    },
                );
                self.pending.push_back(Err(p));
                continue;
            };
            if header.first_seq != seg.name_seq {
                let p = make_problem(
                    seg,
                    Some(0),
                    Some(header.first_seq),
                    Severity::Error,
                    ProblemKind::HeaderMismatch {
                        problem: format!(
                            "the header says the first seq is {}, the file name {}",
                            header.first_seq, seg.name_seq
                        ),
                    },
                );
                self.pending.push_back(Err(p));
            }
            if self.query.to_seq.is_some_and(|t| seg.name_seq > t) {
                self.finished = true;
                return false;
            }
            let file = match seg.open_file() {
                Ok(f) => f,
                Err(e) => {
                    let p = make_problem(
                        seg,
                        None,
                        None,
                        Severity::Error,
                        ProblemKind::BadHeader {
                            problem: e.to_string(),
                        },
                    );
                    self.pending.push_back(Err(p));
                    continue;
                }
            };
            let mut start = seg.header_len;
            // Seek by the index when the range starts inside this segment.
            if let Some(idx) = &seg.index {
                let entry = match (self.query.from_seq, self.query.from_vm_ns) {
                    (Some(s), _) if s > seg.name_seq => idx.entry_for_seq(s),
                    (None, Some(t)) => idx.entry_for_time(t),
                    _ => None,
                };
                if let Some(e) = entry {
                    start = e.offset;
                    self.expected = Some(e.seq);
                }
            }
            let mut scanner = Scanner::new(file, &seg.path, seg.file_len, start);
            scanner.min_seq = self.expected.unwrap_or(seg.name_seq);
            self.current = Some((i, scanner));
            return true;
        }
        false
    }

    /// Reads one record (or problem) of the current segment into `pending`; false at its
    /// end.
    fn step(&mut self) -> bool {
        let Some((i, scanner)) = &mut self.current else {
            return false;
        };
        let i = *i;
        let seg = &self.reader.segments()[i];
        let item = match scanner.next() {
            None => return false,
            Some(Ok(item)) => item,
            Some(Err(e)) => {
                let p = make_problem(
                    seg,
                    Some(scanner.pos()),
                    None,
                    Severity::Error,
                    ProblemKind::BadRecord {
                        problem: e.to_string(),
                        skipped_bytes: 0,
                    },
                );
                self.pending.push_back(Err(p));
                return false;
            }
        };
        match item {
            Scanned::Bad {
                offset,
                skipped,
                problem,
                at_end,
            } => {
                // Damage at the very end, past what the index says was completed, is
                // a write the writer did not finish; anything else is corruption.
                let torn = at_end && offset >= seg.claimed();
                let (severity, kind) = if torn {
                    (Severity::Warning, ProblemKind::TornTail { bytes: skipped })
                } else {
                    (
                        Severity::Error,
                        ProblemKind::BadRecord {
                            problem,
                            skipped_bytes: skipped,
                        },
                    )
                };
                let p = make_problem(seg, Some(offset), self.expected, severity, kind);
                self.pending.push_back(Err(p));
            }
            Scanned::Record { offset, payload } => match decode_event(&payload) {
                Err(e) => {
                    let p = make_problem(
                        seg,
                        Some(offset),
                        self.expected,
                        Severity::Error,
                        ProblemKind::BadRecord {
                            problem: format!("payload {e}"),
                            skipped_bytes: 8 + payload.len() as u64,
                        },
                    );
                    self.pending.push_back(Err(p));
                }
                Ok(event) => {
                    self.check_order(i, offset, &event);
                    self.expected = Some(seq_after(event.seq, &event.kind));
                    if let Some((_, sc)) = &mut self.current {
                        sc.min_seq = self.expected.unwrap_or(0);
                    }
                    if self.query.to_seq.is_some_and(|t| event.seq > t) {
                        self.finished = true;
                        return false;
                    }
                    if self.query.matches(&event) {
                        self.pending.push_back(Ok(RecordedEvent {
                            event,
                            segment: i,
                            offset,
                        }));
                    }
                }
            },
        }
        true
    }

    fn check_order(&mut self, i: usize, offset: u64, event: &Event) {
        let seg = &self.reader.segments()[i];
        if let Some(exp) = self.expected {
            if event.seq != exp {
                let kind = if event.seq > exp {
                    ProblemKind::SeqGap {
                        expected: exp,
                        found: event.seq,
                    }
                } else {
                    ProblemKind::SeqBackwards {
                        expected: exp,
                        found: event.seq,
                    }
                };
                let p = make_problem(seg, Some(offset), Some(event.seq), Severity::Error, kind);
                self.pending.push_back(Err(p));
            }
        }
        if matches!(event.kind, EventKind::RecordingStarted) {
            // A new session: its VM time starts afresh.
            self.last_time = None;
        }
        let session = seg.header.as_ref().map_or(0, |h| h.session_unix_ns);
        if let Some((s, t)) = self.last_time {
            if s == session && event.vm_time_ns < t {
                let p = make_problem(
                    seg,
                    Some(offset),
                    Some(event.seq),
                    Severity::Error,
                    ProblemKind::TimeBackwards {
                        previous_ns: t,
                        found_ns: event.vm_time_ns,
                    },
                );
                self.pending.push_back(Err(p));
            }
        }
        self.last_time = Some((session, event.vm_time_ns));
    }
}

fn make_problem(
    seg: &SegmentInfo,
    offset: Option<u64>,
    seq: Option<u64>,
    severity: Severity,
    kind: ProblemKind,
) -> Problem {
    Problem {
        file: seg.path.clone(),
        offset,
        seq,
        severity,
        kind,
    }
}

impl Iterator for Events<'_> {
    type Item = Result<RecordedEvent, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            if self.current.is_none() && !self.open_next() {
                if self.pending.is_empty() {
                    self.finished = true;
                }
                continue;
            }
            if !self.step() {
                self.current = None;
            }
        }
    }
}
