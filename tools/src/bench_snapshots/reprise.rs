//! The Reprise driver: snapshots taken through the API socket, and restores timed from
//! process start to the first `KVM_RUN` (from the VMM's log) and the first serial line.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::guest::{field, gap_ms, warm_up};
use super::{allocated_bytes, err, PauseSample, RestoreSample, SnapshotBenchOptions, VmmFigures};
use crate::guest_run::{reprise_binary, reprise_command, GuestProcess, GuestSpec};

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

pub(super) fn reprise_run(
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
