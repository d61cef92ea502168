//! `reprise-demo`: boots the test guest under Reprise with a disk and a network device from a
//! config file and shows both working: the guest writes a seeded pattern that the host then
//! finds on the disk image, and echoes frames the host sends through the datagram backend.
//! Then a recorded guest is snapshotted while it runs and a clone restored in a new process
//! continues exactly like the original.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reprise_tools::guest_run::{reprise_command, DgramNet, GuestProcess, GuestSpec};

const SEED: u64 = 2026;
const SECTOR: u64 = 512;
const START: u64 = 2048;
const COUNT: u64 = 1024;
const GUEST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x02];
const HOST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x01];

fn step(msg: &str) {
    println!("\n== {msg}");
}

fn spec<'a>(kernel: &'a Path, args: &str, disk: &Path, net: DgramNet) -> GuestSpec<'a> {
    GuestSpec {
        kernel,
        args: args.to_string(),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![disk.to_path_buf()],
        net: Some(net),
    }
}

fn net(dir: &Path) -> DgramNet {
    DgramNet {
        vmm_sock: dir.join("vm-net.sock"),
        host_sock: dir.join("host-net.sock"),
        mac: "06:00:ac:10:00:02".into(),
    }
}

fn show(p: &GuestProcess, from: usize) -> usize {
    for line in &p.output[from..] {
        println!("   guest | {line}");
    }
    p.output.len()
}

