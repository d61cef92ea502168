//! Block-store volumes under a running guest: snapshots taken mid-run hold exactly the
//! bytes of that moment (read back over NBD with qemu-img), clones boot with them, online
//! growth reaches the guest, limits change while it runs, and a writer killed at random
//! points leaves a clean volume holding every flushed write.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reprise_tests::*;
use serde_json::json;

const SECTOR: u64 = 512;
const START: u64 = 2048;
const COUNT: u64 = 512;

fn create_volume(scratch: &Scratch, name: &str, size: &str) -> PathBuf {
    let dir = scratch.path("store").join("volumes").join(name);
    volume_tool(&["create", dir.to_str().expect("utf-8"), "--size", size]);
    dir
}

/// Starts a VM over the API with one volume drive and the console on a socket.
fn start_vm(scratch: &Scratch, volume: &Path, args: &str) -> (Reprise, UnixStream) {
    let vm = Reprise::with_api(scratch);
    let input = scratch.path("console.sock");
    let drives = json!([{"drive_id": "d0", "volume_path": volume}]);
    vm.boot_guest(64, args, drives, Some(&input));
    let console = connect_unix(&input);
    (vm, console)
}

fn range(bytes: &[u8]) -> &[u8] {
    &bytes[(START * SECTOR) as usize..((START + COUNT) * SECTOR) as usize]
}

fn nbd_read(scratch: &Scratch, spec: &str, export_name: &str) -> Vec<u8> {
    let sock = scratch.path("nbd.sock");
    let mut server = Command::new(binary("reprise-tools", "reprise-volume"))
        .args([
            "serve-nbd",
            "--read-only",
            "--socket",
            sock.to_str().expect("utf-8"),
            spec,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("serve-nbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "NBD socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = scratch.path("nbd-read.raw");
    let url = format!("nbd+unix:///{export_name}?socket={}", sock.display());
    let status = Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &url,
            out.to_str().expect("utf-8"),
        ])
        .status()
        .expect("qemu-img (Debian package qemu-utils)");
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.success(), "qemu-img convert from {url} failed");
    std::fs::read(out).expect("read qemu-img output")
}

#[test]
fn snapshot_mid_run_holds_that_moment_and_its_clone_boots_with_it() {
    require_kvm();
    let scratch = Scratch::new("vol-snap");
    let volume = create_volume(&scratch, "data", "32M");
    let seed = 4242;
    let args = format!(
        "workload=blk-rounds blk.wait=1 seed={seed} blk.sector={START} blk.sectors={COUNT}"
    );
    let (mut vm, mut console) = start_vm(&scratch, &volume, &args);
    vm.wait_serial("blk-rounds: round=0 done", Duration::from_secs(30));
    console.write_all(b"next\n").expect("console");
    vm.wait_serial("blk-rounds: round=1 done", Duration::from_secs(30));
    // The guest is idle between rounds: snapshot now, then let it keep writing.
    let (status, body) = vm.api("PUT", "/drives/d0/snapshots/after-round-1", None);
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(body.expect("snapshot")["name"], "after-round-1");
    let (_, list) = vm.api("GET", "/drives/d0/snapshots", None);
    assert_eq!(list.expect("list").as_array().map(Vec::len), Some(1));
    // A second snapshot with the same name is refused.
    let (status, _) = vm.api("PUT", "/drives/d0/snapshots/after-round-1", None);
    assert!(
        (400..500).contains(&status),
        "duplicate snapshot name gave {status}"
    );
    console.write_all(b"next\n").expect("console");
    vm.wait_serial("blk-rounds: round=2 done", Duration::from_secs(30));
    console.write_all(b"quit\n").expect("console");
    vm.wait_serial("reprise-guest: done", Duration::from_secs(30));

    // Over NBD (qemu-img), while the VMM still holds the volume: the snapshot is round 1.
    let spec = format!("{}@after-round-1", volume.display());
    let snap = nbd_read(&scratch, &spec, "data@after-round-1");
    assert_eq!(snap.len() as u64, 32 << 20);
    let round1 = pattern_bytes(seed + 1, START * SECTOR, (COUNT * SECTOR) as usize);
    assert!(
        range(&snap) == &round1[..],
        "snapshot does not hold round 1"
    );
    assert!(
        snap[..(START * SECTOR) as usize].iter().all(|&b| b == 0),
        "bytes before the range changed"
    );

    // Stop the VMM (releases the writer lock); the live volume holds round 2.
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(vm.child.id() as i32, libc::SIGTERM) };
    assert!(vm.wait_exit(Duration::from_secs(10)).success());
    let live = export_volume(&volume, None, &scratch.path("live.raw"));
    let round2 = pattern_bytes(seed + 2, START * SECTOR, (COUNT * SECTOR) as usize);
    assert!(range(&live) == &round2[..], "volume does not hold round 2");

    // A clone of the snapshot boots with the round-1 bytes.
    let clone = scratch.path("store").join("volumes").join("data-clone");
    volume_tool(&[
        "clone",
        volume.to_str().expect("utf-8"),
        "after-round-1",
        clone.to_str().expect("utf-8"),
    ]);
    let scratch2 = Scratch::new("vol-clone");
    let args = format!("workload=blk seed=9 blk.sector={START} blk.sectors={COUNT}");
    let cfg = guest_config(
        &scratch2,
        &args,
        json!([{"drive_id": "d0", "volume_path": clone}]),
    );
    let mut cvm = spawn_with_config(&scratch2, &cfg);
    assert!(
        cvm.wait_exit(Duration::from_secs(60)).success(),
        "{}\n{}",
        cvm.serial(),
        cvm.stderr()
    );
    let expected = format!("blk0: read crc32={:08x}\n", crc32fast::hash(&round1));
    assert!(
        cvm.serial().contains(&expected),
        "want {expected:?} in\n{}",
        cvm.serial()
    );
    // The clone's writes did not reach the source or its snapshot.
    let snap_again = export_volume(
        &volume,
        Some("after-round-1"),
        &scratch.path("snap-again.raw"),
    );
    assert!(range(&snap_again) == &round1[..]);
}

