//! VM snapshots: a snapshot taken mid-run and restored in a new process continues exactly
//! like the original (serial output and disk contents), and damaged snapshots are refused
//! with a clear error while nothing is deleted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

/// Starts a 64 MiB VM over the API with `args` and `drives`, serial output to its log.
fn start(scratch: &Scratch, args: &str, drives: serde_json::Value) -> Reprise {
    let vm = Reprise::with_api(scratch);
    vm.boot_guest(64, args, drives, None);
    vm
}

fn snapshot(vm: &Reprise, store: &Path, id: &str) -> serde_json::Value {
    let (status, body) = vm.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": store, "snapshot_id": id})),
    );
    assert_eq!(status, 201, "{body:?}\n{}", vm.stderr());
    body.expect("snapshot body")
}

fn stop(vm: &mut Reprise) {
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(vm.child.id() as i32, libc::SIGTERM) };
    vm.wait_exit(Duration::from_secs(10));
}

/// Restores `dir` in a new process and waits for it to finish; returns (exit ok, stderr).
fn restore(dir: &Path, stderr_log: &Path) -> (bool, String) {
    let out = Command::new(reprise_bin())
        .args(["--restore", dir.to_str().expect("utf-8")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run reprise --restore");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::write(stderr_log, &stderr);
    (out.status.success(), stderr)
}

/// Restores `dir` in a new process, which runs the guest to its end, and checks that its
/// serial output (in `serial_log`) is exactly the end of the original's.
fn restore_to_the_end(dir: &Path, scratch: &Scratch, serial_log: &Path, original: &str) {
    let (ok, stderr) = restore(dir, &scratch.path("restore.stderr"));
    assert!(ok, "{stderr}");
    let restored = std::fs::read_to_string(serial_log).expect("serial");
    assert!(restored.ends_with("reprise-guest: done\n"), "{restored}");
    assert!(
        original.ends_with(&restored),
        "original:\n{original}\nrestored:\n{restored}"
    );
}

/// Moves the original's serial log aside so the restored VM (same configuration) writes a
/// fresh one; returns the original's text.
fn set_aside(log: &Path) -> String {
    let text = std::fs::read_to_string(log).expect("serial log");
    std::fs::rename(log, log.with_extension("original")).expect("rename");
    text
}

#[test]
fn restored_dirty_guest_continues_exactly_like_the_original() {
    require_kvm();
    let scratch = Scratch::new("snap-dirty");
    let store = scratch.path("snapshots");
    let mut vm = start(
        &scratch,
        "workload=dirty dirty.mib=8 dirty.rate=3000 dirty.seconds=4",
        json!([]),
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    let taken = snapshot(&vm, &store, "mid");
    assert!(taken["memory_bytes"].as_u64().expect("bytes") > 0);
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);
    set_aside(&vm.serial_log);

    let dir = store.join("mid");
    // The snapshot stores what the guest uses, not all of its RAM.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert!(
        manifest["memory"]["data_bytes"]
            .as_u64()
            .expect("data_bytes")
            < 32 << 20,
        "{manifest}"
    );
    let (ok, stderr) = restore(&dir, &scratch.path("restore.stderr"));
    assert!(ok, "{stderr}");
    let restored = std::fs::read_to_string(&vm.serial_log).expect("restored serial");
    let lines = lines_with(&restored, "dirty: second=");
    assert!(
        !lines.is_empty(),
        "the restored guest printed nothing:\n{restored}\n{stderr}"
    );
    assert!(restored.ends_with("reprise-guest: done\n"), "{restored}");
    assert!(original.ends_with(&restored), "restored output differs from the original's continuation:\noriginal:\n{original}\nrestored:\n{restored}");
    // Restoring does not consume or change the snapshot: it can be restored again.
    std::fs::remove_file(&vm.serial_log).expect("remove");
    let (ok, stderr) = restore(&dir, &scratch.path("restore2.stderr"));
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&vm.serial_log).expect("again"),
        restored
    );
}

