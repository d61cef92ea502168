//! The demo's replay step: record → crash → clone → reproduce. The `kv` guest runs with a
//! recording and a snapshot every second while the generator drives it through a TAP in a
//! network namespace, until the trigger client's requests crash it. A clone restored from
//! the last snapshot before the crash replays the capture and crashes at the same request;
//! a second clone replays without the trigger client's frames and survives.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use replay::capture::reader::{find_buffers, CaptureReader, Query};
use replay::EventKind;
use serde_json::{json, Value};

use crate::guest_run::reprise_binary;
use crate::kvgen::plan::{Mix, PlanSpec};
use crate::kvgen::{self, Config, Initial};
use crate::netns::Namespace;
use crate::vmm_process::{wait_for, Vmm};

const TAP: &str = "rptap0";
const GUEST_MAC: &str = "06:00:ac:10:00:02";
/// The client the trigger sequence comes from.
const TRIGGER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 41000);

/// What the demo found, for its report.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Snapshots the original took before crashing.
    pub snapshots: usize,
    /// The original's crash: the last request it received (seq, VM time, text).
    pub recorded_crash: Option<(u64, u64, String)>,
    /// The snapshot the clones started from.
    pub snapshot: String,
    /// First clone: the request after which it stopped (seq, text), and its inputs.
    pub replay_crash: Option<(u64, String)>,
    /// Inputs the first clone was given.
    pub replay_inputs: u64,
    /// First clone's divergences.
    pub replay_divergences: u64,
    /// Second clone: whether it survived, inputs filtered, and its first divergence.
    pub filtered_survived: bool,
    /// Inputs the filter removed.
    pub filtered_out: u64,
    /// The second clone's first divergence, summarised.
    pub filtered_divergence: Option<String>,
}

/// The generator: one client address for normal traffic at `rate` requests per second,
/// then the trigger sequence.
fn traffic(requests: u64, rate: u32) -> Config {
    Config {
        target: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7000),
        sources: vec![Ipv4Addr::new(10, 0, 0, 1)],
        port_base: 40000,
        trigger_source: Some(TRIGGER),
        plan: PlanSpec {
            seed: 2026,
            clients: 4,
            requests,
            keys: 200,
            key_prefix: "key-".into(),
            value_len: (4, 64),
            mix: Mix::default(),
            sweep: false,
            trigger_after: Some(requests),
            quit: false,
        },
        rate,
        window: 16,
        timeout: Duration::from_secs(2),
        journal: None,
        initial: Initial::Empty,
    }
}

/// The text of a kv request frame (its UDP payload), if it is one.
pub fn request_text(frame: &[u8]) -> Option<String> {
    let p = replay::frame::udp_payload(frame)?;
    Some(
        String::from_utf8_lossy(&p[..p.len().min(48)])
            .escape_debug()
            .to_string(),
    )
}

/// The original's last received request: where it crashed.
fn recorded_crash(capture: &Path) -> Result<(u64, u64, String), String> {
    let buffer = find_buffers(capture)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no capture buffer")?;
    let reader = CaptureReader::open(&buffer).map_err(|e| e.to_string())?;
    let mut last = None;
    for r in reader
        .events(&Query::default())
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if let EventKind::NetRx { frame } = &r.event.kind {
            if let Some(text) = request_text(frame) {
                last = Some((r.event.seq, r.event.vm_time_ns, text));
            }
        }
    }
    last.ok_or_else(|| "the capture holds no request".to_string())
}

/// Starts a clone (`PUT /replay` with `body`) and waits until `until` holds for its
/// replay status; returns the clone and that status.
pub fn clone_and_replay(
    dir: &Path,
    name: &str,
    body: Value,
    until: impl Fn(&Value) -> bool,
) -> Result<(Vmm, Value), String> {
    let bin = reprise_binary().map_err(|e| e.to_string())?;
    let clone = Vmm::spawn(Command::new(bin), dir.join(format!("{name}.sock")), name)?;
    let started = Instant::now();
    clone.call("PUT", "/replay", body)?;
    let status = clone.wait("/replay", Duration::from_secs(90), until)?;
    println!(
        "   {name}: replay ended in {:.2} s ({})",
        started.elapsed().as_secs_f64(),
        status["state"].as_str().unwrap_or("?")
    );
    Ok((clone, status))
}

