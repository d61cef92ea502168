//! Divergence checking: a clone's outputs against the recorded ones, per device and in
//! order. Frames must be equal byte for byte, block writes must hit the same sectors with
//! the same data hash, and console output must be the same byte stream (however the
//! writes were cut into events).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::event::{Event, EventKind, KindClass, SourceId};
use crate::frame::FrameInfo;
use crate::source::SourceTable;

/// The first divergences kept in full (the rest are counted).
const KEPT: usize = 16;
/// Bytes of context shown around a difference.
const CONTEXT: usize = 32;

/// Where a clone's outputs stopped matching the recording.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Divergence {
    /// What went wrong: `mismatch`, `missing` (the recording has an output the clone did
    /// not produce) or `unexpected` (the clone produced more than was recorded).
    pub kind: &'static str,
    /// Index of the expected output among the replay's recorded outputs (in seq order).
    pub output_index: Option<u64>,
    /// Its seq in the capture.
    pub seq: Option<u64>,
    /// Its recorded VM time.
    pub recorded_vm_time_ns: Option<u64>,
    /// The clone's VM time when the divergence was seen.
    pub clone_vm_time_ns: u64,
    /// The device.
    pub source: String,
    /// The recorded output, summarised.
    pub expected: Option<String>,
    /// What the clone produced, summarised.
    pub actual: Option<String>,
    /// Hex dumps of both around the first differing byte.
    pub detail: String,
}

/// Output counts of a check.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CheckSummary {
    /// Recorded outputs the replay compares.
    pub expected: u64,
    /// Outputs the clone produced that were compared.
    pub checked: u64,
    /// Of those, equal to the recording.
    pub matched: u64,
    /// Divergences found.
    pub divergences: u64,
}

/// The expected outputs of one device.
#[derive(Default)]
struct Stream {
    /// Indexes (into `Checker::expected`) of frames or block writes still to come.
    pending: VecDeque<usize>,
    /// Console: the expected bytes, with the output index where each event starts.
    bytes: Vec<u8>,
    starts: Vec<(usize, usize)>,
    /// Console bytes compared so far.
    at: usize,
    /// Once a console stream diverges it is no longer compared (it would differ at
    /// every byte after an insertion).
    gave_up: bool,
}

/// Compares outputs as the clone produces them.
pub struct Checker {
    expected: Vec<Event>,
    streams: BTreeMap<SourceId, Stream>,
    classes: BTreeSet<KindClass>,
    sources: SourceTable,
    summary: CheckSummary,
    kept: Vec<Divergence>,
    /// Output units (frames, writes, console bytes) the clone produced: what the scheduler
    /// paces deliveries on.
    produced_units: u64,
}

/// How many pacing units an output counts for: one per frame or write, one per console
/// byte.
pub fn output_units(kind: &EventKind) -> u64 {
    match kind {
        EventKind::SerialOut { bytes } => bytes.len() as u64,
        EventKind::NetTx { .. } | EventKind::BlkWrite { .. } => 1,
        _ => 0,
    }
}

impl Checker {
    /// A checker expecting `outputs` (recorded outputs, in seq order) for the classes in
    /// `classes`.
    pub fn new(outputs: Vec<Event>, classes: BTreeSet<KindClass>, sources: SourceTable) -> Self {
        let mut streams: BTreeMap<SourceId, Stream> = BTreeMap::new();
        let mut expected = 0;
        for (i, e) in outputs.iter().enumerate() {
            if !classes.contains(&e.kind.class()) {
                continue;
            }
            let s = streams.entry(e.source).or_default();
            match &e.kind {
                EventKind::SerialOut { bytes } => {
                    s.starts.push((s.bytes.len(), i));
                    s.bytes.extend_from_slice(bytes);
                }
                EventKind::NetTx { .. } | EventKind::BlkWrite { .. } => s.pending.push_back(i),
                _ => continue,
            }
            expected += 1;
        }
        Checker {
            expected: outputs,
            streams,
            classes,
            sources,
            summary: CheckSummary {
                expected,
                ..CheckSummary::default()
            },
            kept: Vec::new(),
            produced_units: 0,
        }
    }

