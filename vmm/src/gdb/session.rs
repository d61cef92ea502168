//! One debugger's session: the gdbstub state machine fed a byte at a time, the VM polled
//! for stops while the guest runs, and the VM left running when the debugger goes.

use std::sync::Arc;
use std::time::Duration;

use gdbstub::common::Signal;
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};

use super::conn::GdbConn;
use super::target::DebugTarget;
use crate::api::VmmControl;
use crate::controller::{DebugRunState, Vmm};

/// How often the VM is looked at while the guest runs.
const POLL: Duration = Duration::from_millis(5);
/// gdb's packets are small; `monitor` output and `g` replies fit easily.
const PACKET_BUFFER: usize = 16 * 1024;

/// Serves one debugger until it detaches, kills, vanishes or breaks the protocol. The
/// VM is stopped while gdb is attached and stopped, and runs on afterwards (unless killed).
pub fn run(vmm: Arc<Vmm>, conn: GdbConn, peer: &str) {
    log::info!("gdb: debugger attached from {peer}");
    vmm.set_debugger_attached(true);
    if let Err(e) = vmm.debug_halt() {
        log::info!("gdb: the VM was not stopped on attach: {e}");
    }
    let mut target = DebugTarget::new(vmm.clone());
    let end = serve(&mut target, conn);
    target.clear_all();
    vmm.set_debugger_attached(false);
    match end {
        Ok(DisconnectReason::Kill) => {
            log::info!("gdb: the debugger killed the VM");
            if let Err(e) = vmm.stop() {
                log::info!("gdb: kill: {}", e.message);
            }
        }
        Ok(reason) => {
            log::info!("gdb: debugger detached ({reason:?}); the VM runs on");
            resume_after(&vmm);
        }
        Err(e) => {
            log::warn!("gdb: session with {peer} ended: {e}; the VM runs on");
            resume_after(&vmm);
        }
    }
}

fn resume_after(vmm: &Vmm) {
    if let DebugRunState::Paused = vmm.debug_run_state() {
        if let Err(e) = vmm.debug_continue() {
            log::info!("gdb: resuming after the session: {e}");
        }
    }
}

fn flush(gdb: &mut GdbStubStateMachine<'_, DebugTarget, GdbConn>) -> std::io::Result<()> {
    match gdb {
        GdbStubStateMachine::Idle(g) => g.borrow_conn().flush(),
        GdbStubStateMachine::Running(g) => g.borrow_conn().flush(),
        GdbStubStateMachine::CtrlCInterrupt(g) => g.borrow_conn().flush(),
        GdbStubStateMachine::Disconnected(g) => g.borrow_conn().flush(),
    }
}

fn serve(target: &mut DebugTarget, conn: GdbConn) -> Result<DisconnectReason, String> {
    let mut buffer = vec![0u8; PACKET_BUFFER];
    let stub = GdbStub::builder(conn)
        .with_packet_buffer(&mut buffer)
        .build()
        .map_err(|e| e.to_string())?;
    let mut gdb = stub.run_state_machine(target).map_err(|e| e.to_string())?;
    loop {
        gdb = match gdb {
            GdbStubStateMachine::Idle(mut g) => {
                let conn = g.borrow_conn();
                conn.set_timeout(None).map_err(|e| e.to_string())?;
                match conn.read_byte().map_err(|e| e.to_string())? {
                    Some(byte) => g.incoming_data(target, byte).map_err(|e| e.to_string())?,
                    None => g.into(),
                }
            }
            GdbStubStateMachine::Running(mut g) => {
                for text in std::mem::take(&mut target.notices) {
                    g.borrow_conn().console(&text).map_err(|e| e.to_string())?;
                }
                if let Some(stop) = target.pending_stop.take() {
                    g.report_stop(target, stop).map_err(|e| e.to_string())?
                } else {
                    let conn = g.borrow_conn();
                    conn.set_timeout(Some(POLL)).map_err(|e| e.to_string())?;
                    match conn.read_byte().map_err(|e| e.to_string())? {
                        Some(byte) => g.incoming_data(target, byte).map_err(|e| e.to_string())?,
                        None => match poll_stop(target) {
                            Some(stop) => {
                                for text in std::mem::take(&mut target.notices) {
                                    g.borrow_conn().console(&text).map_err(|e| e.to_string())?;
                                }
                                g.report_stop(target, stop).map_err(|e| e.to_string())?
                            }
                            None => g.into(),
                        },
                    }
                }
            }
            GdbStubStateMachine::CtrlCInterrupt(g) => {
                if let Err(e) = target.vmm.debug_halt() {
                    log::info!("gdb: interrupt: {e}");
                }
                target.invalidate();
                let stop = MultiThreadStopReason::SignalWithThread {
                    tid: std::num::NonZeroUsize::MIN,
                    signal: Signal::SIGINT,
                };
                g.interrupt_handled(target, Some(stop))
                    .map_err(|e| e.to_string())?
            }
            GdbStubStateMachine::Disconnected(g) => return Ok(g.get_reason()),
        };
        flush(&mut gdb).map_err(|e| e.to_string())?;
    }
}

/// A stop to report, if the guest stopped while gdb let it run: a debug exit, the VM
/// paused by someone else (the replay reaching its target, the API), or the VM gone.
fn poll_stop(target: &mut DebugTarget) -> Option<MultiThreadStopReason<u64>> {
    let vmm = target.vmm.clone();
    if let Ok(vm) = vmm.debug_vm() {
        if let Some(first) = vm.control.take_debug_stops().first() {
            if let Err(e) = vmm.debug_halt() {
                log::info!("gdb: stopping the VM: {e}");
            }
            target.invalidate();
            return Some(target.stop_reason(*first));
        }
    }
    match vmm.debug_run_state() {
        DebugRunState::Running | DebugRunState::NoVm => None,
        DebugRunState::Paused => {
            let why = vmm
                .debug_replayer()
                .ok()
                .and_then(|r| r.status().paused_by)
                .map(|p| format!("the replay held ({p})"))
                .unwrap_or_else(|| "paused through the API".into());
            target.notices.push(format!("the VM stopped: {why}\n"));
            if let Err(e) = vmm.debug_halt() {
                log::info!("gdb: stopping the VM: {e}");
            }
            target.invalidate();
            Some(MultiThreadStopReason::SignalWithThread {
                tid: std::num::NonZeroUsize::MIN,
                signal: Signal::SIGTRAP,
            })
        }
        DebugRunState::Stopped(reason) => {
            target.notices.push(format!("the VM stopped: {reason}\n"));
            Some(MultiThreadStopReason::Terminated(Signal::SIGKILL))
        }
    }
}
