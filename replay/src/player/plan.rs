//! What a clone replays: the recorded events after the snapshot it starts from, cut to a
//! [`Selection`] window, with the inputs chosen by a [`RuleSet`] and the outputs the clone
//! is checked against.

use std::path::{Path, PathBuf};

use crate::capture::reader::{find_buffers, CaptureReader, Query};
use crate::event::{Direction, Event, EventKind};
use crate::player::checker::output_units;
use crate::player::rules::RuleSet;
use crate::player::selection::{format_ns, Selection, Span, Window};
use crate::source::SourceTable;

/// Why a replay cannot be planned; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Which snapshot a clone starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotChoice {
    /// By id.
    Id(String),
    /// The last snapshot of the capture taken at or before this VM time (ns).
    Before(u64),
    /// The capture's last snapshot.
    Latest,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// A buffer directory, or a recording directory holding buffers.
    pub capture: PathBuf,
    /// The buffer to read when there are several.
    pub buffer: Option<String>,
    /// Where to start.
    pub snapshot: SnapshotChoice,
    /// Which part of the capture after the snapshot.
    pub selection: Selection,
    /// Include/exclude rules, as text.
    pub rules: Vec<String>,
}

/// One input to deliver.
#[derive(Debug, Clone)]
pub struct PlannedInput {
    /// The recorded event.
    pub event: Event,
    /// Output units (see [`output_units`]) the recording produced in the window before
    /// this input: the clone should have produced as many before it is delivered.
    pub outputs_before: u64,
}

/// A planned replay.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The buffer read.
    pub buffer_dir: PathBuf,
    /// Its name.
    pub buffer: String,
    /// The snapshot the clone starts from.
    pub snapshot: String,
    /// The snapshot marker's VM time.
    pub snapshot_ns: u64,
    /// The capture after the snapshot.
    pub span: Span,
    /// The selected part of it.
    pub window: Window,
    /// The capture's device table.
    pub sources: SourceTable,
    /// Inputs to deliver (network frames and console input), in seq order.
    pub inputs: Vec<PlannedInput>,
    /// Inputs in the window the rules removed.
    pub filtered: u64,
    /// Recorded block completions in the window the rules kept (in order, per device):
    /// what strict mode checks reads against, and recorded failures to repeat.
    pub completions: Vec<Event>,
    /// Recorded outputs in the window, in seq order.
    pub outputs: Vec<Event>,
    /// Every snapshot the buffer marks (id, VM time), oldest first: where a replay can
    /// restart from.
    pub markers: Vec<(String, u64)>,
}