    /// Counts so far.
    pub fn summary(&self) -> CheckSummary {
        self.summary.clone()
    }

    /// The first divergences (up to 16).
    pub fn divergences(&self) -> &[Divergence] {
        &self.kept
    }

    /// Output units produced by the clone (see [`output_units`]).
    pub fn produced_units(&self) -> u64 {
        self.produced_units
    }

    /// Compares one output of the clone; returns the divergence it shows, if any.
    pub fn observe(
        &mut self,
        source: SourceId,
        kind: &EventKind,
        now_ns: u64,
    ) -> Option<Divergence> {
        self.produced_units += output_units(kind);
        if !self.classes.contains(&kind.class()) || output_units(kind) == 0 {
            return None;
        }
        let name = self.sources.name_of(source);
        let stream = self.streams.entry(source).or_default();
        let found = match kind {
            EventKind::SerialOut { bytes } => {
                compare_console(stream, &self.expected, bytes, now_ns, &name)
            }
            _ => {
                self.summary.checked += 1;
                match stream.pending.pop_front() {
                    None => Some(Divergence {
                        kind: "unexpected",
                        output_index: None,
                        seq: None,
                        recorded_vm_time_ns: None,
                        clone_vm_time_ns: now_ns,
                        source: name,
                        expected: None,
                        actual: Some(describe(kind)),
                        detail: String::new(),
                    }),
                    Some(i) => {
                        let want = &self.expected[i];
                        if same_output(&want.kind, kind) {
                            self.summary.matched += 1;
                            None
                        } else {
                            Some(Divergence {
                                kind: "mismatch",
                                output_index: Some(i as u64),
                                seq: Some(want.seq),
                                recorded_vm_time_ns: Some(want.vm_time_ns),
                                clone_vm_time_ns: now_ns,
                                source: name,
                                expected: Some(describe(&want.kind)),
                                actual: Some(describe(kind)),
                                detail: diff_detail(payload(&want.kind), payload(kind)),
                            })
                        }
                    }
                }
            }
        };
        if matches!(kind, EventKind::SerialOut { .. })
            && found.is_none()
            && !stream_gave_up(&self.streams, source)
        {
            self.summary.checked += 1;
            self.summary.matched += 1;
        }
        self.note(found)
    }

    /// Reports the recorded outputs the clone has not produced, as `missing` divergences
    /// (called when the replay ends).
    pub fn finish(&mut self, now_ns: u64) -> Vec<Divergence> {
        let mut missing = Vec::new();
        for (source, s) in &self.streams {
            let name = self.sources.name_of(*source);
            if let Some(&i) = s.pending.front() {
                missing.push((i, name.clone()));
            }
            if !s.gave_up && s.at < s.bytes.len() {
                let i = event_at(&s.starts, s.at);
                missing.push((i, name));
            }
        }
        missing.sort();
        let mut found = Vec::new();
        for (i, source) in missing {
            let want = &self.expected[i];
            let d = Divergence {
                kind: "missing",
                output_index: Some(i as u64),
                seq: Some(want.seq),
                recorded_vm_time_ns: Some(want.vm_time_ns),
                clone_vm_time_ns: now_ns,
                source,
                expected: Some(describe(&want.kind)),
                actual: None,
                detail: String::new(),
            };
            if let Some(d) = self.note(Some(d)) {
                found.push(d);
            }
        }
        for s in self.streams.values_mut() {
            s.pending.clear();
            s.at = s.bytes.len();
        }
        found
    }

    fn note(&mut self, found: Option<Divergence>) -> Option<Divergence> {
        let d = found?;
        self.summary.divergences += 1;
        if self.kept.len() < KEPT {
            self.kept.push(d.clone());
        }
        Some(d)
    }
}

fn stream_gave_up(streams: &BTreeMap<SourceId, Stream>, source: SourceId) -> bool {
    streams.get(&source).is_some_and(|s| s.gave_up)
}

