//! The report: the overhead, capture-size and CPU tables as Markdown, and the median,
//! spread and number formatting they use.

use super::cpu::QUIET_BUSY;
use super::{CaptureSize, Mode, RecordingBenchOptions, RecordingResults, RunCost};
use crate::bench::median;

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
