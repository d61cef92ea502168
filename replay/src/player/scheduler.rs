//! The replay scheduler: a thread that delivers a [`Plan`]'s inputs into a clone through
//! a [`Target`], paced by speed, by the clone's own outputs and by its idleness, and the
//! control (pause, step, run until, speed) the API drives it with.
//!
//! Pacing: input *i* is delivered once (a) at a factor speed, the clone's VM time since
//! the replay began has reached the input's recorded offset divided by the factor; (b) the
//! clone has produced as many outputs (frames, block writes, console bytes) as the
//! recording had before input *i* — so an input never lands while the guest is still
//! answering the previous one when the recording shows it had finished — or the guest has
//! gone idle without them; (c) the previous frame was taken by the device.
//!
//! Lock order: the scheduler never calls the target while holding its own state, because
//! the target's devices call [`Replayer::observe`] with their locks held.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::event::{EventKind, SourceId};
use crate::frame::FrameInfo;
use crate::player::blocks::{BlockReplay, Completion, Fault};
use crate::player::checker::{describe, Checker, Divergence};
use crate::player::entropy::{EntropyPlan, NetAction};
use crate::player::plan::Plan;
use crate::player::speed::Speed;
use crate::player::status::{
    Delivered, Drift, GuestStop, InjectedEvent, ReplayState, ReplayStatus,
};

/// How long the guest must show no progress and no output before it counts as idle.
const IDLE: Duration = Duration::from_millis(3);
/// How long a finished replay waits for outputs still due before checking what is missing.
const SETTLE: Duration = Duration::from_millis(300);
/// How long a replay whose outputs all arrived waits before calling itself finished.
const GRACE: Duration = Duration::from_millis(100);
/// Delivered inputs kept for status.
const KEEP_DELIVERED: usize = 64;
/// Block mismatches kept for status.
const KEEP_BLOCK_MISMATCHES: usize = 16;
/// Longest sleep between checks of the gates.
const POLL: Duration = Duration::from_micros(200);

/// What the scheduler drives: the clone's devices and vCPUs.
pub trait Target: Send + Sync {
    /// The clone's VM time (ns; stops while paused).
    fn vm_time_ns(&self) -> u64;
    /// The clone's guest progress (vCPU exits).
    fn progress(&self) -> u64;
    /// Queues a frame for NIC `source`.
    fn push_frame(&self, source: SourceId, frame: Vec<u8>);
    /// Frames queued that the devices have not taken yet.
    fn queued_frames(&self) -> usize;
    /// Types bytes on the console.
    fn push_serial(&self, bytes: &[u8]);
    /// Why the guest stopped, once it has.
    fn stopped(&self) -> Option<String>;
    /// Pauses the vCPUs.
    fn pause_vm(&self);
    /// Resumes the vCPUs.
    fn resume_vm(&self);
    /// Logs an injected event in the clone's own capture (if it records).
    fn log_injection(&self, what: &str);
}

/// Where a run stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Until {
    /// Before delivering input K (so K inputs are behind).
    Event(u64),
    /// Before the first input recorded at or after this VM time, relative to the snapshot.
    Time(u64),
    /// At the next divergence.
    Divergence,
}

/// Replay options besides the plan.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Pacing.
    pub speed: Speed,
    /// Seeded fault injection.
    pub entropy: EntropyPlan,
    /// Check block reads against the recording.
    pub strict: bool,
    /// Pause the clone at the first divergence.
    pub until_divergence: bool,
    /// Start paused (e.g. for a debugger).
    pub start_paused: bool,
    /// The selection's text, for status.
    pub selection: String,
}