/// Compares console bytes with the expected stream.
fn compare_console(
    s: &mut Stream,
    expected: &[Event],
    bytes: &[u8],
    now_ns: u64,
    name: &str,
) -> Option<Divergence> {
    if s.gave_up {
        return None;
    }
    let want = &s.bytes[s.at.min(s.bytes.len())..];
    let same = want.iter().zip(bytes).take_while(|(a, b)| a == b).count();
    if same == bytes.len() {
        s.at += bytes.len();
        return None;
    }
    s.gave_up = true;
    let at = s.at + same;
    let (kind, output_index, seq, time) = if at < s.bytes.len() {
        let i = event_at(&s.starts, at);
        (
            "mismatch",
            Some(i as u64),
            Some(expected[i].seq),
            Some(expected[i].vm_time_ns),
        )
    } else {
        ("unexpected", None, None, None)
    };
    let from = at.saturating_sub(CONTEXT).max(s.at.saturating_sub(CONTEXT));
    let line = |b: &[u8]| String::from_utf8_lossy(b).escape_debug().to_string();
    let expected_text = line(&s.bytes[from..(at + CONTEXT).min(s.bytes.len())]);
    Some(Divergence {
        kind,
        output_index,
        seq,
        recorded_vm_time_ns: time,
        clone_vm_time_ns: now_ns,
        source: name.to_string(),
        expected: Some(format!("console byte {at}: \"{expected_text}\"")),
        actual: Some(format!("\"{}\"", line(bytes))),
        detail: diff_detail(&s.bytes[s.at.min(s.bytes.len())..], bytes),
    })
}

/// The expected output whose console bytes include byte `at`.
fn event_at(starts: &[(usize, usize)], at: usize) -> usize {
    let k = starts.partition_point(|(start, _)| *start <= at);
    starts[k.saturating_sub(1)].1
}

/// Whether two outputs are the same (block writes by position, length and hash).
fn same_output(want: &EventKind, got: &EventKind) -> bool {
    match (want, got) {
        (EventKind::NetTx { frame: a }, EventKind::NetTx { frame: b }) => a == b,
        (
            EventKind::BlkWrite {
                sector: s1,
                len: l1,
                hash: h1,
                ..
            },
            EventKind::BlkWrite {
                sector: s2,
                len: l2,
                hash: h2,
                ..
            },
        ) => s1 == s2 && l1 == l2 && h1 == h2,
        _ => false,
    }
}

fn payload(kind: &EventKind) -> &[u8] {
    match kind {
        EventKind::NetTx { frame } => frame,
        EventKind::BlkWrite { data: Some(d), .. } => d,
        EventKind::SerialOut { bytes } => bytes,
        _ => &[],
    }
}

/// A one-line description of an output.
pub fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::NetTx { frame } | EventKind::NetRx { frame } => {
            format!(
                "{} bytes: {}",
                frame.len(),
                FrameInfo::parse(frame).summary()
            )
        }
        EventKind::BlkWrite {
            sector, len, hash, ..
        } => format!("write sector {sector} len {len} hash {hash}"),
        EventKind::SerialOut { bytes } | EventKind::SerialIn { bytes } => {
            format!("\"{}\"", String::from_utf8_lossy(bytes).escape_debug())
        }
        other => other.name().to_string(),
    }
}