impl Plan {
    /// Reads the capture and plans the replay.
    pub fn build(request: &PlanRequest) -> Result<Plan, PlanError> {
        let buffer_dir = choose_buffer(&request.capture, request.buffer.as_deref())?;
        let reader = CaptureReader::open(&buffer_dir).map_err(|e| PlanError(e.to_string()))?;
        let buffer = reader
            .buffer_name()
            .map(str::to_string)
            .unwrap_or_else(|| buffer_dir.display().to_string());
        let marks = snapshot_markers(&reader)?;
        if marks.is_empty() {
            return Err(PlanError(format!(
                "capture {} has no snapshot: a replay starts from a snapshot taken while the \
                 capture recorded (take one with PUT /snapshot/create or a snapshot schedule)",
                buffer_dir.display()
            )));
        }
        let listed = || {
            marks
                .iter()
                .map(|(id, ns)| format!("{id} at {}", format_ns(*ns)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (snapshot, snapshot_ns) = match &request.snapshot {
            SnapshotChoice::Id(id) => marks
                .iter()
                .rev()
                .find(|(m, _)| m == id)
                .cloned()
                .ok_or_else(|| {
                    PlanError(format!(
                        "snapshot {id:?} was not taken while capture {} recorded (it belongs \
                         to another VM or recording); the capture's snapshots: {}",
                        buffer_dir.display(),
                        listed()
                    ))
                })?,
            SnapshotChoice::Before(t) => marks
                .iter()
                .rev()
                .find(|(_, ns)| ns <= t)
                .cloned()
                .ok_or_else(|| {
                    PlanError(format!(
                        "no snapshot of capture {} was taken at or before VM time {}; its \
                         snapshots: {}",
                        buffer_dir.display(),
                        format_ns(*t),
                        listed()
                    ))
                })?,
            SnapshotChoice::Latest => marks.last().cloned().expect("not empty"),
        };
        let mut after = Vec::new();
        let query = Query {
            from_snapshot: Some(snapshot.clone()),
            ..Query::default()
        };
        let mut sources = None;
        let mut past_marker = false;
        for item in reader
            .events(&query)
            .map_err(|e| PlanError(e.to_string()))?
        {
            let Ok(r) = item else {
                // Damage is reported by `verify`; a replay plays what can be read.
                continue;
            };
            if !past_marker {
                if matches!(&r.event.kind, EventKind::SnapshotTaken { id } if *id == snapshot) {
                    past_marker = true;
                    if let Some(h) = reader.segments()[r.segment].header.as_ref() {
                        sources = Some(h.sources.clone());
                    }
                }
                continue;
            }
            after.push(r.event);
        }
        let sources = sources
            .or_else(|| reader.latest_header().map(|h| h.sources.clone()))
            .unwrap_or_default();
        let span = Span {
            start_ns: snapshot_ns,
            end_ns: after.last().map_or(snapshot_ns, |e| e.vm_time_ns),
            first_seq: after.first().map_or(0, |e| e.seq),
            last_seq: after.last().map_or(0, |e| e.seq),
        };
        let window = request.selection.window(&span).map_err(|e| {
            PlanError(format!(
                "{e} (capture {}, snapshot {snapshot})",
                buffer_dir.display()
            ))
        })?;
        let rules = RuleSet::parse(&request.rules, &sources).map_err(|e| PlanError(e.0))?;
        let mut plan = Plan {
            buffer_dir,
            buffer,
            snapshot,
            snapshot_ns,
            span,
            window,
            sources,
            inputs: Vec::new(),
            filtered: 0,
            completions: Vec::new(),
            outputs: Vec::new(),
            markers: marks.clone(),
        };
        let mut units = 0;
        for e in after.into_iter().filter(|e| window.contains(e)) {
            match e.kind.direction() {
                Direction::Output => {
                    units += output_units(&e.kind);
                    plan.outputs.push(e);
                }
                Direction::Input if !rules.admits(&e, snapshot_ns) => plan.filtered += 1,
                Direction::Input => match e.kind {
                    EventKind::BlkCompletion { .. } => plan.completions.push(e),
                    _ => plan.inputs.push(PlannedInput {
                        event: e,
                        outputs_before: units,
                    }),
                },
                Direction::Marker => {}
            }
        }
        Ok(plan)
    }

    /// Recorded output units in the window (what a faithful clone produces in all).
    pub fn total_output_units(&self) -> u64 {
        self.outputs.iter().map(|e| output_units(&e.kind)).sum()
    }
}

/// The buffer directory to read under `capture`.
fn choose_buffer(capture: &Path, name: Option<&str>) -> Result<PathBuf, PlanError> {
    if !capture.is_dir() {
        return Err(PlanError(format!(
            "capture {}: there is no directory there",
            capture.display()
        )));
    }
    let buffers = find_buffers(capture).map_err(|e| PlanError(e.to_string()))?;
    let named: Vec<(PathBuf, Option<String>)> = buffers
        .into_iter()
        .map(|b| {
            let n = CaptureReader::open(&b)
                .ok()
                .and_then(|r| r.buffer_name().map(str::to_string));
            (b, n)
        })
        .collect();
    let names = || {
        named
            .iter()
            .map(|(p, n)| n.clone().unwrap_or_else(|| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, named.len()) {
        (_, 0) => Err(PlanError(format!(
            "capture {}: no capture buffer there",
            capture.display()
        ))),
        (None, 1) => Ok(named[0].0.clone()),
        (None, _) => Err(PlanError(format!(
            "capture {} has several buffers ({}); name one",
            capture.display(),
            names()
        ))),
        (Some(want), _) => named
            .iter()
            .find(|(p, n)| {
                n.as_deref() == Some(want) || p.file_name().and_then(|f| f.to_str()) == Some(want)
            })
            .map(|(p, _)| p.clone())
            .ok_or_else(|| {
                PlanError(format!(
                    "capture {} has no buffer {want:?} (buffers: {})",
                    capture.display(),
                    names()
                ))
            }),
    }
}

/// Snapshot markers of the buffer, with their VM times, in seq order. Every snapshot starts
/// a segment with its marker, so the segment list has them; the capture is scanned only
/// when a segment's first VM time is unknown (no usable index).
fn snapshot_markers(reader: &CaptureReader) -> Result<Vec<(String, u64)>, PlanError> {
    let listed: Option<Vec<(String, u64)>> = reader
        .snapshots()
        .into_iter()
        .map(|(id, _, first_ns)| first_ns.map(|ns| (id, ns)))
        .collect();
    if let Some(marks) = listed {
        return Ok(marks);
    }
    let query = Query {
        filter: crate::filter::Filter::classes(&[crate::event::KindClass::Marker]),
        ..Query::default()
    };
    let mut marks = Vec::new();
    for r in reader
        .events(&query)
        .map_err(|e| PlanError(e.to_string()))?
        .flatten()
    {
        if let EventKind::SnapshotTaken { id } = r.event.kind {
            marks.push((id, r.event.vm_time_ns));
        }
    }
    Ok(marks)
}
