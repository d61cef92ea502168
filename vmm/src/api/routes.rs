//! Routing of API requests: the route table ([`ROUTES`]) and [`dispatch`], which turns one
//! parsed HTTP request into calls on a [`VmmControl`] and an [`ApiResponse`].
//!
//! Nothing here knows about sockets or hyper; [`super::server`] does the HTTP framing.

use serde::Serialize;

use super::{ApiError, SnapshotCreate, VmmControl};
use crate::config::{BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig};

mod bodies;
mod json;
mod path;
mod query;

#[cfg(test)]
mod drive_tests;
#[cfg(test)]
pub(crate) mod mock;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

pub use bodies::{ActionType, Empty, ErrorBody, InstanceAction, VmStateChange, VmStatePatch};

use path::PathParams;
use query::QueryParams;

/// Longest snapshot name accepted, in characters.
pub const MAX_SNAPSHOT_NAME_LEN: usize = 64;

/// The rule for snapshot names as a regular expression (as `docs/openapi.yaml` states it):
/// 1 to [`MAX_SNAPSHOT_NAME_LEN`] characters from `[A-Za-z0-9._-]`, not starting with `.`.
pub const SNAPSHOT_NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$";

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /`: [`VmmControl::instance_info`].
    GetInstanceInfo,
    /// `GET /vm/config`: [`VmmControl::vm_config`].
    GetVmConfig,
    /// `GET /machine-config`: the `machine-config` part of [`VmmControl::vm_config`].
    GetMachineConfig,
    /// `PUT /machine-config`: [`VmmControl::put_machine_config`].
    PutMachineConfig,
    /// `PUT /boot-source`: [`VmmControl::put_boot_source`].
    PutBootSource,
    /// `PUT /drives/{drive_id}`: [`VmmControl::put_drive`].
    PutDrive,
    /// `GET /drives/{drive_id}`: [`VmmControl::drive_status`].
    GetDrive,
    /// `PATCH /drives/{drive_id}`: [`VmmControl::patch_drive`].
    PatchDrive,
    /// `PUT /drives/{drive_id}/snapshots/{snapshot_name}`: [`VmmControl::snapshot_drive`].
    PutDriveSnapshot,
    /// `GET /drives/{drive_id}/snapshots`: [`VmmControl::drive_snapshots`].
    ListDriveSnapshots,
    /// `PUT /network-interfaces/{iface_id}`: [`VmmControl::put_net`].
    PutNetworkInterface,
    /// `PUT /serial`: [`VmmControl::put_serial`].
    PutSerial,
    /// `PUT /actions`: [`VmmControl::start`] or [`VmmControl::stop`].
    PutAction,
    /// `PATCH /vm`: [`VmmControl::pause`] or [`VmmControl::resume`].
    PatchVm,
    /// `GET /vm/vcpus`: [`VmmControl::vcpu_registers`].
    GetVcpus,
    /// `PUT /debugger`: [`VmmControl::start_debugger`].
    PutDebugger,
    /// `GET /debugger`: [`VmmControl::debugger_status`].
    GetDebugger,
    /// `PUT /snapshot/create`: [`VmmControl::create_snapshot`].
    PutSnapshotCreate,
    /// `PUT /snapshot/schedule`: [`VmmControl::set_snapshot_schedule`].
    PutSnapshotSchedule,
    /// `PUT /snapshot/load`: [`VmmControl::load_snapshot`].
    PutSnapshotLoad,
    /// `GET /snapshots`: [`VmmControl::list_snapshots`].
    ListSnapshots,
    /// `GET /snapshots/{snapshot_id}`: [`VmmControl::snapshot_info`].
    GetSnapshot,
    /// `DELETE /snapshots/{snapshot_id}`: [`VmmControl::delete_snapshot`].
    DeleteSnapshot,
    /// `PUT /recording`: [`VmmControl::start_recording`].
    PutRecording,
    /// `GET /recording`: [`VmmControl::recording_status`].
    GetRecording,
    /// `DELETE /recording`: [`VmmControl::stop_recording`].
    DeleteRecording,
    /// `PUT /replay`: [`VmmControl::start_replay`].
    PutReplay,
    /// `GET /replay`: [`VmmControl::replay_status`].
    GetReplay,
    /// `PATCH /replay`: [`VmmControl::patch_replay`].
    PatchReplay,
    /// `GET /replay/divergences`: [`VmmControl::replay_divergences`].
    GetReplayDivergences,
    /// `GET /replay/injections`: [`VmmControl::replay_injections`].
    GetReplayInjections,
    /// `PUT /replay/step`: [`VmmControl::step_replay`].
    PutReplayStep,
    /// `PUT /replay/run-until`: [`VmmControl::run_replay_until`].
    PutReplayRunUntil,
    /// `PUT /replay/restart`: [`VmmControl::restart_replay`].
    PutReplayRestart,
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template; each `{name}` stands for one path segment (a template may have
    /// several, with distinct names).
    pub path: &'static str,
    /// One-line summary, the same as the operation's `summary` in `docs/openapi.yaml`.
    pub summary: &'static str,
    /// Status of a successful response.
    pub success_status: u16,
    /// What the route does.
    pub operation: Operation,
    /// The query parameters the route takes, all required. A route that takes none ignores
    /// a query string; one that takes some refuses unknown ones.
    pub query: &'static [&'static str],
}

/// Every route the API serves. `docs/openapi.yaml` documents exactly these (a test checks).
pub const ROUTES: &[Route] = &[
    Route {
        method: "PUT",
        path: "/replay",
        summary: "Restore a snapshot as a clone and replay a capture into it",
        success_status: 204,
        operation: Operation::PutReplay,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/replay",
        summary: "Get the replay's position, counts, divergences and timing",
        success_status: 200,
        operation: Operation::GetReplay,
        query: &[],
    },
    Route {
        method: "PATCH",
        path: "/replay",
        summary: "Pause or resume the replay, or change its speed",
        success_status: 204,
        operation: Operation::PatchReplay,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/replay/divergences",
        summary: "List the first divergences between the clone and the recording",
        success_status: 200,
        operation: Operation::GetReplayDivergences,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/replay/injections",
        summary: "List the events the replay injected, dropped or changed",
        success_status: 200,
        operation: Operation::GetReplayInjections,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/replay/step",
        summary: "Deliver N more inputs, then hold the replay",
        success_status: 204,
        operation: Operation::PutReplayStep,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/replay/run-until",
        summary: "Run the replay until an input, a time or the next divergence",
        success_status: 204,
        operation: Operation::PutReplayRunUntil,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/replay/restart",
        summary: "Tear the clone down and clone again from a snapshot",
        success_status: 204,
        operation: Operation::PutReplayRestart,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/recording",
        summary: "Start recording the VM into capture buffers",
        success_status: 204,
        operation: Operation::PutRecording,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/recording",
        summary: "Get the recording's state and its buffers",
        success_status: 200,
        operation: Operation::GetRecording,
        query: &[],
    },
    Route {
        method: "DELETE",
        path: "/recording",
        summary: "Stop the recording (everything recorded is flushed)",
        success_status: 200,
        operation: Operation::DeleteRecording,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/snapshot/load",
        summary: "Restore a snapshot into this VMM (which has no VM yet) and run it",
        success_status: 204,
        operation: Operation::PutSnapshotLoad,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/snapshots",
        summary: "List the snapshots of a snapshot store",
        success_status: 200,
        operation: Operation::ListSnapshots,
        query: &["snapshot_dir"],
    },
    Route {
        method: "GET",
        path: "/snapshots/{snapshot_id}",
        summary: "Get a snapshot's manifest, chain and dependents",
        success_status: 200,
        operation: Operation::GetSnapshot,
        query: &["snapshot_dir"],
    },
    Route {
        method: "DELETE",
        path: "/snapshots/{snapshot_id}",
        summary: "Delete a snapshot that no other snapshot depends on",
        success_status: 204,
        operation: Operation::DeleteSnapshot,
        query: &["snapshot_dir"],
    },
    Route {
        method: "PUT",
        path: "/snapshot/schedule",
        summary: "Set periodic snapshots and their retention",
        success_status: 204,
        operation: Operation::PutSnapshotSchedule,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/snapshot/create",
        summary: "Take a full snapshot of the VM",
        success_status: 201,
        operation: Operation::PutSnapshotCreate,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/",
        summary: "Get the instance's identity and lifecycle state",
        success_status: 200,
        operation: Operation::GetInstanceInfo,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/vm/config",
        summary: "Get the whole VM configuration",
        success_status: 200,
        operation: Operation::GetVmConfig,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/machine-config",
        summary: "Get the vCPU and memory configuration",
        success_status: 200,
        operation: Operation::GetMachineConfig,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/machine-config",
        summary: "Set the vCPU and memory configuration (before start)",
        success_status: 204,
        operation: Operation::PutMachineConfig,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/boot-source",
        summary: "Set the kernel, command line and initrd (before start)",
        success_status: 204,
        operation: Operation::PutBootSource,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/drives/{drive_id}",
        summary: "Add or replace a block device (before start)",
        success_status: 204,
        operation: Operation::PutDrive,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/drives/{drive_id}",
        summary: "Get a block device's backend, size, I/O limits and counters",
        success_status: 200,
        operation: Operation::GetDrive,
        query: &[],
    },
    Route {
        method: "PATCH",
        path: "/drives/{drive_id}",
        summary: "Resize a block device or change its I/O limits",
        success_status: 204,
        operation: Operation::PatchDrive,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/drives/{drive_id}/snapshots/{snapshot_name}",
        summary: "Take a snapshot of a block device's volume (while the VM runs)",
        success_status: 201,
        operation: Operation::PutDriveSnapshot,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/drives/{drive_id}/snapshots",
        summary: "List the snapshots of a block device's volume",
        success_status: 200,
        operation: Operation::ListDriveSnapshots,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/network-interfaces/{iface_id}",
        summary: "Add or replace a network interface (before start)",
        success_status: 204,
        operation: Operation::PutNetworkInterface,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/serial",
        summary:
            "Set where the serial console's output goes and its input comes from (before start)",
        success_status: 204,
        operation: Operation::PutSerial,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/actions",
        summary: "Start or stop the instance",
        success_status: 204,
        operation: Operation::PutAction,
        query: &[],
    },
    Route {
        method: "PATCH",
        path: "/vm",
        summary: "Pause or resume the VM",
        success_status: 204,
        operation: Operation::PatchVm,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/vm/vcpus",
        summary: "Get the registers of every vCPU of the paused VM",
        success_status: 200,
        operation: Operation::GetVcpus,
        query: &[],
    },
    Route {
        method: "PUT",
        path: "/debugger",
        summary: "Start the gdb server on a Unix socket or TCP address",
        success_status: 200,
        operation: Operation::PutDebugger,
        query: &[],
    },
    Route {
        method: "GET",
        path: "/debugger",
        summary: "Get where the gdb server listens and whether gdb is attached",
        success_status: 200,
        operation: Operation::GetDebugger,
        query: &[],
    },
];

/// One request, as the server parsed it.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// HTTP method, e.g. `PUT`.
    pub method: &'a str,
    /// Request path without the query string, e.g. `/drives/root`.
    pub path: &'a str,
    /// The raw query string (after `?`), if the request had one.
    pub query: Option<&'a str>,
    /// Raw `Content-Type` header value, if one was sent.
    pub content_type: Option<&'a [u8]>,
    /// The whole request body (empty if none).
    pub body: &'a [u8],
}

/// The response to one request, before HTTP framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// JSON body, if any.
    pub body: Option<Vec<u8>>,
    /// Value of the `Allow` header (for 405 responses).
    pub allow: Option<String>,
}

impl ApiResponse {
    /// 204 No Content.
    pub fn no_content() -> Self {
        ApiResponse {
            status: 204,
            body: None,
            allow: None,
        }
    }

    /// `status` with `value` serialized as the JSON body (500 if it cannot be serialized).
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => ApiResponse {
                status,
                body: Some(body),
                allow: None,
            },
            Err(e) => Self::error(&ApiError::internal(format!(
                "the response could not be encoded as JSON: {e}"
            ))),
        }
    }

    /// An error response: `{"fault_message": ...}` with the error's status. A status outside
    /// 400..=599 (a bug in whoever produced the error) is reported as 500.
    pub fn error(error: &ApiError) -> Self {
        let status = if (400..=599).contains(&error.status) {
            error.status
        } else {
            500
        };
        let body = ErrorBody {
            fault_message: error.message.clone(),
        };
        // A struct with one string field always serializes.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        ApiResponse {
            status,
            body: Some(body),
            allow: None,
        }
    }
}

/// Why no route was selected.
enum RouteMiss {
    /// No template matches the path.
    NotFound,
    /// Templates match the path, but with other methods (listed, `Allow`-style).
    MethodNotAllowed(String),
}

/// Finds the route for `method` and `path`, with its raw path parameters.
fn find_route<'p>(
    method: &str,
    path: &'p str,
) -> Result<(&'static Route, PathParams<'static, 'p>), RouteMiss> {
    let mut allowed: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if let Some(params) = path::match_template(route.path, path) {
            if route.method == method {
                return Ok((route, params));
            }
            if !allowed.contains(&route.method) {
                allowed.push(route.method);
            }
        }
    }
    if allowed.is_empty() {
        Err(RouteMiss::NotFound)
    } else {
        allowed.sort_unstable();
        Err(RouteMiss::MethodNotAllowed(allowed.join(", ")))
    }
}

/// Handles one request: routes it, decodes its body, calls `control`, and builds the
/// response. Never panics on any input (a panicking `control` is the caller's to catch).
pub fn dispatch(control: &dyn VmmControl, request: &ApiRequest<'_>) -> ApiResponse {
    match find_route(request.method, request.path) {
        Ok((route, params)) => match handle(control, route, &params, request) {
            Ok(response) => response,
            Err(error) => ApiResponse::error(&error),
        },
        Err(RouteMiss::NotFound) => ApiResponse::error(&ApiError::not_found(format!(
            "no API resource at `{}`; the API serves {}",
            request.path,
            known_paths()
        ))),
        Err(RouteMiss::MethodNotAllowed(allow)) => {
            let error = ApiError {
                status: 405,
                message: format!(
                    "method {} is not allowed on `{}`; allowed: {allow}",
                    request.method, request.path
                ),
            };
            ApiResponse {
                allow: Some(allow),
                ..ApiResponse::error(&error)
            }
        }
    }
}

/// The distinct path templates of [`ROUTES`], for error messages.
fn known_paths() -> String {
    let mut paths: Vec<&str> = Vec::new();
    for route in ROUTES {
        if !paths.contains(&route.path) {
            paths.push(route.path);
        }
    }
    paths.join(", ")
}

/// Runs a matched route.
fn handle(
    control: &dyn VmmControl,
    route: &Route,
    params: &PathParams<'_, '_>,
    request: &ApiRequest<'_>,
) -> Result<ApiResponse, ApiError> {
    let ok = || Ok(ApiResponse::no_content());
    let query = query_params(route, request)?;
    match route.operation {
        Operation::GetInstanceInfo => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.instance_info(),
            ))
        }
        Operation::GetVmConfig => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.vm_config(),
            ))
        }
        Operation::GetMachineConfig => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.vm_config().machine,
            ))
        }
        Operation::PutMachineConfig => {
            let config: MachineConfig = json::parse_body(request, "MachineConfig")?;
            control.put_machine_config(config)?;
            ok()
        }
        Operation::PutBootSource => {
            let boot: BootSource = json::parse_body(request, "BootSource")?;
            control.put_boot_source(boot)?;
            ok()
        }
        Operation::PutDrive => {
            let id = path_param(params, "drive_id")?;
            let drive: DriveConfig = json::parse_body(request, "DriveConfig")?;
            check_same_id(&id, &drive.drive_id, "drive_id")?;
            control.put_drive(drive)?;
            ok()
        }
        Operation::GetDrive => {
            let id = path_param(params, "drive_id")?;
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.drive_status(&id)?,
            ))
        }
        Operation::PatchDrive => {
            let id = path_param(params, "drive_id")?;
            let patch: DrivePatch = json::parse_body(request, "DrivePatch")?;
            check_same_id(&id, &patch.drive_id, "drive_id")?;
            control.patch_drive(patch)?;
            ok()
        }
        Operation::PutSnapshotSchedule => {
            let schedule: super::SnapshotSchedule = json::parse_body(request, "SnapshotSchedule")?;
            control.set_snapshot_schedule(schedule)?;
            ok()
        }
        Operation::PutSnapshotCreate => {
            let request: SnapshotCreate = json::parse_body(request, "SnapshotCreate")?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.create_snapshot(request)?,
            ))
        }
        Operation::PutDriveSnapshot => {
            let id = path_param(params, "drive_id")?;
            let name = path_param(params, "snapshot_name")?;
            check_snapshot_name(&name)?;
            if !request.body.iter().all(u8::is_ascii_whitespace) {
                let _: Empty = json::parse_body(request, "snapshot request")?;
            }
            Ok(ApiResponse::json(
                route.success_status,
                &control.snapshot_drive(&id, &name)?,
            ))
        }
        Operation::ListDriveSnapshots => {
            let id = path_param(params, "drive_id")?;
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.drive_snapshots(&id)?,
            ))
        }
        Operation::PutNetworkInterface => {
            let id = path_param(params, "iface_id")?;
            let net: NetConfig = json::parse_body(request, "NetConfig")?;
            check_same_id(&id, &net.iface_id, "iface_id")?;
            control.put_net(net)?;
            ok()
        }
        Operation::PutSerial => {
            let serial: SerialConfig = json::parse_body(request, "SerialConfig")?;
            control.put_serial(serial)?;
            ok()
        }
        Operation::PutAction => {
            let action: InstanceAction = json::parse_body(request, "InstanceAction")?;
            match action.action_type {
                ActionType::InstanceStart => control.start()?,
                ActionType::InstanceStop => control.stop()?,
            }
            ok()
        }
        Operation::PutSnapshotLoad => {
            let load: super::SnapshotLoad = json::parse_body(request, "SnapshotLoad")?;
            control.load_snapshot(load)?;
            ok()
        }
        Operation::ListSnapshots => {
            expect_no_body(request)?;
            let store = snapshot_dir(&query)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.list_snapshots(&store)?,
            ))
        }
        Operation::GetSnapshot => {
            let id = path_param(params, "snapshot_id")?;
            expect_no_body(request)?;
            let store = snapshot_dir(&query)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.snapshot_info(&store, &id)?,
            ))
        }
        Operation::DeleteSnapshot => {
            let id = path_param(params, "snapshot_id")?;
            expect_no_body(request)?;
            let store = snapshot_dir(&query)?;
            control.delete_snapshot(&store, &id)?;
            ok()
        }
        Operation::PutRecording => {
            let start: super::RecordingStart = json::parse_body(request, "RecordingStart")?;
            control.start_recording(start)?;
            ok()
        }
        Operation::GetRecording => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.recording_status(),
            ))
        }
        Operation::DeleteRecording => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.stop_recording()?,
            ))
        }
        Operation::PutReplay => {
            let start: super::ReplayStart = json::parse_body(request, "ReplayStart")?;
            control.start_replay(start)?;
            ok()
        }
        Operation::GetReplay => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.replay_status()?,
            ))
        }
        Operation::GetReplayDivergences => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.replay_divergences()?,
            ))
        }
        Operation::GetReplayInjections => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.replay_injections()?,
            ))
        }
        Operation::PatchReplay => {
            let patch: super::ReplayPatch = json::parse_body(request, "ReplayPatch")?;
            control.patch_replay(patch)?;
            ok()
        }
        Operation::PutReplayStep => {
            let step: super::ReplayStep = json::parse_body(request, "ReplayStep")?;
            control.step_replay(step)?;
            ok()
        }
        Operation::PutReplayRunUntil => {
            let until: super::ReplayRunUntil = json::parse_body(request, "ReplayRunUntil")?;
            control.run_replay_until(until)?;
            ok()
        }
        Operation::PutReplayRestart => {
            let restart: super::ReplayRestart = json::parse_body(request, "ReplayRestart")?;
            control.restart_replay(restart)?;
            ok()
        }
        Operation::GetVcpus => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.vcpu_registers()?,
            ))
        }
        Operation::PutDebugger => {
            let start: super::DebuggerStart = json::parse_body(request, "DebuggerStart")?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.start_debugger(start)?,
            ))
        }
        Operation::GetDebugger => {
            expect_no_body(request)?;
            Ok(ApiResponse::json(
                route.success_status,
                &control.debugger_status()?,
            ))
        }
        Operation::PatchVm => {
            let patch: VmStatePatch = json::parse_body(request, "VmStatePatch")?;
            match patch.state {
                VmStateChange::Paused => control.pause()?,
                VmStateChange::Resumed => control.resume()?,
            }
            ok()
        }
    }
}

/// Rejects a body on a route that takes none.
fn expect_no_body(request: &ApiRequest<'_>) -> Result<(), ApiError> {
    if request.body.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{} {} takes no request body, but {} bytes were sent",
            request.method,
            request.path,
            request.body.len()
        )))
    }
}

/// The query parameters of `request`, checked against those `route` takes: each is given
/// once, and no other is. A route that takes none ignores the query string.
fn query_params(route: &Route, request: &ApiRequest<'_>) -> Result<QueryParams, ApiError> {
    if route.query.is_empty() {
        return Ok(QueryParams::default());
    }
    let takes = || {
        route
            .query
            .iter()
            .map(|q| format!("`{q}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let params = query::parse(request.query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    if let Some(unknown) = params.names().find(|n| !route.query.contains(n)) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter `{unknown}`: {} {} takes {}",
            route.method,
            route.path,
            takes()
        )));
    }
    if let Some(missing) = route.query.iter().find(|q| params.get(q).is_none()) {
        return Err(ApiError::bad_request(format!(
            "missing query parameter `{missing}`: {} {} takes {}, e.g. `?{missing}=...`",
            route.method,
            route.path,
            takes()
        )));
    }
    Ok(params)
}