/// Hex dumps of `a` and `b` around their first differing byte.
pub fn diff_detail(a: &[u8], b: &[u8]) -> String {
    if a.is_empty() && b.is_empty() {
        return String::new();
    }
    let first = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = first.saturating_sub(16) & !15;
    let mut out = format!(
        "first difference at byte {first} (expected {} bytes, got {})\n",
        a.len(),
        b.len()
    );
    for (label, bytes) in [("expected", a), ("actual  ", b)] {
        let to = (from + 64).min(bytes.len());
        for row in (from..to).step_by(16) {
            let end = (row + 16).min(to);
            let hex: Vec<String> = bytes[row..end].iter().map(|x| format!("{x:02x}")).collect();
            out.push_str(&format!("{label} {row:04x}: {}\n", hex.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceInfo;

    fn ev(seq: u64, source: u16, kind: EventKind) -> Event {
        Event {
            seq,
            vm_time_ns: seq * 1000,
            progress: 0,
            source: SourceId(source),
            kind,
        }
    }

    fn table() -> SourceTable {
        SourceTable::new(vec![
            SourceInfo::serial(0, "serial"),
            SourceInfo::blk(1, "blk0"),
            SourceInfo::net(2, "net0", None),
        ])
        .unwrap()
    }

    fn all() -> BTreeSet<KindClass> {
        [KindClass::Net, KindClass::Blk, KindClass::Serial].into()
    }

    fn out(bytes: &[u8]) -> EventKind {
        EventKind::SerialOut {
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn equal_outputs_in_any_console_chunking_match() {
        let recorded = vec![
            ev(1, 0, out(b"hello ")),
            ev(2, 2, EventKind::net_tx(vec![1; 60])),
            ev(3, 0, out(b"world\n")),
            ev(4, 1, EventKind::blk_write(8, vec![7; 512])),
        ];
        let mut c = Checker::new(recorded, all(), table());
        assert_eq!(c.summary().expected, 4);
        assert!(c
            .observe(SourceId(1), &EventKind::blk_write(8, vec![7; 512]), 1)
            .is_none());
        assert!(c.observe(SourceId(0), &out(b"hel"), 2).is_none());
        assert!(c.observe(SourceId(0), &out(b"lo world\n"), 3).is_none());
        assert!(c
            .observe(SourceId(2), &EventKind::net_tx(vec![1; 60]), 4)
            .is_none());
        assert!(c.finish(5).is_empty());
        assert_eq!(c.summary().divergences, 0);
        assert_eq!(c.produced_units(), 2 + 12);
    }

    #[test]
    fn first_difference_is_reported_with_its_event() {
        let recorded = vec![
            ev(10, 2, EventKind::net_tx(vec![1; 60])),
            ev(11, 2, EventKind::net_tx(vec![2; 60])),
        ];
        let mut c = Checker::new(recorded, all(), table());
        assert!(c
            .observe(SourceId(2), &EventKind::net_tx(vec![1; 60]), 1)
            .is_none());
        let mut other = vec![2; 60];
        other[20] = 9;
        let d = c
            .observe(SourceId(2), &EventKind::net_tx(other), 2)
            .unwrap();
        assert_eq!(d.kind, "mismatch");
        assert_eq!((d.output_index, d.seq), (Some(1), Some(11)));
        assert_eq!(d.source, "net0");
        assert!(
            d.detail.contains("first difference at byte 20"),
            "{}",
            d.detail
        );
        let extra = c
            .observe(SourceId(2), &EventKind::net_tx(vec![3; 60]), 3)
            .unwrap();
        assert_eq!(extra.kind, "unexpected");
        assert_eq!(c.summary().divergences, 2);
    }

    #[test]
    fn missing_outputs_are_reported_at_the_end() {
        let recorded = vec![
            ev(1, 0, out(b"abc")),
            ev(2, 1, EventKind::blk_write(0, vec![1; 512])),
        ];
        let mut c = Checker::new(recorded, all(), table());
        assert!(c.observe(SourceId(0), &out(b"ab"), 1).is_none());
        let missing = c.finish(9);
        assert_eq!(missing.len(), 2);
        assert!(missing.iter().all(|d| d.kind == "missing"));
        assert_eq!(missing[0].seq, Some(1));
        assert_eq!(missing[1].seq, Some(2));
    }

    #[test]
    fn console_divergence_names_the_event() {
        let recorded = vec![ev(5, 0, out(b"kv: ok\n")), ev(6, 0, out(b"kv: done\n"))];
        let mut c = Checker::new(recorded, all(), table());
        let d = c
            .observe(SourceId(0), &out(b"kv: ok\nkv: PANIC\n"), 1)
            .unwrap();
        assert_eq!((d.kind, d.seq), ("mismatch", Some(6)));
        // The stream is no longer compared.
        assert!(c.observe(SourceId(0), &out(b"more"), 2).is_none());
    }

    #[test]
    fn unchecked_classes_are_ignored() {
        let recorded = vec![
            ev(1, 0, out(b"x")),
            ev(2, 2, EventKind::net_tx(vec![1; 60])),
        ];
        let mut c = Checker::new(recorded, [KindClass::Net].into(), table());
        assert_eq!(c.summary().expected, 1);
        assert!(c.observe(SourceId(0), &out(b"different"), 1).is_none());
        assert!(c.finish(2).iter().any(|d| d.seq == Some(2)));
    }
}