#[test]
fn restored_disk_writer_ends_with_the_same_disk_as_the_original() {
    require_kvm();
    let scratch = Scratch::new("snap-blk");
    let store = scratch.path("snapshots");
    let volume = scratch.path("store/volumes/data");
    volume_tool(&["create", volume.to_str().expect("utf-8"), "--size", "16M"]);
    // Long enough that the snapshot lands mid-run, whatever the machine's speed.
    let args = "workload=blk-rounds seed=31 blk.sector=2048 blk.sectors=512 blk.rounds=400";
    let mut vm = start(
        &scratch,
        args,
        json!([{"drive_id": "d0", "volume_path": volume}]),
    );
    vm.wait_serial("blk-rounds: round=2 done", Duration::from_secs(30));
    snapshot(&vm, &store, "mid");
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);
    set_aside(&vm.serial_log);
    let original_disk = export_volume(&volume, None, &scratch.path("original.raw"));

    let dir = store.join("mid");
    let (ok, stderr) = restore(&dir, &scratch.path("restore.stderr"));
    assert!(ok, "{stderr}");
    let restored = std::fs::read_to_string(&vm.serial_log).expect("restored serial");
    assert!(
        restored.contains("blk-rounds: round=399 done"),
        "{restored}\n{stderr}"
    );
    assert!(
        original.ends_with(&restored),
        "original:\n{original}\nrestored:\n{restored}"
    );
    // The restored VM ran on a clone of the volume's snapshot; it ends byte-identical.
    let clone = PathBuf::from(format!("{}-reprise-0", volume.display()));
    assert!(
        clone.join("manifest.json").exists(),
        "no clone at {}",
        clone.display()
    );
    assert!(
        export_volume(&clone, None, &scratch.path("restored.raw")) == original_disk,
        "disks differ"
    );
}

#[test]
fn damaged_snapshots_are_refused_clearly_and_nothing_is_deleted() {
    require_kvm();
    let scratch = Scratch::new("snap-bad");
    let store = scratch.path("snapshots");
    let mut vm = start(
        &scratch,
        "workload=ticks ticks.hz=100 ticks.total=300",
        json!([]),
    );
    vm.wait_serial("ticks: n=100", Duration::from_secs(30));
    snapshot(&vm, &store, "good");
    stop(&mut vm);
    let good = store.join("good");
    let files = ["manifest.json", "state.bin", "memory.full"];
    let copy = |name: &str| {
        let dir = store.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in files {
            std::fs::copy(good.join(f), dir.join(f)).expect("copy");
        }
        // The manifest names its own id (and is sealed again, so only the damage below is wrong).
        let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
        let mut m: snapshot::Manifest = serde_json::from_str(&text).expect("manifest json");
        m.id = name.to_string();
        m.seal();
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&m).expect("json"),
        )
        .expect("write");
        let (ok, stderr) = restore(&dir, &scratch.path(&format!("{name}-intact")));
        assert!(ok, "an intact copy must restore: {stderr}");
        dir
    };
    // A flipped byte in the state file.
    let dir = copy("flipped");
    let mut state = std::fs::read(dir.join("state.bin")).expect("state");
    let at = state.len() / 2;
    state[at] ^= 0x5a;
    std::fs::write(dir.join("state.bin"), &state).expect("write");
    let (ok, stderr) = restore(&dir, &scratch.path("e1"));
    assert!(!ok, "a damaged snapshot was restored");
    assert!(
        stderr.contains("restore from") && stderr.contains("state.bin"),
        "{stderr}"
    );
    // A truncated memory image.
    let dir = copy("truncated");
    let mem = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("memory.full"))
        .expect("open");
    mem.set_len(1 << 20).expect("truncate");
    let (ok, stderr) = restore(&dir, &scratch.path("e2"));
    assert!(!ok);
    assert!(
        stderr.contains("restore from") && stderr.contains("memory.full"),
        "{stderr}"
    );
    // The original still restores, and nothing was deleted anywhere.
    for name in ["flipped", "truncated", "good"] {
        for f in files {
            assert!(store.join(name).join(f).exists(), "{name}/{f} was deleted");
        }
    }
    let (ok, stderr) = restore(&good, &scratch.path("e3"));
    assert!(ok, "{stderr}");
    assert!(std::fs::read_to_string(&vm.serial_log)
        .expect("log")
        .contains("ticks: n="));
}

