//! The run/pause/stop control shared by the VMM and the vCPU threads of one VM: the state
//! the VMM wants, each vCPU's acknowledgement, work for paused vCPUs (state saving, the
//! debugger's requests) and stops recorded for a debugger.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use super::exit_report::ExitReason;
use super::vcpu::VcpuHandle;
use super::vcpu_state::{VcpuState, VcpuStateError};
use super::vm_clock::{ClockState, VmClock};

/// What the VMM wants the vCPUs to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Run the guest.
    Run,
    /// Park until told otherwise.
    Pause,
    /// Leave the run loop for good.
    Stop,
}

/// State of one vCPU thread, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuRunState {
    /// Inside or around `KVM_RUN`.
    Running,
    /// Parked on the control condition variable.
    Paused,
    /// The thread has left its loop.
    Exited,
}

/// Work a paused vCPU thread does on the VMM's behalf (it owns the vCPU fd).
#[derive(Debug, Clone)]
pub enum VcpuRequest {
    /// Complete any pending exit and capture the vCPU's KVM state.
    SaveState {
        /// MSRs to save.
        msr_indexes: Arc<Vec<u32>>,
    },
    /// A debugger's register access or debug setting.
    Debug(crate::gdb::vcpu_ops::DebugOp),
}

/// The answer to a [`VcpuRequest`].
#[derive(Debug)]
pub enum VcpuReply {
    /// The saved state, or why it could not be saved.
    State(Box<Result<VcpuState, VcpuStateError>>),
    /// The answer to a debugger's request.
    Debug(Box<Result<crate::gdb::vcpu_ops::DebugReply, String>>),
}

/// Why a vCPU stopped for the debugger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugCause {
    /// `KVM_EXIT_DEBUG`: a breakpoint, watchpoint or single step.
    Trap {
        /// The exception vector (1 = #DB, 3 = #BP).
        exception: u32,
        /// The guest's program counter.
        pc: u64,
        /// DR6 at the exit (which debug register fired, or BS for a step).
        dr6: u64,
    },
    /// The guest asked for a reset (i8042); held while a debugger is attached.
    Reset,
}

/// A vCPU stopped for the debugger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugStop {
    /// The vCPU's index.
    pub vcpu: usize,
    /// Why.
    pub cause: DebugCause,
}

struct Shared {
    wanted: Wanted,
    states: Vec<VcpuRunState>,
    /// Counts the requests to run; each vCPU notes the last one it has acted on (it may
    /// stop again at once, e.g. after a single step, before the requester looks).
    run_epoch: u64,
    run_seen: Vec<u64>,
    /// vCPUs held paused while the others run (a debugger stepping one thread).
    frozen: Vec<bool>,
    exit: Option<ExitReason>,
    requests: Vec<Option<VcpuRequest>>,
    replies: Vec<Option<VcpuReply>>,
    /// A debugger is attached: debug exits stop the VM and guest resets are held.
    debugger: bool,
    /// Stops for the debugger not yet reported.
    debug_stops: Vec<DebugStop>,
    /// A reset the guest asked for while held by the debugger.
    held_reset: bool,
}

/// What a vCPU thread does after a checkpoint.
pub(super) enum Next {
    Run,
    Stop,
    Serve(VcpuRequest),
}

/// Run/pause/stop control shared by the VMM and all vCPU threads of one VM.
pub struct VcpuControl {
    shared: Mutex<Shared>,
    changed: Condvar,
    /// Signalled once when the first vCPU stops the VM (see [`VcpuControl::exit_reason`]).
    pub exit_evt: EventFd,
    /// VM time, running while the vCPUs are wanted running.
    pub clock: VmClock,
}