/// A recorded run of the kv service that ended in the crash.
pub struct Recorded {
    /// The snapshot store.
    pub store: PathBuf,
    /// The recording's directory.
    pub capture: PathBuf,
    /// The original's volume.
    pub volume: PathBuf,
    /// Snapshots taken, oldest first.
    pub snapshots: Vec<String>,
    /// The last request the original received: seq, VM time, text.
    pub crash: (u64, u64, String),
}

/// Records the kv service under `requests` generated requests and then the trigger, with
/// a snapshot every `interval_ms`, in `dir` (network namespace `tag`); the original has
/// stopped when this returns.
pub fn record_kv_crash(
    dir: &Path,
    kernel: &Path,
    tag: &str,
    requests: u64,
    interval_ms: u64,
) -> Result<Recorded, String> {
    record_kv_crash_at_rate(dir, kernel, tag, requests, interval_ms, 800)
}

/// [`record_kv_crash`] with the generator sending `rate` requests per second.
pub fn record_kv_crash_at_rate(
    dir: &Path,
    kernel: &Path,
    tag: &str,
    requests: u64,
    interval_ms: u64,
    rate: u32,
) -> Result<Recorded, String> {
    let bin = reprise_binary().map_err(|e| e.to_string())?;
    let store = dir.join("replay-snapshots");
    let capture = dir.join("replay-capture");
    let volume = dir.join("replay-volumes").join("volumes").join("kv");
    let serial = dir.join("original-kv.serial");
    for p in [&store, &capture, &dir.join("replay-volumes")] {
        let _ = std::fs::remove_dir_all(p);
    }
    let _ = std::fs::remove_file(&serial);
    std::fs::create_dir_all(volume.parent().expect("parent")).map_err(|e| e.to_string())?;
    blockstore::volume::Volume::create(
        &volume,
        &blockstore::volume::CreateOptions {
            size: 32 << 20,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;

    let ns = Namespace::create(tag)?;
    ns.add_tap(TAP, &["10.0.0.1/24", "10.0.0.3/24"])?;
    let original = Vmm::spawn(ns.command(&bin), dir.join("original.sock"), "original")?;
    let args = "workload=kv kv.ip=10.0.0.2 kv.port=7000 kv.log_kib=256 kv.report=1000";
    original.call(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 1, "mem_size_mib": 64}),
    )?;
    original.call(
        "PUT",
        "/boot-source",
        json!({"kernel_image_path": kernel, "boot_args": args}),
    )?;
    original.call(
        "PUT",
        "/drives/d0",
        json!({"drive_id": "d0", "volume_path": volume}),
    )?;
    original.call(
        "PUT",
        "/network-interfaces/net0",
        json!({"iface_id": "net0", "host_dev_name": TAP, "guest_mac": GUEST_MAC}),
    )?;
    original.call(
        "PUT",
        "/serial",
        json!({"output": format!("file:{}", serial.display())}),
    )?;
    original.call(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "main", "dir": capture}]}),
    )?;
    original.call("PUT", "/actions", json!({"action_type": "InstanceStart"}))?;
    wait_for(&serial, "kv: ready", Duration::from_secs(30))?;
    original.call(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": interval_ms}),
    )?;
    println!(
        "   original | kv service recorded from its first instruction, a snapshot every {interval_ms} ms"
    );

    let cfg = traffic(requests, rate);
    let summary = ns.run(|| kvgen::run(&cfg))?.map_err(|e| e.to_string())?;
    println!(
        "   kvgen    | {} requests from 10.0.0.1, {} replies checked; then the trigger from {TRIGGER}",
        summary.sent, summary.verified
    );
    let info = original.wait("/", Duration::from_secs(30), |v| v["state"] == "Stopped")?;
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    let panic_line = text
        .lines()
        .find(|l| l.contains("panic") || l.contains("fatal"))
        .unwrap_or("(no panic line)")
        .to_string();
    println!(
        "   original | stopped: {} — {panic_line}",
        info["exit_reason"].as_str().unwrap_or("?")
    );
    let snaps = original.get(&format!("/snapshots?snapshot_dir={}", store.display()))?;
    let mut snapshots: Vec<String> = snaps["snapshots"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // Periodic snapshot ids carry their creation time: sorted is oldest first.
    snapshots.sort();
    drop(original);
    let crash = recorded_crash(&capture)?;
    Ok(Recorded {
        store,
        capture,
        volume,
        snapshots,
        crash,
    })
}

