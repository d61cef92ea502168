//! Replay: how soon a clone gets its first replayed input, how fast captures replay, and
//! what checking the clone's outputs costs.
//!
//! The `kv` service is recorded twice, as in the replay demo ([`crate::demo_replay`]):
//! driven by the generator through a TAP in a network namespace, with periodic snapshots,
//! until the trigger client crashes it. One recording is mostly idle (a low request
//! rate), the other busy. Every clone is a fresh `reprise` process whose API already
//! answers; the clock starts when `PUT /replay` is sent.
//!
//! - *First input*: a clone of the last snapshot before the crash, at `max` speed; the
//!   time `PUT /replay` takes (plan, restore, resume) and the time until `GET /replay`,
//!   polled every 200 µs, shows an input delivered.
//! - *Speed*: a clone of the first snapshot replays the rest of the capture; recorded
//!   seconds (VM time of the last input delivered minus the snapshot's) per wall-clock
//!   second from `PUT /replay` until the replay is over (polled every millisecond). At
//!   `max` speed for both captures, at `1` for the busy one.
//! - *Check overhead*: the busy capture at `max` with every output class checked (the
//!   default) and with `check: []`.
//!
//! Runs take turns (rotating which goes first) so that drift on a shared machine spreads
//! over all of them; medians are reported. Timing never fails the bench, errors do.

mod api;
mod capture;
mod clone;
mod measure;
mod recordings;
mod report;

use std::path::{Path, PathBuf};

use crate::bench_recording::kv_unavailable;
use measure::{latency_once, speed_once};
use recordings::{record, summary};

pub use report::print_tables;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ReplayBenchOptions {
    /// Repetitions of every measurement.
    pub runs: usize,
    /// Requests per second offered in the mostly idle recording.
    pub idle_rate: u32,
    /// Requests in the mostly idle recording (before the trigger).
    pub idle_requests: u64,
    /// Requests per second offered in the busy recording.
    pub busy_rate: u32,
    /// Requests in the busy recording (before the trigger).
    pub busy_requests: u64,
    /// Milliseconds between the recordings' snapshots.
    pub interval_ms: u64,
}

/// One recording, as replayed.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    /// `idle` or `busy`.
    pub name: String,
    /// Requests per second the generator offered.
    pub rate: u32,
    /// Requests sent (the trigger's not counted).
    pub requests: u64,
    /// VM seconds from the first frame received to the last input.
    pub traffic_s: f64,
    /// Snapshots taken before the crash.
    pub snapshots: usize,
    /// VM seconds from the first snapshot to the last input.
    pub window_s: f64,
    /// VM seconds from the last snapshot to the last input.
    pub tail_s: f64,
}

/// Time to the first replayed input, per run.
#[derive(Debug, Clone)]
pub struct LatencyRow {
    /// The capture.
    pub capture: String,
    /// The snapshot cloned.
    pub snapshot: String,
    /// `PUT /replay` round trips, ms.
    pub put_ms: Vec<f64>,
    /// `PUT /replay` sent to an input seen delivered, ms.
    pub first_ms: Vec<f64>,
    /// Mean `GET /replay` round trip while polling, µs.
    pub poll_us: Vec<f64>,
}

/// One way of replaying a capture from its first snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Index into the captures (0 idle, 1 busy).
    pub capture: usize,
    /// The `speed` of `PUT /replay`.
    pub speed: &'static str,
    /// Whether outputs are checked (default classes) or not (`check: []`).
    pub check: bool,
}

/// The variants measured, in table order.
pub const VARIANTS: [Variant; 4] = [
    Variant {
        capture: 0,
        speed: "max",
        check: true,
    },
    Variant {
        capture: 1,
        speed: "max",
        check: true,
    },
    Variant {
        capture: 1,
        speed: "max",
        check: false,
    },
    Variant {
        capture: 1,
        speed: "1",
        check: true,
    },
];

/// A whole replay, per run.
#[derive(Debug, Clone)]
pub struct SpeedRow {
    /// How it was replayed.
    pub variant: Variant,
    /// Recorded seconds replayed.
    pub recorded_s: Vec<f64>,
    /// `PUT /replay` sent to the replay seen over, s.
    pub wall_s: Vec<f64>,
    /// `PUT /replay` round trips, ms.
    pub put_ms: Vec<f64>,
    /// Recorded seconds per wall second.
    pub ratio: Vec<f64>,
    /// Inputs delivered.
    pub delivered: Vec<u64>,
    /// Inputs delivered because the guest went idle before producing the outputs the
    /// recording had by then (`drift.forced`).
    pub forced: Vec<u64>,
    /// Outputs checked.
    pub checked: Vec<u64>,
    /// Divergences found.
    pub divergences: Vec<u64>,
    /// How each replay ended (`finished`, `guest-stopped`).
    pub states: Vec<String>,
}

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct ReplayResults {
    /// The recordings (idle, busy).
    pub captures: Vec<CaptureSummary>,
    /// First-input latency per capture.
    pub latency: Vec<LatencyRow>,
    /// Whole replays per variant, in [`VARIANTS`] order.
    pub speed: Vec<SpeedRow>,
}

/// Records both captures and runs every measurement `opts.runs` times, printing each
/// figure to stderr as it comes.
pub fn run_all(
    kernel: &Path,
    dir: &Path,
    opts: &ReplayBenchOptions,
) -> Result<ReplayResults, String> {
    if let Some(why) = kv_unavailable() {
        return Err(format!("the replay suite records the kv service: {why}"));
    }
    let dir: PathBuf = dir.join("replay");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let runs = opts.runs.max(1);
    let loads = [
        (opts.idle_rate, opts.idle_requests),
        (opts.busy_rate, opts.busy_requests),
    ];
    let captures = [
        record(kernel, &dir, "idle", loads[0], opts)?,
        record(kernel, &dir, "busy", loads[1], opts)?,
    ];
    let mut res = ReplayResults::default();
    for (c, load) in captures.iter().zip(loads) {
        let s = summary(c, load)?;
        eprintln!(
            "replay: {} capture: {} requests in {:.2} VM s ({:.0}/s answered), {} snapshots, \
             {:.2} VM s from the first snapshot to the last input, {:.2} s from the last",
            s.name,
            s.requests,
            s.traffic_s,
            s.requests as f64 / s.traffic_s,
            s.snapshots,
            s.window_s,
            s.tail_s
        );
        res.captures.push(s);
        res.latency.push(LatencyRow {
            capture: c.name.into(),
            snapshot: c.last_snapshot()?.to_string(),
            put_ms: Vec::new(),
            first_ms: Vec::new(),
            poll_us: Vec::new(),
        });
    }
    for run in 0..runs {
        for i in 0..captures.len() {
            let i = (run + i) % captures.len();
            latency_once(&captures[i], &dir, &mut res.latency[i], run)?;
        }
    }
    res.speed = VARIANTS
        .iter()
        .map(|&variant| SpeedRow {
            variant,
            recorded_s: Vec::new(),
            wall_s: Vec::new(),
            put_ms: Vec::new(),
            ratio: Vec::new(),
            delivered: Vec::new(),
            forced: Vec::new(),
            checked: Vec::new(),
            divergences: Vec::new(),
            states: Vec::new(),
        })
        .collect();
    for run in 0..runs {
        for i in 0..VARIANTS.len() {
            let i = (run + i) % VARIANTS.len();
            let c = &captures[VARIANTS[i].capture];
            speed_once(c, &dir, &mut res.speed[i], run)?;
        }
    }
    drop(captures);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(res)
}
