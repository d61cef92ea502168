//! The figures as Markdown tables: pause, size on disk and restore.

use super::{rate_label, PauseSample, RestoreSample, Scenario, SnapshotBenchOptions};
use crate::bench::median;

/// Median, max and count of `xs`.
fn med_max(xs: impl Iterator<Item = f64>) -> (f64, f64, usize) {
    let mut v: Vec<f64> = xs.collect();
    let max = v.iter().copied().fold(f64::NAN, f64::max);
    let n = v.len();
    (median(&mut v), max, n)
}

/// `median / max` in ms with two decimals; just the value if there is one sample.
fn fmt_mm((m, x, n): (f64, f64, usize)) -> String {
    match n {
        0 => "-".into(),
        1 => format!("{m:.2}"),
        _ => format!("{m:.2} / {x:.2}"),
    }
}

fn fmt_ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.3}", a / b),
        _ => "-".into(),
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.2}", bytes / f64::from(1u32 << 20))
}

/// Prints the figures as Markdown tables.
pub fn print_tables(scenarios: &[Scenario], opts: &SnapshotBenchOptions) {
    println!(
        "\n## Snapshot pause: `workload=dirty dirty.mib=16`, {} full then {} diff snapshots {} ms apart (QEMU: {} saves, each `stop`, migrate to a file, `cont`)",
        opts.fulls,
        opts.diffs,
        opts.interval.as_millis(),
        opts.fulls + opts.diffs
    );
    println!(
        "\nms, median / max. Guest gap: the time the guest's loop lost, by its TSC, as it \
         reported right after the pause (0 = under {} µs; while the guest sleeps the \
         resolution is one {} Hz tick). First: the VM's first snapshot (QEMU: save); \
         again: the later full ones. QEMU has no diff snapshot: next to Reprise's diffs \
         stand its later saves (all of RAM). Ratio: Reprise guest gap / QEMU guest gap \
         (medians).",
        opts.gap_threshold_us, opts.guest_hz
    );
    println!("\n| guest | dirty rate | snapshot | Reprise pause (API) | Reprise request | Reprise guest gap | QEMU stop→cont | QEMU guest gap | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in scenarios {
        let q = s.qemu.as_ref();
        let (r_first, r_later) = s.reprise.full.split_at(s.reprise.full.len().min(1));
        let (q_first, q_later) = q
            .map(|q| q.full.split_at(q.full.len().min(1)))
            .unwrap_or_default();
        let rows = [
            ("full, first", r_first, q_first),
            ("full, again", r_later, q_later),
            ("diff", &s.reprise.diff[..], q_later),
        ];
        for (kind, samples, qemu) in rows {
            if samples.is_empty() {
                continue;
            }
            let gap = med_max(samples.iter().map(|x| x.guest_gap_ms));
            let q_gap = med_max(qemu.iter().map(|x| x.guest_gap_ms));
            println!(
                "| {} MiB | {} | {kind} | {} | {} | {} | {} | {} | {} |",
                s.mem_mib,
                rate_label(s.rate),
                fmt_mm(med_max(samples.iter().map(|x| x.pause_ms))),
                fmt_mm(med_max(samples.iter().map(|x| x.request_ms))),
                fmt_mm(gap),
                fmt_mm(med_max(qemu.iter().map(|x| x.pause_ms))),
                fmt_mm(q_gap),
                fmt_ratio(gap.0, (q_gap.2 > 0).then_some(q_gap.0)),
            );
        }
    }
    println!(
        "\nGuest's longest gap in a second without snapshots (ms): {}",
        {
            let parts: Vec<String> = scenarios
                .iter()
                .map(|s| {
                    format!(
                        "{} MiB {}: Reprise {:.2}{}",
                        s.mem_mib,
                        rate_label(s.rate),
                        s.reprise.baseline_gap_ms,
                        s.qemu
                            .as_ref()
                            .map(|q| format!(", QEMU {:.2}", q.baseline_gap_ms))
                            .unwrap_or_default()
                    )
                })
                .collect();
            parts.join("; ")
        }
    );

    println!("\n## Snapshot size on disk (allocated bytes, MiB, medians)");
    println!(
        "\nQEMU's saves are taken on the same schedule: next to Reprise's full snapshots stand \
         the saves taken at the same times, next to its diffs the later ones."
    );
    println!("\n| guest | dirty rate | Reprise full | QEMU save | full / QEMU | Reprise diff | QEMU save | diff / QEMU |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in scenarios {
        let bytes = |v: &[PauseSample]| {
            let mut b: Vec<f64> = v.iter().map(|x| x.bytes as f64).collect();
            median(&mut b)
        };
        let fulls = s.reprise.full.len();
        let full = bytes(&s.reprise.full);
        let diff = bytes(&s.reprise.diff);
        let q_full = s
            .qemu
            .as_ref()
            .map(|q| bytes(&q.full[..fulls.min(q.full.len())]));
        let q_later = s
            .qemu
            .as_ref()
            .map(|q| bytes(&q.full[fulls.min(q.full.len())..]));
        let shown = |b: Option<f64>| match b {
            Some(b) if !b.is_nan() => mib(b),
            _ => "-".into(),
        };
        println!(
            "| {} MiB | {} | {} | {} | {} | {} | {} | {} |",
            s.mem_mib,
            rate_label(s.rate),
            mib(full),
            shown(q_full),
            fmt_ratio(full, q_full),
            shown(Some(diff)),
            shown(q_later),
            fmt_ratio(diff, q_later),
        );
    }

    println!(
        "\n## Restore: process start → the guest runs, and → its first serial line (ms, median of {})",
        opts.restores
    );
    println!(
        "\nReprise runs: its first `KVM_RUN` (the VMM logs its CLOCK_MONOTONIC time); QEMU \
         runs: QMP `cont` returned, after the incoming migration finished. From diff: a restore of the last \
         diff, which lays the chain's diffs over the mapped full image. Ratio: Reprise / QEMU, first \
         line from the full snapshot."
    );
    println!("\n| guest | dirty rate | Reprise runs | Reprise line | Reprise line (from diff) | QEMU runs | QEMU line | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in scenarios {
        let med = |v: &[RestoreSample], f: fn(&RestoreSample) -> f64| {
            let mut x: Vec<f64> = v.iter().map(f).collect();
            median(&mut x)
        };
        let r_line = med(&s.reprise.restore, |x| x.line_ms);
        let q_line = s.qemu.as_ref().map(|q| med(&q.restore, |x| x.line_ms));
        println!(
            "| {} MiB | {} | {:.2} | {r_line:.2} | {} | {} | {} | {} |",
            s.mem_mib,
            rate_label(s.rate),
            med(&s.reprise.restore, |x| x.running_ms),
            s.reprise
                .restore_diff
                .map(|d| format!("{:.2}", d.line_ms))
                .unwrap_or_else(|| "-".into()),
            s.qemu
                .as_ref()
                .map(|q| format!("{:.2}", med(&q.restore, |x| x.running_ms)))
                .unwrap_or_else(|| "-".into()),
            q_line
                .map(|l| format!("{l:.2}"))
                .unwrap_or_else(|| "-".into()),
            fmt_ratio(r_line, q_line),
        );
    }
}
