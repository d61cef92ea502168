//! Recording a running VM through the API: what the capture holds is exactly what crossed
//! the guest boundary.

use std::path::Path;
use std::time::Duration;

use replay::capture::reader::{CaptureReader, Query};
use replay::{BlkData, BlkRequestType, Event, EventKind, Hash128};
use reprise_tests::*;
use serde_json::json;

const SECTOR: usize = 512;

/// Every event of the buffer at `dir`, in order; fails on any problem the reader reports.
fn read_all(dir: &Path) -> Vec<Event> {
    let reader = CaptureReader::open(dir).expect("open capture");
    reader
        .events(&Query::default())
        .expect("events")
        .map(|r| r.unwrap_or_else(|p| panic!("capture problem: {p}")).event)
        .collect()
}

#[test]
fn a_recorded_disk_workload_holds_every_byte_read_and_written() {
    require_kvm();
    let scratch = Scratch::new("rec-blk");
    let initial: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let disk = scratch.path("disk.img");
    std::fs::write(&disk, &initial).expect("disk");
    let capture = scratch.path("capture");
    let mut vm = Reprise::with_api(&scratch);
    vm.configure_guest(
        64,
        "workload=blk seed=11 blk.sector=1024 blk.sectors=1024",
        json!([{"drive_id": "data", "path_on_host": disk}]),
        None,
    );
    // Set up before start: recorded from the first instruction.
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "all", "dir": capture}]}),
    );
    let (status, body) = vm.api(
        "PUT",
        "/recording",
        Some(json!({"buffers": [{"name": "again", "dir": capture}]})),
    );
    assert_eq!(status, 409, "{body:?}");
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    vm.wait_serial("reprise-guest: done", Duration::from_secs(60));
    // The guest resets at the end; the VM stopping stops the recording.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while vm.state() != "Stopped" {
        assert!(std::time::Instant::now() < deadline, "the VM did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Read once stopped: the line seen above may not have had its newline yet.
    let serial = vm.serial();
    let (_, status) = vm.api("GET", "/recording", None);
    let status = status.expect("recording status");
    assert_eq!(status["recording"], json!(false), "{status}");

    let events = read_all(&capture);
    assert!(matches!(
        events.first().map(|e| &e.kind),
        Some(EventKind::RecordingStarted)
    ));
    assert!(
        matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::RecordingStopped)
        ),
        "the VM's end stops the recording cleanly: {:?}",
        events.last()
    );
    // Replaying the block events over the initial disk: every read returned what the disk
    // held then, every write's hash is its data's, and the result is the final disk.
    let mut model = initial.clone();
    let (mut reads, mut writes) = (0, 0);
    for e in &events {
        match &e.kind {
            EventKind::BlkWrite {
                sector,
                len,
                hash,
                data,
            } => {
                let data = data.as_ref().expect("full block mode keeps write data");
                assert_eq!(data.len(), *len as usize);
                assert_eq!(*hash, Hash128::of(data), "write hash at sector {sector}");
                let at = *sector as usize * SECTOR;
                model[at..at + data.len()].copy_from_slice(data);
                writes += 1;
            }
            EventKind::BlkCompletion {
                request: BlkRequestType::Read,
                sector,
                len,
                status,
                data,
            } => {
                assert_eq!(*status, 0);
                let BlkData::Full(data) = data else {
                    panic!("read without its data: {e:?}")
                };
                let at = *sector as usize * SECTOR;
                assert_eq!(data.len(), *len as usize);
                assert!(
                    data[..] == model[at..at + data.len()],
                    "read of sector {sector} ({len} bytes) differs from the disk at that point"
                );
                reads += 1;
            }
            EventKind::BlkCompletion {
                request: BlkRequestType::Discard,
                sector,
                len,
                ..
            } => {
                let at = *sector as usize * SECTOR;
                model[at..at + *len as usize].fill(0);
            }
            _ => {}
        }
    }
    assert!(reads > 0 && writes > 0, "{reads} reads, {writes} writes");
    let final_disk = std::fs::read(&disk).expect("disk");
    assert!(
        model == final_disk,
        "the recorded writes do not rebuild the disk"
    );
    // Console output: everything the guest printed, in order.
    let printed: Vec<u8> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SerialOut { bytes } => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(String::from_utf8_lossy(&printed), serial);
    // Stamps: VM time never goes backwards and seqs have no holes.
    for w in events.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert!(w[1].vm_time_ns >= w[0].vm_time_ns);
    }
}

