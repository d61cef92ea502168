//! vCPU threads and their run/pause/exit state machine.
//!
//! Every vCPU runs `KVM_RUN` on its own thread. A shared [`VcpuControl`] holds the state the
//! VMM wants (running, paused, stopped); to make a vCPU notice a change, the VMM sends its
//! thread a real-time signal whose handler sets `immediate_exit` in the thread's `kvm_run`,
//! so `KVM_RUN` returns (or does not start) and the thread re-reads the wanted state.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use devices::bus::Bus;
use kvm_bindings::{
    kvm_run, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use super::exit_report::{ExitReason, InternalError};
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
enum Next {
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
    fn set_and_wait(&self, wanted: Wanted, kick: impl Fn()) -> bool {
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
    fn checkpoint(&self, index: usize) -> Next {
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

    fn reply(&self, index: usize, reply: VcpuReply) {
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
    fn debug_stop(&self, index: usize, cause: DebugCause) -> bool {
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

    fn mark_exited(&self, index: usize) {
        let mut s = self.lock();
        s.states[index] = VcpuRunState::Exited;
        self.changed.notify_all();
    }
}

thread_local! {
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
    /// The index of the vCPU this thread runs, if it runs one.
    static VCPU_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

extern "C" fn handle_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KVM_RUN_PTR.with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: the pointer is this thread's own kvm_run mapping, set while its VcpuFd
            // is alive and cleared before it is dropped; a volatile byte store is
            // async-signal-safe.
            unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
        }
    });
}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = register_signal_handler(SIGRTMIN(), handle_kick) {
            log::error!("cannot install the vCPU kick signal handler: {e}");
        }
    });
}

/// A running vCPU thread.
pub struct VcpuHandle {
    thread: Option<JoinHandle<()>>,
    pthread: libc::pthread_t,
    /// Number of exits to userspace so far (a guest-progress marker).
    pub exits: Arc<AtomicU64>,
}

impl VcpuHandle {
    /// Interrupts the thread's `KVM_RUN` so it re-reads the wanted state.
    pub fn kick(&self) {
        // SAFETY: `pthread` belongs to a thread that is joined only in `join`, after which
        // no kick is sent; the signal has a handler installed before any vCPU thread starts.
        let r = unsafe { libc::pthread_kill(self.pthread, SIGRTMIN()) };
        if r != 0 && r != libc::ESRCH {
            log::warn!("cannot kick vCPU thread: errno {r}");
        }
    }

    /// Waits for the thread to finish.
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("a vCPU thread panicked");
            }
        }
    }
}

/// What a vCPU thread needs besides its fd.
pub struct VcpuContext {
    /// Port I/O bus.
    pub pio: Bus,
    /// MMIO bus.
    pub mmio: Bus,
    /// Shared run control.
    pub control: Arc<VcpuControl>,
}

/// Starts the thread for vCPU `index`.
pub fn spawn(index: u8, fd: VcpuFd, ctx: VcpuContext) -> std::io::Result<VcpuHandle> {
    install_kick_handler();
    let exits = Arc::new(AtomicU64::new(0));
    let thread_exits = exits.clone();
    let thread = std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || run_loop(index, fd, ctx, thread_exits))?;
    use std::os::unix::thread::JoinHandleExt;
    let pthread = thread.as_pthread_t();
    Ok(VcpuHandle {
        thread: Some(thread),
        pthread,
        exits,
    })
}

/// Pauses all vCPUs; false if one did not acknowledge in time.
pub fn pause_all(control: &VcpuControl, vcpus: &[VcpuHandle]) -> bool {
    control.set_and_wait(Wanted::Pause, || vcpus.iter().for_each(VcpuHandle::kick))
}

/// Resumes all vCPUs; false if one did not acknowledge in time.
pub fn resume_all(control: &VcpuControl) -> bool {
    control.set_and_wait(Wanted::Run, || {})
}

/// Stops all vCPUs and joins their threads.
pub fn stop_all(control: &VcpuControl, vcpus: &mut [VcpuHandle]) {
    control.request_stop(ExitReason::Stopped);
    vcpus.iter().for_each(VcpuHandle::kick);
    for v in vcpus.iter_mut() {
        v.join();
    }
}

fn run_loop(index: u8, mut fd: VcpuFd, ctx: VcpuContext, exits: Arc<AtomicU64>) {
    let i = usize::from(index);
    KVM_RUN_PTR.with(|p| p.set(fd.get_kvm_run() as *mut kvm_run));
    VCPU_INDEX.with(|v| v.set(Some(i)));
    let mut entered = false;
    loop {
        match ctx.control.checkpoint(i) {
            Next::Stop => break,
            Next::Serve(request) => {
                let reply = serve(index, &mut fd, request);
                ctx.control.reply(i, reply);
                continue;
            }
            Next::Run => {}
        }
        if !entered {
            entered = true;
            log_first_entry(index);
        }
        let outcome = match fd.run() {
            Ok(exit) => {
                exits.fetch_add(1, Ordering::Relaxed);
                handle_exit(index, exit, &ctx)
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                fd.set_kvm_immediate_exit(0);
                None
            }
            Err(e) => Some(ExitReason::Error(format!(
                "vCPU {index}: KVM_RUN failed: {e}"
            ))),
        };
        let outcome = match outcome {
            Some(ExitReason::Error(msg)) if msg.is_empty() => {
                Some(describe_internal(index, &mut fd))
            }
            other => other,
        };
        if let Some(reason) = outcome {
            log::debug!("vCPU {index} stops the VM: {reason}");
            ctx.control.request_stop(reason);
            break;
        }
    }
    KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
    ctx.control.mark_exited(i);
}

