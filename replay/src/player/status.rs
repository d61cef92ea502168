//! What a replay reports: where it is, what it delivered, filtered and injected, how far
//! its timing drifted, and what diverged.

use serde::Serialize;

use crate::player::checker::{CheckSummary, Divergence};

/// The replay's state.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayState {
    /// Delivering inputs.
    Running,
    /// Held (by request, a step or run-until target, or a divergence); the VM is paused.
    Paused,
    /// Every selected input was delivered and the outputs checked; the clone runs on.
    Finished,
    /// The guest stopped (reset, crash or error).
    GuestStopped,
}

/// One delivered input.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Delivered {
    /// Its index among the replay's inputs.
    pub index: u64,
    /// Its seq in the capture.
    pub seq: u64,
    /// Its recorded VM time.
    pub recorded_vm_time_ns: u64,
    /// The clone's VM time at delivery.
    pub clone_vm_time_ns: u64,
    /// The device.
    pub source: String,
    /// The event, summarised.
    pub what: String,
}

/// An event the replay injected, dropped or changed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InjectedEvent {
    /// `net` (position = input index) or `blk` (position = request index per device).
    pub stream: String,
    /// Position in its stream.
    pub position: u64,
    /// What was done.
    pub what: String,
}

/// Replay timing against the recording: positive is later than scheduled.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Drift {
    /// At the last delivery, in ns.
    pub last_ns: i64,
    /// Latest delivery relative to schedule.
    pub max_late_ns: i64,
    /// Earliest delivery relative to schedule (negative: ahead, as with `max` speed).
    pub max_early_ns: i64,
    /// Deliveries made before the clone had produced the outputs the recording had
    /// produced by then, because the guest went idle (a divergence, or a filtered input's
    /// missing answers).
    pub forced: u64,
}

/// Why the guest stopped, and after which input.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GuestStop {
    /// The VMM's exit reason.
    pub reason: String,
    /// The last input delivered before it (the request that crashed it, typically).
    pub after: Option<Delivered>,
}

/// `GET /replay`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReplayStatus {
    /// State.
    pub state: ReplayState,
    /// Why it is paused (`requested`, `step`, `event 12`, `time 2s`, `divergence`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<String>,
    /// The snapshot the clone started from.
    pub snapshot: String,
    /// The capture buffer played.
    pub buffer: String,
    /// The selection.
    pub selection: String,
    /// Speed.
    pub speed: String,
    /// Index of the next input to deliver (= inputs delivered or skipped so far).
    pub position: u64,
    /// Inputs selected.
    pub total: u64,
    /// The next input, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Delivered>,
    /// Inputs delivered.
    pub delivered: u64,
    /// Inputs the rules removed.
    pub filtered: u64,
    /// Injected (or dropped/changed) events.
    pub injected: u64,
    /// Output checks.
    pub check: CheckSummary,
    /// The first divergence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_divergence: Option<Divergence>,
    /// Strict block-read mismatches (first few).
    pub block_mismatches: Vec<String>,
    /// Timing.
    pub drift: Drift,
    /// The guest's stop, if it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_stopped: Option<GuestStop>,
    /// The last inputs delivered (newest last).
    pub last_delivered: Vec<Delivered>,
}
