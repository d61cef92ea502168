//! Snapshot benchmarks: how long a snapshot pauses the guest, how much it stores and how
//! fast a VM comes back from it, for Reprise and for QEMU microvm running the same test
//! guest (`workload=dirty`, which writes pages of a 16 MiB working set at a set rate).
//!
//! The pause is measured three ways: Reprise's own figure (`pause_us` of
//! `PUT /snapshot/create`), the host-side time (the API request's round trip; for QEMU, QMP
//! `stop` → migration to a file completed → `cont`), and the gap the guest itself saw in
//! its loop, timed with its TSC (`dirty.gap_us`; see `tests/guest/src/workload/dirty.rs`).
//! QEMU has no incremental snapshot: each of its saves writes all of guest RAM (zero pages
//! as markers), so its figure stands next to Reprise's full and diff snapshots alike.
//! Restore is timed from process start to the guest running (Reprise: the first `KVM_RUN`,
//! from the VMM's log; QEMU: `cont` done) and to the guest's first serial line (the dirty
//! workload reports the time it lost at once, so that line comes as soon as it runs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::median;
use crate::guest_run::{qemu_command, reprise_binary, reprise_command, GuestProcess, GuestSpec};
use crate::qmp::Qmp;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SnapshotBenchOptions {
    /// Guest memory sizes, MiB.
    pub mem_mib: Vec<u64>,
    /// Dirty rates, page writes per second (0 = as fast as the guest can).
    pub rates: Vec<u64>,
    /// Full snapshots per run (at least 1), before the diffs (QEMU saves `fulls + diffs`
    /// times).
    pub fulls: usize,
    /// Diff snapshots per run (Reprise).
    pub diffs: usize,
    /// Time between snapshots; each is taken in the middle of its interval.
    pub interval: Duration,
    /// Restores of the last full snapshot timed per run (QEMU: of the save taken then).
    pub restores: usize,
    /// Gaps the guest reports at once, µs and longer.
    pub gap_threshold_us: u64,
    /// Timer ticks per second in the guest (the resolution of gaps seen while it sleeps).
    pub guest_hz: u64,
    /// Also measure QEMU.
    pub qemu: bool,
}

/// One snapshot (or QEMU save).
#[derive(Debug, Clone, Copy)]
pub struct PauseSample {
    /// Reprise: `pause_us` from the API; QEMU: `stop` → `cont` as the QMP client saw it. ms.
    pub pause_ms: f64,
    /// Reprise: the API request's round trip; QEMU: same as `pause_ms`. ms.
    pub request_ms: f64,
    /// The gap the guest reported for it, ms (0 if below the threshold).
    pub guest_gap_ms: f64,
    /// Allocated bytes on disk.
    pub bytes: u64,
}

/// One restore.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSample {
    /// Process start → the first `KVM_RUN` (Reprise), or → QMP `cont` done (QEMU). ms.
    pub running_ms: f64,
    /// Process start → the guest's first serial line. ms.
    pub line_ms: f64,
}

/// One VMM's figures for one guest size and dirty rate.
#[derive(Debug, Clone, Default)]
pub struct VmmFigures {
    /// The guest's longest gap in a second without snapshots, ms.
    pub baseline_gap_ms: f64,
    /// Full snapshots, the VM's first one first (QEMU: every save).
    pub full: Vec<PauseSample>,
    /// Diff snapshots (Reprise only).
    pub diff: Vec<PauseSample>,
    /// Restores of the last full snapshot (QEMU: of the save taken at the same time).
    pub restore: Vec<RestoreSample>,
    /// A restore of the last diff snapshot, which lays its chain's diffs over the full image (Reprise).
    pub restore_diff: Option<RestoreSample>,
}

/// Figures for one guest size and dirty rate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Guest memory, MiB.
    pub mem_mib: u64,
    /// Page writes per second (0 = unlimited).
    pub rate: u64,
    /// Reprise's figures.
    pub reprise: VmmFigures,
    /// QEMU's, if measured.
    pub qemu: Option<VmmFigures>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs every scenario of `opts`, printing progress to stderr.
