//! The replay API's bodies: starting a clone for replay (`PUT /replay`), changing and
//! driving a running replay (`PATCH /replay`, `PUT /replay/step`, `PUT /replay/run-until`),
//! and restarting it (`PUT /replay/restart`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::snapshots::net_overrides::NetOverride;

/// `PUT /replay`: restore a snapshot into this (empty) VMM as a clone and replay a
/// capture into it. Also what `--replay` on the command line builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayStart {
    /// The recording's directory (or one buffer's).
    pub capture_dir: PathBuf,
    /// The buffer to play, when the recording has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<String>,
    /// The snapshot store.
    pub snapshot_dir: PathBuf,
    /// The snapshot to start from (default: the capture's last, or see `before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Start from the last snapshot taken at or before this VM time (`12s`, `1500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Which part of the capture after the snapshot: `all` (default), `seq:A-B`,
    /// `time:A-B`, `duration:D`, `percent:A-B`, `first-third`, `middle-third`,
    /// `last-third`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
    /// Include/exclude rules for inputs, e.g. `exclude src-ip=10.0.0.3`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// `max` (default), `step`, or a factor from 0.1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// Seeded fault injection, e.g. `seed=7,drop=0.05,blk-error-sectors=2048-2055`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<String>,
    /// Check every block completion against the recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
    /// Pause the clone at the first divergence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_divergence: bool,
    /// Restore the clone paused and hold the replay until resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Restore the clone paused and hold the replay until a debugger attaches (see
    /// `PUT /debugger` or `--gdb-socket`) and continues.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait_for_debugger: bool,
    /// Output classes compared (`net`, `blk`, `serial`; default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<String>>,
    /// Name of the clone (names its volume clones); default the VMM's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// The clone's console output instead of the saved one (`stdout`, `null`,
    /// `file:PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_output: Option<String>,
    /// Host backends to attach next to the replay, for poking the clone by hand: frames
    /// from them reach the guest, and what the guest sends goes to them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_nets: Vec<NetOverride>,
}

/// `PUT /replay/restart`: tear the clone down and clone again, changing what is given
/// (everything else as in the running replay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRestart {
    /// Another snapshot.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Or the last snapshot at or before this VM time.
    #[serde(default)]
    pub before: Option<String>,
    /// Another buffer.
    #[serde(default)]
    pub buffer: Option<String>,
    /// Another selection.
    #[serde(default)]
    pub selection: Option<String>,
    /// Other rules.
    #[serde(default)]
    pub filters: Option<Vec<String>>,
    /// Another speed.
    #[serde(default)]
    pub speed: Option<String>,
    /// Other entropy (an empty string: none).
    #[serde(default)]
    pub entropy: Option<String>,
    /// Start the new clone paused.
    #[serde(default)]
    pub paused: Option<bool>,
}

impl ReplayRestart {
    /// `start` with these changes.
    pub fn apply(&self, start: &ReplayStart) -> ReplayStart {
        let mut s = start.clone();
        if self.snapshot_id.is_some() || self.before.is_some() {
            s.snapshot_id = self.snapshot_id.clone();
            s.before = self.before.clone();
        }
        if let Some(b) = &self.buffer {
            s.buffer = Some(b.clone());
        }
        if let Some(sel) = &self.selection {
            s.selection = Some(sel.clone());
        }
        if let Some(f) = &self.filters {
            s.filters = f.clone();
        }
        if let Some(sp) = &self.speed {
            s.speed = Some(sp.clone());
        }
        if let Some(e) = &self.entropy {
            s.entropy = (!e.is_empty()).then(|| e.clone());
        }
        if let Some(p) = self.paused {
            s.paused = p;
        }
        s
    }
}

/// What `PATCH /replay` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayRunState {
    /// Hold the replay and pause the clone.
    Paused,
    /// Run on.
    Running,
}

/// `PATCH /replay`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayPatch {
    /// Pause or resume.
    #[serde(default)]
    pub state: Option<ReplayRunState>,
    /// A new speed.
    #[serde(default)]
    pub speed: Option<String>,
}

/// `PUT /replay/step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayStep {
    /// Inputs to deliver before holding again.
    pub events: u64,
}

/// `PUT /replay/run-until`: exactly one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRunUntil {
    /// Hold before delivering input K (K inputs behind).
    #[serde(default)]
    pub event: Option<u64>,
    /// Hold before the first input recorded at or after this long after the snapshot.
    #[serde(default)]
    pub time: Option<String>,
    /// Hold at the next divergence.
    #[serde(default)]
    pub divergence: bool,
}
