//! The debugged VM as gdbstub sees it: one gdb thread per vCPU, registers and memory
//! through the paused vCPUs and the guest's page tables, breakpoints, watchpoints and
//! single-step through `KVM_SET_GUEST_DEBUG`, and the host's limits said out loud.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;

use gdbstub::common::{Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};

use super::arch::{GuestRegs, GuestX86_64};
use super::debugregs::{Access, DebugSlots, Slot};
use super::host_limits;
use super::regs::{self, VcpuRegs};
use super::vcpu_ops::{self, DebugOp, DebugReply};
use super::walk::{self, Paging};
use crate::controller::Vmm;
use crate::vstate::vcpu::{DebugCause, DebugStop};

/// DR6.BS: the stop is a single step.
const DR6_BS: u64 = 1 << 14;
/// The #BP vector (an `int3` trapped with `KVM_GUESTDBG_USE_SW_BP`).
const BP_VECTOR: u32 = 3;

/// How a software breakpoint (gdb's `break`) is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SwKind {
    /// An `int3` written over the instruction (this byte was there).
    Int3 { original: u8 },
    /// A debug register: on PVM hosts `int3` cannot trap to the VMM, but kernel-mode
    /// execute breakpoints can.
    Register(Slot),
    /// Kept but never hit: user-mode code on a PVM host.
    Inert,
}

/// The debugged VM.
pub struct DebugTarget {
    pub(super) vmm: Arc<Vmm>,
    pvm: bool,
    slots: DebugSlots,
    software: BTreeMap<u64, SwKind>,
    /// What gdb asked to watch, by (address, length), for the stop report.
    watch_kinds: BTreeMap<(u64, u64), WatchKind>,
    /// Addresses already warned about (a warning is given once per address).
    warned: BTreeSet<u64>,
    /// The vCPU to single-step at the next resume.
    step: Option<usize>,
    /// The vCPUs gdb resumes explicitly, and whether only they may run.
    resumed: Vec<usize>,
    locked: bool,
    /// Registers read during this stop, by vCPU.
    cache: HashMap<usize, VcpuRegs>,
    /// Console text for gdb, sent once the target runs.
    pub(super) notices: Vec<String>,
    /// A stop to report at once instead of running (a refused step, a held reset).
    pub(super) pending_stop: Option<MultiThreadStopReason<u64>>,
}

fn tid(vcpu: usize) -> Tid {
    NonZeroUsize::new(vcpu + 1).unwrap_or(NonZeroUsize::MIN)
}

fn vcpu_of(tid: Tid) -> usize {
    tid.get() - 1
}

impl DebugTarget {
    /// A target for `vmm`'s VM.
    pub fn new(vmm: Arc<Vmm>) -> Self {
        DebugTarget {
            vmm,
            pvm: crate::vstate::vm::host_is_pvm(),
            slots: DebugSlots::default(),
            software: BTreeMap::new(),
            watch_kinds: BTreeMap::new(),
            warned: BTreeSet::new(),
            step: None,
            resumed: Vec::new(),
            locked: false,
            cache: HashMap::new(),
            notices: Vec::new(),
            pending_stop: None,
        }
    }

    fn request(&self, vcpu: usize, op: DebugOp) -> Result<DebugReply, String> {
        vcpu_ops::request(&self.vmm.debug_vm()?.control, vcpu, op)
    }

    /// The registers of `vcpu` (read once per stop).
    pub(super) fn vcpu_regs(&mut self, vcpu: usize) -> Result<VcpuRegs, String> {
        if let Some(r) = self.cache.get(&vcpu) {
            return Ok(*r);
        }
        let r = vcpu_ops::read(&self.vmm.debug_vm()?.control, vcpu)?;
        self.cache.insert(vcpu, r);
        Ok(r)
    }

    /// Forgets what was read during the stop (the guest is about to run, or was replaced).
    pub(super) fn invalidate(&mut self) {
        self.cache.clear();
    }

    fn paging(&mut self, vcpu: usize) -> Result<Paging, String> {
        Ok(Paging::from_sregs(&self.vcpu_regs(vcpu)?.sregs))
    }