/// How long the VMM waits for vCPUs to acknowledge a pause or stop.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl VcpuControl {
    /// Control for `count` vCPUs, initially wanting `Run`.
    pub fn new(count: usize) -> std::io::Result<Self> {
        Self::with_wanted(count, Wanted::Run, ClockState::default())
    }

    /// Control for `count` vCPUs that park before they first enter the guest, until
    /// [`resume_all`].
    pub fn new_paused(count: usize) -> std::io::Result<Self> {
        Self::with_wanted(count, Wanted::Pause, ClockState::default())
    }

    /// Control for `count` restored vCPUs whose VM clock continues from `clock`; paused
    /// until [`resume_all`] when `paused`.
    pub fn restored(count: usize, paused: bool, clock: ClockState) -> std::io::Result<Self> {
        let wanted = if paused { Wanted::Pause } else { Wanted::Run };
        Self::with_wanted(count, wanted, clock)
    }

    fn with_wanted(count: usize, wanted: Wanted, clock: ClockState) -> std::io::Result<Self> {
        Ok(VcpuControl {
            shared: Mutex::new(Shared {
                wanted,
                states: vec![VcpuRunState::Running; count],
                run_epoch: 0,
                run_seen: vec![0; count],
                frozen: vec![false; count],
                exit: None,
                requests: vec![None; count],
                replies: (0..count).map(|_| None).collect(),
                debugger: false,
                debug_stops: Vec::new(),
                held_reset: false,
            }),
            changed: Condvar::new(),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            clock: VmClock::new(clock),
        })
    }

    /// The vCPU threads are started: their exits count as guest progress, and the VM clock
    /// runs unless they were started paused.
    pub fn started(&self, vcpus: &[VcpuHandle]) {
        for v in vcpus {
            self.clock.track_exits(v.exits.clone());
        }
        if self.lock().wanted == Wanted::Run {
            self.clock.run();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        devices::bus::lock(&self.shared)
    }

    /// States of all vCPUs.
    pub fn states(&self) -> Vec<VcpuRunState> {
        self.lock().states.clone()
    }

    /// Why the VM stopped, once a vCPU has stopped it.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.lock().exit.clone()
    }

    /// Sets the wanted state and waits (bounded) until every vCPU that has not exited
    /// acknowledges it. Returns false on timeout.
    pub(super) fn set_and_wait(&self, wanted: Wanted, kick: impl Fn()) -> bool {
        let mut s = self.lock();
        if s.wanted == Wanted::Stop && wanted != Wanted::Stop {
            // The VM is stopping (e.g. the guest reset it): nothing may override that.
            return false;
        }
        s.wanted = wanted;
        if wanted == Wanted::Run {
            s.run_epoch += 1;
            self.clock.run();
        }
        let epoch = s.run_epoch;
        self.changed.notify_all();
        drop(s);
        kick();
        let target = match wanted {
            Wanted::Run => VcpuRunState::Running,
            Wanted::Pause => VcpuRunState::Paused,
            Wanted::Stop => VcpuRunState::Exited,
        };
        let s = self.lock();
        let (_s, timeout) = self
            .changed
            .wait_timeout_while(s, ACK_TIMEOUT, |s| {
                s.states.iter().enumerate().any(|(i, &st)| {
                    st != VcpuRunState::Exited
                        && if wanted == Wanted::Run {
                            s.run_seen[i] < epoch && !s.frozen[i]
                        } else {
                            st != target
                        }
                })
            })
            .unwrap_or_else(|p| p.into_inner());
        if wanted != Wanted::Run {
            // Stopped (or stopping): from here on the guest does not run.
            self.clock.stop();
        }
        !timeout.timed_out()
    }

    /// Records the first reason for stopping the VM, tells every vCPU to stop before its next
    /// guest entry, and wakes the VMM (which kicks and joins the vCPU threads).
    pub fn request_stop(&self, reason: ExitReason) {
        let mut s = self.lock();
        if s.exit.is_none() {
            s.exit = Some(reason);
            if let Err(e) = self.exit_evt.write(1) {
                log::error!("cannot signal the VM exit: {e}");
            }
        }
        s.wanted = Wanted::Stop;
        self.changed.notify_all();
    }

    /// Blocks while paused (serving requests meanwhile); returns once the wanted state is
    /// `Run` or `Stop`, or a request is waiting for this vCPU.
    pub(super) fn checkpoint(&self, index: usize) -> Next {
        let mut s = self.lock();
        loop {
            if let Some(request) = s.requests[index].take() {
                return Next::Serve(request);
            }
            let wanted = match s.wanted {
                Wanted::Run if s.frozen[index] => Wanted::Pause,
                w => w,
            };
            match wanted {
                Wanted::Pause => {
                    if s.states[index] != VcpuRunState::Paused {
                        s.states[index] = VcpuRunState::Paused;
                        self.changed.notify_all();
                    }
                    s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                Wanted::Run => {
                    if s.states[index] != VcpuRunState::Running || s.run_seen[index] != s.run_epoch
                    {
                        s.states[index] = VcpuRunState::Running;
                        s.run_seen[index] = s.run_epoch;
                        self.changed.notify_all();
                    }
                    return Next::Run;
                }
                Wanted::Stop => return Next::Stop,
            }
        }
    }

    pub(super) fn reply(&self, index: usize, reply: VcpuReply) {
        let mut s = self.lock();
        s.replies[index] = Some(reply);
        self.changed.notify_all();
    }

    /// Gives every live vCPU `request` and waits (bounded) for all replies. The vCPUs must
    /// be paused. Replies are in vCPU order; an exited vCPU gets `None`.
    pub fn request_all(&self, request: VcpuRequest) -> Result<Vec<Option<VcpuReply>>, String> {
        let mut s = self.lock();
        if s.wanted != Wanted::Pause {
            return Err("the vCPUs must be paused first".into());
        }
        let live: Vec<bool> = s
            .states
            .iter()
            .map(|&st| st != VcpuRunState::Exited)
            .collect();
        for (i, alive) in live.iter().enumerate() {
            s.replies[i] = None;
            if *alive {
                s.requests[i] = Some(request.clone());
            }
        }
        self.changed.notify_all();
        let (mut s, timeout) = self
            .changed
            .wait_timeout_while(s, ACK_TIMEOUT, |s| {
                live.iter().enumerate().any(|(i, &alive)| {
                    alive && s.replies[i].is_none() && s.states[i] != VcpuRunState::Exited
                })
            })
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() {
            for r in s.requests.iter_mut() {
                *r = None;
            }
            return Err("a vCPU did not answer in time".into());
        }
        Ok(s.replies.iter_mut().map(Option::take).collect())
    }

    /// Gives vCPU `index` `request` and waits (bounded) for its reply. The vCPUs must be
    /// paused.
    pub fn request_one(&self, index: usize, request: VcpuRequest) -> Result<VcpuReply, String> {
        let mut s = self.lock();
        if s.wanted != Wanted::Pause {
            return Err("the vCPUs must be paused first".into());
        }
        match s.states.get(index) {
            None => return Err(format!("there is no vCPU {index}")),
            Some(VcpuRunState::Exited) => return Err(format!("vCPU {index} has exited")),
            Some(_) => {}
        }
        s.replies[index] = None;
        s.requests[index] = Some(request);
        self.changed.notify_all();
        let (mut s, timeout) = self
            .changed
            .wait_timeout_while(s, ACK_TIMEOUT, |s| {
                s.replies[index].is_none() && s.states[index] != VcpuRunState::Exited
            })
            .unwrap_or_else(|p| p.into_inner());
        s.requests[index] = None;
        match s.replies[index].take() {
            Some(reply) => Ok(reply),
            None if timeout.timed_out() => Err(format!("vCPU {index} did not answer in time")),
            None => Err(format!("vCPU {index} exited")),
        }
    }

    /// Attaches or detaches a debugger: while attached, debug exits stop the VM (see
    /// [`VcpuControl::take_debug_stops`]) and a guest reset is held instead of stopping it.
    /// Detaching lets a held reset happen.
    pub fn set_debugger(&self, attached: bool) {
        let held_reset = {
            let mut s = self.lock();
            s.debugger = attached;
            if attached {
                false
            } else {
                s.debug_stops.clear();
                std::mem::take(&mut s.held_reset)
            }
        };
        if held_reset {
            self.request_stop(ExitReason::GuestReset);
        }
    }

    /// Holds the vCPUs not in `running` paused while the others run (`None`: all run).
    pub fn freeze_others(&self, running: Option<&[usize]>) {
        let mut s = self.lock();
        for (i, f) in s.frozen.iter_mut().enumerate() {
            *f = running.is_some_and(|r| !r.contains(&i));
        }
        self.changed.notify_all();
    }

    /// Whether the guest asked for a reset that the debugger holds.
    pub fn reset_held(&self) -> bool {
        self.lock().held_reset
    }

    /// The stops for the debugger since the last call, oldest first.
    pub fn take_debug_stops(&self) -> Vec<DebugStop> {
        std::mem::take(&mut self.lock().debug_stops)
    }

    /// Called on vCPU `index`'s thread: with a debugger attached, records the stop and
    /// parks the vCPUs (the debugger's thread then pauses the others and the replay).
    /// Returns false when no debugger is attached.
    pub(super) fn debug_stop(&self, index: usize, cause: DebugCause) -> bool {
        let mut s = self.lock();
        if !s.debugger {
            return false;
        }
        if cause == DebugCause::Reset {
            s.held_reset = true;
        }
        s.debug_stops.push(DebugStop { vcpu: index, cause });
        if s.wanted == Wanted::Run {
            s.wanted = Wanted::Pause;
        }
        self.changed.notify_all();
        true
    }

    pub(super) fn mark_exited(&self, index: usize) {
        let mut s = self.lock();
        s.states[index] = VcpuRunState::Exited;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vstate::vcpu::{pause_all, resume_all};

    #[test]
    fn a_stop_requested_by_the_guest_is_not_overridden_by_pause_or_resume() {
        let control = VcpuControl::new(1).expect("eventfd");
        control.request_stop(ExitReason::Stopped);
        assert!(!pause_all(&control, &[]));
        assert!(!resume_all(&control));
        assert_eq!(control.lock().wanted, Wanted::Stop);
        assert_eq!(control.exit_reason(), Some(ExitReason::Stopped));
    }
}