/// Logs that vCPU `index` is about to enter the guest for the first time, with the
/// `CLOCK_MONOTONIC` time, so that tools can measure start and restore latency from the
/// outside (the log's own timestamps are wall-clock time).
fn log_first_entry(index: u8) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    log::info!(
        "vCPU {index}: first guest entry at CLOCK_MONOTONIC {}.{:09} s",
        ts.tv_sec,
        ts.tv_nsec
    );
}

/// Handles one exit; `Some` stops the VM. An empty `Error` message asks the caller to
/// describe a `KVM_EXIT_INTERNAL_ERROR` (which needs the fd again).
fn handle_exit(index: u8, exit: VcpuExit<'_>, ctx: &VcpuContext) -> Option<ExitReason> {
    match exit {
        VcpuExit::IoIn(port, data) => {
            if !ctx.pio.read(u64::from(port), data) {
                data.fill(0xff);
            }
            None
        }
        VcpuExit::IoOut(port, data) => {
            ctx.pio.write(u64::from(port), data);
            None
        }
        VcpuExit::MmioRead(addr, data) => {
            if !ctx.mmio.read(addr, data) {
                log::debug!("vCPU {index}: read of unclaimed MMIO address {addr:#x}");
                data.fill(0xff);
            }
            None
        }
        VcpuExit::MmioWrite(addr, data) => {
            if !ctx.mmio.write(addr, data) {
                log::debug!("vCPU {index}: write to unclaimed MMIO address {addr:#x}");
            }
            None
        }
        VcpuExit::Debug(arch) => {
            let cause = DebugCause::Trap {
                exception: arch.exception,
                pc: arch.pc,
                dr6: arch.dr6,
            };
            if !ctx.control.debug_stop(usize::from(index), cause) {
                log::debug!("vCPU {index}: debug exit with no debugger attached: {cause:?}");
            }
            None
        }
        VcpuExit::Hlt | VcpuExit::Intr | VcpuExit::IrqWindowOpen => None,
        VcpuExit::Shutdown => Some(ExitReason::TripleFault { vcpu: index }),
        VcpuExit::SystemEvent(kind, _) => Some(match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => ExitReason::GuestSystemEvent("power-off".into()),
            KVM_SYSTEM_EVENT_RESET => ExitReason::GuestSystemEvent("reset".into()),
            KVM_SYSTEM_EVENT_CRASH => ExitReason::Error(format!("vCPU {index}: the guest crashed")),
            other => ExitReason::GuestSystemEvent(format!("system event {other}")),
        }),
        VcpuExit::InternalError => Some(ExitReason::Error(String::new())),
        VcpuExit::FailEntry(reason, cpu) => Some(ExitReason::Error(format!(
            "vCPU {index}: KVM could not enter the guest (hardware entry failure reason \
             {reason:#x} on host CPU {cpu})"
        ))),
        other => Some(ExitReason::Error(format!(
            "vCPU {index}: unexpected KVM exit {other:?}"
        ))),
    }
}

/// Does `request` on the vCPU's own thread.
fn serve(index: u8, fd: &mut VcpuFd, request: VcpuRequest) -> VcpuReply {
    match request {
        VcpuRequest::SaveState { msr_indexes } => {
            complete_pending_exit(index, fd);
            VcpuReply::State(Box::new(VcpuState::save(fd, index, &msr_indexes)))
        }
        VcpuRequest::Debug(op) => VcpuReply::Debug(Box::new(crate::gdb::vcpu_ops::serve(fd, op))),
    }
}

/// Completes an exit whose port or MMIO access was already answered (its result sits in
/// `kvm_run` until the next `KVM_RUN`), without running the guest further: `KVM_RUN`
/// with `immediate_exit` set finishes the instruction and returns `EINTR`.
pub(crate) fn complete_pending_exit(index: u8, fd: &mut VcpuFd) {
    fd.set_kvm_immediate_exit(1);
    match fd.run() {
        Err(e) if e.errno() == libc::EINTR => {}
        Err(e) => log::debug!("vCPU {index}: completing the pending exit: {e}"),
        Ok(exit) => log::debug!("vCPU {index}: unexpected exit while completing: {exit:?}"),
    }
    fd.set_kvm_immediate_exit(0);
}

fn describe_internal(index: u8, fd: &mut VcpuFd) -> ExitReason {
    let err = InternalError::from_run(fd.get_kvm_run());
    let rip = fd.get_regs().map(|r| r.rip).unwrap_or(0);
    let cpl = fd.get_sregs().map(|s| s.cs.dpl).unwrap_or(0);
    ExitReason::Error(err.describe(index, rip, cpl))
}

/// The i8042 reset line: a guest reset request stops the VM before the requesting vCPU
/// enters the guest again.
pub struct ResetLine(pub Arc<VcpuControl>);

impl devices::interrupt::InterruptLine for ResetLine {
    fn trigger(&self) -> std::io::Result<()> {
        let index = VCPU_INDEX.with(Cell::get).unwrap_or(0);
        if !self.0.debug_stop(index, DebugCause::Reset) {
            self.0.request_stop(ExitReason::GuestReset);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
