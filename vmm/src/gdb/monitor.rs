//! gdb's `monitor` commands: the time machine (snapshots, restart, replay position, step,
//! run until, speed) and the host's limits.

use std::fmt::Write;

use replay::player::status::ReplayStatus;

use super::host_limits;
use super::target::DebugTarget;
use crate::api::VmmControl;
use crate::replaying::config::ReplayRunUntil;

const HELP: &str = "\
Reprise monitor commands (`monitor <command>`):
  help                      this list
  host                      what this host's KVM can trap for a debugger
  snapshots                 snapshots this VM can restart from (* = the current clone's)
  restart [SNAPSHOT]        clone again from SNAPSHOT (default: the same one); gdb stays
                            connected and the clone waits at its first instruction. gdb still
                            shows the old registers: run `maint flush register-cache`
  status                    the replay's state, position, checks and drift
  step [N]                  deliver N more inputs (default 1) on `continue`, then stop
  run-until event K         on `continue`, run until input K is next (K = inputs delivered)
  run-until time T          ... until the next input is at T after the snapshot (1.5s, 200ms)
  run-until divergence      ... until the clone's output first differs from the recording
  speed S                   replay speed: max, step, or a factor 0.1-100 (2x, 0.5)
  last [N]                  the last N inputs delivered (default 10)
";

/// Runs one monitor command; the text is shown by gdb.
pub fn run(target: &mut DebugTarget, command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let result = match words.as_slice() {
        [] | ["help"] => Ok(HELP.to_string()),
        ["host"] => Ok(host_limits::summary(crate::vstate::vm::host_is_pvm())),
        ["snapshots"] => snapshots(target),
        ["restart"] => restart(target, None),
        ["restart", id] => restart(target, Some(id)),
        ["status"] => target
            .vmm
            .debug_replayer()
            .map(|r| describe_status(&r.status())),
        ["step"] => step(target, "1"),
        ["step", n] => step(target, n),
        ["run-until", rest @ ..] => run_until(target, rest),
        ["speed", s] => speed(target, s),
        ["last"] => last(target, "10"),
        ["last", n] => last(target, n),
        _ => Err(format!(
            "unknown monitor command {command:?}; `monitor help` lists them"
        )),
    };
    match result {
        Ok(text) => text,
        Err(e) => format!("error: {e}"),
    }
}

fn snapshots(target: &DebugTarget) -> Result<String, String> {
    if let Ok(replayer) = target.vmm.debug_replayer() {
        let plan = replayer.plan();
        let mut out = format!("snapshots in capture {}:\n", plan.buffer_dir.display());
        for (id, ns) in &plan.markers {
            let mark = if *id == plan.snapshot { "*" } else { " " };
            let _ = writeln!(
                out,
                "{mark} {id:<24} VM time {}",
                replay::player::selection::format_ns(*ns)
            );
        }
        return Ok(out);
    }
    let store = target
        .vmm
        .debug_snapshot_store()
        .ok_or("this VM has taken no snapshot and is not a clone")?;
    let list = target.vmm.list_snapshots(&store).map_err(|e| e.message)?;
    let mut out = format!("snapshots in {}:\n", store.display());
    for s in list.snapshots {
        let _ = writeln!(out, "  {:<24} {:?}", s.id, s.kind);
    }
    Ok(out)
}

fn restart(target: &mut DebugTarget, id: Option<&str>) -> Result<String, String> {
    target.vmm.debug_restart(id.map(str::to_string))?;
    target.invalidate();
    let status = target.vmm.debug_replayer()?.status();
    Ok(format!(
        "restarted from snapshot {}: the clone waits at its first instruction with {} inputs \
         to replay; `maint flush register-cache` shows its registers, `continue` runs it",
        status.snapshot, status.total
    ))
}

fn step(target: &DebugTarget, n: &str) -> Result<String, String> {
    let n: u64 = n
        .parse()
        .map_err(|_| format!("step: {n:?} is not a number of inputs"))?;
    target.vmm.debug_replayer()?.step(n)?;
    Ok(format!(
        "on `continue` the replay delivers {n} input(s), then the VM stops"
    ))
}

fn run_until(target: &DebugTarget, words: &[&str]) -> Result<String, String> {
    let until = match words {
        ["event", k] => ReplayRunUntil {
            event: Some(
                k.parse()
                    .map_err(|_| format!("run-until event: {k:?} is not an input index"))?,
            ),
            ..Default::default()
        },
        ["time", t] => ReplayRunUntil {
            time: Some(t.to_string()),
            ..Default::default()
        },
        ["divergence"] => ReplayRunUntil {
            divergence: true,
            ..Default::default()
        },
        _ => return Err("run-until takes `event K`, `time T` or `divergence`".to_string()),
    };
    target.vmm.debug_arm_until(until)?;
    Ok(format!(
        "on `continue` the replay runs until {}, then the VM stops",
        words.join(" ")
    ))
}

fn speed(target: &DebugTarget, s: &str) -> Result<String, String> {
    let speed: replay::player::Speed = s.parse()?;
    target.vmm.debug_replayer()?.set_speed(speed);
    Ok(format!("replay speed: {speed}"))
}

fn last(target: &DebugTarget, n: &str) -> Result<String, String> {
    let n: usize = n
        .parse()
        .map_err(|_| format!("last: {n:?} is not a count"))?;
    let status = target.vmm.debug_replayer()?.status();
    let shown = &status.last_delivered[status.last_delivered.len().saturating_sub(n)..];
    if shown.is_empty() {
        return Ok("no input delivered yet".into());
    }
    let mut out = String::new();
    for d in shown {
        let _ = writeln!(
            out,
            "#{:<6} seq {:<8} {:<10} recorded {} clone {}  {}",
            d.index,
            d.seq,
            d.source,
            replay::player::selection::format_ns(d.recorded_vm_time_ns),
            replay::player::selection::format_ns(d.clone_vm_time_ns),
            d.what
        );
    }
    Ok(out)
}

/// `monitor status`.
fn describe_status(s: &ReplayStatus) -> String {
    let mut out = format!(
        "replay of buffer {} from snapshot {} ({}), speed {}\nstate: {:?}{}\nposition: {} of {} \
         inputs (delivered {}, filtered {}, injected {})\n",
        s.buffer,
        s.snapshot,
        s.selection,
        s.speed,
        s.state,
        s.paused_by
            .as_deref()
            .map(|p| format!(" (held: {p})"))
            .unwrap_or_default(),
        s.position,
        s.total,
        s.delivered,
        s.filtered,
        s.injected
    );
    if let Some(next) = &s.next {
        let _ = writeln!(
            out,
            "next: #{} seq {} {} {}",
            next.index, next.seq, next.source, next.what
        );
    }
    let _ = writeln!(out, "checks: {:?}", s.check);
    if let Some(d) = &s.first_divergence {
        let _ = writeln!(out, "first divergence: {} on {}", d.kind, d.source);
    }
    if let Some(g) = &s.guest_stopped {
        let _ = writeln!(out, "guest stopped: {}", g.reason);
    }
    out
}