#[test]
fn killing_the_vmm_while_it_writes_a_snapshot_leaves_earlier_snapshots_intact() {
    require_kvm();
    let scratch = Scratch::new("snap-kill");
    let store = scratch.path("snapshots");
    // A big guest whose memory the snapshot scans takes long enough to be interrupted.
    let vm = Reprise::with_api(&scratch);
    let args = "workload=dirty dirty.mib=16 dirty.rate=2000 dirty.seconds=3";
    vm.boot_guest(2048, args, json!([]), None);
    let mut vm = vm;
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    snapshot(&vm, &store, "first");
    // Ask for a second snapshot and kill the VMM while it is being written.
    let sock = vm.api_sock.clone().expect("sock");
    let store2 = store.clone();
    let request = std::thread::spawn(move || {
        reprise_tools::api_client::request(
            &sock,
            "PUT",
            "/snapshot/create",
            Some(&json!({"snapshot_dir": store2, "snapshot_id": "second"})),
        )
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !store.join("second.tmp").exists() && !store.join("second").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second snapshot never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    vm.child.kill().expect("SIGKILL");
    let _ = vm.child.wait();
    let _ = request.join();
    // The store lists the first snapshot; a half-written second one is ignored, not listed.
    let snapshots = snapshot::SnapshotStore::open(&store).expect("store");
    let listing = snapshots.list().expect("list");
    assert!(listing.get("first").is_some(), "{listing:?}");
    if listing.get("second").is_some() {
        // Only a complete snapshot may be listed: it must read back whole.
        snapshots.open_state("second").expect("listed state");
        snapshots
            .open_memory("second")
            .expect("listed memory")
            .verify()
            .expect("listed memory verifies");
    } else {
        assert!(
            !store.join("second").exists(),
            "an unlisted snapshot directory was left complete-looking"
        );
    }
    // The first snapshot still restores and the guest finishes.
    set_aside(&vm.serial_log);
    let (ok, stderr) = restore(&store.join("first"), &scratch.path("restore.stderr"));
    assert!(ok, "{stderr}");
    let restored = std::fs::read_to_string(&vm.serial_log).expect("serial");
    assert!(restored.ends_with("reprise-guest: done\n"), "{restored}");
}

#[test]
fn three_clones_of_one_snapshot_run_side_by_side_with_their_own_disks() {
    require_kvm();
    let scratch = Scratch::new("snap-clones");
    let store = scratch.path("snapshots");
    let volume = scratch.path("store/volumes/shared");
    volume_tool(&["create", volume.to_str().expect("utf-8"), "--size", "16M"]);
    let seed = 500;
    let (start_sector, sectors) = (2048u64, 256u64);
    let args = format!("workload=blk-rounds blk.wait=1 seed={seed} blk.sector={start_sector} blk.sectors={sectors}");
    let input = scratch.path("console.sock");
    let vm = Reprise::with_api(&scratch);
    let drives = json!([{"drive_id": "d0", "volume_path": volume}]);
    vm.boot_guest(64, &args, drives, Some(&input));
    let mut vm = vm;
    let mut console = connect_unix(&input);
    use std::io::Write;
    vm.wait_serial("blk-rounds: round=0 done", Duration::from_secs(30));
    console.write_all(b"next\n").expect("console");
    vm.wait_serial("blk-rounds: round=1 done", Duration::from_secs(30));
    snapshot(&vm, &store, "base");
    console.write_all(b"quit\n").expect("console");
    vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);

    // Clone k gets k + 1 more rounds, so the clones' disks end differently.
    let dir = store.join("base");
    let mut clones = Vec::new();
    for k in 0..3u64 {
        let log = scratch.path(&format!("clone{k}.log"));
        let sock = scratch.path(&format!("clone{k}.sock"));
        let child = Command::new(reprise_bin())
            .args([
                "--restore",
                dir.to_str().expect("utf-8"),
                "--id",
                &format!("clone{k}"),
            ])
            .arg("--serial-output")
            .arg(format!("file:{}", log.display()))
            .arg("--serial-input")
            .arg(format!("socket:{}", sock.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn clone");
        clones.push((k, child, log, sock));
    }
    for (k, _, log, sock) in &clones {
        let mut c = connect_unix(sock);
        for round in 0..=*k {
            c.write_all(b"next\n").expect("console");
            let want = format!("blk-rounds: round={} done", 2 + round);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains(&want)
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "clone {k} never printed {want:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        c.write_all(b"quit\n").expect("console");
    }
    let len = (sectors * 512) as usize;
    let offset = start_sector * 512;
    for (k, mut child, log, _) in clones {
        let status = child.wait().expect("clone exit");
        assert!(
            status.success(),
            "clone {k}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let disk = export_volume(
            &PathBuf::from(format!("{}-clone{k}-0", volume.display())),
            None,
            &scratch.path(&format!("clone{k}.raw")),
        );
        let want = pattern_bytes(seed + 2 + k, offset, len);
        assert!(
            disk[offset as usize..offset as usize + len] == want[..],
            "clone {k} does not hold its own last round"
        );
    }
    // The original's volume kept its own last round (1): no clone wrote into it.
    let original = export_volume(&volume, None, &scratch.path("original.raw"));
    assert!(
        original[offset as usize..offset as usize + len]
            == pattern_bytes(seed + 1, offset, len)[..]
    );
}

#[test]
fn ten_diff_snapshots_restore_to_the_same_memory_as_a_full_one() {
    require_kvm();
    let scratch = Scratch::new("snap-diffs");
    let store = scratch.path("snapshots");
    let mut vm = start(
        &scratch,
        "workload=dirty dirty.mib=8 dirty.rate=4000 dirty.seconds=5",
        json!([]),
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    snapshot(&vm, &store, "base");
    for k in 1..=9 {
        std::thread::sleep(Duration::from_millis(40));
        let (status, body) = vm.api(
            "PUT",
            "/snapshot/create",
            Some(json!({"snapshot_dir": store, "snapshot_id": format!("d{k}"), "snapshot_type": "Diff"})),
        );
        assert_eq!(status, 201, "{body:?}");
    }
    // The tenth diff and a full snapshot of the very same moment (the guest is paused).
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    let (status, body) = vm.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": store, "snapshot_id": "d10", "snapshot_type": "Diff"})),
    );
    assert_eq!(status, 201, "{body:?}");
    let diff_bytes = body.expect("body")["memory_bytes"].as_u64().expect("bytes");
    snapshot(&vm, &store, "full");
    vm.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);
    set_aside(&vm.serial_log);

    let snapshots = snapshot::SnapshotStore::open(&store).expect("store");
    assert_eq!(
        snapshots.get("d10").expect("d10").parent.as_deref(),
        Some("d9")
    );
    let full = snapshots.open_memory("full").expect("full");
    assert!(
        diff_bytes < full.data_bytes(),
        "a diff ({diff_bytes} B) should be smaller than a full image"
    );
    let from_chain = scratch.path("d10.img");
    snapshots
        .export_full_memory("d10", &from_chain)
        .expect("fold the chain");
    let exported_full = scratch.path("full.img");
    snapshots
        .export_full_memory("full", &exported_full)
        .expect("export full");
    // Compare guest memory (the image headers name their snapshot and differ).
    let a = snapshot::FullImage::open(&from_chain).expect("open folded");
    let b = snapshot::FullImage::open(&exported_full).expect("open full");
    assert_eq!(a.layout(), b.layout());
    for (i, region) in a.layout().regions.iter().enumerate() {
        let mut offset = 0;
        let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        while offset < region.len {
            let n = (region.len - offset).min(1 << 20) as usize;
            a.read(i, offset, &mut x[..n]).expect("read folded");
            b.read(i, offset, &mut y[..n]).expect("read full");
            assert!(
                x[..n] == y[..n],
                "guest memory differs in region {i} at offset {offset:#x}"
            );
            offset += n as u64;
        }
    }
    // And the tenth diff restores (its ten diffs laid over the full image's memory) and
    // continues like the original.
    restore_to_the_end(&store.join("d10"), &scratch, &vm.serial_log, &original);
}

#[test]
fn periodic_snapshots_keep_the_newest_and_the_newest_restores() {
    require_kvm();
    let scratch = Scratch::new("snap-periodic");
    let store = scratch.path("snapshots");
    let mut vm = start(
        &scratch,
        "workload=dirty dirty.mib=8 dirty.rate=3000 dirty.seconds=4",
        json!([]),
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 150, "keep_count": 3}),
    );
    // Bad schedules are refused by name.
    let (status, body) = vm.api(
        "PUT",
        "/snapshot/schedule",
        Some(json!({"snapshot_dir": store, "interval_ms": 5})),
    );
    assert_eq!(status, 400, "{body:?}");
    vm.wait_serial("dirty: second=3 ", Duration::from_secs(30));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 0}),
    );
    std::thread::sleep(Duration::from_millis(400));
    let snapshots = snapshot::SnapshotStore::open(&store).expect("store");
    let listing = snapshots.list().expect("list");
    let n = listing.snapshots.len();
    assert!(
        (1..=3).contains(&n),
        "retention kept {n} snapshots: {listing:?}"
    );
    // The oldest kept one was consolidated into a full image, so nothing older is needed.
    let oldest = &listing.snapshots[0];
    assert_eq!(oldest.kind, snapshot::SnapshotKind::Full, "{listing:?}");
    let newest = listing.snapshots.last().expect("newest").id.clone();
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);
    set_aside(&vm.serial_log);
    restore_to_the_end(&store.join(&newest), &scratch, &vm.serial_log, &original);
}

