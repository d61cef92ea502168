//! Request and response bodies that belong to the API itself rather than to the VM
//! configuration (which lives in [`crate::config`]).

use serde::{Deserialize, Serialize};

/// What `PUT /actions` asks the VMM to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    /// Boot the configured VM.
    InstanceStart,
    /// Stop the vCPUs for good; the VM cannot be started again.
    InstanceStop,
}

/// Body of `PUT /actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceAction {
    /// The action to perform.
    pub action_type: ActionType,
}

/// The state `PATCH /vm` moves the VM to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmStateChange {
    /// Pause the vCPUs.
    Paused,
    /// Let paused vCPUs run again.
    Resumed,
}

/// Body of `PATCH /vm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmStatePatch {
    /// The requested state.
    pub state: VmStateChange,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable explanation naming what was wrong.
    pub fault_message: String,
}

/// An empty JSON object: the optional body of `PUT /drives/{drive_id}/snapshots/{name}`,
/// which takes no options (yet). Any field is rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
