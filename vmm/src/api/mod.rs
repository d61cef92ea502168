//! The HTTP/JSON API on a Unix socket, shaped after Firecracker's.
//!
//! The server ([`server`]) parses requests and routes them ([`routes`]) to a [`VmmControl`],
//! which the VMM implements; the API layer itself holds no VM state.

use serde::{Deserialize, Serialize};

use crate::config::{
    BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig, VmConfig,
};

pub mod routes;
pub mod server;

/// Lifecycle state of the VM as reported by `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    /// Configured (or being configured); not booted yet.
    #[serde(rename = "Not started")]
    NotStarted,
    /// vCPUs are running.
    Running,
    /// vCPUs are paused.
    Paused,
    /// The guest reset or powered off, or the VM was stopped; it cannot be restarted.
    Stopped,
}

/// Body of `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Instance identifier (`--id`, default `reprise`).
    pub id: String,
    /// Lifecycle state.
    pub state: VmState,
    /// Version of the VMM.
    pub vmm_version: String,
    /// Always `reprise`.
    pub app_name: String,
    /// Why the VM stopped, once it has.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_reason: Option<String>,
    /// Nanoseconds the VM has run (paused time excluded; continued from the snapshot for a
    /// restored VM), once it exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vm_time_ns: Option<u64>,
    /// vCPU exits to the VMM so far (continued from the snapshot), once the VM exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub guest_progress: Option<u64>,
}

/// Counters of one drive (`GET /drives/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveCounters {
    /// Requests taken from the queue.
    pub requests: u64,
    /// Read requests.
    pub read_requests: u64,
    /// Write requests.
    pub write_requests: u64,
    /// Bytes read for the guest.
    pub read_bytes: u64,
    /// Bytes written for the guest.
    pub write_bytes: u64,
    /// Requests that failed in the backend.
    pub io_errors: u64,
    /// Times the queue was held by an I/O limit.
    pub throttled: u64,
}

/// Body of `GET /drives/{drive_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveStatus {
    /// The drive's identifier.
    pub drive_id: String,
    /// `raw` (an image file) or `volume` (a block-store volume).
    pub backend: String,
    /// The image file or volume directory.
    pub path: String,
    /// Size the guest sees, in bytes.
    pub capacity_bytes: u64,
    /// Whether guest writes are refused.
    pub read_only: bool,
    /// I/O limits in force.
    pub limits: blockstore::limits::Limits,
    /// Counters since the VM started (absent before start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<DriveCounters>,
}

/// One block-store snapshot of a drive's volume (`GET /drives/{drive_id}/snapshots`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveSnapshot {
    /// Snapshot name.
    pub name: String,
    /// When it was taken, in seconds since the Unix epoch.
    pub created: u64,
    /// Volume size at that moment, in bytes.
    pub size_bytes: u64,
}

/// Body of `PUT /snapshot/create`: a full snapshot of the running (or paused) VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreate {
    /// The snapshot store: a directory holding one sub-directory per snapshot.
    pub snapshot_dir: std::path::PathBuf,
    /// The snapshot's id (its directory's name); generated from the time when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// `Full` (default) or `Diff`: only the pages written since this VM's previous snapshot
    /// in the same store (KVM dirty logging plus the VMM's own writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_type: Option<SnapshotType>,
}

/// Body of `PUT /snapshot/schedule`: periodic snapshots while the VM runs. The first is
/// full, the rest are diffs against the previous one; after each, retention keeps the newest
/// `keep_count` snapshots no older than `max_age_secs` (and what their chains need,
/// consolidating the oldest kept one so older ones can go).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSchedule {
    /// The snapshot store.
    pub snapshot_dir: std::path::PathBuf,
    /// Time between snapshots in milliseconds (at least 100); 0 turns the schedule off.
    pub interval_ms: u64,
    /// How many snapshots to keep (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_count: Option<u32>,
    /// Drop snapshots older than this many seconds (none when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
}

/// Kind of a VM snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotType {
    /// All of guest memory.
    Full,
    /// The pages written since the previous snapshot.
    Diff,
}

