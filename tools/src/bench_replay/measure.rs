//! One measurement in a new clone: the first replayed input, or a whole replay.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::clone;
use super::recordings::Capture;
use super::{LatencyRow, SpeedRow};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One first-input run of capture `c` in a new clone.
pub(super) fn latency_once(
    c: &Capture,
    dir: &Path,
    row: &mut LatencyRow,
    run: usize,
) -> Result<(), String> {
    let name = format!("first-{}-{run}", c.name);
    let vm = clone::start(dir, &name)?;
    let t = clone::first_input(&vm, c.body(&row.snapshot, "max", true, &name))?;
    drop(vm);
    eprintln!(
        "replay: first input, {} run {}: PUT /replay {:.2} ms, first input seen at {:.2} ms \
         (GET /replay {:.0} µs)",
        c.name,
        run + 1,
        ms(t.put),
        ms(t.first),
        t.poll.as_secs_f64() * 1e6
    );
    row.put_ms.push(ms(t.put));
    row.first_ms.push(ms(t.first));
    row.poll_us.push(t.poll.as_secs_f64() * 1e6);
    Ok(())
}

/// One whole replay of `row`'s variant from the first snapshot in a new clone.
pub(super) fn speed_once(
    c: &Capture,
    dir: &Path,
    row: &mut SpeedRow,
    run: usize,
) -> Result<(), String> {
    let v = row.variant;
    let name = format!(
        "speed-{}-{}-{}-{run}",
        c.name,
        v.speed,
        if v.check { "check" } else { "nocheck" }
    );
    let snapshot = c.first_snapshot()?;
    let vm = clone::start(dir, &name)?;
    let r = clone::whole_replay(&vm, c.body(snapshot, v.speed, v.check, &name))?;
    drop(vm);
    let s = &r.status;
    let last =
        clone::last_delivered_ns(s).ok_or_else(|| format!("the replay delivered nothing: {s}"))?;
    let recorded = last.saturating_sub(c.facts.snapshot(snapshot)?) as f64 * 1e-9;
    let wall = r.wall.as_secs_f64();
    let state = s["state"].as_str().unwrap_or("?").to_string();
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    eprintln!(
        "replay: {} at {}, check {}, run {}: {recorded:.3} recorded s in {wall:.3} s = {:.2}x \
         ({} of {} inputs, {} forced, {} outputs checked, {} divergences, {state}, \
         PUT /replay {:.2} ms)",
        c.name,
        v.speed,
        if v.check { "all" } else { "none" },
        run + 1,
        recorded / wall,
        s["delivered"],
        s["total"],
        s["drift"]["forced"],
        s["check"]["checked"],
        s["check"]["divergences"],
        ms(r.put)
    );
    row.recorded_s.push(recorded);
    row.wall_s.push(wall);
    row.put_ms.push(ms(r.put));
    row.ratio.push(recorded / wall);
    row.delivered.push(count(&s["delivered"]));
    row.forced.push(count(&s["drift"]["forced"]));
    row.checked.push(count(&s["check"]["checked"]));
    row.divergences.push(count(&s["check"]["divergences"]));
    row.states.push(state);
    Ok(())
}