/// Runs the step in `dir` with the test guest `kernel`.
pub fn run(dir: &Path, kernel: &Path) -> Result<ReplayReport, String> {
    let mut report = ReplayReport::default();
    let rec = record_kv_crash(dir, kernel, "demo-replay", 3000, 1000)?;
    let (store, capture) = (rec.store.clone(), rec.capture.clone());
    report.snapshots = rec.snapshots.len();
    let (seq, at, text) = rec.crash.clone();
    println!(
        "   capture  | last request before the crash: seq {seq} at VM time {:.3} s: \"{text}\"",
        at as f64 / 1e9
    );
    report.recorded_crash = Some((seq, at, text));

    let body = |extra: Value| {
        let mut b = json!({
            "capture_dir": capture,
            "snapshot_dir": store,
            "before": format!("{at}ns"),
            "speed": "max",
        });
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    let ended = |v: &Value| v["state"] == "guest-stopped" || v["state"] == "finished";
    let (_a, status) = clone_and_replay(
        dir,
        "clone-a",
        body(json!({"serial_output": format!("file:{}", dir.join("clone-a.serial").display())})),
        ended,
    )?;
    report.snapshot = status["snapshot"].as_str().unwrap_or("?").to_string();
    report.replay_inputs = status["delivered"].as_u64().unwrap_or(0);
    report.replay_divergences = status["check"]["divergences"].as_u64().unwrap_or(0);
    if let Some(after) = status["guest_stopped"]["after"].as_object() {
        report.replay_crash = Some((
            after["seq"].as_u64().unwrap_or(0),
            after["what"].as_str().unwrap_or("?").to_string(),
        ));
    }
    println!(
        "   clone-a  | from snapshot {}: {} inputs replayed, {} outputs checked, {} divergences; {}",
        report.snapshot,
        report.replay_inputs,
        status["check"]["checked"],
        report.replay_divergences,
        match &report.replay_crash {
            Some((s, w)) => format!("crashed after input seq {s}: {w}"),
            None => "did not crash".into(),
        }
    );

    let (b, status) = clone_and_replay(
        dir,
        "clone-b",
        body(json!({"filters": [format!("exclude src-ip={}", TRIGGER.ip())]})),
        ended,
    )?;
    let vm = b.get("/")?;
    report.filtered_survived = status["state"] == "finished" && vm["state"] == "Running";
    report.filtered_out = status["filtered"].as_u64().unwrap_or(0);
    report.filtered_divergence = status["first_divergence"].as_object().map(|d| {
        format!(
            "{} output #{} (seq {}): expected {}",
            d["kind"].as_str().unwrap_or("?"),
            d["output_index"],
            d["seq"],
            d["expected"].as_str().unwrap_or("-")
        )
    });
    println!(
        "   clone-b  | without {}: {} inputs filtered out; the guest is {} after the replay",
        TRIGGER.ip(),
        report.filtered_out,
        vm["state"].as_str().unwrap_or("?")
    );
    if let Some(d) = &report.filtered_divergence {
        println!("   clone-b  | first divergence: {d}");
    }
    Ok(report)
}
