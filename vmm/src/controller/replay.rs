//! Clones for replay: `PUT /replay` restores a snapshot as a clone fed by a capture, and
//! the other `/replay` routes drive it. The replay's own state lives in its
//! [`replay::player::Replayer`]; this file plans, restores, wires and tears down.
//!
//! Lock order: the VMM's lock is never held while calling into the replayer (the
//! scheduler thread calls back into the VMM to pause and resume the clone).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use replay::player::entropy::{EntropyPlan, EntropySpec};
use replay::player::selection::{parse_duration_ns, Selection};
use replay::player::{
    Plan, PlanRequest, ReplayOptions, ReplayStatus, Replayer, SnapshotChoice, Speed, Until,
};
use replay::KindClass;

use super::{Inner, Phase, Vmm};
use crate::api::{ApiError, VmmControl};
use crate::config::VmConfig;
use crate::replaying::config::{
    ReplayPatch, ReplayRestart, ReplayRunState, ReplayRunUntil, ReplayStart, ReplayStep,
};
use crate::replaying::ReplayHub;

/// A replay running in this VMM.
pub(super) struct ActiveReplay {
    pub(super) hub: Arc<ReplayHub>,
    pub(super) request: ReplayStart,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Parses the request into a plan and the replay's options.
fn prepare(request: &ReplayStart) -> Result<(Plan, ReplayOptions, BTreeSet<KindClass>), ApiError> {
    let selection_text = request.selection.clone().unwrap_or_else(|| "all".into());
    let selection = Selection::from_str(&selection_text).map_err(|e| bad(e.0))?;
    let speed = match &request.speed {
        Some(s) => Speed::from_str(s).map_err(bad)?,
        None => Speed::Max,
    };
    let entropy = match &request.entropy {
        Some(e) => EntropyPlan::new(EntropySpec::from_str(e).map_err(|e| bad(e.to_string()))?),
        None => EntropyPlan::new(EntropySpec::default()),
    };
    let checked: BTreeSet<KindClass> = match &request.check {
        None => [KindClass::Net, KindClass::Blk, KindClass::Serial].into(),
        Some(list) => list
            .iter()
            .map(|c| KindClass::from_str(c).map_err(|e| bad(format!("check: {e}"))))
            .collect::<Result<_, _>>()?,
    };
    let snapshot = match (&request.snapshot_id, &request.before) {
        (Some(_), Some(_)) => return Err(bad("give snapshot_id or before, not both")),
        (Some(id), None) => SnapshotChoice::Id(id.clone()),
        (None, Some(t)) => SnapshotChoice::Before(
            parse_duration_ns(t).map_err(|e| bad(format!("before {t:?}: {e}")))?,
        ),
        (None, None) => SnapshotChoice::Latest,
    };
    let plan = Plan::build(&PlanRequest {
        capture: request.capture_dir.clone(),
        buffer: request.buffer.clone(),
        snapshot,
        selection,
        rules: request.filters.clone(),
    })
    .map_err(|e| bad(e.0))?;
    let options = ReplayOptions {
        speed,
        entropy,
        strict: request.strict,
        until_divergence: request.until_divergence,
        start_paused: request.paused || request.wait_for_debugger,
        selection: selection_text,
    };
    Ok((plan, options, checked))
}

impl Vmm {
    /// `PUT /replay`: restores the snapshot as a clone and starts replaying into it.
    pub fn start_replay(&self, request: ReplayStart) -> Result<(), ApiError> {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Configuring if inner.config == VmConfig::default() => {}
            Phase::Configuring => {
                return Err(ApiError::conflict(
                    "a VM has been configured in this VMM; a clone brings its snapshot's \
                     configuration, so start the replay in a VMM where nothing was configured",
                ))
            }
            _ => {
                return Err(ApiError::conflict(
                    "a VM already ran in this VMM; start a replay in a new reprise process, \
                     or restart this one's with PUT /replay/restart",
                ))
            }
        }
        let paused = request.paused || request.wait_for_debugger;
        self.launch_clone(&mut inner, request)?;
        drop(inner);
        if !paused {
            self.resume()?;
        }
        Ok(())
    }

    /// Plans, restores and wires a clone into `inner` (left paused).
    fn launch_clone(&self, inner: &mut Inner, request: ReplayStart) -> Result<(), ApiError> {
        let (plan, options, checked) = prepare(&request)?;
        if request.wait_for_debugger && self.gdb_status().is_none() {
            return Err(bad(
                "wait_for_debugger needs a gdb server: start reprise with --gdb-socket or \
                 --gdb-tcp, or PUT /debugger first",
            ));
        }
        let snapshot_path = request.snapshot_dir.join(&plan.snapshot);
        if !snapshot_path.join("manifest.json").is_file() {
            return Err(bad(format!(
                "snapshot {} of capture {} is not in the snapshot store {}",
                plan.snapshot,
                plan.buffer_dir.display(),
                request.snapshot_dir.display()
            )));
        }
        let vm_id = request.vm_id.clone().unwrap_or_else(|| self.id.clone());
        if !crate::api::routes::is_valid_snapshot_name(&vm_id) {
            return Err(bad(format!(
                "invalid vm_id {vm_id:?}: use 1 to 64 characters from [A-Za-z0-9._-]"
            )));
        }
        let snapshot_ns = plan.snapshot_ns;
        let snapshot_id = plan.snapshot.clone();
        let replayer = Replayer::new(plan, options, checked);
        let hub = ReplayHub::new(replayer.clone());
        let restore_options = crate::snapshots::restore::RestoreOptions {
            serial_output: request.serial_output.clone(),
            serial_input: None,
            nets: request.live_nets.clone(),
            paused: true,
            replay: Some(hub.clone()),
        };
        let (mut config, mut vm) =
            crate::snapshots::restore::restore(&snapshot_path, &vm_id, &restore_options)
                .map_err(|e| bad(e.to_string()))?;
        // The snapshot must be the one whose marker the capture holds: the same VM time.
        let saved_ns = vm.control.clock.now_ns();
        if saved_ns != snapshot_ns {
            crate::vstate::vcpu::stop_all(&vm.control, &mut vm.vcpus);
            return Err(bad(format!(
                "snapshot {snapshot_id} in {} was taken at VM time {} ns, but capture {} marks \
                 {snapshot_id} at {snapshot_ns} ns: they come from different VMs",
                request.snapshot_dir.display(),
                saved_ns,
                request.capture_dir.display()
            )));
        }
        for net in &mut config.nets {
            if !request.live_nets.iter().any(|o| o.iface_id == net.iface_id) {
                net.detached = true;
                net.host_dev_name = None;
                net.socket_path = None;
                net.peer_socket_path = None;
            }
        }
        let me = self.me.get().cloned().unwrap_or_default();
        hub.attach(vm.control.clone(), vm.serial.clone(), vm.taps.clone(), me);
        vm.taps.watch(hub.clone());
        self.adopt(inner, vm, true)?;
        inner.config = config;
        replayer
            .start(hub.clone())
            .map_err(|e| ApiError::internal(format!("cannot start the replay thread: {e}")))?;
        log::info!(
            "clone of snapshot {snapshot_id} restored; replaying {} inputs from {}",
            replayer.plan().inputs.len(),
            request.capture_dir.display()
        );
        inner.replay = Some(ActiveReplay { hub, request });
        Ok(())
    }