    /// Whether `addr` is in user-mode (CPL3) code, by vCPU 0's page tables.
    fn is_user_address(&mut self, addr: u64) -> bool {
        let Ok(paging) = self.paging(0) else {
            return false;
        };
        let Ok(vm) = self.vmm.debug_vm() else {
            return false;
        };
        walk::translate(&vm.memory, &paging, addr).is_ok_and(|t| t.user)
    }

    fn warn_once(&mut self, addr: u64, text: String) {
        if self.warned.insert(addr) {
            log::warn!("gdb: {text}");
            self.notices.push(format!("warning: {text}\n"));
        }
    }

    /// Sets every vCPU's debug registers and single-step flag.
    fn apply_guest_debug(&mut self) -> Result<(), String> {
        let vm = self.vmm.debug_vm()?;
        let int3 = self
            .software
            .values()
            .any(|k| matches!(k, SwKind::Int3 { .. }));
        for vcpu in 0..vm.vcpus {
            let debug = self.slots.guest_debug(self.step == Some(vcpu), int3);
            self.request(vcpu, DebugOp::SetGuestDebug(Box::new(debug)))?;
        }
        Ok(())
    }

    /// Clears every breakpoint and debug setting (gdb detaches or vanished).
    pub(super) fn clear_all(&mut self) {
        let int3s: Vec<(u64, u8)> = self
            .software
            .iter()
            .filter_map(|(&a, k)| match k {
                SwKind::Int3 { original } => Some((a, *original)),
                _ => None,
            })
            .collect();
        for (addr, original) in int3s {
            if let Err(e) = self.write_virt(0, addr, &[original]) {
                log::warn!("gdb: cannot restore the byte under the breakpoint at {addr:#x}: {e}");
            }
        }
        self.software.clear();
        self.slots = DebugSlots::default();
        self.watch_kinds.clear();
        self.step = None;
        self.locked = false;
        if let Ok(vm) = self.vmm.debug_vm() {
            vm.control.freeze_others(None);
        }
        if let Err(e) = self.apply_guest_debug() {
            log::debug!("gdb: clearing the debug registers: {e}");
        }
    }

    fn read_virt(&mut self, vcpu: usize, addr: u64, data: &mut [u8]) -> Result<usize, String> {
        let paging = self.paging(vcpu)?;
        let vm = self.vmm.debug_vm()?;
        walk::read_virt(&vm.memory, &paging, addr, data).map_err(|e| e.to_string())?;
        Ok(data.len())
    }

    fn write_virt(&mut self, vcpu: usize, addr: u64, data: &[u8]) -> Result<(), String> {
        let paging = self.paging(vcpu)?;
        let vm = self.vmm.debug_vm()?;
        walk::write_virt(&vm.memory, &paging, addr, data).map_err(|e| e.to_string())
    }

    /// What gdb is told about a stop.
    pub(super) fn stop_reason(&mut self, stop: DebugStop) -> MultiThreadStopReason<u64> {
        let t = tid(stop.vcpu);
        match stop.cause {
            DebugCause::Reset => {
                self.notices.push(host_limits::HELD_RESET.to_string());
                MultiThreadStopReason::SignalWithThread {
                    tid: t,
                    signal: Signal::SIGABRT,
                }
            }
            DebugCause::Trap {
                exception,
                pc: _,
                dr6,
            } => {
                if exception == BP_VECTOR {
                    return MultiThreadStopReason::SwBreak(t);
                }
                if let Some((_, slot)) = self.slots.hit(dr6) {
                    return match slot.access {
                        Access::Execute
                            if self.software.get(&slot.addr) == Some(&SwKind::Register(slot)) =>
                        {
                            MultiThreadStopReason::SwBreak(t)
                        }
                        Access::Execute => MultiThreadStopReason::HwBreak(t),
                        Access::Write | Access::ReadWrite => MultiThreadStopReason::Watch {
                            tid: t,
                            kind: self
                                .watch_kinds
                                .get(&(slot.addr, slot.len))
                                .copied()
                                .unwrap_or(WatchKind::Write),
                            addr: slot.addr,
                        },
                    };
                }
                if dr6 & DR6_BS != 0 || self.step == Some(stop.vcpu) {
                    return MultiThreadStopReason::DoneStep;
                }
                MultiThreadStopReason::SignalWithThread {
                    tid: t,
                    signal: Signal::SIGTRAP,
                }
            }
        }
    }

