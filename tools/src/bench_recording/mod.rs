//! Recording overhead: the same workloads with recording off and on, in one run.
//!
//! "On" is one capture buffer taking every event (no filter, no retention limit,
//! `backpressure`: nothing is dropped, a writer that falls behind slows the guest), once
//! with `full` block data and once with `compact`. Every VM is configured through the API
//! the same way whether recorded or not, and the recording is set up before
//! `InstanceStart`, so it covers the whole run from the first instruction. Modes take turns
//! within each repetition (rotating which goes first) so that drift on a shared machine
//! spreads over all three; medians are reported.
//!
//! Workloads:
//! - `net-echo`: 64-byte frames echoed by the guest through the Unix datagram backend,
//!   round trips timed by the host (as in [`crate::bench::net_echo_rate`]);
//! - `blk`: the guest's queue-depth-1 block benchmark, timed by the guest with its TSC (as
//!   in [`crate::bench::blk_bench`]): sequential 128 KiB writes and reads, random 4 KiB
//!   writes and reads;
//! - `kv`: the `kv` key-value service (every PUT and DEL appends a log record and
//!   flushes, every GET reads the disk) driven by [`crate::kvgen`] through a TAP device in
//!   a network namespace of its own, with a window of requests in flight; requests
//!   answered per second as the generator saw them.
//!
//! The capture's size comes from `GET /recording` once the VM has stopped (which stops
//! the recording and flushes it): events, bytes of the segments, and the VM-time span
//! they cover. The CPU time of the VMM's event loop (where the device backends and their
//! taps run) and of the capture writer is sampled from `/proc` during each run, which
//! tells what recording costs apart from how busy the machine happened to be. Before each
//! run the bench waits a while for the machine to be quiet.

mod cpu;
mod report;
mod vm;
mod workloads;

use std::path::{Path, PathBuf};
use std::time::Duration;

use vmm::api::{BufferSpec, FilterSpec, RecordingStart};
use vmm::recording::config::{BlockData, Overflow};

use crate::netns::Namespace;
use cpu::wait_for_quiet;
use workloads::{blk_once, kv_once, net_echo_once, KV_HOST, KV_TAP};

pub use report::print_tables;
pub use workloads::kv_unavailable;

/// The name of the one capture buffer.
const BUFFER: &str = "all";

/// Whether and how a run is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not recorded (the taps are installed but idle).
    Off,
    /// One buffer, everything, full block data.
    Full,
    /// One buffer, everything, block data as hashes.
    Compact,
}

/// The three modes, in table order.
pub const MODES: [Mode; 3] = [Mode::Off, Mode::Full, Mode::Compact];

impl Mode {
    /// Its name in progress messages.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Full => "full",
            Mode::Compact => "compact",
        }
    }

    fn index(self) -> usize {
        match self {
            Mode::Off => 0,
            Mode::Full => 1,
            Mode::Compact => 2,
        }
    }

    /// The `PUT /recording` body writing into `dir`, or none.
    fn recording(self, dir: &Path) -> Option<RecordingStart> {
        let block_data = match self {
            Mode::Off => return None,
            Mode::Full => BlockData::Full,
            Mode::Compact => BlockData::Compact,
        };
        Some(RecordingStart {
            buffers: vec![BufferSpec {
                name: BUFFER.into(),
                dir: dir.to_path_buf(),
                filter: FilterSpec::default(),
                window_secs: None,
                max_bytes: None,
                block_data: Some(block_data),
                overflow: Some(Overflow::Backpressure),
                ring_bytes: None,
                max_segment_bytes: None,
            }],
        })
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct RecordingBenchOptions {
    /// Repetitions of every workload in every mode.
    pub runs: usize,
    /// Echo round trips timed per run.
    pub net_rounds: u32,
    /// MiB moved by each sequential block test.
    pub blk_mib: u64,
    /// Requests in each random 4 KiB block test.
    pub blk_ops: u64,
    /// kv requests per run (0: no kv workload).
    pub kv_requests: u64,
    /// kv requests per second (0: each waits for the previous reply).
    pub kv_rate: u32,
    /// Most kv requests in flight.
    pub kv_window: usize,
    /// Before each run, wait up to this long for the machine to be quiet (zero: never).
    pub quiet_wait: Duration,
}

/// The size of one run's capture.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureSize {
    /// Events written (markers included).
    pub events: u64,
    /// Bytes of the segments.
    pub bytes: u64,
    /// VM time from the first event to the last, seconds.
    pub span_s: f64,
    /// Events dropped (0 with backpressure, unless a write failed).
    pub dropped: u64,
}

/// One measured figure of a workload.
#[derive(Debug, Clone)]
pub struct Row {
    /// `net-echo`, `blk seq-write`, `kv`, ...
    pub workload: String,
    /// `round trips/s`, `MiB/s`, ...
    pub metric: String,
    /// Samples per mode (off, full, compact).
    pub samples: [Vec<f64>; 3],
}