/// Body of `PUT /snapshot/load`: restore a snapshot into this VMM, which must not have a
/// VM yet (nothing configured, nothing started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLoad {
    /// The snapshot's directory, `<snapshot_dir>/<snapshot_id>`.
    pub snapshot_path: std::path::PathBuf,
    /// Names the restored VM's volume clones (`<volume>-<vm_id>-<n>`); the instance id
    /// when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// Serial output instead of the saved one (`stdout`, `null`, `file:PATH`, `socket:PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_output: Option<String>,
    /// Serial input instead of the saved one (`socket:PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_input: Option<String>,
    /// Network interfaces to detach or move to another backend (all others as saved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_overrides: Vec<NetOverride>,
    /// Run the vCPUs at once (default); `false` leaves the VM paused until `PATCH /vm`.
    #[serde(default = "default_resume")]
    pub resume: bool,
}

fn default_resume() -> bool {
    true
}

pub use crate::gdb::{DebuggerStart, GdbStatus};
pub use crate::recording::config::{
    BufferSpec, BufferState, FilterSpec, RecordingStart, RecordingStatus,
};
pub use crate::replaying::config::{
    ReplayPatch, ReplayRestart, ReplayRunState, ReplayRunUntil, ReplayStart, ReplayStep,
};
pub use crate::snapshots::catalog::{IgnoredEntry, SnapshotInfo, SnapshotList, SnapshotSummary};
pub use crate::snapshots::create::SnapshotCreated;
pub use crate::snapshots::net_overrides::NetOverride;
pub use crate::vstate::vcpu_registers::VcpuRegisters;
pub use replay::player::status::InjectedEvent;
pub use replay::player::{Divergence, ReplayStatus};

/// An error returned to an API client as `{"fault_message": "..."}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (4xx for the client's mistakes, 5xx for the VMM's failures).
    pub status: u16,
    /// Human-readable explanation naming what was wrong.
    pub message: String,
}

impl ApiError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
    /// 409 Conflict: the request is valid but not in the VM's current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: 409,
            message: message.into(),
        }
    }
    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            message: message.into(),
        }
    }
}

