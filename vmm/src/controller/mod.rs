//! The VMM's lifecycle: configuring → running ⇄ paused → stopped, driven by the API, the
//! config file, guest exits and signals. Implements [`VmmControl`] for the API server.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};

use event_manager::SubscriberId;
use vmm_sys_util::eventfd::EventFd;

use crate::api::{ApiError, DriveSnapshot, DriveStatus, InstanceInfo, VmState, VmmControl};
use crate::builder::{self, BuildError, RunningVm};
use crate::config::{
    BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig, VmConfig,
};
use crate::event_loop::EventLoop;
use crate::vstate::exit_report::ExitReason;
use crate::vstate::vcpu;

pub use debug::{DebugRunState, DebugVm};

mod debug;
mod drives;
mod recording;
mod replay;
mod snapshots;

enum Phase {
    Configuring,
    Running {
        vm: Box<RunningVm>,
        paused: bool,
        subscriber_ids: Vec<SubscriberId>,
    },
    Stopped(ExitReason),
}

struct Inner {
    config: VmConfig,
    phase: Phase,
    /// The state of the last recording, once stopped.
    last_recording: crate::recording::config::RecordingStatus,
    /// A recording asked for before start, begun with the VM.
    pending_recording: Option<crate::recording::config::RecordingStart>,
    /// The replay feeding this VM, when it is a clone.
    replay: Option<replay::ActiveReplay>,
    /// A debugger is attached (every VM this VMM runs is told so).
    debugger_attached: bool,
}

/// The VMM of one guest.
pub struct Vmm {
    id: String,
    inner: Mutex<Inner>,
    events: EventLoop,
    /// Pulsed when a VM starts, so the supervisor picks up its exit events.
    pub started_evt: EventFd,
    /// Periodic snapshots.
    pub scheduler: std::sync::Arc<crate::snapshots::schedule::Scheduler>,
    /// This VMM, for the threads (a replay's scheduler) that call back into it.
    me: std::sync::OnceLock<std::sync::Weak<Vmm>>,
    /// The gdb server, once started.
    gdb: Mutex<Option<crate::gdb::GdbServer>>,
}

