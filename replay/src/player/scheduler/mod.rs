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
//!
//! This file holds the replay's state, what devices report into it and its status;
//! [`control`] the API's commands, [`pacing`] the thread, [`actions`] what delivering one
//! input means once entropy is applied.

mod actions;
mod control;
mod pacing;

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
    /// A debugger has stopped the clone: nothing is delivered until it continues.
    debugger_hold: bool,
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
                debugger_hold: false,
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
        let stream = format!("blk:{}", self.plan.sources.name_of(source));
        for what in &fault.what {
            s.injected.push(InjectedEvent {
                stream: stream.clone(),
                position: fault.index,
                what: what.clone(),
            });
        }
        fault
    }

    /// Whether block completions are checked (only then does the device need their hash).
    pub fn strict(&self) -> bool {
        self.options.strict
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
                    let payload = crate::frame::udp_payload(frame);
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
}
