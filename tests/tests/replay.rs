//! Replay into clones, end to end: the `kv` service is recorded (with a snapshot every
//! second) under generated traffic through a TAP in a network namespace until the trigger
//! client crashes it; clones restored from its snapshots replay the capture over the API.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use replay::capture::reader::{find_buffers, CaptureReader, Query};
use replay::frame::FrameInfo;
use replay::EventKind;
use reprise_tests::*;
use reprise_tools::demo_replay::{clone_and_replay, record_kv_crash, Recorded};
use reprise_tools::vmm_process::Vmm;
use serde_json::{json, Value};

const TRIGGER_IP: &str = "10.0.0.3";

fn record(scratch: &Scratch, tag: &str, requests: u64) -> Recorded {
    require_kvm();
    require_device("/dev/net/tun", "TUN/TAP");
    record_kv_crash(
        &scratch.path(""),
        Path::new(guest_elf()),
        tag,
        requests,
        250,
    )
    .unwrap_or_else(|e| panic!("recording the kv service: {e}"))
}

fn replay_body(rec: &Recorded, extra: Value) -> Value {
    let mut body = json!({
        "capture_dir": rec.capture,
        "snapshot_dir": rec.store,
        "before": format!("{}ns", rec.crash.1),
        "speed": "max",
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    body
}

fn ended(v: &Value) -> bool {
    v["state"] == "guest-stopped" || v["state"] == "finished"
}

fn held(v: &Value) -> bool {
    v["state"] == "paused" || ended(v)
}

/// A recorded frame: seq, VM time, bytes.
type Frame = (u64, u64, Vec<u8>);

/// The capture after snapshot `id`: the marker's VM time, the frames received, and the
/// last event's VM time.
fn inputs_after(capture: &Path, id: &str) -> (u64, Vec<Frame>, u64) {
    let buffer = find_buffers(capture).expect("buffers").remove(0);
    let reader = CaptureReader::open(&buffer).expect("open capture");
    let mut after = None;
    let mut frames = Vec::new();
    let mut last_ns = 0;
    for r in reader.events(&Query::default()).expect("events").flatten() {
        let e = r.event;
        match &e.kind {
            EventKind::SnapshotTaken { id: s } if s == id => {
                after = Some(e.vm_time_ns);
                frames.clear();
            }
            EventKind::NetRx { frame } if after.is_some() => {
                frames.push((e.seq, e.vm_time_ns, frame.clone()))
            }
            _ => {}
        }
        if after.is_some() {
            last_ns = e.vm_time_ns;
        }
    }
    (after.expect("snapshot marker"), frames, last_ns)
}

fn from_trigger(frame: &[u8]) -> bool {
    FrameInfo::parse(frame)
        .ipv4_addrs()
        .any(|a| a.to_string() == TRIGGER_IP)
}

#[test]
fn the_crash_reproduces_in_20_clones_of_20_and_a_filter_removes_it() {
    let scratch = Scratch::new("replay-crash");
    let rec = record(&scratch, "replay-crash", 600);
    assert!(!rec.snapshots.is_empty(), "no snapshot before the crash");
    let (crash_seq, _, text) = rec.crash.clone();
    assert!(text.contains("GET trigger:blob"), "{text}");

    for i in 0..20 {
        let body = replay_body(&rec, json!({"strict": i == 0}));
        let (clone, status) =
            clone_and_replay(&scratch.path(""), &format!("c{i}"), body, ended).expect("replay");
        assert_eq!(status["state"], "guest-stopped", "run {i}: {status}");
        assert_eq!(
            status["guest_stopped"]["after"]["seq"], crash_seq,
            "run {i}: {status}"
        );
        assert_eq!(status["check"]["divergences"], 0, "run {i}: {status}");
        assert!(status["check"]["checked"].as_u64().unwrap() > 0);
        assert_eq!(status["block_mismatches"], json!([]), "run {i}: {status}");
        let info = clone.get("/").expect("GET /");
        assert_eq!(info["state"], "Stopped");
    }

    // Several clones at once, one from each snapshot: each crashes at the same request.
    let clones: Vec<Vmm> = rec
        .snapshots
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, id)| {
            let v = Vmm::spawn(
                Command::new(reprise_bin()),
                scratch.path(&format!("m{i}.sock")),
                "m",
            )
            .expect("spawn");
            let mut body = replay_body(&rec, json!({"snapshot_id": id, "vm_id": format!("m{i}")}));
            body.as_object_mut().unwrap().remove("before");
            v.call("PUT", "/replay", body).expect("PUT /replay");
            v
        })
        .collect();
    for (clone, id) in clones.iter().zip(&rec.snapshots) {
        let status = clone
            .wait("/replay", Duration::from_secs(60), ended)
            .expect("ends");
        assert_eq!(status["snapshot"], json!(id));
        assert_eq!(
            status["guest_stopped"]["after"]["seq"], crash_seq,
            "{status}"
        );
        assert_eq!(status["check"]["divergences"], 0, "{status}");
    }
    drop(clones);

    // Without the trigger client: none of its frames reach the clone, it survives, and the
    // first divergence on the network is the first reply it no longer sends.
    let body = replay_body(
        &rec,
        json!({"filters": [format!("exclude src-ip={TRIGGER_IP}")], "check": ["net"],
               "paused": true}),
    );
    let bin = reprise_bin();
    let clone = Vmm::spawn(Command::new(bin), scratch.path("f.sock"), "filtered").expect("spawn");
    clone.call("PUT", "/replay", body).expect("PUT /replay");
    let own = scratch.path("clone-capture");
    clone
        .call(
            "PUT",
            "/recording",
            json!({"buffers": [{"name": "own", "dir": own}]}),
        )
        .expect("record the clone");
    clone
        .call("PATCH", "/replay", json!({"state": "running"}))
        .expect("run");
    let status = clone
        .wait("/replay", Duration::from_secs(60), ended)
        .expect("replay ends");
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(clone.get("/").expect("GET /")["state"], "Running");
    let snapshot = status["snapshot"].as_str().expect("snapshot").to_string();
    let (_, frames, _) = inputs_after(&rec.capture, &snapshot);
    let trigger_frames = frames.iter().filter(|(_, _, f)| from_trigger(f)).count();
    assert!(trigger_frames >= 3);
    assert_eq!(status["filtered"], trigger_frames as u64);
    let d = &status["first_divergence"];
    assert_eq!(d["kind"], "missing", "{status}");
    let expected = d["expected"].as_str().expect("expected");
    assert!(
        expected.contains("10.0.0.2:7000 > 10.0.0.3:41000"),
        "not a reply to the trigger client: {expected}"
    );
    clone
        .call("DELETE", "/recording", Value::Null)
        .expect("stop");
    let buffer = find_buffers(&own).expect("clone buffers").remove(0);
    let reader = CaptureReader::open(&buffer).expect("clone capture");
    let mut received = 0;
    for r in reader.events(&Query::default()).expect("events").flatten() {
        if let EventKind::NetRx { frame } = &r.event.kind {
            received += 1;
            assert!(!from_trigger(frame), "the clone received a trigger frame");
        }
    }
    assert_eq!(received, frames.len() - trigger_frames);
}

