//! vCPU threads: `KVM_RUN`, exit handling, and the kick that makes a thread look at its
//! [`VcpuControl`] (in `vcpu_control.rs`).
//!
//! Every vCPU runs `KVM_RUN` on its own thread. A shared [`VcpuControl`] holds the state the
//! VMM wants (running, paused, stopped); to make a vCPU notice a change, the VMM sends its
//! thread a real-time signal whose handler sets `immediate_exit` in the thread's `kvm_run`,
//! so `KVM_RUN` returns (or does not start) and the thread re-reads the wanted state.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;

use devices::bus::Bus;
use kvm_bindings::{
    kvm_run, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use super::exit_report::{ExitReason, InternalError};
use super::vcpu_control::Next;
pub use super::vcpu_control::{
    DebugCause, DebugStop, VcpuControl, VcpuReply, VcpuRequest, VcpuRunState, Wanted,
};
use super::vcpu_state::VcpuState;

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