impl From<crate::snapshots::catalog::CatalogError> for ApiError {
    fn from(e: crate::snapshots::catalog::CatalogError) -> Self {
        use crate::snapshots::catalog::CatalogError;
        match e {
            CatalogError::NotFound(m) => ApiError::not_found(m),
            CatalogError::Conflict(m) => ApiError::conflict(m),
            CatalogError::Invalid(m) => ApiError::bad_request(m),
            CatalogError::Failed(m) => ApiError::internal(m),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

/// What the API can ask of the VMM. Implemented by the VMM; a mock in the API's tests.
/// Every method is called from the API thread and must not block for long.
pub trait VmmControl: Send + Sync + 'static {
    /// `GET /`.
    fn instance_info(&self) -> InstanceInfo;
    /// `GET /vm/config`.
    fn vm_config(&self) -> VmConfig;
    /// `PUT /machine-config` (before start only).
    fn put_machine_config(&self, config: MachineConfig) -> Result<(), ApiError>;
    /// `PUT /boot-source` (before start only).
    fn put_boot_source(&self, boot: BootSource) -> Result<(), ApiError>;
    /// `PUT /drives/{id}` (before start only); replaces a drive with the same id.
    fn put_drive(&self, drive: DriveConfig) -> Result<(), ApiError>;
    /// `PUT /network-interfaces/{id}` (before start only); replaces one with the same id.
    fn put_net(&self, net: NetConfig) -> Result<(), ApiError>;
    /// `PUT /serial` (before start): where the console's output goes and input comes from.
    fn put_serial(&self, serial: SerialConfig) -> Result<(), ApiError>;
    /// `GET /drives/{id}`: a drive's backend, size, limits and counters.
    fn drive_status(&self, drive_id: &str) -> Result<DriveStatus, ApiError>;
    /// `PATCH /drives/{id}`: resize and/or change the I/O limits of a drive; applied to the
    /// running guest (resize raises a virtio config-change interrupt), or to the
    /// configuration before start.
    fn patch_drive(&self, patch: DrivePatch) -> Result<(), ApiError>;
    /// `PUT /drives/{id}/snapshots/{name}`: a point-in-time snapshot of the drive's
    /// block-store volume, taken while the guest runs (or is paused).
    fn snapshot_drive(&self, drive_id: &str, name: &str) -> Result<DriveSnapshot, ApiError>;
    /// `GET /drives/{id}/snapshots`: the snapshots of the drive's volume.
    fn drive_snapshots(&self, drive_id: &str) -> Result<Vec<DriveSnapshot>, ApiError>;
    /// `PUT /snapshot/create`: a full snapshot (vCPUs, devices, memory, volume snapshots);
    /// the guest is paused while it is taken and resumes afterwards unless it was paused.
    fn create_snapshot(&self, request: SnapshotCreate) -> Result<SnapshotCreated, ApiError>;
    /// `PUT /snapshot/schedule`: periodic snapshots with retention.
    fn set_snapshot_schedule(&self, schedule: SnapshotSchedule) -> Result<(), ApiError>;
    /// `PUT /snapshot/load`: restores a snapshot into this VMM, which has no VM yet.
    fn load_snapshot(&self, request: SnapshotLoad) -> Result<(), ApiError>;
    /// `GET /snapshots?snapshot_dir=`: the snapshots of a store (any phase).
    fn list_snapshots(&self, store: &std::path::Path) -> Result<SnapshotList, ApiError>;
    /// `GET /snapshots/{id}?snapshot_dir=`: one snapshot's manifest and chain (any phase).
    fn snapshot_info(&self, store: &std::path::Path, id: &str) -> Result<SnapshotInfo, ApiError>;
    /// `DELETE /snapshots/{id}?snapshot_dir=`: deletes a snapshot no other depends on.
    fn delete_snapshot(&self, store: &std::path::Path, id: &str) -> Result<(), ApiError>;
    /// `PUT /actions {"action_type": "InstanceStart"}`.
    fn start(&self) -> Result<(), ApiError>;
    /// `PUT /actions {"action_type": "InstanceStop"}`: stops the vCPUs for good.
    fn stop(&self) -> Result<(), ApiError>;
    /// `PATCH /vm {"state": "Paused"}`.
    fn pause(&self) -> Result<(), ApiError>;
    /// `PATCH /vm {"state": "Resumed"}`.
    fn resume(&self) -> Result<(), ApiError>;
    /// `GET /vm/vcpus`: the registers of every vCPU of the paused VM.
    fn vcpu_registers(&self) -> Result<Vec<VcpuRegisters>, ApiError> {
        Err(ApiError::conflict("no VM runs in this VMM"))
    }
    /// `PUT /debugger`: starts the gdb server.
    fn start_debugger(&self, _request: DebuggerStart) -> Result<GdbStatus, ApiError> {
        Err(ApiError::conflict("this VMM has no gdb stub"))
    }
    /// `GET /debugger`: where the gdb server listens and whether gdb is attached.
    fn debugger_status(&self) -> Result<GdbStatus, ApiError> {
        Err(ApiError::not_found(
            "no gdb server runs (start one with PUT /debugger)",
        ))
    }
    /// `PUT /recording`: starts recording the VM into capture buffers.
    fn start_recording(&self, request: RecordingStart) -> Result<(), ApiError>;
    /// `GET /recording`: whether a recording runs, and its buffers.
    fn recording_status(&self) -> RecordingStatus;
    /// `DELETE /recording`: stops the recording (everything recorded is flushed).
    fn stop_recording(&self) -> Result<RecordingStatus, ApiError>;
    /// `PUT /replay`: restores a snapshot as a clone and replays a capture into it.
    fn start_replay(&self, _request: ReplayStart) -> Result<(), ApiError> {
        Err(ApiError::internal("this VMM cannot replay"))
    }
    /// `GET /replay`: the replay's position, counts, divergences and timing.
    fn replay_status(&self) -> Result<ReplayStatus, ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `GET /replay/divergences`: the first divergences, in full.
    fn replay_divergences(&self) -> Result<Vec<Divergence>, ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `GET /replay/injections`: every event the replay injected or changed.
    fn replay_injections(&self) -> Result<Vec<InjectedEvent>, ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `PATCH /replay`: pause, resume, change speed.
    fn patch_replay(&self, _patch: ReplayPatch) -> Result<(), ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `PUT /replay/step`: delivers N inputs, then holds.
    fn step_replay(&self, _step: ReplayStep) -> Result<(), ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `PUT /replay/run-until`: runs to an input, a time or the next divergence.
    fn run_replay_until(&self, _until: ReplayRunUntil) -> Result<(), ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
    /// `PUT /replay/restart`: tears the clone down and clones again.
    fn restart_replay(&self, _restart: ReplayRestart) -> Result<(), ApiError> {
        Err(ApiError::conflict("no replay runs in this VMM"))
    }
}