#[test]
fn replay_is_faithful_at_1x_and_at_max_speed_and_the_disks_match() {
    let scratch = Scratch::new("replay-fidelity");
    let rec = record(&scratch, "replay-fidel", 1500);
    let original = export_volume(&rec.volume, None, &scratch.path("original.img"));
    for (i, speed) in ["1", "max"].iter().enumerate() {
        let body = replay_body(&rec, json!({"speed": speed, "vm_id": format!("f{i}")}));
        let (clone, status) =
            clone_and_replay(&scratch.path(""), &format!("s{i}"), body, ended).expect("replay");
        assert_eq!(status["state"], "guest-stopped", "{speed}: {status}");
        assert_eq!(status["check"]["divergences"], 0, "{speed}: {status}");
        assert_eq!(
            status["check"]["checked"].as_u64(),
            status["check"]["matched"].as_u64(),
            "{status}"
        );
        assert_eq!(status["delivered"], status["total"], "{status}");
        let config = clone.get("/vm/config").expect("config");
        let volume = config["drives"][0]["volume_path"]
            .as_str()
            .expect("clone volume")
            .to_string();
        drop(clone);
        let copy = export_volume(
            Path::new(&volume),
            None,
            &scratch.path(&format!("c{i}.img")),
        );
        assert!(
            copy == original,
            "{speed}: the clone's disk differs from the original's"
        );
    }
}

