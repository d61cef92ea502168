//! Recording a running VM: start (the buffers asked for), status, stop.

use std::sync::Arc;

use replay::capture::format::header::BlockMode;

use super::{Inner, Phase};
use crate::api::ApiError;
use crate::recording::clock::VmClockSource;
use crate::recording::config::{BufferState, RecordingStart, RecordingStatus};
use crate::recording::sources;

/// `PUT /recording`.
pub(super) fn start(inner: &mut Inner, request: &RecordingStart) -> Result<(), ApiError> {
    if matches!(inner.phase, Phase::Configuring) {
        // Before start: checked now as far as possible, begun with the VM.
        if inner.pending_recording.is_some() {
            return Err(ApiError::conflict(
                "a recording is already set up for the start",
            ));
        }
        if request.buffers.is_empty() {
            return Err(ApiError::bad_request("give at least one buffer"));
        }
        let table = sources::table(&inner.config).map_err(ApiError::bad_request)?;
        for b in &request.buffers {
            b.to_config(&table).map_err(ApiError::bad_request)?;
        }
        inner.pending_recording = Some(request.clone());
        return Ok(());
    }
    let config = inner.config.clone();
    let Phase::Running { vm, .. } = &mut inner.phase else {
        return Err(ApiError::conflict(
            "the VM has stopped and cannot be recorded",
        ));
    };
    if vm.taps.recorder().is_some() {
        return Err(ApiError::conflict(
            "a recording is already running; stop it first (DELETE /recording)",
        ));
    }
    if request.buffers.is_empty() {
        return Err(ApiError::bad_request("give at least one buffer"));
    }
    let table = sources::table(&config).map_err(ApiError::bad_request)?;
    let buffers = request
        .buffers
        .iter()
        .map(|b| b.to_config(&table))
        .collect::<Result<Vec<_>, String>>()
        .map_err(ApiError::bad_request)?;
    let block_data = buffers.iter().any(|b| b.block_mode == BlockMode::Full);
    if let Some((dir, _)) = &vm.last_snapshot {
        vm.taps.set_snapshot_store(dir);
    }
    let recorder = replay::Recorder::start(
        table,
        buffers,
        Arc::new(VmClockSource(vm.control.clone())),
        vm.taps.snapshot_exists_fn(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let names: Vec<String> = request.buffers.iter().map(|b| b.name.clone()).collect();
    vm.taps.start(recorder, block_data);
    log::info!("recording into {}", names.join(", "));
    Ok(())
}

/// `GET /recording`.
pub(super) fn status(inner: &Inner) -> RecordingStatus {
    match &inner.phase {
        Phase::Running { vm, .. } => match vm.taps.recorder() {
            Some(r) => RecordingStatus {
                recording: true,
                buffers: r.status().iter().map(BufferState::from).collect(),
            },
            None => inner.last_recording.clone(),
        },
        _ => inner.last_recording.clone(),
    }
}

/// Stops the VM's recording, if one runs: drains and flushes every buffer.
pub(super) fn stop_running(inner: &mut Inner) -> Result<Option<RecordingStatus>, ApiError> {
    let Phase::Running { vm, .. } = &mut inner.phase else {
        return Ok(None);
    };
    let Some(recorder) = vm.taps.stop() else {
        return Ok(None);
    };
    let statuses = recorder
        .stop()
        .map_err(|e| ApiError::internal(format!("stopping the recording: {e}")))?;
    let status = RecordingStatus {
        recording: false,
        buffers: statuses.iter().map(BufferState::from).collect(),
    };
    inner.last_recording = status.clone();
    log::info!("recording stopped");
    Ok(Some(status))
}

/// `DELETE /recording`.
pub(super) fn stop(inner: &mut Inner) -> Result<RecordingStatus, ApiError> {
    stop_running(inner)?.ok_or_else(|| ApiError::conflict("no recording is running"))
}
