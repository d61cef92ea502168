//! The scheduler thread: when each input is due, and holding at steps and targets.

use super::actions::Delivery;
use super::*;

impl Replayer {
    /// The scheduler thread.
    pub(super) fn schedule(&self, target: &dyn Target) {
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
                    let now = target.vm_time_ns();
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
            if s.debugger_hold {
                let _ = self.wake.wait_timeout(s, Duration::from_millis(20));
                continue;
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
            // Against the schedule at a factor speed, against recorded time otherwise.
            let drift = elapsed as i64
                - match s.speed {
                    Speed::Factor(_) => scheduled as i64,
                    Speed::Max | Speed::Step => recorded_offset as i64,
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
            for i in &actions.injected {
                s.injected.push(InjectedEvent {
                    stream: "net".into(),
                    position: i.position,
                    what: i.what.clone(),
                });
            }
            if let Some(left) = s.steps_left.as_mut() {
                *left = left.saturating_sub(actions.consumed as u64);
            }
            drop(s);
            for i in &actions.injected {
                target.log_injection(&format!("net#{} {}", i.position, i.what));
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
}