#[test]
fn entropy_is_reproducible_from_its_seed() {
    let scratch = Scratch::new("replay-entropy");
    let rec = record(&scratch, "replay-entropy", 600);
    let run = |name: &str, seed: u64| {
        let spec = format!("seed={seed},drop=0.05,dup=0.05,corrupt=0.05,extra=0.05");
        // From the first snapshot: enough inputs for a list worth comparing.
        let mut body = replay_body(
            &rec,
            json!({"entropy": spec, "snapshot_id": rec.snapshots[0]}),
        );
        body.as_object_mut().unwrap().remove("before");
        let (clone, status) =
            clone_and_replay(&scratch.path(""), name, body, ended).expect("replay");
        let list = clone.get("/replay/injections").expect("injections");
        (status, list)
    };
    let (s1, a) = run("e1", 7);
    let (_, b) = run("e2", 7);
    let (_, c) = run("e3", 8);
    let net = |v: &Value| -> Vec<Value> {
        v.as_array()
            .expect("list")
            .iter()
            .filter(|i| i["stream"] == "net")
            .cloned()
            .collect()
    };
    assert!(net(&a).len() > 5, "{a}");
    assert_eq!(net(&a), net(&b), "the same seed gave different injections");
    assert_ne!(net(&a), net(&c), "another seed gave the same injections");
    assert_eq!(
        s1["injected"].as_u64(),
        Some(a.as_array().unwrap().len() as u64)
    );
}

