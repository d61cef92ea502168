//! `reprise-bench`: boot time, virtio-blk throughput, virtio-net echo rate and snapshots of
//! Reprise, side by side with QEMU microvm running the same test guest, measured in one run;
//! the block store; the overhead of recording; and replay into clones.

use std::process::ExitCode;

use clap::Parser;
use reprise_tools::bench::{blk_bench, boot_times, median, net_echo_rate, Vmm};
use reprise_tools::guest_run::qemu_available;

/// Benchmarks Reprise against QEMU microvm with the test guest.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Boot runs per VMM (the median is reported).
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// MiB moved by each sequential block test.
    #[arg(long, default_value_t = 64)]
    blk_mib: u64,
    /// Requests in each random 4 KiB block test.
    #[arg(long, default_value_t = 4000)]
    blk_ops: u64,
    /// Network echo round trips.
    #[arg(long, default_value_t = 5000)]
    net_rounds: u32,
    /// Measure Reprise only.
    #[arg(long)]
    no_qemu: bool,
    /// Which benchmarks: `vm` (boot, virtio-blk, virtio-net vs QEMU), `volumes` (block
    /// store), `snapshots` (VM snapshot pause, size and restore vs QEMU), `recording`
    /// (workloads with recording off and on), `replay` (replay into clones), or `all`.
    #[arg(long, default_value = "all")]
    suite: String,
    /// Shorter snapshot suite: one dirty rate (unlimited), fewer snapshots and restores
    /// (explicit --snap-* options still win).
    #[arg(long, env = "REPRISE_BENCH_QUICK", value_parser = clap::builder::FalseyValueParser::new())]
    quick: bool,
    /// Snapshot suite: guest memory sizes in MiB [default: 256,2048].
    #[arg(long, value_delimiter = ',')]
    snap_mem: Option<Vec<u64>>,
    /// Snapshot suite: dirty rates in page writes per second, 0 = unlimited
    /// [default: 1000,10000,0; --quick: 0].
    #[arg(long, value_delimiter = ',')]
    snap_rates: Option<Vec<u64>>,
    /// Snapshot suite: full snapshots per run [default: 3; --quick: 1].
    #[arg(long)]
    snap_fulls: Option<usize>,
    /// Snapshot suite: diff snapshots per run, after the full ones [default: 6; --quick: 3].
    #[arg(long)]
    snap_diffs: Option<usize>,
    /// Snapshot suite: milliseconds between snapshots [default: 1000; --quick: 500].
    #[arg(long)]
    snap_interval_ms: Option<u64>,
    /// Snapshot suite: restores of the last full snapshot timed [default: 5; --quick: 2].
    #[arg(long)]
    snap_restores: Option<usize>,
    /// Recording suite: repetitions of each workload in each mode (off, full, compact).
    #[arg(long, default_value_t = 7)]
    rec_runs: usize,
    /// Recording suite: network echo round trips per run.
    #[arg(long, default_value_t = 20000)]
    rec_net_rounds: u32,
    /// Recording suite: MiB moved by each sequential block test.
    #[arg(long, default_value_t = 128)]
    rec_blk_mib: u64,
    /// Recording suite: requests in each random 4 KiB block test.
    #[arg(long, default_value_t = 20000)]
    rec_blk_ops: u64,
    /// Recording suite: kv requests per run (0: skip the kv workload, which needs root,
    /// /dev/net/tun and iproute2).
    #[arg(long, default_value_t = 20000)]
    kv_requests: u64,
    /// Recording suite: kv requests per second (0: closed loop, one at a time).
    #[arg(long, default_value_t = 1_000_000)]
    kv_rate: u32,
    /// Recording suite: most kv requests in flight.
    #[arg(long, default_value_t = 32)]
    kv_window: usize,
    /// Recording suite: before each run, wait up to this many seconds for the machine to
    /// be quiet (0: do not wait).
    #[arg(long, default_value_t = 20)]
    rec_quiet_secs: u64,
    /// Replay suite: repetitions of each measurement.
    #[arg(long, default_value_t = 5)]
    replay_runs: usize,
    /// Replay suite: kv requests per second offered in the mostly idle recording.
    #[arg(long, default_value_t = 50)]
    replay_idle_rate: u32,
    /// Replay suite: kv requests in the mostly idle recording.
    #[arg(long, default_value_t = 400)]
    replay_idle_requests: u64,
    /// Replay suite: kv requests per second offered in the busy recording.
    #[arg(long, default_value_t = 2000)]
    replay_busy_rate: u32,
    /// Replay suite: kv requests in the busy recording.
    #[arg(long, default_value_t = 8000)]
    replay_busy_requests: u64,
    /// Replay suite: milliseconds between the recordings' snapshots.
    #[arg(long, default_value_t = 1000)]
    replay_interval_ms: u64,
    /// Layers of the deep volume in the block-store comparison.
    #[arg(long, default_value_t = 20)]
    deep_layers: u32,
    /// Size of the volume snapshotted and cloned, in GiB.
    #[arg(long, default_value_t = 10)]
    big_gib: u64,
    /// Data written to it before, in GiB.
    #[arg(long, default_value_t = 4)]
    big_written_gib: u64,
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.map(|b| format!("{:.2}", a / b))
        .unwrap_or_else(|| "-".into())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn run(args: Args) -> Result<(), String> {
    let kernel = guest_image::guest_elf();
    let dir = std::env::temp_dir().join(format!("reprise-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = match args.suite.as_str() {
        "vm" => vm_suite(&args, kernel, &dir),
        "volumes" => volume_suite(&args, kernel, &dir),
        "snapshots" => snapshot_suite(&args, kernel, &dir),
        "recording" => recording_suite(&args, kernel, &dir),
        "replay" => replay_suite(&args, kernel, &dir),
        "all" => vm_suite(&args, kernel, &dir)
            .and_then(|()| volume_suite(&args, kernel, &dir))
            .and_then(|()| snapshot_suite(&args, kernel, &dir))
            .and_then(|()| recording_suite(&args, kernel, &dir))
            .and_then(|()| replay_suite(&args, kernel, &dir)),
        other => Err(format!(
            "--suite {other:?}: use vm, volumes, snapshots, recording, replay or all"
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn volume_suite(
    args: &Args,
    kernel: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), String> {
    use reprise_tools::bench_volumes::{disk_comparison, nbd_read_rates, snapshot_clone_ms};
    println!("\n## Block store: guest virtio-blk (QD1) on a raw image vs volumes, {} MiB sequential, {} random 4 KiB", args.blk_mib, args.blk_ops);
    let disks = disk_comparison(kernel, dir, args.blk_mib, args.blk_ops, args.deep_layers)?;
    print!("| test |");
    for d in &disks {
        print!(" {} |", d.label);
    }
    println!();
    println!("|---|{}", "---|".repeat(disks.len()));
    for (i, raw) in disks[0].figures.iter().enumerate() {
        let unit = if raw.test.starts_with("seq") {
            "MiB/s"
        } else {
            "IOPS"
        };
        let value =
            |f: &reprise_tools::bench::BlkFigure| if unit == "IOPS" { f.iops } else { f.mib_per_s };
        print!("| {} ({unit}) | {:.0} |", raw.test, value(raw));
        for d in &disks[1..] {
            match d.figures.get(i) {
                Some(f) => print!(" {:.0} ({:.2}) |", value(f), value(f) / value(raw)),
                None => print!(" - |"),
            }
        }
        println!();
    }
    println!("\n(ratios to the raw image in parentheses)");
    let store = dir.join("big-store");
    let (snap_ms, clone_ms) =
        snapshot_clone_ms(&store, args.big_gib << 30, args.big_written_gib << 30)?;
    let (empty_snap, empty_clone) =
        snapshot_clone_ms(&dir.join("empty-store"), args.big_gib << 30, 0)?;
    println!("\n## Snapshot and clone of a {} GiB volume", args.big_gib);
    println!("| volume | snapshot ms | clone ms |\n|---|---|---|");
    println!(
        "| {} GiB written | {snap_ms:.2} | {clone_ms:.2} |",
        args.big_written_gib
    );
    println!("| empty | {empty_snap:.2} | {empty_clone:.2} |");
    let tool = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("reprise-volume");
    let (vol_rate, kit_rate) = nbd_read_rates(&tool, dir, 512)?;
    println!("\n## NBD read with nbdcopy (512 MiB to null:)");
    println!("| server | MiB/s |\n|---|---|");
    println!(
        "| reprise-volume serve-nbd | {vol_rate:.0} |\n| nbdkit memory plugin | {kit_rate:.0} |"
    );
    println!("\nReprise / nbdkit ratio: {:.2}", vol_rate / kit_rate);
    Ok(())
}

fn recording_suite(
    args: &Args,
    kernel: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), String> {
    use reprise_tools::bench_recording::{print_tables, run_all, RecordingBenchOptions};
    let opts = RecordingBenchOptions {
        runs: args.rec_runs.max(1),
        net_rounds: args.rec_net_rounds,
        blk_mib: args.rec_blk_mib,
        blk_ops: args.rec_blk_ops,
        kv_requests: args.kv_requests,
        kv_rate: args.kv_rate,
        kv_window: args.kv_window,
        quiet_wait: std::time::Duration::from_secs(args.rec_quiet_secs),
    };
    let results = run_all(kernel, dir, &opts)?;
    print_tables(&results, &opts);
    Ok(())
}

fn replay_suite(
    args: &Args,
    kernel: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), String> {
    use reprise_tools::bench_replay::{print_tables, run_all, ReplayBenchOptions};
    let opts = ReplayBenchOptions {
        runs: args.replay_runs.max(1),
        idle_rate: args.replay_idle_rate,
        idle_requests: args.replay_idle_requests,
        busy_rate: args.replay_busy_rate,
        busy_requests: args.replay_busy_requests,
        interval_ms: args.replay_interval_ms,
    };
    let results = run_all(kernel, dir, &opts)?;
    print_tables(&results, &opts);
    Ok(())
}

fn snapshot_suite(
    args: &Args,
    kernel: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), String> {
    use reprise_tools::bench_snapshots::{print_tables, run_all, SnapshotBenchOptions};
    let with_qemu = !args.no_qemu && qemu_available();
    if !args.no_qemu && !with_qemu {
        eprintln!("qemu-system-x86_64 not found: measuring Reprise only");
    }
    let quick = args.quick;
    let opts = SnapshotBenchOptions {
        mem_mib: args.snap_mem.clone().unwrap_or_else(|| vec![256, 2048]),
        rates: args.snap_rates.clone().unwrap_or_else(|| {
            if quick {
                vec![0]
            } else {
                vec![1000, 10000, 0]
            }
        }),
        fulls: args.snap_fulls.unwrap_or(if quick { 1 } else { 3 }).max(1),
        diffs: args.snap_diffs.unwrap_or(if quick { 3 } else { 6 }),
        interval: std::time::Duration::from_millis(args.snap_interval_ms.unwrap_or(if quick {
            500
        } else {
            1000
        })),
        restores: args
            .snap_restores
            .unwrap_or(if quick { 2 } else { 5 })
            .max(1),
        gap_threshold_us: 500,
        guest_hz: 1000,
        qemu: with_qemu,
    };
    let scenarios = run_all(kernel, dir, &opts)?;
    print_tables(&scenarios, &opts);
    Ok(())
}

fn vm_suite(args: &Args, kernel: &std::path::Path, dir: &std::path::Path) -> Result<(), String> {
    let with_qemu = !args.no_qemu && qemu_available();
    if !args.no_qemu && !with_qemu {
        eprintln!("qemu-system-x86_64 not found: measuring Reprise only");
    }
    let vmms: Vec<Vmm> = if with_qemu {
        vec![Vmm::Reprise, Vmm::Qemu]
    } else {
        vec![Vmm::Reprise]
    };

    println!("# Reprise benchmarks (test guest {})", kernel.display());
    println!(
        "\n## Boot: process start to the guest's banner on serial, median of {} runs",
        args.runs
    );
    println!("| VMM | median ms | min ms | max ms |\n|---|---|---|---|");
    let mut boot = Vec::new();
    for &v in &vmms {
        let mut s = boot_times(v, kernel, dir, args.runs).map_err(|e| e.to_string())?;
        let m = median(&mut s);
        println!(
            "| {} | {m:.2} | {:.2} | {:.2} |",
            v.name(),
            s[0],
            s[s.len() - 1]
        );
        boot.push(m);
    }
    println!(
        "\nReprise / QEMU boot time ratio: {}",
        ratio(boot[0], boot.get(1).copied())
    );

    println!("\n## virtio-blk, queue depth 1, {} MiB sequential (128 KiB requests), {} random 4 KiB requests", args.blk_mib, args.blk_ops);
    println!("| test | reprise MiB/s | reprise IOPS | qemu MiB/s | qemu IOPS | ratio (reprise/qemu) |\n|---|---|---|---|---|---|");
    let mut figures = Vec::new();
    for &v in &vmms {
        let disk = dir.join(format!("{}-bench.img", v.name()));
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len((args.blk_mib + 16) << 20))
            .map_err(|e| e.to_string())?;
        figures.push(
            blk_bench(v, kernel, dir, &disk, args.blk_mib, args.blk_ops)
                .map_err(|e| e.to_string())?,
        );
        let _ = std::fs::remove_file(&disk);
    }
    for (i, r) in figures[0].iter().enumerate() {
        let q = figures.get(1).and_then(|f| f.get(i));
        println!(
            "| {} | {:.1} | {:.0} | {} | {} | {} |",
            r.test,
            r.mib_per_s,
            r.iops,
            fmt_opt(q.map(|q| q.mib_per_s), 1),
            fmt_opt(q.map(|q| q.iops), 0),
            ratio(r.iops, q.map(|q| q.iops))
        );
    }

    println!(
        "\n## virtio-net echo: 64-byte frames through a Unix datagram backend, {} round trips",
        args.net_rounds
    );
    println!("| VMM | round trips/s |\n|---|---|");
    let mut net = Vec::new();
    for &v in &vmms {
        let r = net_echo_rate(v, kernel, dir, args.net_rounds).map_err(|e| e.to_string())?;
        println!("| {} | {r:.0} |", v.name());
        net.push(r);
    }
    println!(
        "\nReprise / QEMU echo rate ratio: {}",
        ratio(net[0], net.get(1).copied())
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reprise-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