    pub(super) fn replayer(&self) -> Result<Arc<Replayer>, ApiError> {
        self.lock()
            .replay
            .as_ref()
            .map(|r| r.hub.replayer.clone())
            .ok_or_else(|| {
                ApiError::conflict("no replay runs in this VMM (start one with PUT /replay)")
            })
    }

    /// `GET /replay`.
    pub fn replay_status(&self) -> Result<ReplayStatus, ApiError> {
        Ok(self.replayer()?.status())
    }

    /// `GET /replay/divergences`.
    pub fn replay_divergences(&self) -> Result<Vec<replay::player::Divergence>, ApiError> {
        Ok(self.replayer()?.divergences())
    }

    /// `GET /replay/injections`.
    pub fn replay_injections(
        &self,
    ) -> Result<Vec<replay::player::status::InjectedEvent>, ApiError> {
        Ok(self.replayer()?.injections())
    }

    /// `PATCH /replay`.
    pub fn patch_replay(&self, patch: ReplayPatch) -> Result<(), ApiError> {
        let replayer = self.replayer()?;
        let speed = match &patch.speed {
            Some(s) => Some(Speed::from_str(s).map_err(bad)?),
            None => None,
        };
        if let Some(speed) = speed {
            replayer.set_speed(speed);
            if speed == Speed::Step {
                self.pause_if_running()?;
            }
        }
        match patch.state {
            Some(ReplayRunState::Paused) => {
                replayer.pause("requested");
                self.pause_if_running()?;
            }
            Some(ReplayRunState::Running) => {
                replayer.run(None).map_err(ApiError::conflict)?;
                self.resume()?;
            }
            None => {}
        }
        Ok(())
    }

    /// `PUT /replay/step`.
    pub fn step_replay(&self, step: ReplayStep) -> Result<(), ApiError> {
        let replayer = self.replayer()?;
        replayer.step(step.events).map_err(ApiError::conflict)?;
        self.resume()
    }

    /// `PUT /replay/run-until`.
    pub fn run_replay_until(&self, until: ReplayRunUntil) -> Result<(), ApiError> {
        self.arm_replay_until(until)?;
        self.resume()
    }

    /// Sets where the replay holds next (the caller lets the VM run).
    pub(super) fn arm_replay_until(&self, until: ReplayRunUntil) -> Result<(), ApiError> {
        let target = match (until.event, &until.time, until.divergence) {
            (Some(k), None, false) => Until::Event(k),
            (None, Some(t), false) => {
                Until::Time(parse_duration_ns(t).map_err(|e| bad(format!("time {t:?}: {e}")))?)
            }
            (None, None, true) => Until::Divergence,
            _ => return Err(bad("give exactly one of event, time and divergence: true")),
        };
        let replayer = self.replayer()?;
        replayer.run(Some(target)).map_err(|e| {
            if e.contains("beyond") || e.contains("after the capture") || e.contains("already") {
                bad(e)
            } else {
                ApiError::conflict(e)
            }
        })
    }

    /// `PUT /replay/restart`: tears the clone down and clones again.
    pub fn restart_replay(&self, restart: ReplayRestart) -> Result<(), ApiError> {
        let (old, request) = {
            let inner = self.lock();
            let active = inner
                .replay
                .as_ref()
                .ok_or_else(|| ApiError::conflict("no replay runs in this VMM to restart"))?;
            (active.hub.clone(), restart.apply(&active.request))
        };
        // Check the new request before tearing anything down.
        prepare(&request)?;
        old.replayer.shutdown();
        self.finish(Some(crate::vstate::exit_report::ExitReason::Stopped));
        let paused = request.paused || request.wait_for_debugger;
        {
            let mut inner = self.lock();
            inner.replay = None;
            inner.phase = Phase::Configuring;
            inner.config = VmConfig::default();
            self.launch_clone(&mut inner, request)?;
        }
        if !paused {
            self.resume()?;
        }
        Ok(())
    }

    fn pause_if_running(&self) -> Result<(), ApiError> {
        match self.pause() {
            Ok(()) => Ok(()),
            // A stopped guest stays stopped; the replay is held either way.
            Err(e) if e.status == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