#[test]
fn the_middle_third_delivers_exactly_its_window_and_control_lands_on_indices() {
    let scratch = Scratch::new("replay-select");
    let rec = record(&scratch, "replay-select", 900);

    // Middle third of the capture after the first snapshot (the last one can fall just
    // before the trigger, leaving too few inputs after it for a third to hold any).
    let mut body = replay_body(&rec, json!({"selection": "middle-third", "check": []}));
    body.as_object_mut().expect("object").remove("before");
    body["snapshot_id"] = json!(rec.snapshots[0]);
    let (_clone, status) = clone_and_replay(&scratch.path(""), "mid", body, ended).expect("replay");
    let snapshot = status["snapshot"].as_str().unwrap().to_string();
    let (start, frames, end) = inputs_after(&rec.capture, &snapshot);
    let span = end - start;
    let (from, to) = (start + span / 3, start + 2 * span / 3);
    let want: Vec<u64> = frames
        .iter()
        .filter(|(_, t, _)| (from..to).contains(t))
        .map(|(s, _, _)| *s)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(status["total"], want.len() as u64, "{status}");
    assert_eq!(status["delivered"], want.len() as u64, "{status}");
    let last: Vec<u64> = status["last_delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert!(want.ends_with(&last), "{last:?} vs {want:?}");

    // Control, from the first snapshot: paused at the start, then step, run until, pause
    // and resume.
    let first = rec.snapshots[0].clone();
    let from_first = |extra: Value| {
        let mut b = replay_body(&rec, extra);
        b.as_object_mut().unwrap().remove("before");
        b["snapshot_id"] = json!(first);
        b
    };
    let bin = reprise_bin();
    let clone = Vmm::spawn(Command::new(bin), scratch.path("ctl.sock"), "ctl").expect("spawn");
    clone
        .call("PUT", "/replay", from_first(json!({"paused": true})))
        .expect("PUT /replay");
    let s = clone.get("/replay").unwrap();
    assert_eq!(
        (s["state"].clone(), s["position"].clone()),
        (json!("paused"), json!(0))
    );
    assert_eq!(clone.get("/").unwrap()["state"], "Paused");
    clone
        .call("PUT", "/replay/step", json!({"events": 5}))
        .unwrap();
    let s = clone
        .wait("/replay", Duration::from_secs(20), held)
        .unwrap();
    assert_eq!(
        (s["position"].clone(), s["paused_by"].clone()),
        (json!(5), json!("step"))
    );
    clone
        .call("PUT", "/replay/step", json!({"events": 1}))
        .unwrap();
    let s = clone
        .wait("/replay", Duration::from_secs(20), held)
        .unwrap();
    assert_eq!(s["position"], 6, "{s}");
    clone
        .call("PUT", "/replay/run-until", json!({"event": 40}))
        .unwrap();
    let s = clone
        .wait("/replay", Duration::from_secs(20), held)
        .unwrap();
    assert_eq!(
        (s["position"].clone(), s["paused_by"].clone()),
        (json!(40), json!("event 40"))
    );
    assert_eq!(
        s["last_delivered"].as_array().unwrap().last().unwrap()["index"],
        39
    );
    assert_eq!(clone.get("/").unwrap()["state"], "Paused");
    // Going back is refused; going beyond the end too.
    let (code, _) = reprise_tools::api_client::request(
        &scratch.path("ctl.sock"),
        "PUT",
        "/replay/run-until",
        Some(&json!({"event": 3})),
    )
    .unwrap();
    assert_eq!(code, 400);
    clone
        .call("PATCH", "/replay", json!({"state": "running"}))
        .unwrap();
    let s = clone
        .wait("/replay", Duration::from_secs(60), ended)
        .unwrap();
    assert_eq!(s["state"], "guest-stopped", "{s}");
    assert_eq!(s["check"]["divergences"], 0, "{s}");

    // Restart from the last snapshot: same process, a new clone, position 0.
    let last = rec.snapshots.last().unwrap().clone();
    clone
        .call(
            "PUT",
            "/replay/restart",
            json!({"snapshot_id": last, "paused": true}),
        )
        .unwrap();
    let s = clone.get("/replay").unwrap();
    assert_eq!(
        (s["snapshot"].clone(), s["position"].clone()),
        (json!(last), json!(0))
    );
    assert_eq!(clone.get("/").unwrap()["state"], "Paused");
    clone
        .call("PUT", "/replay/step", json!({"events": 3}))
        .unwrap();
    let s = clone
        .wait("/replay", Duration::from_secs(20), held)
        .unwrap();
    assert_eq!(s["position"], 3, "{s}");
}

#[test]
fn bad_replay_requests_get_clear_errors() {
    let scratch = Scratch::new("replay-bad");
    let rec = record(&scratch, "replay-bad", 300);
    let sock = scratch.path("bad.sock");
    let _vmm = Vmm::spawn(Command::new(reprise_bin()), sock.clone(), "bad").unwrap();
    let put = |body: Value| -> (u16, String) {
        let (code, reply) =
            reprise_tools::api_client::request(&sock, "PUT", "/replay", Some(&body)).unwrap();
        (code, reply.map(|r| r.to_string()).unwrap_or_default())
    };
    let (code, msg) = put(replay_body(
        &rec,
        json!({"filters": ["exclude ipp=10.0.0.3"]}),
    ));
    assert_eq!(code, 400);
    assert!(msg.contains("unknown criterion"), "{msg}");
    let (code, msg) = put(replay_body(&rec, json!({"selection": "time:10m-"})));
    assert_eq!(code, 400);
    assert!(
        msg.contains("after the capture ends") || msg.contains("covers"),
        "{msg}"
    );
    let (code, msg) = put(replay_body(&rec, json!({"before": "1ns"})));
    assert_eq!(code, 400);
    assert!(msg.contains("no snapshot"), "{msg}");
    let (code, msg) = put(replay_body(&rec, json!({"speed": "1000"})));
    assert_eq!(code, 400);
    assert!(msg.contains("0.1 to 100"), "{msg}");

    // A capture with no snapshot in it.
    let empty = scratch.path("no-snapshots");
    let other = Reprise::with_api(&scratch);
    other.configure_guest(32, "workload=console", json!([]), None);
    other.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "x", "dir": empty}]}),
    );
    other.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    std::thread::sleep(Duration::from_millis(300));
    let mut body = replay_body(&rec, json!({}));
    body["capture_dir"] = json!(empty);
    let (code, msg) = put(body);
    assert_eq!(code, 400);
    assert!(msg.contains("has no snapshot"), "{msg}");

    // A snapshot of the same name from another VM.
    let snapshot = rec.snapshots[0].clone();
    let foreign = scratch.path("foreign-store");
    let (code, reply) = other.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": foreign, "snapshot_id": snapshot})),
    );
    assert_eq!(code, 201, "{reply:?}");
    let mut body = replay_body(&rec, json!({"snapshot_id": snapshot}));
    body.as_object_mut().unwrap().remove("before");
    body["snapshot_dir"] = json!(foreign);
    let (code, msg) = put(body);
    assert_eq!(code, 400);
    assert!(msg.contains("different VMs"), "{msg}");
}
