//! The VMM's snapshot operations: schedule, take, load into an empty VMM, delete.

use super::{Phase, Vmm};
use crate::api::ApiError;
use crate::config::VmConfig;
use crate::vstate::vcpu;

impl Vmm {
    /// `PUT /snapshot/schedule`: starts, changes or stops periodic snapshots.
    pub(super) fn set_snapshot_schedule(
        &self,
        schedule: crate::api::SnapshotSchedule,
    ) -> Result<(), ApiError> {
        if schedule.interval_ms != 0 && schedule.interval_ms < 100 {
            return Err(ApiError::bad_request(format!(
                "interval_ms {} is too short: use 0 (off) or at least 100",
                schedule.interval_ms
            )));
        }
        if schedule.keep_count == Some(0) {
            return Err(ApiError::bad_request("keep_count must be at least 1"));
        }
        self.scheduler.set(schedule);
        Ok(())
    }

    /// `PUT /snapshot/create`: snapshots the running (or paused) VM.
    pub(super) fn create_snapshot(
        &self,
        request: crate::api::SnapshotCreate,
    ) -> Result<crate::api::SnapshotCreated, ApiError> {
        let id = request
            .snapshot_id
            .clone()
            .unwrap_or_else(|| format!("snap-{}", snapshot::unix_ms_now()));
        let mut inner = self.lock();
        let config = inner.config.clone();
        let Phase::Running { vm, paused, .. } = &mut inner.phase else {
            return Err(ApiError::conflict(
                "only a running or paused VM can be snapshotted",
            ));
        };
        if vm.control.exit_reason().is_some() {
            return Err(ApiError::conflict(
                "the VM has stopped and cannot be snapshotted",
            ));
        }
        let was_paused = *paused;
        let request_dir = request.snapshot_dir.clone();
        let result = crate::snapshots::create::create(
            vm,
            &config,
            &self.events,
            crate::snapshots::create::CreateRequest {
                store_dir: &request_dir,
                id: &id,
                diff: request.snapshot_type == Some(crate::api::SnapshotType::Diff),
            },
            |vm| {
                if was_paused || vcpu::pause_all(&vm.control, &vm.vcpus) {
                    Ok(())
                } else {
                    Err(crate::snapshots::create::CreateError(
                        "a vCPU did not acknowledge the pause in time".into(),
                    ))
                }
            },
            |vm| {
                if !was_paused && !vcpu::resume_all(&vm.control) {
                    log::error!("a vCPU did not resume after the snapshot");
                }
            },
        );
        if result.is_err() && !was_paused && !vcpu::resume_all(&vm.control) {
            log::error!("a vCPU did not resume after the snapshot");
        }
        let created = result.map_err(|e| ApiError::bad_request(e.to_string()))?;
        log::info!(
            "snapshot {} taken in {} (guest paused {} us, stopping it took {} us)",
            created.id,
            created.dir,
            created.pause_us,
            created.stop_us
        );
        Ok(created)
    }

    /// `PUT /snapshot/load`: restores a snapshot into this empty VMM.
    pub(super) fn load_snapshot(&self, request: crate::api::SnapshotLoad) -> Result<(), ApiError> {
        let requested = std::time::Instant::now();
        let mut inner = self.lock();
        match inner.phase {
            Phase::Configuring => {}
            Phase::Running { .. } => {
                return Err(ApiError::conflict(
                    "a VM is already running in this VMM; load snapshots into a new reprise \
                     process",
                ))
            }
            Phase::Stopped(_) => {
                return Err(ApiError::conflict(
                    "this VMM's VM has stopped; load snapshots into a new reprise process",
                ))
            }
        }
        if inner.config != VmConfig::default() {
            return Err(ApiError::conflict(
                "a VM has been configured in this VMM; a snapshot brings its own \
                 configuration, so load it into a VMM where nothing was configured",
            ));
        }
        let vm_id = request.vm_id.clone().unwrap_or_else(|| self.id.clone());
        if !crate::api::routes::is_valid_snapshot_name(&vm_id) {
            return Err(ApiError::bad_request(format!(
                "invalid vm_id {vm_id:?}: use 1 to 64 characters from [A-Za-z0-9._-], not \
                 starting with `.`"
            )));
        }
        let options = crate::snapshots::restore::RestoreOptions {
            serial_output: request.serial_output.clone(),
            serial_input: request.serial_input.clone(),
            nets: request.network_overrides.clone(),
            paused: !request.resume,
            replay: None,
        };
        let (config, vm) =
            crate::snapshots::restore::restore(&request.snapshot_path, &vm_id, &options)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.adopt(&mut inner, vm, !request.resume)?;
        inner.config = config;
        let ms = requested.elapsed().as_secs_f64() * 1000.0;
        if request.resume {
            log::info!(
                "snapshot {} loaded: vCPUs running {ms:.1} ms after the request",
                request.snapshot_path.display()
            );
        } else {
            log::info!(
                "snapshot {} loaded in {ms:.1} ms; vCPUs paused until resumed",
                request.snapshot_path.display()
            );
        }
        Ok(())
    }

    /// `DELETE /snapshots/{id}`: deletes a snapshot; the VM's next one is full if it
    /// was the base of its next diff.
    pub(super) fn delete_snapshot(
        &self,
        store: &std::path::Path,
        id: &str,
    ) -> Result<(), ApiError> {
        // Whether the running VM's next diff snapshot would build on this one.
        let same_store = |dir: &std::path::Path| {
            let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
            dir == store || (canonical(dir).is_some() && canonical(dir) == canonical(store))
        };
        let base_of_next_diff = match &self.lock().phase {
            Phase::Running { vm, .. } => vm
                .last_snapshot
                .as_ref()
                .is_some_and(|(dir, last)| last == id && same_store(dir)),
            _ => false,
        };
        crate::snapshots::catalog::delete(store, id)?;
        if base_of_next_diff {
            if let Phase::Running { vm, .. } = &mut self.lock().phase {
                if vm
                    .last_snapshot
                    .as_ref()
                    .is_some_and(|(_, last)| last == id)
                {
                    // The next snapshot of this VM must be a full one.
                    vm.last_snapshot = None;
                }
            }
        }
        Ok(())
    }
}
