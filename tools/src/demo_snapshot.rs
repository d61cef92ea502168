//! The demo's snapshot step: a recorded guest is snapshotted while it runs (full, then a
//! diff), and a clone restored from the diff in a new process continues exactly like it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::guest_run::reprise_binary;
use crate::vmm_process::{api, wait_for};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the step in `dir` with the test guest `kernel`; prints what it does.
pub fn run(dir: &Path, kernel: &Path) -> Result<(), String> {
    let bin = reprise_binary().map_err(|e| e.to_string())?;
    let sock = dir.join("snap-api.sock");
    let store = dir.join("snapshots");
    let capture = dir.join("capture");
    let log = dir.join("original.log");
    for p in [&store, &capture] {
        let _ = std::fs::remove_dir_all(p);
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&log);
    let child = Command::new(&bin)
        .args(["--log-level", "warn", "--api-sock"])
        .arg(&sock)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let _vmm = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if Instant::now() > deadline {
            return Err("the API socket never appeared".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let args = "workload=dirty dirty.mib=8 dirty.rate=4000 dirty.seconds=4";
    api(
        &sock,
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 1, "mem_size_mib": 256}),
    )?;
    api(
        &sock,
        "PUT",
        "/boot-source",
        json!({"kernel_image_path": kernel, "boot_args": args}),
    )?;
    api(
        &sock,
        "PUT",
        "/serial",
        json!({"output": format!("file:{}", log.display())}),
    )?;
    api(
        &sock,
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "all", "dir": capture}]}),
    )?;
    api(
        &sock,
        "PUT",
        "/actions",
        json!({"action_type": "InstanceStart"}),
    )?;
    println!("   guest | {args}: 256 MiB, recorded from its first instruction");
    wait_for(&log, "dirty: second=1 ", Duration::from_secs(30))?;
    let snap = |id: &str, kind: &str| -> Result<Value, String> {
        api(
            &sock,
            "PUT",
            "/snapshot/create",
            json!({"snapshot_dir": store, "snapshot_id": id, "snapshot_type": kind}),
        )?
        .ok_or_else(|| "no snapshot reply".to_string())
    };
    let full = snap("base", "Full")?;
    wait_for(&log, "dirty: second=2 ", Duration::from_secs(30))?;
    let diff = snap("t2", "Diff")?;
    for (s, what) in [(&full, "full"), (&diff, "diff")] {
        println!(
            "   host  | {what} snapshot {}: guest paused {} us, {} KiB of memory stored",
            s["id"].as_str().unwrap_or("?"),
            s["pause_us"],
            s["memory_bytes"].as_u64().unwrap_or(0) >> 10
        );
    }
    let original = wait_for(&log, "reprise-guest: done", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_millis(200));
    let status = api(&sock, "GET", "/recording", Value::Null)?.unwrap_or_default();

    let clone_log = dir.join("clone.log");
    let _ = std::fs::remove_file(&clone_log);
    let started = Instant::now();
    let out = Command::new(&bin)
        .args(["--log-level", "warn", "--id", "clone1", "--restore"])
        .arg(store.join("t2"))
        .arg("--serial-output")
        .arg(format!("file:{}", clone_log.display()))
        .output()
        .map_err(|e| format!("restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the clone failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let restored = std::fs::read_to_string(&clone_log).map_err(|e| e.to_string())?;
    println!(
        "   host  | clone restored from the diff ran to its end in {:?}",
        started.elapsed()
    );
    for line in restored.lines() {
        println!("   clone | {line}");
    }
    if restored.is_empty() || !original.ends_with(&restored) {
        return Err("the clone's output is not the original's continuation".into());
    }
    println!("   host  | the clone's output is exactly the original's continuation after t2");

    let reader = replay::capture::reader::CaptureReader::open(&capture)
        .map_err(|e| format!("capture: {e}"))?;
    let mut events = 0;
    let mut markers = Vec::new();
    let mut printed = Vec::new();
    for r in reader
        .events(&Default::default())
        .map_err(|e| e.to_string())?
    {
        let e = r.map_err(|p| format!("capture problem: {p}"))?.event;
        events += 1;
        match e.kind {
            replay::EventKind::SnapshotTaken { id } => markers.push(id),
            replay::EventKind::SerialOut { bytes } => printed.extend(bytes),
            _ => {}
        }
    }
    let buffer = &status["buffers"][0];
    println!(
        "   host  | capture: {events} events, {} bytes, snapshot markers {markers:?}",
        buffer["bytes"]
    );
    if markers != ["base", "t2"] || String::from_utf8_lossy(&printed) != original {
        return Err("the capture does not hold the console output and both snapshots".into());
    }
    println!("   host  | the capture holds every byte the guest printed, cut at both snapshots");
    Ok(())
}