#[test]
fn periodic_diffs_are_consolidated_in_the_background_so_chains_stay_short() {
    require_kvm();
    let scratch = Scratch::new("snap-chains");
    let store = scratch.path("snapshots");
    let mut vm = start(
        &scratch,
        "workload=dirty dirty.mib=4 dirty.rate=2000 dirty.seconds=5",
        json!([]),
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 100}),
    );
    vm.wait_serial("dirty: second=3 ", Duration::from_secs(30));
    vm.api_ok(
        "PUT",
        "/snapshot/schedule",
        json!({"snapshot_dir": store, "interval_ms": 0}),
    );
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    stop(&mut vm);
    let snapshots = snapshot::SnapshotStore::open(&store).expect("store");
    let listing = snapshots.list().expect("list");
    // The VMM's `MAX_DIFFS_AT_RESTORE`.
    let max = 4;
    assert!(
        listing.snapshots.len() > max + 2,
        "too few snapshots to tell: {listing:?}"
    );
    let fulls = listing
        .snapshots
        .iter()
        .filter(|m| m.kind == snapshot::SnapshotKind::Full)
        .count();
    assert!(fulls >= 2, "no diff was consolidated: {listing:?}");
    for m in &listing.snapshots {
        let chain = snapshots.chain(&m.id).expect("chain");
        assert!(chain.len() <= max + 1, "{}: chain {chain:?}", m.id);
    }
    // The newest restores (its few diffs laid over the newest full image).
    set_aside(&vm.serial_log);
    let newest = listing.snapshots.last().expect("newest").id.clone();
    restore_to_the_end(&store.join(&newest), &scratch, &vm.serial_log, &original);
}