struct State {
    state: ReplayState,
    paused_by: Option<String>,
    /// The VM should be paused (set where the target cannot be called).
    pause_vm_due: bool,
    speed: Speed,
    steps_left: Option<u64>,
    until: Vec<Until>,
    position: usize,
    delivered: u64,
    injected: Vec<InjectedEvent>,
    checker: Checker,
    blocks: BlockReplay,
    block_mismatches: Vec<String>,
    drift: Drift,
    last_delivered: VecDeque<Delivered>,
    guest_stopped: Option<GuestStop>,
    /// Pacing origin: clone VM time and recorded VM time that correspond.
    base: Option<(u64, u64)>,
    /// Last seen progress and output units, and the clone's VM time when they last
    /// changed (VM time stops while the clone is paused, so a pause is not idleness).
    activity: (u64, u64, u64),
    /// The clone's VM time when every input was delivered and every output due was seen.
    all_out_at: Option<u64>,
    shutdown: bool,
}

/// A replay into one clone.
pub struct Replayer {
    plan: Plan,
    options: ReplayOptions,
    state: Mutex<State>,
    wake: Condvar,
}

impl Replayer {
    /// A replay of `plan`; [`Replayer::start`] runs it.
    pub fn new(
        plan: Plan,
        options: ReplayOptions,
        checked: std::collections::BTreeSet<crate::KindClass>,
    ) -> Arc<Self> {
        let checker = Checker::new(plan.outputs.clone(), checked, plan.sources.clone());
        let blocks = BlockReplay::new(&plan.completions, options.strict);
        let paused = options.start_paused || options.speed == Speed::Step;
        let mut until = Vec::new();
        if options.until_divergence {
            until.push(Until::Divergence);
        }
        Arc::new(Replayer {
            state: Mutex::new(State {
                state: if paused {
                    ReplayState::Paused
                } else {
                    ReplayState::Running
                },
                paused_by: paused.then(|| "start".to_string()),
                pause_vm_due: false,
                speed: options.speed,
                steps_left: None,
                until,
                position: 0,
                delivered: 0,
                injected: Vec::new(),
                checker,
                blocks,
                block_mismatches: Vec::new(),
                drift: Drift::default(),
                last_delivered: VecDeque::new(),
                guest_stopped: None,
                base: None,
                activity: (0, 0, 0),
                all_out_at: None,
                shutdown: false,
            }),
            plan,
            options,
            wake: Condvar::new(),
        })
    }