pub fn run_all(
    kernel: &Path,
    dir: &Path,
    opts: &SnapshotBenchOptions,
) -> Result<Vec<Scenario>, String> {
    if opts.fulls == 0 || opts.restores == 0 {
        return Err("the snapshot bench needs at least one full snapshot and one restore".into());
    }
    let mut out = Vec::new();
    for &mem_mib in &opts.mem_mib {
        for &rate in &opts.rates {
            let spec = GuestSpec {
                kernel,
                args: format!(
                    "workload=dirty dirty.mib=16 dirty.rate={rate} dirty.hz={} dirty.gap_us={}",
                    opts.guest_hz, opts.gap_threshold_us
                ),
                mem_mib,
                vcpus: 1,
                disks: vec![],
                net: None,
            };
            eprintln!("snapshots: {mem_mib} MiB guest, rate {}", rate_label(rate));
            let reprise = reprise_run(&spec, dir, opts)?;
            let qemu = if opts.qemu {
                Some(qemu_run(&spec, dir, opts)?)
            } else {
                None
            };
            out.push(Scenario {
                mem_mib,
                rate,
                reprise,
                qemu,
            });
        }
    }
    Ok(out)
}

/// `1000/s`, or `unlimited` for 0.
pub fn rate_label(rate: u64) -> String {
    if rate == 0 {
        "unlimited".into()
    } else {
        format!("{rate}/s")
    }
}

/// Allocated bytes of a file, or of everything under a directory.
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| allocated_bytes(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0);
    own + children
}

/// CLOCK_MONOTONIC now, in seconds (what the VMM's first-entry log line reports).
fn monotonic_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|f| f.strip_prefix(key))
}

/// How long after the VMM answered the guest's report of a pause may arrive.
const GAP_REPORT_GRACE: Duration = Duration::from_millis(50);

/// The gap the guest reported for a pause that the host saw last `host_ms` and that ended by
/// `answered`, in ms; 0 if the guest reported none (the pause was below its threshold).
///
/// The guest prints its report as soon as it runs again, so it is among the `dirty-gap`
/// lines that arrived by `answered` + [`GAP_REPORT_GRACE`]; before it may come reports of
/// the host's scheduling noise from between the request and the pause. The first report of
/// at least half the host's figure is taken (the guest cannot see a pause much shorter than
/// it was: at most one tick less); if there is none, the longest one, so that a guest that
/// saw much less than the host claims shows as such.
fn gap_ms(lines: &[(Instant, String)], answered: Instant, host_ms: f64) -> f64 {
    let reports: Vec<f64> = lines
        .iter()
        .filter(|(at, _)| *at <= answered + GAP_REPORT_GRACE)
        .filter_map(|(_, l)| l.strip_prefix("dirty-gap: us="))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|us| us / 1e3)
        .collect();
    reports
        .iter()
        .copied()
        .find(|&ms| ms >= host_ms / 2.0)
        .unwrap_or_else(|| reports.iter().copied().fold(0.0, f64::max))
}

/// Waits until the guest has run two seconds; returns its longest gap in the second one, ms.
fn warm_up(p: &mut GuestProcess) -> Result<f64, String> {
    p.wait_line("dirty: second=2 ", Duration::from_secs(60))
        .map_err(err)?;
    let line = p.output.last().cloned().unwrap_or_default();
    field(&line, "max_gap_us=")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|us| us / 1e3)
        .ok_or_else(|| format!("no max_gap_us in {line:?}"))
}