#[test]
fn recording_through_the_api_starts_stops_and_reports() {
    require_kvm();
    let scratch = Scratch::new("rec-api");
    let mut vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=ticks ticks.hz=100 ticks.every=10 ticks.total=3000",
        json!([]),
        None,
    );
    vm.wait_serial("ticks:", Duration::from_secs(30));
    let capture = scratch.path("capture");
    // Bad buffers are refused by name.
    for (buffers, needle) in [
        (json!([]), "at least one buffer"),
        (
            json!([{"name": "x", "dir": capture, "filter": {"sources": ["nope"]}}]),
            "nope",
        ),
        (json!([{"name": "has space", "dir": capture}]), "has space"),
        (
            json!([{"name": "x", "dir": capture, "filter": {"ipv4": ["10.0.0.300"]}}]),
            "10.0.0.300",
        ),
    ] {
        let (status, body) = vm.api("PUT", "/recording", Some(json!({"buffers": buffers})));
        assert_eq!(status, 400, "{body:?}");
        let message = body.expect("error")["fault_message"].to_string();
        assert!(message.contains(needle), "{message}");
    }
    let (status, _) = vm.api("DELETE", "/recording", None);
    assert_eq!(status, 409, "nothing to stop");
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [
            {"name": "console", "dir": capture.join("console"), "filter": {"classes": ["serial"]}},
            {"name": "net", "dir": capture.join("net"), "filter": {"classes": ["net"]}}
        ]}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = vm.api("GET", "/recording", None);
    assert_eq!(status, 200);
    let body = body.expect("status");
    assert_eq!(body["recording"], json!(true), "{body}");
    assert_eq!(body["buffers"].as_array().map(Vec::len), Some(2), "{body}");
    let (status, body) = vm.api("DELETE", "/recording", None);
    assert_eq!(status, 200);
    let body = body.expect("final status");
    assert_eq!(body["recording"], json!(false), "{body}");
    let console = read_all(&capture.join("console"));
    let net = read_all(&capture.join("net"));
    assert!(
        console
            .iter()
            .any(|e| matches!(&e.kind, EventKind::SerialOut { .. })),
        "{console:?}"
    );
    // The net buffer keeps only markers (this VM has no NIC).
    assert!(net
        .iter()
        .all(|e| e.kind.class() == replay::KindClass::Marker));
    assert!(matches!(
        console.last().map(|e| &e.kind),
        Some(EventKind::RecordingStopped)
    ));

    // The same through reprisectl.
    let sock = vm.api_sock.clone().expect("API socket");
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(binary("reprise-tools", "reprisectl"))
            .arg("--sock")
            .arg(&sock)
            .args(args)
            .output()
            .expect("run reprisectl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "reprisectl {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let cli_dir = capture.join("cli");
    ctl(&[
        "recording",
        "start",
        "--dir",
        cli_dir.to_str().expect("utf-8"),
        "--class",
        "serial",
    ]);
    let status = ctl(&["recording", "status"]);
    assert!(
        status.contains("recording: running") && status.contains("all ("),
        "{status}"
    );
    let stopped: serde_json::Value =
        serde_json::from_str(&ctl(&["recording", "stop", "--json"])).expect("JSON");
    assert_eq!(stopped["recording"], json!(false), "{stopped}");
    assert!(read_all(&cli_dir)
        .iter()
        .any(|e| matches!(&e.kind, EventKind::RecordingStarted)));
}

#[test]
fn killing_the_vmm_while_it_records_leaves_every_completed_record_readable() {
    require_kvm();
    let scratch = Scratch::new("rec-kill");
    let capture = scratch.path("capture");
    let disk = scratch.path("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(8 << 20))
        .expect("disk");
    let mut total = 0;
    for (round, ms) in [150u64, 400, 250].into_iter().enumerate() {
        let run = Scratch::new(&format!("rec-kill-{round}"));
        let mut vm = Reprise::with_api(&run);
        // Writes without end, and the console line after each round.
        vm.configure_guest(
            64,
            &format!("workload=blk-rounds seed={round} blk.sector=0 blk.sectors=256"),
            json!([{"drive_id": "data", "path_on_host": disk}]),
            None,
        );
        vm.api_ok(
            "PUT",
            "/recording",
            json!({"buffers": [{"name": "all", "dir": capture, "ring_bytes": 1 << 20}]}),
        );
        vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
        vm.wait_serial("blk-rounds: round=1 done", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(ms));
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(vm.child.id() as i32, libc::SIGKILL) };
        vm.wait_exit(Duration::from_secs(10));

        // Whatever was written is readable; at most a torn last record, reported as such.
        let reader = CaptureReader::open(&capture).expect("open after the kill");
        let report = reader.verify().expect("verify");
        assert_eq!(report.errors(), 0, "round {round}: {:?}", report.problems);
        let events = read_all(&capture);
        assert!(events.len() > total, "round {round} recorded nothing");
        total = events.len();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq, i as u64, "seqs continue across sessions");
        }
        let sessions = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RecordingStarted))
            .count();
        assert_eq!(sessions, round + 1);
    }
}

