//! `reprise-bench`: boot time, virtio-blk throughput and virtio-net echo rate of Reprise,
//! side by side with QEMU microvm running the same test guest, measured in one run.

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
        let mut s = boot_times(v, kernel, &dir, args.runs).map_err(|e| e.to_string())?;
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
            blk_bench(v, kernel, &dir, &disk, args.blk_mib, args.blk_ops)
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
        let r = net_echo_rate(v, kernel, &dir, args.net_rounds).map_err(|e| e.to_string())?;
        println!("| {} | {r:.0} |", v.name());
        net.push(r);
    }
    println!(
        "\nReprise / QEMU echo rate ratio: {}",
        ratio(net[0], net.get(1).copied())
    );
    let _ = std::fs::remove_dir_all(&dir);
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
