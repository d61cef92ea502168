//! The HTTP/JSON API on a Unix socket, shaped after Firecracker's.
//!
//! The server ([`server`]) parses requests and routes them ([`routes`]) to a [`VmmControl`],
//! which the VMM implements; the API layer itself holds no VM state.

use serde::{Deserialize, Serialize};

use crate::config::{BootSource, DriveConfig, MachineConfig, NetConfig, SerialConfig, VmConfig};

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
}

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
    /// `PUT /actions {"action_type": "InstanceStart"}`.
    fn start(&self) -> Result<(), ApiError>;
    /// `PUT /actions {"action_type": "InstanceStop"}`: stops the vCPUs for good.
    fn stop(&self) -> Result<(), ApiError>;
    /// `PATCH /vm {"state": "Paused"}`.
    fn pause(&self) -> Result<(), ApiError>;
    /// `PATCH /vm {"state": "Resumed"}`.
    fn resume(&self) -> Result<(), ApiError>;
}