fn build_error(e: BuildError) -> ApiError {
    match e {
        BuildError::Config(_)
        | BuildError::Boot(_)
        | BuildError::Serial(_)
        | BuildError::Virtio(_) => ApiError::bad_request(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

impl Vmm {
    /// A VMM in the configuring phase.
    pub fn new(id: String, events: EventLoop) -> std::io::Result<Self> {
        Ok(Vmm {
            id,
            inner: Mutex::new(Inner {
                config: VmConfig::default(),
                phase: Phase::Configuring,
                last_recording: Default::default(),
                pending_recording: None,
                replay: None,
                debugger_attached: false,
            }),
            events,
            started_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            scheduler: Default::default(),
            me: std::sync::OnceLock::new(),
            gdb: Mutex::new(None),
        })
    }

    /// Tells the VMM where it lives, so that replay threads can pause and resume it.
    pub fn set_self(&self, me: std::sync::Weak<Vmm>) {
        let _ = self.me.set(me);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        devices::bus::lock(&self.inner)
    }

    /// Replaces the whole configuration (config-file launch).
    pub fn set_config(&self, config: VmConfig) -> Result<(), ApiError> {
        let mut inner = self.lock();
        Self::configurable(&inner)?;
        inner.config = config;
        Ok(())
    }

    fn configurable(inner: &Inner) -> Result<(), ApiError> {
        match inner.phase {
            Phase::Configuring => Ok(()),
            Phase::Running { .. } => Err(ApiError::conflict(
                "the VM has started; its configuration can no longer change",
            )),
            Phase::Stopped(_) => Err(ApiError::conflict(
                "the VM has stopped; its configuration can no longer change",
            )),
        }
    }

    /// Whether the VM runs (or is paused) and has not stopped.
    pub fn is_running(&self) -> bool {
        matches!(&self.lock().phase, Phase::Running { vm, .. } if vm.control.exit_reason().is_none())
    }

    /// The store of this VM's previous snapshot, if any.
    pub fn previous_snapshot_dir(&self) -> Option<std::path::PathBuf> {
        match &self.lock().phase {
            Phase::Running { vm, .. } => vm.last_snapshot.as_ref().map(|(dir, _)| dir.clone()),
            _ => None,
        }
    }

    /// Runs a VM restored from a snapshot (the configuration it now runs with); `paused`
    /// says its vCPUs were left paused.
    pub fn start_restored(
        &self,
        config: VmConfig,
        vm: RunningVm,
        paused: bool,
    ) -> Result<(), ApiError> {
        let mut inner = self.lock();
        Self::configurable(&inner)?;
        self.adopt(&mut inner, vm, paused)?;
        inner.config = config;
        Ok(())
    }

    /// Takes over a VM whose vCPU threads run (`paused`: parked until resumed): registers
    /// its devices with the event loop (or stops it if that fails), records it as running
    /// and wakes the supervisor.
    fn adopt(&self, inner: &mut Inner, mut vm: RunningVm, paused: bool) -> Result<(), ApiError> {
        vm.control.set_debugger(inner.debugger_attached);
        let subscribers = std::mem::take(&mut vm.subscribers);
        let subscriber_ids = match self.events.add(subscribers) {
            Ok(ids) => ids,
            Err(e) => {
                vcpu::stop_all(&vm.control, &mut vm.vcpus);
                return Err(ApiError::internal(e.to_string()));
            }
        };
        inner.phase = Phase::Running {
            vm: Box::new(vm),
            paused,
            subscriber_ids,
        };
        if let Err(e) = self.started_evt.write(1) {
            log::error!("cannot wake the supervisor: {e}");
        }
        Ok(())
    }

    /// Applies a configuration change before start, after `check` accepts it.
    fn configure(
        &self,
        check: impl FnOnce() -> Result<(), ApiError>,
        apply: impl FnOnce(&mut VmConfig),
    ) -> Result<(), ApiError> {
        let mut inner = self.lock();
        Self::configurable(&inner)?;
        check()?;
        apply(&mut inner.config);
        Ok(())
    }

    /// The eventfd pulsed when the running VM stops (a duplicate owned by the caller).
    pub fn exit_watch(&self) -> Option<EventFd> {
        let inner = self.lock();
        match &inner.phase {
            Phase::Running { vm, .. } => vm.control.exit_evt.try_clone().ok(),
            _ => None,
        }
    }

    /// Stops the VM for `reason` (if it runs) and returns why it stopped, once it has.
    pub fn finish(&self, reason: Option<ExitReason>) -> Option<ExitReason> {
        let mut inner = self.lock();
        if let (None, Phase::Running { vm, .. }) = (&reason, &inner.phase) {
            // A stale exit notice (of a VM a replay restart replaced): nothing stopped.
            vm.control.exit_reason()?;
        }
        if let Err(e) = recording::stop_running(&mut inner) {
            log::warn!("{}", e.message);
        }
        let phase = std::mem::replace(&mut inner.phase, Phase::Configuring);
        let (result, phase) = match phase {
            Phase::Running {
                mut vm,
                subscriber_ids,
                ..
            } => {
                let reason = reason
                    .or_else(|| vm.control.exit_reason())
                    .unwrap_or(ExitReason::Stopped);
                vcpu::stop_all(&vm.control, &mut vm.vcpus);
                let reason = vm
                    .control
                    .exit_reason()
                    .filter(|r| *r != ExitReason::Stopped)
                    .unwrap_or(reason);
                if let Err(e) = self.events.remove(subscriber_ids) {
                    log::warn!("{e}");
                }
                if let Err(e) = devices::bus::lock(&vm.serial).flush_output() {
                    log::debug!("serial flush: {e}");
                }
                log::info!("VM stopped: {reason}");
                (Some(reason.clone()), Phase::Stopped(reason))
            }
            Phase::Stopped(r) => (Some(r.clone()), Phase::Stopped(r)),
            Phase::Configuring => (None, Phase::Configuring),
        };
        inner.phase = phase;
        result
    }

    /// Raw fd of `started_evt`, for polling.
    pub fn started_fd(&self) -> RawFd {
        self.started_evt.as_raw_fd()
    }
}

impl VmmControl for Vmm {
    fn instance_info(&self) -> InstanceInfo {
        let inner = self.lock();
        let clock = match &inner.phase {
            Phase::Running { vm, .. } => Some(vm.control.clock.state()),
            _ => None,
        };
        let (state, exit_reason) = match &inner.phase {
            Phase::Configuring => (VmState::NotStarted, None),
            Phase::Running { vm, paused, .. } => match vm.control.exit_reason() {
                Some(r) => (VmState::Stopped, Some(r.to_string())),
                None if *paused => (VmState::Paused, None),
                None => (VmState::Running, None),
            },
            Phase::Stopped(r) => (VmState::Stopped, Some(r.to_string())),
        };
        InstanceInfo {
            id: self.id.clone(),
            state,
            vmm_version: env!("CARGO_PKG_VERSION").to_string(),
            app_name: "reprise".to_string(),
            exit_reason,
            vm_time_ns: clock.map(|c| c.vm_time_ns),
            guest_progress: clock.map(|c| c.progress),
        }
    }

    fn vm_config(&self) -> VmConfig {
        self.lock().config.clone()
    }

    fn put_machine_config(&self, config: MachineConfig) -> Result<(), ApiError> {
        let check = || config.validate().map_err(|e| ApiError::bad_request(e.0));
        self.configure(check, |c| c.machine = config.clone())
    }

    fn put_boot_source(&self, boot: BootSource) -> Result<(), ApiError> {
        let check = || boot.validate().map_err(|e| ApiError::bad_request(e.0));
        self.configure(check, |c| c.boot = Some(boot.clone()))
    }

    fn put_drive(&self, drive: DriveConfig) -> Result<(), ApiError> {
        let check = || drive.validate().map_err(|e| ApiError::bad_request(e.0));
        self.configure(check, |c| {
            match c.drives.iter_mut().find(|d| d.drive_id == drive.drive_id) {
                Some(d) => *d = drive.clone(),
                None => c.drives.push(drive.clone()),
            }
        })
    }

    fn put_net(&self, net: NetConfig) -> Result<(), ApiError> {
        let check = || net.validate().map_err(|e| ApiError::bad_request(e.0));
        self.configure(check, |c| {
            match c.nets.iter_mut().find(|n| n.iface_id == net.iface_id) {
                Some(n) => *n = net.clone(),
                None => c.nets.push(net.clone()),
            }
        })
    }

    fn put_serial(&self, serial: SerialConfig) -> Result<(), ApiError> {
        let check = || {
            crate::serial_io::parse_output(serial.output.as_deref())
                .and_then(|_| crate::serial_io::parse_input(serial.input.as_deref()))
                .map(|_| ())
                .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        self.configure(check, |c| c.serial = serial.clone())
    }

    fn drive_status(&self, drive_id: &str) -> Result<DriveStatus, ApiError> {
        drives::status(&self.lock(), drive_id)
    }

    fn patch_drive(&self, patch: DrivePatch) -> Result<(), ApiError> {
        patch.validate().map_err(|e| ApiError::bad_request(e.0))?;
        drives::patch(&mut self.lock(), patch)
    }

    fn snapshot_drive(&self, drive_id: &str, name: &str) -> Result<DriveSnapshot, ApiError> {
        drives::snapshot(&self.lock(), drive_id, name)
    }

    fn drive_snapshots(&self, drive_id: &str) -> Result<Vec<DriveSnapshot>, ApiError> {
        drives::snapshots(&self.lock(), drive_id)
    }

    fn set_snapshot_schedule(
        &self,
        schedule: crate::api::SnapshotSchedule,
    ) -> Result<(), ApiError> {
        Vmm::set_snapshot_schedule(self, schedule)
    }

    fn create_snapshot(
        &self,
        request: crate::api::SnapshotCreate,
    ) -> Result<crate::api::SnapshotCreated, ApiError> {
        Vmm::create_snapshot(self, request)
    }

    fn load_snapshot(&self, request: crate::api::SnapshotLoad) -> Result<(), ApiError> {
        Vmm::load_snapshot(self, request)
    }

    fn list_snapshots(
        &self,
        store: &std::path::Path,
    ) -> Result<crate::api::SnapshotList, ApiError> {
        Ok(crate::snapshots::catalog::list(store)?)
    }

    fn snapshot_info(
        &self,
        store: &std::path::Path,
        id: &str,
    ) -> Result<crate::api::SnapshotInfo, ApiError> {
        Ok(crate::snapshots::catalog::info(store, id)?)
    }

    fn delete_snapshot(&self, store: &std::path::Path, id: &str) -> Result<(), ApiError> {
        Vmm::delete_snapshot(self, store, id)
    }

    fn start(&self) -> Result<(), ApiError> {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Configuring => {}
            Phase::Running { .. } => return Err(ApiError::conflict("the VM is already running")),
            Phase::Stopped(_) => {
                return Err(ApiError::conflict(
                    "the VM has stopped and cannot be started again",
                ))
            }
        }
        let Some(recording) = inner.pending_recording.take() else {
            let vm = builder::build_and_start(&inner.config, false).map_err(build_error)?;
            return self.adopt(&mut inner, vm, false);
        };
        // Recorded from the first instruction: the vCPUs wait until the recorder runs.
        let vm = builder::build_and_start(&inner.config, true).map_err(build_error)?;
        self.adopt(&mut inner, vm, true)?;
        let started = recording::start(&mut inner, &recording);
        if let Phase::Running { vm, paused, .. } = &mut inner.phase {
            if !vcpu::resume_all(&vm.control) {
                log::error!("a vCPU did not start in time");
            }
            *paused = false;
        }
        started
    }

    fn stop(&self) -> Result<(), ApiError> {
        {
            let inner = self.lock();
            match inner.phase {
                Phase::Running { .. } => {}
                Phase::Configuring => {
                    return Err(ApiError::conflict("the VM has not been started"))
                }
                Phase::Stopped(_) => return Err(ApiError::conflict("the VM has already stopped")),
            }
        }
        self.finish(Some(ExitReason::Stopped));
        Ok(())
    }

    fn pause(&self) -> Result<(), ApiError> {
        let mut inner = self.lock();
        match &mut inner.phase {
            Phase::Running { vm, paused, .. } => {
                if vm.control.exit_reason().is_some() {
                    return Err(ApiError::conflict(
                        "the VM has stopped and cannot be paused",
                    ));
                }
                if !*paused {
                    if !vcpu::pause_all(&vm.control, &vm.vcpus) {
                        return Err(ApiError::internal(
                            "a vCPU did not acknowledge the pause in time",
                        ));
                    }
                    *paused = true;
                }
                Ok(())
            }
            Phase::Configuring => Err(ApiError::conflict(
                "the VM has not been started; nothing to pause",
            )),
            Phase::Stopped(_) => Err(ApiError::conflict(
                "the VM has stopped and cannot be paused",
            )),
        }
    }

    fn start_recording(
        &self,
        request: crate::recording::config::RecordingStart,
    ) -> Result<(), ApiError> {
        recording::start(&mut self.lock(), &request)
    }

    fn recording_status(&self) -> crate::recording::config::RecordingStatus {
        recording::status(&self.lock())
    }

    fn stop_recording(&self) -> Result<crate::recording::config::RecordingStatus, ApiError> {
        recording::stop(&mut self.lock())
    }

    fn start_replay(&self, request: crate::api::ReplayStart) -> Result<(), ApiError> {
        Vmm::start_replay(self, request)
    }

    fn replay_status(&self) -> Result<crate::api::ReplayStatus, ApiError> {
        Vmm::replay_status(self)
    }

    fn replay_divergences(&self) -> Result<Vec<crate::api::Divergence>, ApiError> {
        Vmm::replay_divergences(self)
    }

    fn replay_injections(&self) -> Result<Vec<crate::api::InjectedEvent>, ApiError> {
        Vmm::replay_injections(self)
    }

    fn patch_replay(&self, patch: crate::api::ReplayPatch) -> Result<(), ApiError> {
        Vmm::patch_replay(self, patch)
    }

    fn step_replay(&self, step: crate::api::ReplayStep) -> Result<(), ApiError> {
        Vmm::step_replay(self, step)
    }

    fn run_replay_until(&self, until: crate::api::ReplayRunUntil) -> Result<(), ApiError> {
        Vmm::run_replay_until(self, until)
    }

    fn restart_replay(&self, restart: crate::api::ReplayRestart) -> Result<(), ApiError> {
        Vmm::restart_replay(self, restart)
    }

    fn vcpu_registers(&self) -> Result<Vec<crate::api::VcpuRegisters>, ApiError> {
        Vmm::vcpu_registers(self)
    }

    fn start_debugger(
        &self,
        request: crate::api::DebuggerStart,
    ) -> Result<crate::api::GdbStatus, ApiError> {
        let endpoint = request.endpoint().map_err(ApiError::bad_request)?;
        self.start_gdb_server(endpoint)
    }

    fn debugger_status(&self) -> Result<crate::api::GdbStatus, ApiError> {
        self.gdb_status()
            .ok_or_else(|| ApiError::not_found("no gdb server runs (start one with PUT /debugger)"))
    }

    fn resume(&self) -> Result<(), ApiError> {
        let mut inner = self.lock();
        match &mut inner.phase {
            Phase::Running { vm, paused, .. } => {
                if vm.control.exit_reason().is_some() {
                    return Err(ApiError::conflict(
                        "the VM has stopped and cannot be resumed",
                    ));
                }
                if *paused {
                    if !vcpu::resume_all(&vm.control) {
                        return Err(ApiError::internal(
                            "a vCPU did not acknowledge the resume in time",
                        ));
                    }
                    *paused = false;
                }
                Ok(())
            }
            Phase::Configuring => Err(ApiError::conflict(
                "the VM has not been started; nothing to resume",
            )),
            Phase::Stopped(_) => Err(ApiError::conflict(
                "the VM has stopped and cannot be resumed",
            )),
        }
    }
}