#[test]
fn capture_retention_follows_snapshot_retention_so_what_remains_replays_from_a_snapshot() {
    require_kvm();
    let scratch = Scratch::new("rec-retention");
    let store = scratch.path("snapshots");
    let capture = scratch.path("capture");
    let mut vm = Reprise::with_api(&scratch);
    vm.configure_guest(
        64,
        "workload=dirty dirty.mib=4 dirty.rate=500",
        json!([]),
        None,
    );
    // A 3 s window and a snapshot a second, each kept 4 s: a scaled-down "30 s window,
    // snapshots every 10 s".
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "all", "dir": capture, "window_secs": 3}]}),
    );
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 1000, "max_age_secs": 4}),
    );
    vm.wait_serial("dirty: second=10 ", Duration::from_secs(60));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 0}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = vm.api("DELETE", "/recording", None);
    assert_eq!(status, 200);

    let snapshots: Vec<String> = snapshot::SnapshotStore::open(&store)
        .expect("store")
        .list()
        .expect("list")
        .snapshots
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let reader = CaptureReader::open(&capture).expect("capture");
    let segments = reader.segments();
    let starts: Vec<Option<&str>> = segments.iter().map(|s| s.snapshot()).collect();
    // Old segments went: the oldest kept starts at a snapshot that is still there, and
    // every snapshot still there from then on starts a segment.
    let first =
        starts[0].unwrap_or_else(|| panic!("the oldest segment starts at no snapshot: {starts:?}"));
    assert!(
        snapshots.iter().any(|s| s == first),
        "{first} is gone: {snapshots:?}"
    );
    let from: Vec<&String> = snapshots
        .iter()
        .skip_while(|s| s.as_str() != first)
        .collect();
    let started: Vec<&str> = starts.iter().flatten().copied().collect();
    for s in &from {
        assert!(
            started.contains(&s.as_str()),
            "no segment starts at {s}: {started:?}"
        );
    }
    assert!(
        segments.len() < 10,
        "retention deleted nothing: {} segments",
        segments.len()
    );
    // What remains reads without a problem from that snapshot on, and spans the window.
    let report = reader.verify().expect("verify");
    assert_eq!(report.errors(), 0, "{:?}", report.problems);
    let first_ns = segments[0].first_vm_ns.expect("first time");
    let last_ns = segments
        .last()
        .and_then(|s| s.last_vm_ns)
        .expect("last time");
    assert!(
        last_ns - first_ns >= 3_000_000_000,
        "kept {} ns",
        last_ns - first_ns
    );
}
