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

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vmm::api::routes::ActionType;
use vmm::api::{BufferSpec, FilterSpec, RecordingStart, VmState};
use vmm::config::VmConfig;
use vmm::recording::config::{BlockData, Overflow};

use crate::api_client::Client;
use crate::bench::{blk_bench_args, blk_figures, echo_round_trips, median};
use crate::guest_run::{reprise_api_command, reprise_config, DgramNet, GuestProcess, GuestSpec};
use crate::kvgen;
use crate::netns::Namespace;

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

/// A VMM configured and started through its API.
struct Vm {
    process: GuestProcess,
    client: Client,
    cpu: CpuSampler,
}

/// How long the VMM may take to serve its API socket.
const API_WAIT: Duration = Duration::from_secs(10);
/// How long a VM may take to stop once its workload ended.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl Vm {
    /// Starts a VMM with its API on `dir/api.sock` (in `netns` if given), configures it with
    /// `config` (a `--config-file` body), sets up the recording of `mode` into `capture`
    /// and starts the VM.
    fn launch(
        config: &Value,
        dir: &Path,
        capture: &Path,
        mode: Mode,
        netns: Option<&str>,
    ) -> Result<Vm, String> {
        let sock = dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let config: VmConfig = serde_json::from_value(config.clone()).map_err(err)?;
        let cmd = reprise_api_command(&sock, netns).map_err(err)?;
        let process = GuestProcess::spawn("reprise", cmd, true).map_err(err)?;
        let client = Client::new(&sock);
        let deadline = Instant::now() + API_WAIT;
        while client.instance_info().is_err() {
            if Instant::now() > deadline {
                return Err(format!("reprise did not serve {}", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let api = |e: crate::api_client::ClientError| format!("reprise API: {e}");
        client.put_machine_config(&config.machine).map_err(api)?;
        if let Some(boot) = &config.boot {
            client.put_boot_source(boot).map_err(api)?;
        }
        for d in &config.drives {
            client.put_drive(d).map_err(api)?;
        }
        for n in &config.nets {
            client.put_net(n).map_err(api)?;
        }
        if let Some(start) = mode.recording(capture) {
            let _ = std::fs::remove_dir_all(capture);
            client.start_recording(&start).map_err(api)?;
        }
        let cpu = CpuSampler::start(process.child.id());
        client.action(ActionType::InstanceStart).map_err(api)?;
        Ok(Vm {
            process,
            client,
            cpu,
        })
    }

    /// Waits for the guest to stop (which ends and flushes its recording), reads the
    /// capture's size if it was recorded, and ends the VMM.
    fn finish(mut self, mode: Mode) -> Result<RunCost, String> {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Ok(info) = self.client.instance_info() {
                if info.state == VmState::Stopped {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("the VM did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let capture = if mode == Mode::Off {
            None
        } else {
            let status = self.client.recording_status().map_err(err)?;
            let b = status
                .buffers
                .first()
                .ok_or("GET /recording lists no buffer")?;
            if let Some(e) = &b.last_error {
                return Err(format!("capture buffer: {e}"));
            }
            let span_ns = b
                .newest_vm_time_ns
                .zip(b.oldest_vm_time_ns)
                .map_or(0, |(n, o)| n.saturating_sub(o));
            Some(CaptureSize {
                events: b.events,
                bytes: b.bytes,
                span_s: span_ns as f64 * 1e-9,
                dropped: b.dropped_events,
            })
        };
        let cpu = self.cpu.stop();
        let thread = |name: &str| cpu.get(name).copied().unwrap_or(0.0);
        // The VMM keeps serving its API after the VM stops.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        Ok(RunCost {
            capture,
            event_loop_cpu_s: thread("event-loop"),
            // The recorder names each writer thread `capture-<buffer>`.
            writer_cpu_s: thread(&format!("capture-{BUFFER}")),
        })
    }
}

/// Samples the CPU time of a process's threads every few milliseconds while it runs, so
/// that threads that end before the process (the vCPUs, the capture writers) are counted.
struct CpuSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::collections::BTreeMap<(u32, String), f64>>>,
}

impl CpuSampler {
    fn start(pid: u32) -> CpuSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = std::collections::BTreeMap::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (tid, name, secs) in thread_cpu(pid) {
                    last.insert((tid, name), secs);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            last
        });
        CpuSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// CPU seconds per thread name (threads of the same name added up).
    fn stop(&mut self) -> std::collections::BTreeMap<String, f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let per_tid = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let mut out = std::collections::BTreeMap::new();
        for ((_, name), secs) in per_tid {
            *out.entry(name).or_insert(0.0) += secs;
        }
        out
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// CPU time (user + system, seconds) of each thread of process `pid`: id, name, time.
fn thread_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, the fields after it do not.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let tid = stat[..open].trim().parse().unwrap_or(0);
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the comm.
        let get = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out.push((tid, name, (get(11) + get(12)) / ticks));
    }
    out
}