    /// The plan played.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the scheduler thread.
    pub fn start(self: &Arc<Self>, target: Arc<dyn Target>) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || me.schedule(target.as_ref()))?;
        Ok(())
    }

    /// Stops the scheduler thread.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    /// Whether the replay is held (the VM should stay paused).
    pub fn is_paused(&self) -> bool {
        self.lock().state == ReplayState::Paused
    }

    /// Holds the replay (the caller pauses the VM).
    pub fn pause(&self, why: &str) {
        let mut s = self.lock();
        if s.state == ReplayState::Running {
            s.state = ReplayState::Paused;
            s.paused_by = Some(why.to_string());
        }
        drop(s);
        self.wake.notify_all();
    }

    /// Runs on (the caller resumes the VM), clearing step budgets; `until` adds a stop.
    pub fn run(&self, until: Option<Until>) -> Result<(), String> {
        let mut s = self.lock();
        self.check_target(&s, until)?;
        s.until
            .retain(|u| *u == Until::Divergence && self.options.until_divergence);
        s.until.extend(until);
        s.steps_left = None;
        if s.state == ReplayState::Paused {
            s.state = ReplayState::Running;
            s.paused_by = None;
        }
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    /// Delivers `n` more inputs, then holds (the caller resumes the VM).
    pub fn step(&self, n: u64) -> Result<(), String> {
        if n == 0 {
            return Err("step: events must be at least 1".into());
        }
        let mut s = self.lock();
        match s.state {
            ReplayState::Finished => return Err("the replay has finished: nothing to step".into()),
            ReplayState::GuestStopped => {
                return Err("the guest has stopped: nothing to step".into())
            }
            _ => {}
        }
        s.steps_left = Some(n);
        s.state = ReplayState::Running;
        s.paused_by = None;
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    /// Changes the speed (`step` holds the replay).
    pub fn set_speed(&self, speed: Speed) {
        let mut s = self.lock();
        s.speed = speed;
        s.base = None;
        if speed == Speed::Step && s.state == ReplayState::Running {
            s.state = ReplayState::Paused;
            s.paused_by = Some("step".into());
        }
        drop(s);
        self.wake.notify_all();
    }

    fn check_target(&self, s: &State, until: Option<Until>) -> Result<(), String> {
        match s.state {
            ReplayState::Finished => return Err("the replay has finished".into()),
            ReplayState::GuestStopped => return Err("the guest has stopped".into()),
            _ => {}
        }
        match until {
            Some(Until::Event(k)) if k as usize > self.plan.inputs.len() => Err(format!(
                "event {k} is beyond the replay's {} inputs",
                self.plan.inputs.len()
            )),
            Some(Until::Event(k)) if (k as usize) < s.position => Err(format!(
                "event {k} was already delivered (the replay is at {}); restart from a \
                 snapshot to go back",
                s.position
            )),
            Some(Until::Time(t)) if self.plan.snapshot_ns + t > self.plan.span.end_ns + 1 => {
                Err(format!(
                    "time {} is after the capture's end ({} after the snapshot)",
                    crate::player::selection::format_ns(t),
                    crate::player::selection::format_ns(
                        self.plan.span.end_ns - self.plan.snapshot_ns
                    )
                ))
            }
            _ => Ok(()),
        }
    }

    /// Notes an event that crossed the clone's boundary: outputs are checked; a
    /// divergence holds the replay when asked to.
    pub fn observe(&self, source: SourceId, kind: &EventKind, now_ns: u64) {
        if !matches!(
            kind,
            EventKind::NetTx { .. } | EventKind::BlkWrite { .. } | EventKind::SerialOut { .. }
        ) {
            return;
        }
        let mut s = self.lock();
        if let Some(d) = s.checker.observe(source, kind, now_ns) {
            self.on_divergence(&mut s, &d);
        }
    }

    fn on_divergence(&self, s: &mut State, d: &Divergence) {
        log::info!(
            "replay: divergence ({}) on {} at output {:?}: expected {:?}, got {:?}",
            d.kind,
            d.source,
            d.output_index,
            d.expected,
            d.actual
        );
        if s.until.contains(&Until::Divergence) && s.state == ReplayState::Running {
            s.state = ReplayState::Paused;
            s.paused_by = Some("divergence".into());
            s.pause_vm_due = true;
            self.wake.notify_all();
        }
    }

    /// The fault for the next block request of `source` (entropy, recorded failures).
    pub fn block_fault(&self, source: SourceId, sector: u64, sectors: u64) -> Fault {
        let mut s = self.lock();
        let fault = s
            .blocks
            .before_request(source, sector, sectors, &self.options.entropy);
        if let Some(what) = &fault.what {
            let position = what
                .split_once(' ')
                .and_then(|(p, _)| p.trim_start_matches("blk#").parse().ok())
                .unwrap_or(0);
            s.injected.push(InjectedEvent {
                stream: format!("blk:{}", self.plan.sources.name_of(source)),
                position,
                what: what.clone(),
            });
        }
        fault
    }

    /// Checks a completed block request (strict mode).
    pub fn block_completed(&self, source: SourceId, done: &Completion) {
        let mut s = self.lock();
        if let Some(m) = s.blocks.completed(source, done) {
            log::info!("replay: block read mismatch: {m}");
            if s.block_mismatches.len() < KEEP_BLOCK_MISMATCHES {
                s.block_mismatches.push(m);
            }
        }
    }

    /// The replay's status.
    pub fn status(&self) -> ReplayStatus {
        let s = self.lock();
        ReplayStatus {
            state: s.state,
            paused_by: s.paused_by.clone(),
            snapshot: self.plan.snapshot.clone(),
            buffer: self.plan.buffer.clone(),
            selection: self.options.selection.clone(),
            speed: s.speed.to_string(),
            position: s.position as u64,
            total: self.plan.inputs.len() as u64,
            next: self
                .plan
                .inputs
                .get(s.position)
                .map(|i| self.describe_input(s.position, &i.event, 0)),
            delivered: s.delivered,
            filtered: self.plan.filtered,
            injected: s.injected.len() as u64,
            check: s.checker.summary(),
            first_divergence: s.checker.divergences().first().cloned(),
            block_mismatches: s.block_mismatches.clone(),
            drift: s.drift.clone(),
            guest_stopped: s.guest_stopped.clone(),
            last_delivered: s.last_delivered.iter().cloned().collect(),
        }
    }

    /// Every divergence kept (the first 16).
    pub fn divergences(&self) -> Vec<Divergence> {
        self.lock().checker.divergences().to_vec()
    }

    /// Every injected event, in the order injected.
    pub fn injections(&self) -> Vec<InjectedEvent> {
        self.lock().injected.clone()
    }

    fn describe_input(&self, index: usize, e: &crate::Event, clone_ns: u64) -> Delivered {
        Delivered {
            index: index as u64,
            seq: e.seq,
            recorded_vm_time_ns: e.vm_time_ns,
            clone_vm_time_ns: clone_ns,
            source: self.plan.sources.name_of(e.source),
            what: match &e.kind {
                EventKind::NetRx { frame } => {
                    let info = FrameInfo::parse(frame);
                    let payload = udp_payload(frame);
                    match payload {
                        Some(p) if !p.is_empty() => format!(
                            "{} \"{}\"",
                            info.summary(),
                            String::from_utf8_lossy(&p[..p.len().min(64)]).escape_debug()
                        ),
                        _ => info.summary(),
                    }
                }
                other => describe(other),
            },
        }
    }

    /// The scheduler thread.
    fn schedule(&self, target: &dyn Target) {
        loop {
            let mut s = self.lock();
            if s.shutdown {
                return;
            }
            if s.pause_vm_due {
                s.pause_vm_due = false;
                drop(s);
                target.pause_vm();
                continue;
            }
            if s.guest_stopped.is_none() {
                drop(s);
                let stopped = target.stopped();
                s = self.lock();
                if let Some(reason) = stopped {
                    let now = target_time(target);
                    let after = s.last_delivered.back().cloned();
                    log::info!(
                        "replay: the guest stopped ({reason}) after input {:?}",
                        after.as_ref().map(|d| d.index)
                    );
                    s.guest_stopped = Some(GuestStop { reason, after });
                    s.state = ReplayState::GuestStopped;
                    s.paused_by = None;
                    let missing = s.checker.finish(now);
                    if let Some(d) = missing.first() {
                        self.on_divergence(&mut s, d);
                    }
                    self.wake.notify_all();
                }
            }
            match s.state {
                ReplayState::Paused | ReplayState::Finished | ReplayState::GuestStopped => {
                    let _ = self.wake.wait_timeout(s, Duration::from_millis(20));
                    continue;
                }
                ReplayState::Running => {}
            }
            drop(s);
            let (vm_now, progress) = (target.vm_time_ns(), target.progress());
            let queued = target.queued_frames();
            let mut s = self.lock();
            let units = s.checker.produced_units();
            if (progress, units) != (s.activity.0, s.activity.1) || s.activity.2 == 0 {
                s.activity = (progress, units, vm_now);
            }
            let quiet = Duration::from_nanos(vm_now.saturating_sub(s.activity.2));
            let idle = quiet >= IDLE;
            if s.base.is_none() {
                let recorded = match s.position.checked_sub(1) {
                    Some(p) => self.plan.inputs[p].event.vm_time_ns,
                    None => self.plan.window.from_ns,
                };
                s.base = Some((vm_now, recorded));
            }
            let Some(input) = self.plan.inputs.get(s.position) else {
                // Everything delivered: let the outputs due arrive, then report what is
                // missing.
                let due = self.plan.total_output_units();
                let all_out = *s.all_out_at.get_or_insert(vm_now);
                let settled = if units >= due {
                    // A guest that stops (e.g. crashes) right after its last output is
                    // given a moment to do so.
                    Duration::from_nanos(vm_now.saturating_sub(all_out)) >= GRACE
                } else {
                    quiet >= SETTLE
                };
                if units < due {
                    s.all_out_at = None;
                }
                if settled {
                    let missing = s.checker.finish(vm_now);
                    if let Some(d) = missing.first() {
                        self.on_divergence(&mut s, d);
                    }
                    if s.state == ReplayState::Running {
                        s.state = ReplayState::Finished;
                    }
                    log::info!("replay: finished: {:?}", s.checker.summary());
                    self.wake.notify_all();
                } else {
                    let _ = self.wake.wait_timeout(s, POLL * 5);
                }
                continue;
            };
            // Gates.
            let (base_clone, base_recorded) = s.base.unwrap_or((vm_now, input.event.vm_time_ns));
            let recorded_offset = input.event.vm_time_ns.saturating_sub(base_recorded);
            let scheduled = match s.speed {
                Speed::Factor(k) => (recorded_offset as f64 / k) as u64,
                Speed::Max | Speed::Step => 0,
            };
            let elapsed = vm_now.saturating_sub(base_clone);
            let due = elapsed >= scheduled;
            let answered = units >= input.outputs_before;
            let taken = queued == 0;
            if !(due && (answered || idle) && (taken || idle)) {
                let wait = if due {
                    POLL
                } else {
                    Duration::from_nanos(scheduled - elapsed).min(POLL * 5)
                };
                let _ = self.wake.wait_timeout(s, wait);
                continue;
            }
            // Held here: a finished step, or a run-until target (the guest has settled).
            let held = if s.steps_left == Some(0) {
                s.steps_left = None;
                Some("step".to_string())
            } else {
                s.until.iter().find_map(|u| match *u {
                    Until::Event(k) if s.position as u64 >= k => Some(format!("event {k}")),
                    Until::Time(t) if input.event.vm_time_ns >= self.plan.snapshot_ns + t => {
                        Some(format!("time {}", crate::player::selection::format_ns(t)))
                    }
                    _ => None,
                })
            };
            if let Some(why) = held {
                s.until.retain(|u| *u == Until::Divergence);
                s.state = ReplayState::Paused;
                s.paused_by = Some(why);
                s.pause_vm_due = true;
                continue;
            }
            if !answered {
                s.drift.forced += 1;
                log::debug!(
                    "replay: input {} delivered with the guest idle before its outputs ({} of {} \
                     output units)",
                    s.position,
                    units,
                    input.outputs_before
                );
            }
            let drift = elapsed as i64 - recorded_offset as i64;
            let drift = match s.speed {
                Speed::Factor(k) => elapsed as i64 - (recorded_offset as f64 / k) as i64,
                _ => drift,
            };
            s.drift.last_ns = drift;
            s.drift.max_late_ns = s.drift.max_late_ns.max(drift);
            s.drift.max_early_ns = s.drift.max_early_ns.min(drift);
            let position = s.position;
            let next = self.plan.inputs.get(position + 1).map(|i| i.event.clone());
            let actions = self.actions(position, &input.event, next.as_ref());
            s.position += actions.consumed;
            for (index, e) in [(position, &input.event)].into_iter().chain(
                next.as_ref()
                    .filter(|_| actions.consumed == 2)
                    .map(|e| (position + 1, e)),
            ) {
                let d = self.describe_input(index, e, vm_now);
                if s.last_delivered.len() == KEEP_DELIVERED {
                    s.last_delivered.pop_front();
                }
                s.last_delivered.push_back(d);
                s.delivered += 1;
            }
            for (p, what) in &actions.injected {
                s.injected.push(InjectedEvent {
                    stream: "net".into(),
                    position: *p as u64,
                    what: what.clone(),
                });
            }
            if let Some(left) = s.steps_left.as_mut() {
                *left = left.saturating_sub(actions.consumed as u64);
            }
            drop(s);
            for (p, what) in &actions.injected {
                target.log_injection(&format!("net#{p} {what}"));
            }
            for a in actions.deliveries {
                if a.delay_ns > 0 {
                    let until = target.vm_time_ns() + a.delay_ns;
                    while target.vm_time_ns() < until && target.stopped().is_none() {
                        std::thread::sleep(POLL);
                    }
                }
                match a.what {
                    Delivery::Frame(source, frame) => target.push_frame(source, frame),
                    Delivery::Serial(bytes) => target.push_serial(&bytes),
                }
            }
        }
    }

    /// What delivering input `position` (and maybe the next) means, with entropy applied.
    fn actions(&self, position: usize, e: &crate::Event, next: Option<&crate::Event>) -> Actions {
        let mut out = Actions {
            consumed: 1,
            deliveries: Vec::new(),
            injected: Vec::new(),
        };
        let frame = match &e.kind {
            EventKind::NetRx { frame } => frame,
            EventKind::SerialIn { bytes } => {
                out.deliveries
                    .push(Step::now(Delivery::Serial(bytes.clone())));
                return out;
            }
            _ => return out,
        };
        let entropy = &self.options.entropy;
        let plain = |f: Vec<u8>| Step::now(Delivery::Frame(e.source, f));
        match entropy.net(position as u64, frame.len()) {
            NetAction::Deliver => out.deliveries.push(plain(frame.clone())),
            NetAction::Drop => out.injected.push((position, "drop".into())),
            NetAction::Duplicate => {
                out.deliveries.push(plain(frame.clone()));
                out.deliveries.push(plain(frame.clone()));
                out.injected.push((position, "duplicate".into()));
            }
            NetAction::Corrupt { offset, xor } => {
                let mut f = frame.clone();
                if let Some(b) = f.get_mut(offset) {
                    *b ^= xor;
                }
                out.deliveries.push(plain(f));
                out.injected
                    .push((position, format!("corrupt byte {offset} ^{xor:#04x}")));
            }
            NetAction::Delay { ns } => {
                out.deliveries.push(Step {
                    delay_ns: ns,
                    what: Delivery::Frame(e.source, frame.clone()),
                });
                out.injected.push((
                    position,
                    format!("delay {}", crate::player::selection::format_ns(ns)),
                ));
            }
            NetAction::SwapWithNext => match next {
                Some(
                    n @ crate::Event {
                        kind: EventKind::NetRx { frame: nf },
                        ..
                    },
                ) => {
                    out.deliveries
                        .push(Step::now(Delivery::Frame(n.source, nf.clone())));
                    out.deliveries.push(plain(frame.clone()));
                    out.consumed = 2;
                    out.injected.push((position, "swap with next".into()));
                }
                _ => out.deliveries.push(plain(frame.clone())),
            },
        }
        if let Some(extra) = entropy.extra_frame(position as u64, frame) {
            out.injected
                .push((position, format!("extra frame {} bytes", extra.len())));
            out.deliveries.push(plain(extra));
        }
        out
    }
}

fn target_time(target: &dyn Target) -> u64 {
    target.vm_time_ns()
}

/// The UDP payload of a frame, if it is UDP over IPv4.
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    match p.transport {
        Some(etherparse::TransportSlice::Udp(u)) => Some(u.payload()),
        _ => None,
    }
}

enum Delivery {
    Frame(SourceId, Vec<u8>),
    Serial(Vec<u8>),
}

struct Step {
    delay_ns: u64,
    what: Delivery,
}

impl Step {
    fn now(what: Delivery) -> Step {
        Step { delay_ns: 0, what }
    }
}

struct Actions {
    consumed: usize,
    deliveries: Vec<Step>,
    injected: Vec<(usize, String)>,
}