fn reprise_run(
    spec: &GuestSpec<'_>,
    dir: &Path,
    opts: &SnapshotBenchOptions,
) -> Result<VmmFigures, String> {
    let sock = dir.join("snap-bench.sock");
    let rate = field(&spec.args, "dirty.rate=").unwrap_or("x");
    let store = dir.join(format!("snapshots-{}-{rate}", spec.mem_mib));
    let _ = std::fs::remove_file(&sock);
    let mut cmd = reprise_command(spec, dir).map_err(err)?;
    cmd.arg("--api-sock").arg(&sock);
    let mut p = GuestProcess::spawn("reprise", cmd, true).map_err(err)?;
    let mut figures = VmmFigures {
        baseline_gap_ms: warm_up(&mut p)?,
        ..VmmFigures::default()
    };
    let total = opts.fulls + opts.diffs;
    for k in 0..total {
        let diff = k >= opts.fulls;
        let id = if diff {
            format!("diff{}", k - opts.fulls + 1)
        } else {
            format!("full{}", k + 1)
        };
        // Half the interval before, half after: the guest's report of the pause is then the
        // first to come after the request, not one about its own previous print.
        p.lines_for(opts.interval / 2);
        let body = json!({
            "snapshot_dir": store,
            "snapshot_id": id,
            "snapshot_type": if diff { "Diff" } else { "Full" },
        });
        let t = Instant::now();
        let (status, reply) =
            crate::api_client::request(&sock, "PUT", "/snapshot/create", Some(&body))
                .map_err(err)?;
        let answered = Instant::now();
        let request_ms = (answered - t).as_secs_f64() * 1e3;
        let reply = reply.unwrap_or_default();
        if status != 201 {
            return Err(format!("snapshot {id}: HTTP {status} {reply}"));
        }
        let pause_us = reply["pause_us"].as_f64().unwrap_or(f64::NAN);
        let lines = p.lines_for(opts.interval / 2);
        let sample = PauseSample {
            pause_ms: pause_us / 1e3,
            request_ms,
            guest_gap_ms: gap_ms(&lines, answered, pause_us / 1e3),
            bytes: allocated_bytes(&store.join(&id)),
        };
        if diff {
            figures.diff.push(sample);
        } else {
            figures.full.push(sample);
        }
    }
    drop(p);
    let last_full = store.join(format!("full{}", opts.fulls));
    for _ in 0..opts.restores {
        figures.restore.push(reprise_restore(&last_full, dir)?);
    }
    if opts.diffs > 0 {
        let last_diff = store.join(format!("diff{}", opts.diffs));
        figures.restore_diff = Some(reprise_restore(&last_diff, dir)?);
    }
    let _ = std::fs::remove_dir_all(&store);
    Ok(figures)
}

/// Restores `snapshot` in a new `reprise` process and times it.
fn reprise_restore(snapshot: &Path, dir: &Path) -> Result<RestoreSample, String> {
    let log = dir.join("restore.stderr");
    let stderr = std::fs::File::create(&log).map_err(err)?;
    let mut cmd = Command::new(reprise_binary().map_err(err)?);
    cmd.arg("--restore")
        .arg(snapshot)
        .args(["--id", "bench-restore", "--serial-output", "stdout"])
        .args(["--log-level", "info"])
        .stderr(stderr);
    let started = monotonic_s();
    let mut p = GuestProcess::spawn("reprise --restore", cmd, false).map_err(err)?;
    let line = p
        .wait_line("", Duration::from_secs(60))
        .map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))?;
    drop(p);
    let text = std::fs::read_to_string(&log).map_err(err)?;
    let entry = text
        .lines()
        .find_map(|l| l.split("first guest entry at CLOCK_MONOTONIC ").nth(1))
        .and_then(|v| v.trim_end_matches(" s").trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no first-entry line in the restore log:\n{text}"))?;
    Ok(RestoreSample {
        running_ms: (entry - started) * 1e3,
        line_ms: line.as_secs_f64() * 1e3,
    })
}