    /// Refuses a single step this host cannot do, with gdb told why; the vCPU stays put.
    fn refuse_step(&mut self, vcpu: usize) -> Result<bool, String> {
        if !self.pvm {
            return Ok(false);
        }
        let r = self.vcpu_regs(vcpu)?;
        let rip = r.regs.rip;
        let why = if r.sregs.cs.dpl == 3 {
            Some(host_limits::step_in_user_mode(vcpu, rip))
        } else {
            let mut code = [0u8; 3];
            let n = self.read_virt(vcpu, rip, &mut code).unwrap_or(0);
            host_limits::returns_to_user_mode(&code[..n])
                .then(|| host_limits::step_into_user_mode(vcpu, rip))
        };
        match why {
            Some(text) => {
                log::warn!("gdb: {}", text.trim_end());
                self.notices.push(text);
                // Not a step: gdb's `step`/`next` would retry one forever. An interrupt
                // ends the stepping command with the vCPU where it was.
                self.pending_stop = Some(MultiThreadStopReason::SignalWithThread {
                    tid: tid(vcpu),
                    signal: Signal::SIGINT,
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn add_slot(&mut self, slot: Slot) -> bool {
        match self.slots.add(slot) {
            Ok(_) => true,
            Err(e) => {
                log::warn!("gdb: {e}");
                false
            }
        }
    }
}

impl Target for DebugTarget {
    type Arch = GuestX86_64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    // The guest's memory is read through the VMM: gdb must not plant int3s itself.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl MultiThreadBase for DebugTarget {
    fn read_registers(&mut self, out: &mut GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let vcpu = vcpu_of(tid);
        let r = self.vcpu_regs(vcpu).map_err(|e| {
            log::warn!("gdb: reading the registers of vCPU {vcpu}: {e}");
            TargetError::NonFatal
        })?;
        *out = regs::to_gdb(&r);
        Ok(())
    }

    fn write_registers(&mut self, new: &GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let vcpu = vcpu_of(tid);
        let mut r = self.vcpu_regs(vcpu).map_err(|e| {
            log::warn!("gdb: reading the registers of vCPU {vcpu}: {e}");
            TargetError::NonFatal
        })?;
        regs::apply_gdb(new, &mut r);
        match self.request(vcpu, DebugOp::Write(Box::new(r))) {
            Ok(_) => {
                self.cache.insert(vcpu, r);
                Ok(())
            }
            Err(e) => {
                log::warn!("gdb: writing the registers of vCPU {vcpu}: {e}");
                self.cache.remove(&vcpu);
                Err(TargetError::NonFatal)
            }
        }
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        self.read_virt(vcpu_of(tid), start, data).map_err(|e| {
            log::info!("gdb: memory read at {start:#x}: {e}");
            TargetError::Errno(14)
        })
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        self.write_virt(vcpu_of(tid), start, data).map_err(|e| {
            log::info!("gdb: memory write at {start:#x}: {e}");
            TargetError::Errno(14)
        })
    }

    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        let vcpus = self.vmm.debug_vm().map(|vm| vm.vcpus).unwrap_or(1);
        for vcpu in 0..vcpus.max(1) {
            active(tid(vcpu));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for DebugTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let vm = self.vmm.debug_vm()?;
        if vm.control.reset_held() {
            self.notices.push(host_limits::HELD_RESET.to_string());
            self.pending_stop = Some(MultiThreadStopReason::SignalWithThread {
                tid: tid(0),
                signal: Signal::SIGABRT,
            });
            return Ok(());
        }
        if let Some(vcpu) = self.step {
            if self.refuse_step(vcpu)? {
                return Ok(());
            }
        }
        if self.pvm {
            let inert: Vec<u64> = self
                .software
                .iter()
                .filter(|(_, k)| **k == SwKind::Inert)
                .map(|(a, _)| *a)
                .collect();
            for addr in inert {
                self.warn_once(addr, host_limits::user_breakpoint(addr));
            }
            let user_slots: Vec<Slot> = self
                .slots
                .iter()
                .map(|(_, s)| s)
                .filter(|s| s.access == Access::Execute)
                .collect();
            for slot in user_slots {
                if self.is_user_address(slot.addr) {
                    self.warn_once(slot.addr, host_limits::user_breakpoint(slot.addr));
                }
            }
        }
        self.apply_guest_debug()?;
        vm.control
            .freeze_others(self.locked.then_some(self.resumed.as_slice()));
        self.invalidate();
        if let Err(e) = self.vmm.debug_continue() {
            // The stop is reported from the VM's state (stopped, or still paused).
            log::info!("gdb: continue: {e}");
            self.notices.push(format!("cannot continue: {e}\n"));
        }
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        self.resumed.clear();
        self.locked = false;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.resumed.push(vcpu_of(tid));
        if let Some(s) = signal {
            log::debug!("gdb: signal {s} not delivered to the guest (a VM has no signals)");
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for DebugTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for DebugTarget {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.step = Some(vcpu_of(tid));
        self.resumed.push(vcpu_of(tid));
        Ok(())
    }
}

impl Breakpoints for DebugTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

fn execute_slot(addr: u64) -> Slot {
    Slot {
        addr,
        access: Access::Execute,
        len: 1,
    }
}

impl SwBreakpoint for DebugTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.software.contains_key(&addr) {
            return Ok(true);
        }
        let kind = if self.pvm {
            if self.is_user_address(addr) {
                SwKind::Inert
            } else {
                // int3 in kernel mode fails emulation on PVM: use a debug register.
                let slot = execute_slot(addr);
                if !self.add_slot(slot) {
                    return Ok(false);
                }
                SwKind::Register(slot)
            }
        } else {
            let mut original = [0u8];
            if self.read_virt(0, addr, &mut original).ok() != Some(1) {
                return Ok(false);
            }
            if self.write_virt(0, addr, &[0xcc]).is_err() {
                return Ok(false);
            }
            SwKind::Int3 {
                original: original[0],
            }
        };
        self.software.insert(addr, kind);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        match self.software.remove(&addr) {
            Some(SwKind::Int3 { original }) => Ok(self.write_virt(0, addr, &[original]).is_ok()),
            Some(SwKind::Register(slot)) => Ok(self.slots.remove(&slot)),
            Some(SwKind::Inert) => Ok(true),
            None => Ok(false),
        }
    }
}

impl HwBreakpoint for DebugTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_slot(execute_slot(addr)))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.slots.remove(&execute_slot(addr)))
    }
}

fn watch_slot(addr: u64, len: u64, kind: WatchKind) -> Slot {
    Slot {
        addr,
        len,
        access: match kind {
            WatchKind::Write => Access::Write,
            // x86 has no read-only watch: reads and writes both trigger.
            WatchKind::Read | WatchKind::ReadWrite => Access::ReadWrite,
        },
    }
}

impl HwWatchpoint for DebugTarget {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if !self.add_slot(watch_slot(addr, len, kind)) {
            return Ok(false);
        }
        self.watch_kinds.insert((addr, len), kind);
        if self.pvm {
            self.warn_once(addr, host_limits::user_watchpoint(addr));
        }
        Ok(true)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        self.watch_kinds.remove(&(addr, len));
        Ok(self.slots.remove(&watch_slot(addr, len, kind)))
    }
}

impl MonitorCmd for DebugTarget {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let text = String::from_utf8_lossy(cmd).into_owned();
        let reply = super::monitor::run(self, &text);
        gdbstub::outputln!(out, "{}", reply.trim_end());
        Ok(())
    }
}
