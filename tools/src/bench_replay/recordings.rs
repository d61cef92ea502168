//! The two recordings of the kv service, and the `PUT /replay` bodies for their clones.

use std::path::Path;

use serde_json::{json, Value};

use super::capture::CaptureFacts;
use super::{CaptureSummary, ReplayBenchOptions};
use crate::demo_replay::{record_kv_crash_at_rate, Recorded};

/// A recording and what its capture says.
pub(super) struct Capture {
    pub(super) name: &'static str,
    rec: Recorded,
    pub(super) facts: CaptureFacts,
}

impl Capture {
    /// The `PUT /replay` body: from `snapshot`, at `speed`, checking outputs or not.
    pub(super) fn body(&self, snapshot: &str, speed: &str, check: bool, vm_id: &str) -> Value {
        let mut body = json!({
            "capture_dir": self.rec.capture,
            "snapshot_dir": self.rec.store,
            "snapshot_id": snapshot,
            "speed": speed,
            "vm_id": vm_id,
            "serial_output": "null",
        });
        if !check {
            body["check"] = json!([]);
        }
        body
    }

    /// The first snapshot the recording took.
    pub(super) fn first_snapshot(&self) -> Result<&str, String> {
        self.rec
            .snapshots
            .first()
            .map(String::as_str)
            .ok_or_else(|| format!("the {} recording took no snapshot", self.name))
    }

    /// The last snapshot the recording took (the last before the crash).
    pub(super) fn last_snapshot(&self) -> Result<&str, String> {
        self.rec
            .snapshots
            .last()
            .map(String::as_str)
            .ok_or_else(|| format!("the {} recording took no snapshot", self.name))
    }

    /// VM seconds from `snapshot` to the capture's last input.
    fn seconds_after(&self, snapshot: &str) -> Result<f64, String> {
        let at = self.facts.snapshot(snapshot)?;
        Ok(self.facts.last_input_ns.saturating_sub(at) as f64 * 1e-9)
    }
}

/// Records the kv service under `requests` at `rate` per second into `dir/name`.
pub(super) fn record(
    kernel: &Path,
    dir: &Path,
    name: &'static str,
    (rate, requests): (u32, u64),
    opts: &ReplayBenchOptions,
) -> Result<Capture, String> {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
    eprintln!(
        "replay: recording kv, {requests} requests at {rate}/s, a snapshot every {} ms",
        opts.interval_ms
    );
    let rec = record_kv_crash_at_rate(
        &sub,
        kernel,
        &format!("bench-rp-{name}"),
        requests,
        opts.interval_ms,
        rate,
    )?;
    let facts = CaptureFacts::read(&rec.capture)?;
    Ok(Capture { name, rec, facts })
}

/// What the report says of recording `c`, made under `requests` at `rate` per second.
pub(super) fn summary(c: &Capture, (rate, requests): (u32, u64)) -> Result<CaptureSummary, String> {
    let first = c.facts.first_frame_ns.unwrap_or(0);
    Ok(CaptureSummary {
        name: c.name.into(),
        rate,
        requests,
        traffic_s: c.facts.last_input_ns.saturating_sub(first) as f64 * 1e-9,
        snapshots: c.rec.snapshots.len(),
        window_s: c.seconds_after(c.first_snapshot()?)?,
        tail_s: c.seconds_after(c.last_snapshot()?)?,
    })
}