/// One net-echo run: round trips per second.
fn net_echo_once(
    kernel: &Path,
    dir: &Path,
    mode: Mode,
    rounds: u32,
) -> Result<(f64, RunCost), String> {
    let net = DgramNet {
        vmm_sock: dir.join("echo-vm.sock"),
        host_sock: dir.join("echo-host.sock"),
        mac: "06:00:ac:10:00:02".into(),
    };
    let _ = std::fs::remove_file(&net.host_sock);
    let _ = std::fs::remove_file(&net.vmm_sock);
    let sock = UnixDatagram::bind(&net.host_sock).map_err(err)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    let vmm_sock = net.vmm_sock.clone();
    let spec = GuestSpec {
        kernel,
        args: "workload=net-echo".into(),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![],
        net: Some(net),
    };
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&reprise_config(&spec), dir, &capture, mode, None)?;
    vm.process
        .wait_line("net-echo: ready", Duration::from_secs(30))
        .map_err(err)?;
    let rate = echo_round_trips(&sock, &vmm_sock, rounds).map_err(err)?;
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(10))
        .map_err(err)?;
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    Ok((rate, cost))
}

/// One block benchmark run: (test, MiB/s, IOPS) per test.
fn blk_once(
    kernel: &Path,
    dir: &Path,
    mode: Mode,
    opts: &RecordingBenchOptions,
) -> Result<(Vec<crate::bench::BlkFigure>, RunCost), String> {
    let disk = dir.join("blk-bench.img");
    let _ = std::fs::remove_file(&disk);
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len((opts.blk_mib + 16) << 20))
        .map_err(err)?;
    let spec = GuestSpec {
        kernel,
        args: blk_bench_args(opts.blk_mib, opts.blk_ops),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![disk.clone()],
        net: None,
    };
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&reprise_config(&spec), dir, &capture, mode, None)?;
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(300))
        .map_err(err)?;
    let figures = blk_figures(&vm.process.output);
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&disk);
    if figures.len() != 4 || figures.iter().any(|f| !f.iops.is_finite()) {
        return Err(format!("the block benchmark reported {figures:?}"));
    }
    Ok((figures, cost))
}

/// The TAP device of the kv workload, its host and guest ends.
const KV_TAP: &str = "rectap0";
const KV_HOST: &str = "10.0.0.1";
const KV_GUEST: std::net::SocketAddrV4 =
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 7000);

