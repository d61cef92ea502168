//! One clone: an empty `reprise` process, a `PUT /replay` into it, and the replay timed by
//! polling `GET /replay`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api;
use crate::guest_run::reprise_binary;
use crate::vmm_process::Vmm;

/// How often the first delivery is polled for.
const FIRST_POLL: Duration = Duration::from_micros(200);
/// How often the end of a replay is polled for.
const END_POLL: Duration = Duration::from_millis(1);
/// The longest a first delivery may take before the bench gives up.
const FIRST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a whole replay may take before the bench gives up.
const END_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether a replay status says the replay is over.
pub(super) fn ended(v: &Value) -> bool {
    v["state"] == "guest-stopped" || v["state"] == "finished"
}

/// An empty `reprise` process for one clone, killed when dropped.
pub(super) struct CloneVmm {
    /// Held for its `Drop`, which ends the process.
    _process: Vmm,
    sock: PathBuf,
}

/// Starts an empty `reprise` process named `name` with its API in `dir`, and waits until
/// the API answers.
pub(super) fn start(dir: &Path, name: &str) -> Result<CloneVmm, String> {
    let bin = reprise_binary().map_err(|e| e.to_string())?;
    let sock = dir.join(format!("{name}.sock"));
    let process = Vmm::spawn(Command::new(bin), sock.clone(), name)?;
    api::get(&sock, "/")?;
    Ok(CloneVmm {
        _process: process,
        sock,
    })
}

/// Time to the first replayed input.
#[derive(Debug, Clone, Copy)]
pub(super) struct FirstInput {
    /// `PUT /replay` sent to its reply.
    pub put: Duration,
    /// `PUT /replay` sent to the first `GET /replay` reply showing an input delivered.
    pub first: Duration,
    /// Mean round trip of one `GET /replay` (the resolution of `first`).
    pub poll: Duration,
}

/// Sends `PUT /replay` with `body` and polls every 200 µs until an input was delivered.
pub(super) fn first_input(clone: &CloneVmm, body: Value) -> Result<FirstInput, String> {
    let t0 = Instant::now();
    api::request(&clone.sock, "PUT", "/replay", Some(&body))?;
    let put = t0.elapsed();
    let (mut polls, mut polling) = (0u32, Duration::ZERO);
    loop {
        let sent = Instant::now();
        let status = api::get(&clone.sock, "/replay")?;
        polling += sent.elapsed();
        polls += 1;
        if status["delivered"].as_u64().unwrap_or(0) >= 1 {
            return Ok(FirstInput {
                put,
                first: t0.elapsed(),
                poll: polling / polls,
            });
        }
        if ended(&status) {
            return Err(format!("the replay ended without delivering: {status}"));
        }
        if t0.elapsed() > FIRST_TIMEOUT {
            return Err(format!(
                "no input delivered after {FIRST_TIMEOUT:?}: {status}"
            ));
        }
        std::thread::sleep(FIRST_POLL);
    }
}

/// A replay timed to its end.
#[derive(Debug, Clone)]
pub(super) struct WholeReplay {
    /// `PUT /replay` sent to its reply.
    pub put: Duration,
    /// `PUT /replay` sent to the first `GET /replay` reply saying the replay is over.
    pub wall: Duration,
    /// That reply.
    pub status: Value,
}

/// Sends `PUT /replay` with `body` and polls every millisecond until the replay is over.
pub(super) fn whole_replay(clone: &CloneVmm, body: Value) -> Result<WholeReplay, String> {
    let t0 = Instant::now();
    api::request(&clone.sock, "PUT", "/replay", Some(&body))?;
    let put = t0.elapsed();
    loop {
        let status = api::get(&clone.sock, "/replay")?;
        if ended(&status) {
            return Ok(WholeReplay {
                put,
                wall: t0.elapsed(),
                status,
            });
        }
        if t0.elapsed() > END_TIMEOUT {
            return Err(format!(
                "the replay still runs after {END_TIMEOUT:?}: {status}"
            ));
        }
        std::thread::sleep(END_POLL);
    }
}

/// The recorded VM time (ns) of the last input a replay delivered.
pub(super) fn last_delivered_ns(status: &Value) -> Option<u64> {
    let last = status["last_delivered"]
        .as_array()
        .and_then(|l| l.last())
        .unwrap_or(&status["guest_stopped"]["after"]);
    last["recorded_vm_time_ns"].as_u64()
}