fn disk_demo(dir: &Path, kernel: &Path, disk: &Path) -> Result<(), String> {
    step("1. virtio-blk: the guest writes a seeded pattern; the host checks the image bytes");
    let args = format!("workload=blk seed={SEED} blk.sector={START} blk.sectors={COUNT}");
    let cmd =
        reprise_command(&spec(kernel, &args, disk, net(dir)), dir).map_err(|e| e.to_string())?;
    let mut guest = GuestProcess::spawn("reprise", cmd, false).map_err(|e| e.to_string())?;
    let booted = guest
        .wait_line("reprise-guest 0.1 booted", Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    guest
        .wait_line("reprise-guest: done", Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let ok = guest.finish(Duration::from_secs(10));
    show(&guest, 0);
    println!(
        "   banner after {:.1} ms; VMM exit {}",
        booted.as_secs_f64() * 1e3,
        if ok { "ok" } else { "FAILED" }
    );
    if !ok
        || !guest
            .output
            .iter()
            .any(|l| l.starts_with("blk0: verify ok"))
    {
        return Err("the blk workload did not verify".into());
    }
    let image = std::fs::read(disk).map_err(|e| format!("read {}: {e}", disk.display()))?;
    let start = (START * SECTOR) as usize;
    let len = ((COUNT - 8) * SECTOR) as usize; // the last 8 sectors were discarded
    let expected = guest_image::pattern_bytes(SEED, start as u64, len);
    if image[start..start + len] != expected[..] {
        return Err("the host image does not hold the guest's pattern".into());
    }
    println!(
        "   host  | {} bytes at offset {start} match pattern(seed={SEED}) byte for byte",
        len
    );
    Ok(())
}

fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = [GUEST_MAC, HOST_MAC].concat();
    f.extend_from_slice(&[0x88, 0xb6]);
    f.extend((0..len - 14).map(|i| (i as u32 ^ seq.wrapping_mul(31)) as u8));
    f
}

fn net_demo(dir: &Path, kernel: &Path, disk: &Path) -> Result<(), String> {
    step(
        "2. virtio-net: the host sends frames through the datagram backend; the guest echoes them",
    );
    let n = net(dir);
    let _ = std::fs::remove_file(&n.host_sock);
    let sock = UnixDatagram::bind(&n.host_sock)
        .map_err(|e| format!("bind {}: {e}", n.host_sock.display()))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let vmm_sock = n.vmm_sock.clone();
    let cmd = reprise_command(&spec(kernel, "workload=net-echo", disk, n), dir)
        .map_err(|e| e.to_string())?;
    let mut guest = GuestProcess::spawn("reprise", cmd, false).map_err(|e| e.to_string())?;
    guest
        .wait_line("net-echo: ready", Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let shown = show(&guest, 0);
    let rounds = 1000u32;
    let mut buf = [0u8; 2048];
    let t = Instant::now();
    for i in 0..rounds {
        let f = frame(64 + (i as usize * 7) % 1450, i);
        sock.send_to(&f, &vmm_sock)
            .map_err(|e| format!("send: {e}"))?;
        let got = sock
            .recv(&mut buf)
            .map_err(|e| format!("no echo for frame {i}: {e}"))?;
        let mut want = f.clone();
        want[..6].copy_from_slice(&f[6..12]);
        want[6..12].copy_from_slice(&f[..6]);
        if buf[..got] != want[..] {
            return Err(format!("echo of frame {i} differs"));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "   host  | {rounds} frames (64..1514 bytes) echoed byte for byte, {:.0} round trips/s",
        f64::from(rounds) / secs
    );
    let mut stop = [GUEST_MAC, HOST_MAC].concat();
    stop.extend_from_slice(&[0x88, 0xb5]);
    stop.extend_from_slice(b"STOP");
    stop.resize(60, 0);
    sock.send_to(&stop, &vmm_sock)
        .map_err(|e| format!("send stop: {e}"))?;
    guest
        .wait_line("reprise-guest: done", Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let ok = guest.finish(Duration::from_secs(10));
    show(&guest, shown);
    if ok {
        Ok(())
    } else {
        Err("reprise did not exit cleanly".into())
    }
}

/// Prints the replay report; an error if the clones did not behave as the recording says.
fn replay_verdict(r: &reprise_tools::demo_replay::ReplayReport) -> Result<(), String> {
    let (seq, at, text) = r.recorded_crash.clone().unwrap_or_default();
    println!("\nReport");
    println!(
        "   original: {} snapshots, crashed after request seq {seq} at VM time {:.3} s: \"{text}\"",
        r.snapshots,
        at as f64 / 1e9
    );
    println!(
        "   clone from snapshot {}, replaying {} inputs at max speed:",
        r.snapshot, r.replay_inputs
    );
    match &r.replay_crash {
        Some((s, what)) => println!(
            "      crashed after input seq {s} ({what}): {}",
            if *s == seq {
                "the same request"
            } else {
                "a DIFFERENT request"
            }
        ),
        None => println!("      did not crash"),
    }
    println!(
        "      outputs diverging from the recording: {}",
        r.replay_divergences
    );
    println!(
        "   clone without the trigger client ({} inputs filtered out): {}",
        r.filtered_out,
        if r.filtered_survived {
            "survived"
        } else {
            "did NOT survive"
        }
    );
    if let Some(d) = &r.filtered_divergence {
        println!("      first divergence (the replies it no longer sends): {d}");
    }
    match &r.replay_crash {
        Some((s, _)) if *s == seq => {}
        Some((s, _)) => {
            return Err(format!(
                "the clone crashed after seq {s}, the original after seq {seq}"
            ))
        }
        None => return Err("the clone did not crash".into()),
    }
    if r.replay_divergences != 0 {
        return Err(format!(
            "the replay diverged {} times",
            r.replay_divergences
        ));
    }
    if !r.filtered_survived {
        return Err("the clone without the trigger client did not survive".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("reprise-demo"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("reprise-demo: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let kernel = guest_image::guest_elf();
    let disk = dir.join("disk.img");
    let prepared = std::fs::File::create(&disk).and_then(|f| f.set_len(64 << 20));
    if let Err(e) = prepared {
        eprintln!("reprise-demo: cannot create {}: {e}", disk.display());
        return ExitCode::FAILURE;
    }
    println!(
        "Reprise demo: test guest {} with a 64 MiB disk and a datagram NIC; files in {}",
        kernel.display(),
        dir.display()
    );
    let snapshots = || {
        step("3. snapshots and recording: a recorded guest is snapshotted while it runs; a clone restored from the diff continues exactly like it");
        reprise_tools::demo_snapshot::run(&dir, kernel)
    };
    for result in [
        disk_demo(&dir, kernel, &disk),
        net_demo(&dir, kernel, &disk),
        snapshots(),
    ] {
        if let Err(e) = result {
            eprintln!("reprise-demo: FAILED: {e}");
            return ExitCode::FAILURE;
        }
    }
    step("4. record -> crash -> clone -> reproduce: the kv service is recorded and snapshotted until a request crashes it; clones replay the capture");
    let report = match reprise_tools::demo_replay::run(&dir, kernel) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reprise-demo: FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    match replay_verdict(&report) {
        Ok(()) => {
            println!("\nAll checks passed.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reprise-demo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