#[test]
fn online_grow_reaches_the_running_guest() {
    require_kvm();
    let scratch = Scratch::new("vol-grow");
    let volume = create_volume(&scratch, "grow", "16M");
    let (mut vm, _console) = start_vm(&scratch, &volume, "workload=blk-resize seed=5");
    vm.wait_serial("blk-resize: capacity=32768", Duration::from_secs(30));
    // Shrinking without permission is refused by name; growing is instant.
    let (status, body) = vm.api(
        "PATCH",
        "/drives/d0",
        Some(json!({"drive_id": "d0", "size_bytes": 8 << 20})),
    );
    assert_eq!(status, 400, "{body:?}");
    assert!(body.expect("error")["fault_message"]
        .as_str()
        .unwrap_or("")
        .contains("allow_shrink"));
    vm.api_ok(
        "PATCH",
        "/drives/d0",
        json!({"drive_id": "d0", "size_bytes": 48 << 20}),
    );
    let serial = vm.wait_serial("blk-resize: last sector", Duration::from_secs(30));
    assert!(
        serial.contains("blk-resize: resized capacity=98304\n"),
        "{serial}"
    );
    assert!(serial.contains("blk-resize: last sector ok\n"), "{serial}");
    let (_, status) = vm.api("GET", "/drives/d0", None);
    let status = status.expect("status");
    assert_eq!(status["capacity_bytes"], 48 << 20);
    assert_eq!(status["backend"], "volume");
}

#[test]
fn raw_image_grows_online_too() {
    require_kvm();
    let scratch = Scratch::new("raw-grow");
    let img = scratch.path("disk.img");
    std::fs::write(&img, vec![0u8; 4 << 20]).expect("image");
    let vm = Reprise::with_api(&scratch);
    let drives = json!([{"drive_id": "d0", "path_on_host": img}]);
    vm.boot_guest(64, "workload=blk-resize", drives, None);
    let mut vm = vm;
    vm.wait_serial("blk-resize: capacity=8192", Duration::from_secs(30));
    vm.api_ok(
        "PATCH",
        "/drives/d0",
        json!({"drive_id": "d0", "size_bytes": 6 << 20}),
    );
    let serial = vm.wait_serial("blk-resize: last sector", Duration::from_secs(30));
    assert!(
        serial.contains("blk-resize: resized capacity=12288\nblk-resize: last sector ok\n"),
        "{serial}"
    );
    assert_eq!(std::fs::metadata(&img).expect("image").len(), 6 << 20);
}

