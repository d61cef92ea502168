//! The replay's commands: hold, run (to a target), step, change speed, and the debugger's
//! hold.

use super::*;

impl Replayer {
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

    /// While a debugger has the clone stopped (`on`), delivers nothing, whatever the
    /// replay's own state; the state (running, paused, a step or target under way) is kept
    /// for when the debugger continues.
    pub fn debugger_hold(&self, on: bool) {
        self.lock().debugger_hold = on;
        self.wake.notify_all();
    }

    /// Lets a replay held at its start, a finished step or a run-until target run on,
    /// keeping any step or target set meanwhile; a pause asked for (`requested`) stays.
    /// Returns whether it was held.
    pub fn release_hold(&self) -> bool {
        let mut s = self.lock();
        let held = s.state == ReplayState::Paused && s.paused_by.as_deref() != Some("requested");
        if held {
            s.state = ReplayState::Running;
            s.paused_by = None;
        }
        drop(s);
        self.wake.notify_all();
        held
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
}