fn qemu_run(
    spec: &GuestSpec<'_>,
    dir: &Path,
    opts: &SnapshotBenchOptions,
) -> Result<VmmFigures, String> {
    let qmp_path = dir.join("qemu-bench.qmp");
    let _ = std::fs::remove_file(&qmp_path);
    let mut cmd = qemu_command(spec);
    cmd.arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_path.display()));
    let mut p = GuestProcess::spawn("qemu", cmd, true).map_err(err)?;
    let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(10))?;
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": true}]})),
    )?;
    // The default cap of 32 MiB/s would dominate; this one never binds.
    qmp.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 64u64 << 30})),
    )?;
    let mut figures = VmmFigures {
        baseline_gap_ms: warm_up(&mut p)?,
        ..VmmFigures::default()
    };
    // The save taken when Reprise takes its last full snapshot is the one restored.
    let mut kept = PathBuf::new();
    for k in 0..opts.fulls + opts.diffs {
        let file = dir.join(format!("qemu-{}-{k}.mig", spec.mem_mib));
        p.lines_for(opts.interval / 2);
        qmp.clear_events();
        let t = Instant::now();
        qmp.execute("stop", None)?;
        qmp.execute(
            "migrate",
            Some(json!({"uri": format!("exec:cat > {}", file.display())})),
        )?;
        let done = qmp.wait_event("MIGRATION", |d| {
            matches!(
                d["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        })?;
        // The event comes just before QEMU leaves `finish-migrate`, where `cont` is refused.
        while qmp.status()? == "finish-migrate" {
            std::thread::sleep(Duration::from_micros(100));
        }
        qmp.execute("cont", None)?;
        let answered = Instant::now();
        let ms = (answered - t).as_secs_f64() * 1e3;
        if done["status"] != "completed" {
            return Err(format!("QEMU migration to {}: {done}", file.display()));
        }
        let lines = p.lines_for(opts.interval / 2);
        figures.full.push(PauseSample {
            pause_ms: ms,
            request_ms: ms,
            guest_gap_ms: gap_ms(&lines, answered, ms),
            bytes: allocated_bytes(&file),
        });
        if k + 1 == opts.fulls {
            kept = file;
        } else {
            let _ = std::fs::remove_file(&file);
        }
    }
    drop(qmp);
    drop(p);
    for _ in 0..opts.restores {
        figures.restore.push(qemu_restore(spec, &kept, dir)?);
    }
    let _ = std::fs::remove_file(&kept);
    Ok(figures)
}

/// Starts QEMU with `-incoming 'exec:cat FILE'`, continues the VM once the state is in, and
/// times it.
fn qemu_restore(spec: &GuestSpec<'_>, file: &Path, dir: &Path) -> Result<RestoreSample, String> {
    let qmp_path = dir.join("qemu-restore.qmp");
    let _ = std::fs::remove_file(&qmp_path);
    let mut cmd = qemu_command(spec);
    cmd.arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
        .arg("-incoming")
        .arg(format!("exec:cat {}", file.display()));
    let mut p = GuestProcess::spawn("qemu -incoming", cmd, true).map_err(err)?;
    let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(10))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match qmp.status()?.as_str() {
            "inmigrate" | "prelaunch" if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200))
            }
            "running" => break,
            "paused" | "postmigrate" => {
                qmp.execute("cont", None)?;
                break;
            }
            other => return Err(format!("QEMU restore: status {other}")),
        }
    }
    let running_ms = p.started.elapsed().as_secs_f64() * 1e3;
    let line = p.wait_line("", Duration::from_secs(60)).map_err(err)?;
    Ok(RestoreSample {
        running_ms,
        line_ms: line.as_secs_f64() * 1e3,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(at: Instant, texts: &[(u64, &str)]) -> Vec<(Instant, String)> {
        texts
            .iter()
            .map(|&(ms, t)| (at + Duration::from_millis(ms), t.to_string()))
            .collect()
    }

    #[test]
    fn the_pause_report_is_picked_over_noise_before_and_after_it() {
        let t = Instant::now();
        let l = lines(
            t,
            &[
                (1, "dirty-gap: us=4100"),
                (2, "dirty: second=3 writes=1 checksum=0 max_gap_us=4100"),
                (20, "dirty-gap: us=15200"),
                (200, "dirty-gap: us=30000"),
            ],
        );
        assert_eq!(gap_ms(&l, t + Duration::from_millis(25), 14.0), 15.2);
        // Reports that came well after the answer are not about this pause.
        assert_eq!(gap_ms(&l[..1], t + Duration::from_millis(25), 14.0), 4.1);
        assert_eq!(gap_ms(&l[3..], t, 14.0), 0.0);
        assert_eq!(gap_ms(&[], t, 14.0), 0.0);
    }

    #[test]
    fn allocated_bytes_counts_blocks_not_length() {
        let dir = std::env::temp_dir().join(format!("bench-snap-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        let sparse = dir.join("sub/sparse");
        std::fs::File::create(&sparse)
            .and_then(|f| f.set_len(1 << 30))
            .expect("sparse file");
        std::fs::write(dir.join("data"), vec![1u8; 1 << 20]).expect("data");
        let bytes = allocated_bytes(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!((1 << 20..8 << 20).contains(&bytes), "{bytes}");
    }
}