#[test]
fn limits_change_while_the_guest_runs() {
    require_kvm();
    let scratch = Scratch::new("vol-limits");
    let volume = create_volume(&scratch, "lim", "16M");
    let vm = Reprise::with_api(&scratch);
    let slow = json!({"iops": {"rate": 100, "burst": 10}});
    let drives = json!([{"drive_id": "d0", "volume_path": volume, "limits": slow}]);
    vm.boot_guest(
        64,
        "workload=blk-rate blk.ops=400 blk.rw=read",
        drives,
        None,
    );
    let mut vm = vm;
    vm.wait_serial("tsc: khz=", Duration::from_secs(30));
    // Let the slow bucket bite, then lift it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = vm.api("GET", "/drives/d0", None);
        if s.expect("status")["counters"]["throttled"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the limit never held the queue");
        std::thread::sleep(Duration::from_millis(20));
    }
    let fast = json!({"iops": {"rate": 100000, "burst": 1000}});
    vm.api_ok(
        "PATCH",
        "/drives/d0",
        json!({"drive_id": "d0", "limits": fast}),
    );
    let (_, s) = vm.api("GET", "/drives/d0", None);
    assert_eq!(s.expect("status")["limits"], fast);
    let serial = vm.wait_serial("blk-rate: ops=400", Duration::from_secs(30));
    // Under the first bucket alone, 400 requests need (400 - 10) / 100 = 3.9 s of guest time.
    let khz: f64 = lines_with(&serial, "tsc: khz=")[0]["tsc: khz=".len()..]
        .parse()
        .expect("khz");
    let cycles: f64 = lines_with(&serial, "blk-rate: ")[0]
        .split("cycles=")
        .nth(1)
        .expect("cycles")
        .parse()
        .expect("cycles");
    let secs = cycles / (khz * 1e3);
    assert!(
        secs < 3.9,
        "the raised limit did not take effect: {secs:.2} s"
    );
}

#[test]
fn writer_killed_at_random_points_leaves_a_clean_volume_with_every_flushed_write() {
    require_kvm();
    let scratch = Scratch::new("vol-crash");
    let volume = create_volume(&scratch, "crash", "8M");
    let seed = 777;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for iteration in 0..12 {
        let run = Scratch::new(&format!("vol-crash-{iteration}"));
        let args =
            format!("workload=blk-rounds seed={seed} blk.sector={START} blk.sectors={COUNT}");
        let cfg = guest_config(
            &run,
            &args,
            json!([{"drive_id": "d0", "volume_path": volume}]),
        );
        let mut vm = spawn_with_config(&run, &cfg);
        vm.wait_serial("blk-rounds: round=0 done", Duration::from_secs(30));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 150));
        vm.child.kill().expect("SIGKILL");
        let _ = vm.child.wait();
        let serial = vm.serial();
        let last_done: u64 = lines_with(&serial, "blk-rounds: round=")
            .iter()
            .filter_map(|l| {
                l.trim_start_matches("blk-rounds: round=")
                    .trim_end_matches(" done")
                    .parse()
                    .ok()
            })
            .max()
            .expect("a completed round");
        // Reopen as the writer would (which repairs what an interruption leaves, such as
        // slots written after the last flush), then check every chunk.
        volume_tool(&["check", volume.to_str().expect("utf-8"), "--repair"]);
        let out = volume_tool(&["check", volume.to_str().expect("utf-8"), "--data"]);
        assert!(out.contains("clean"), "iteration {iteration}: {out}");
        let data = export_volume(&volume, None, &run.path("after.raw"));
        // Every sector holds the last round reported flushed or a later one: the guest
        // prints "done" right after its flush completes, so at most one more flush may
        // have completed unreported, and one more round may have been in flight.
        let rounds: Vec<Vec<u8>> = (0..3)
            .map(|k| {
                pattern_bytes(
                    seed + last_done + k,
                    START * SECTOR,
                    (COUNT * SECTOR) as usize,
                )
            })
            .collect();
        for (i, sector) in range(&data).chunks(SECTOR as usize).enumerate() {
            let at = i * SECTOR as usize..(i + 1) * SECTOR as usize;
            assert!(
                rounds.iter().any(|r| sector == &r[at.clone()]),
                "iteration {iteration}: sector {} lost round {last_done}, which was flushed",
                START + i as u64
            );
        }
    }
}
