//! What the gdb stub needs of the VMM: the current VM's vCPUs and memory, stopping and
//! continuing the VM together with its replay, and the debugger's settings that outlive
//! one VM (a replay restart builds a new one).

use std::sync::Arc;

use devices::GuestMemory;

use super::{Inner, Phase, Vmm};
use crate::api::{ApiError, VmmControl};
use crate::gdb::{GdbEndpoint, GdbServer, GdbStatus};
use crate::replaying::config::{ReplayRestart, ReplayRunUntil};
use crate::vstate::vcpu::VcpuControl;

/// The VM a debugger works on.
pub struct DebugVm {
    /// Its vCPUs' run control (requests to paused vCPUs, debug stops).
    pub control: Arc<VcpuControl>,
    /// Its RAM.
    pub memory: GuestMemory,
    /// How many vCPUs it has.
    pub vcpus: usize,
}

/// Whether the VM runs, as the debugger sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebugRunState {
    /// No VM in this VMM (not started, or between a replay's clones).
    NoVm,
    /// The vCPUs run.
    Running,
    /// The vCPUs are paused (by the debugger, the API or the replay).
    Paused,
    /// The VM has stopped, for this reason.
    Stopped(String),
}

fn message(e: ApiError) -> String {
    e.message
}

impl Vmm {
    /// The running VM.
    pub fn debug_vm(&self) -> Result<DebugVm, String> {
        match &self.lock().phase {
            Phase::Running { vm, .. } => Ok(DebugVm {
                control: vm.control.clone(),
                memory: vm.memory.clone(),
                vcpus: vm.vcpus.len(),
            }),
            Phase::Configuring => Err("the VM has not been started".into()),
            Phase::Stopped(reason) => Err(format!("the VM has stopped: {reason}")),
        }
    }

    /// Whether the VM runs.
    pub fn debug_run_state(&self) -> DebugRunState {
        match &self.lock().phase {
            Phase::Running { vm, paused, .. } => match vm.control.exit_reason() {
                Some(reason) => DebugRunState::Stopped(reason.to_string()),
                None if *paused => DebugRunState::Paused,
                None => DebugRunState::Running,
            },
            Phase::Configuring => DebugRunState::NoVm,
            Phase::Stopped(reason) => DebugRunState::Stopped(reason.to_string()),
        }
    }

    /// Tells this VM (and every VM a replay restart builds) that a debugger is attached:
    /// debug exits then stop it and guest resets are held for inspection.
    pub fn set_debugger_attached(&self, attached: bool) {
        let mut inner = self.lock();
        inner.debugger_attached = attached;
        if let Phase::Running { vm, .. } = &inner.phase {
            vm.control.set_debugger(attached);
        }
    }

    /// Stops the VM for the debugger: the replay delivers nothing and every vCPU pauses.
    pub fn debug_halt(&self) -> Result<(), String> {
        if let Some(replayer) = self.replay_of(&self.lock()) {
            replayer.debugger_hold(true);
        }
        self.pause().map_err(message)
    }

    /// Continues after a debugger stop: the vCPUs resume and so does the replay (one that
    /// waited for the debugger, or held at a step or run-until target, runs on; one paused
    /// on request stays paused).
    pub fn debug_continue(&self) -> Result<(), String> {
        let replayer = self.replay_of(&self.lock());
        if let Some(replayer) = replayer {
            if replayer.release_hold() {
                log::info!("replay: running on at the debugger's continue");
            }
            replayer.debugger_hold(false);
        }
        self.resume().map_err(message)
    }

    /// Re-clones the replay from `snapshot_id` (or the same snapshot), paused at its first
    /// instruction with the replay held until the debugger continues.
    pub fn debug_restart(&self, snapshot_id: Option<String>) -> Result<(), String> {
        self.restart_replay(ReplayRestart {
            snapshot_id,
            paused: Some(true),
            ..Default::default()
        })
        .map_err(message)?;
        if let Some(replayer) = self.replay_of(&self.lock()) {
            replayer.debugger_hold(true);
        }
        Ok(())
    }

    /// The replay feeding this clone.
    pub fn debug_replayer(&self) -> Result<Arc<replay::player::Replayer>, String> {
        self.replayer().map_err(message)
    }

    /// Sets where the replay holds next; it gets there when the debugger continues.
    pub fn debug_arm_until(&self, until: ReplayRunUntil) -> Result<(), String> {
        self.arm_replay_until(until).map_err(message)
    }

    /// Where snapshots of this VM are: the clone's snapshot store, or the store of the
    /// VM's last snapshot.
    pub fn debug_snapshot_store(&self) -> Option<std::path::PathBuf> {
        let inner = self.lock();
        if let Some(r) = &inner.replay {
            return Some(r.request.snapshot_dir.clone());
        }
        match &inner.phase {
            Phase::Running { vm, .. } => vm.last_snapshot.as_ref().map(|(dir, _)| dir.clone()),
            _ => None,
        }
    }

    /// `GET /vm/vcpus`: every vCPU's registers; the VM must be paused.
    pub fn vcpu_registers(&self) -> Result<Vec<crate::api::VcpuRegisters>, ApiError> {
        match self.debug_run_state() {
            DebugRunState::Paused => {}
            DebugRunState::Running => {
                return Err(ApiError::conflict(
                    "the VM is running: pause it (PATCH /vm) to read its registers",
                ))
            }
            DebugRunState::NoVm => return Err(ApiError::conflict("the VM has not been started")),
            DebugRunState::Stopped(r) => {
                return Err(ApiError::conflict(format!("the VM has stopped: {r}")))
            }
        }
        let vm = self.debug_vm().map_err(ApiError::conflict)?;
        (0..vm.vcpus)
            .map(|i| {
                let v = crate::gdb::vcpu_ops::read(&vm.control, i).map_err(ApiError::internal)?;
                Ok(crate::api::VcpuRegisters::new(i as u32, &v.regs, &v.sregs))
            })
            .collect()
    }

    fn replay_of(&self, inner: &Inner) -> Option<Arc<replay::player::Replayer>> {
        inner.replay.as_ref().map(|r| r.hub.replayer.clone())
    }

    /// Starts the gdb server (one per VMM).
    pub fn start_gdb_server(&self, endpoint: GdbEndpoint) -> Result<GdbStatus, ApiError> {
        let mut server = devices::bus::lock(&self.gdb);
        if let Some(running) = server.as_ref() {
            return Err(ApiError::conflict(format!(
                "a gdb server already listens on {}",
                running.status().listening
            )));
        }
        let me = self.me.get().cloned().unwrap_or_default();
        let started = GdbServer::start(me, &endpoint)
            .map_err(|e| ApiError::bad_request(format!("gdb server on {endpoint}: {e}")))?;
        let status = started.status();
        log::info!("gdb server listening on {}", status.listening);
        *server = Some(started);
        Ok(status)
    }

    /// The gdb server's state, if one runs.
    pub fn gdb_status(&self) -> Option<GdbStatus> {
        devices::bus::lock(&self.gdb)
            .as_ref()
            .map(GdbServer::status)
    }
}