/// One kv run: requests answered per second.
fn kv_once(
    kernel: &Path,
    dir: &Path,
    ns: &Namespace,
    mode: Mode,
    opts: &RecordingBenchOptions,
) -> Result<(f64, RunCost), String> {
    let disk = dir.join("kv.img");
    let _ = std::fs::remove_file(&disk);
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(16 << 20))
        .map_err(err)?;
    let config = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": kernel,
                        "boot_args": format!("workload=kv kv.ip={} kv.port={}",
                                             KV_GUEST.ip(), KV_GUEST.port())},
        "drives": [{"drive_id": "d0", "path_on_host": disk}],
        "network-interfaces": [{"iface_id": "net0", "host_dev_name": KV_TAP,
                                "guest_mac": "06:00:ac:10:00:02"}],
    });
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&config, dir, &capture, mode, Some(ns.name()))?;
    vm.process
        .wait_line("kv: ready", Duration::from_secs(30))
        .map_err(err)?;
    let host: std::net::Ipv4Addr = KV_HOST.parse().map_err(err)?;
    let cfg = kvgen::Config {
        target: KV_GUEST,
        sources: vec![host],
        port_base: 40000,
        trigger_source: None,
        plan: kvgen::plan::PlanSpec {
            seed: 1,
            clients: 4,
            requests: opts.kv_requests,
            keys: 200,
            key_prefix: "key-".into(),
            value_len: (4, 64),
            mix: kvgen::plan::Mix::default(),
            sweep: false,
            trigger_after: None,
            quit: true,
        },
        rate: opts.kv_rate,
        window: opts.kv_window,
        timeout: Duration::from_secs(5),
        journal: None,
        initial: kvgen::Initial::Empty,
    };
    let summary = ns.run(|| kvgen::run(&cfg))?.map_err(err)?;
    if !summary.passed() {
        return Err(format!(
            "kv run failed: sent {}, replies {}, lost {}, unexpected {}, mismatches {}",
            summary.sent,
            summary.replies,
            summary.lost,
            summary.unexpected,
            summary.mismatches.len()
        ));
    }
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(20))
        .map_err(err)?;
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&disk);
    Ok((summary.replies as f64 / summary.elapsed_s, cost))
}

/// Whether the kv workload can run here (root, TUN/TAP, iproute2); why not otherwise.
pub fn kv_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    let ip = std::process::Command::new("ip")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("no ip (iproute2)".into());
    }
    None
}

/// Busy and total CPU time of the machine so far, in ticks (`/proc/stat`).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Busy share of the machine's CPUs above which it does not count as quiet.
const QUIET_BUSY: f64 = 0.15;