/// What one run cost besides its figures.
#[derive(Debug, Clone, Default)]
pub struct RunCost {
    /// The capture, when recorded.
    pub capture: Option<CaptureSize>,
    /// CPU seconds of the VMM's event-loop thread (where the device backends, hence the
    /// network and block taps, run).
    pub event_loop_cpu_s: f64,
    /// CPU seconds of the capture buffer's writer thread.
    pub writer_cpu_s: f64,
}

/// The costs of one workload's runs.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// The workload.
    pub workload: String,
    /// Per mode (off, full, compact).
    pub runs: [Vec<RunCost>; 3],
}

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct RecordingResults {
    /// Figures, in the order first measured.
    pub rows: Vec<Row>,
    /// Capture sizes and thread CPU per workload.
    pub costs: Vec<CostRow>,
    /// Runs started on a machine that was still busy after the wait for quiet.
    pub busy_starts: usize,
    /// Runs in all.
    pub total_runs: usize,
}

impl RecordingResults {
    fn add(&mut self, workload: &str, metric: &str, mode: Mode, value: f64) {
        let i = match self
            .rows
            .iter()
            .position(|r| r.workload == workload && r.metric == metric)
        {
            Some(i) => i,
            None => {
                self.rows.push(Row {
                    workload: workload.into(),
                    metric: metric.into(),
                    samples: Default::default(),
                });
                self.rows.len() - 1
            }
        };
        self.rows[i].samples[mode.index()].push(value);
    }

    /// Waits for quiet before a run and counts it.
    fn note_start(&mut self, opts: &RecordingBenchOptions) {
        self.total_runs += 1;
        if !wait_for_quiet(opts.quiet_wait) {
            self.busy_starts += 1;
        }
    }

    fn add_cost(&mut self, workload: &str, mode: Mode, cost: RunCost) {
        let i = match self.costs.iter().position(|c| c.workload == workload) {
            Some(i) => i,
            None => {
                self.costs.push(CostRow {
                    workload: workload.into(),
                    runs: Default::default(),
                });
                self.costs.len() - 1
            }
        };
        self.costs[i].runs[mode.index()].push(cost);
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}
/// The modes of repetition `run`, rotated so that each mode goes first as often as the
/// others.
fn rotation(run: usize) -> impl Iterator<Item = Mode> {
    (0..MODES.len()).map(move |i| MODES[(run + i) % MODES.len()])
}

/// Runs every workload `opts.runs` times in every mode, printing progress to stderr.
pub fn run_all(
    kernel: &Path,
    dir: &Path,
    opts: &RecordingBenchOptions,
) -> Result<RecordingResults, String> {
    let mut res = RecordingResults::default();
    let dir: PathBuf = dir.join("recording");
    std::fs::create_dir_all(&dir).map_err(err)?;
    let runs = opts.runs.max(1);
    for run in 0..runs {
        for mode in rotation(run) {
            res.note_start(opts);
            let (rate, cost) = net_echo_once(kernel, &dir, mode, opts.net_rounds)?;
            eprintln!(
                "recording: net-echo run {}/{runs} {}: {rate:.0} round trips/s",
                run + 1,
                mode.name()
            );
            res.add("net-echo", "round trips/s", mode, rate);
            res.add("net-echo", "frames/s", mode, 2.0 * rate);
            res.add_cost("net-echo", mode, cost);
        }
    }
    for run in 0..runs {
        for mode in rotation(run) {
            res.note_start(opts);
            let (figures, cost) = blk_once(kernel, &dir, mode, opts)?;
            eprintln!(
                "recording: blk run {}/{runs} {}: {}",
                run + 1,
                mode.name(),
                figures
                    .iter()
                    .map(|f| format!("{} {:.0} IOPS", f.test, f.iops))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for f in &figures {
                let name = format!("blk {}", f.test);
                res.add(&name, "MiB/s", mode, f.mib_per_s);
                res.add(&name, "IOPS", mode, f.iops);
            }
            res.add_cost("blk", mode, cost);
        }
    }
    if opts.kv_requests > 0 {
        match kv_unavailable() {
            Some(why) => eprintln!("recording: skipping the kv workload: {why}"),
            None => {
                let ns = Namespace::create("bench-rec")?;
                ns.add_tap(KV_TAP, &[&format!("{KV_HOST}/24")])?;
                for run in 0..runs {
                    for mode in rotation(run) {
                        res.note_start(opts);
                        let (rate, cost) = kv_once(kernel, &dir, &ns, mode, opts)?;
                        eprintln!(
                            "recording: kv run {}/{runs} {}: {rate:.0} requests/s",
                            run + 1,
                            mode.name()
                        );
                        res.add("kv", "requests/s", mode, rate);
                        res.add_cost("kv", mode, cost);
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(res)
}
