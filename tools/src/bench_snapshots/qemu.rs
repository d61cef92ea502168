//! The QEMU microvm driver: saves as QMP `stop`, migration to a file, `cont`, and restores
//! from `-incoming`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::guest::{gap_ms, warm_up};
use super::{allocated_bytes, err, PauseSample, RestoreSample, SnapshotBenchOptions, VmmFigures};
use crate::guest_run::{qemu_command, GuestProcess, GuestSpec};
use crate::qmp::Qmp;

pub(super) fn qemu_run(
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