/// The `snapshot_dir` query parameter, which must not be empty.
fn snapshot_dir(query: &QueryParams) -> Result<std::path::PathBuf, ApiError> {
    match query.get("snapshot_dir") {
        Some(dir) if !dir.is_empty() => Ok(std::path::PathBuf::from(dir)),
        _ => Err(ApiError::bad_request(
            "query parameter `snapshot_dir` is empty: name the snapshot store's directory",
        )),
    }
}

/// The decoded path parameter `name` of a templated route.
fn path_param(params: &PathParams<'_, '_>, name: &str) -> Result<String, ApiError> {
    let raw = params
        .get(name)
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is missing from the path")))?;
    path::percent_decode(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid `{name}` in the path: {e}")))
}

/// Whether `name` follows [`SNAPSHOT_NAME_PATTERN`].
pub fn is_valid_snapshot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SNAPSHOT_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Rejects a snapshot name that does not follow [`SNAPSHOT_NAME_PATTERN`] (400).
fn check_snapshot_name(name: &str) -> Result<(), ApiError> {
    if is_valid_snapshot_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid snapshot_name {name:?}: use 1 to {MAX_SNAPSHOT_NAME_LEN} characters from \
             [A-Za-z0-9._-], not starting with `.`"
        )))
    }
}

/// Requires the identifier in the path to equal the one in the body.
fn check_same_id(path_id: &str, body_id: &str, name: &str) -> Result<(), ApiError> {
    if path_id == body_id {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the {name} in the path (`{path_id}`) differs from `{name}` in the body (`{body_id}`)"
        )))
    }
}