/// Waits up to `max` for a quarter second in which less than [`QUIET_BUSY`] of the
/// machine's CPU time was busy; returns whether it came (true when `max` is zero).
fn wait_for_quiet(max: Duration) -> bool {
    if max.is_zero() {
        return true;
    }
    let deadline = Instant::now() + max;
    loop {
        let Some(a) = cpu_ticks() else {
            return true;
        };
        std::thread::sleep(Duration::from_millis(250));
        let Some(b) = cpu_ticks() else {
            return true;
        };
        let (busy, total) = (b.0 - a.0, b.1 - a.1);
        if total > 0 && (busy as f64) < QUIET_BUSY * total as f64 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
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

fn med(xs: &[f64]) -> f64 {
    median(&mut xs.to_vec())
}

/// Relative spread of `xs`: (max - min) / median.
fn spread(xs: &[f64]) -> f64 {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hi - lo) / med(xs)
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Prints the overhead table and the capture sizes as Markdown.
pub fn print_tables(res: &RecordingResults, opts: &RecordingBenchOptions) {
    println!(
        "\n## Recording overhead: one buffer recording everything (backpressure), median of {} runs",
        opts.runs.max(1)
    );
    println!(
        "net-echo: {} round trips of 64-byte frames; blk: QD1, {} MiB sequential (128 KiB \
         requests), {} random 4 KiB requests; kv: {} requests, rate {}, window {}",
        opts.net_rounds,
        opts.blk_mib,
        opts.blk_ops,
        opts.kv_requests,
        if opts.kv_rate == 0 {
            "closed loop".to_string()
        } else {
            format!("{}/s", opts.kv_rate)
        },
        opts.kv_window
    );
    println!(
        "\n| workload | metric | off | on (full) | ratio | on (compact) | ratio | spread off/full/compact |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &res.rows {
        let [off, full, compact] = [0, 1, 2].map(|i| med(&r.samples[i]));
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.0}% / {:.0}% / {:.0}% |",
            r.workload,
            r.metric,
            fmt_value(off),
            fmt_value(full),
            full / off,
            fmt_value(compact),
            compact / off,
            spread(&r.samples[0]) * 100.0,
            spread(&r.samples[1]) * 100.0,
            spread(&r.samples[2]) * 100.0,
        );
    }
    println!("\n(ratio: recorded / not recorded; spread: (max - min) / median of the runs)");
    if !opts.quiet_wait.is_zero() {
        println!(
            "{} of {} runs started while the machine was busy (more than {:.0}% of its CPU time \
             in a quarter second, after waiting up to {} s for less)",
            res.busy_starts,
            res.total_runs,
            QUIET_BUSY * 100.0,
            opts.quiet_wait.as_secs()
        );
    }
    println!("\n## Capture size, median of the recorded runs");
    println!("| workload | block data | events | capture MiB | VM seconds | capture MiB/s | bytes/event | dropped |");
    println!("|---|---|---|---|---|---|---|---|");
    for c in &res.costs {
        for mode in [Mode::Full, Mode::Compact] {
            let s: Vec<CaptureSize> = c.runs[mode.index()]
                .iter()
                .filter_map(|r| r.capture)
                .collect();
            if s.is_empty() {
                continue;
            }
            let pick = |f: &dyn Fn(&CaptureSize) -> f64| med(&s.iter().map(f).collect::<Vec<_>>());
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} |",
                c.workload,
                mode.name(),
                pick(&|x| x.events as f64),
                pick(&|x| x.bytes as f64 / f64::from(1u32 << 20)),
                pick(&|x| x.span_s),
                pick(&|x| x.bytes as f64 / f64::from(1u32 << 20) / x.span_s),
                pick(&|x| x.bytes as f64 / x.events.max(1) as f64),
                pick(&|x| x.dropped as f64),
            );
        }
    }
    println!(
        "\n(VM seconds: the VM time the capture spans, boot and shutdown included; capture \
         MiB/s: its bytes over that span)"
    );
    println!("\n## CPU time of the VMM threads per run, median");
    println!("| workload | event loop off ms | full ms | compact ms | writer full ms | compact ms | event loop + writer per event, full µs | compact µs |");
    println!("|---|---|---|---|---|---|---|---|");
    for c in &res.costs {
        let cpu = |mode: Mode, f: &dyn Fn(&RunCost) -> f64| {
            med(&c.runs[mode.index()].iter().map(f).collect::<Vec<_>>())
        };
        let off_loop = cpu(Mode::Off, &|r| r.event_loop_cpu_s);
        // The recording's CPU per event: the event loop's extra time plus the writer's.
        let per_event = |mode: Mode| {
            cpu(mode, &|r| {
                let events = r.capture.map_or(0, |c| c.events).max(1) as f64;
                (r.event_loop_cpu_s - off_loop + r.writer_cpu_s) / events * 1e6
            })
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
            c.workload,
            off_loop * 1e3,
            cpu(Mode::Full, &|r| r.event_loop_cpu_s) * 1e3,
            cpu(Mode::Compact, &|r| r.event_loop_cpu_s) * 1e3,
            cpu(Mode::Full, &|r| r.writer_cpu_s) * 1e3,
            cpu(Mode::Compact, &|r| r.writer_cpu_s) * 1e3,
            per_event(Mode::Full),
            per_event(Mode::Compact),
        );
    }
    println!(
        "\n(sampled from /proc every 5 ms, in clock ticks: ±10 ms; the event loop runs the \
         network and block backends and their taps, the writer encodes and writes the capture)"
    );
}
