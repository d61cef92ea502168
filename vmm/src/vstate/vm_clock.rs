//! VM time and guest progress: what recording stamps each event with.
//!
//! VM time is the nanoseconds the VM has been allowed to run: it stops while the vCPUs are
//! paused (by the API or for a snapshot), so a pause leaves no gap, and it is saved in
//! snapshots so a restored VM continues the original's timeline. Guest progress is the
//! number of vCPU exits to the VMM so far, likewise continued across a restore.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The clock values a snapshot saves (state file section `clock`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// VM time at the snapshot, in nanoseconds.
    pub vm_time_ns: u64,
    /// Guest progress (vCPU exits) at the snapshot.
    pub progress: u64,
}

#[derive(Debug)]
struct Running {
    base_ns: u64,
    since: Option<Instant>,
}

/// Nanoseconds of VM running time (see the module documentation).
#[derive(Debug)]
pub struct VmClock {
    running: Mutex<Running>,
    progress_base: u64,
    exits: Mutex<Vec<Arc<AtomicU64>>>,
}

impl VmClock {
    /// A stopped clock reading `saved` (zero for a new VM).
    pub fn new(saved: ClockState) -> Self {
        VmClock {
            running: Mutex::new(Running {
                base_ns: saved.vm_time_ns,
                since: None,
            }),
            progress_base: saved.progress,
            exits: Mutex::new(Vec::new()),
        }
    }

    /// Counts the exits of a vCPU (its counter) in the guest progress.
    pub fn track_exits(&self, counter: Arc<AtomicU64>) {
        devices::bus::lock(&self.exits).push(counter);
    }

    /// Starts (or keeps) the clock running.
    pub fn run(&self) {
        let mut r = devices::bus::lock(&self.running);
        if r.since.is_none() {
            r.since = Some(Instant::now());
        }
    }

    /// Stops the clock, keeping the time run so far.
    pub fn stop(&self) {
        let mut r = devices::bus::lock(&self.running);
        if let Some(since) = r.since.take() {
            r.base_ns = r.base_ns.saturating_add(since.elapsed().as_nanos() as u64);
        }
    }

    /// VM time now, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        let r = devices::bus::lock(&self.running);
        match r.since {
            Some(since) => r.base_ns.saturating_add(since.elapsed().as_nanos() as u64),
            None => r.base_ns,
        }
    }

    /// Guest progress now: vCPU exits so far, the restored base included.
    pub fn progress(&self) -> u64 {
        devices::bus::lock(&self.exits)
            .iter()
            .fold(self.progress_base, |sum, c| {
                sum.wrapping_add(c.load(Ordering::Relaxed))
            })
    }

    /// The values a snapshot saves.
    pub fn state(&self) -> ClockState {
        ClockState {
            vm_time_ns: self.now_ns(),
            progress: self.progress(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_time_does_not_count_and_saved_values_carry_on() {
        let clock = VmClock::new(ClockState {
            vm_time_ns: 1_000,
            progress: 7,
        });
        assert_eq!(clock.now_ns(), 1_000);
        clock.run();
        std::thread::sleep(std::time::Duration::from_millis(5));
        clock.stop();
        let after_run = clock.now_ns();
        assert!(after_run >= 1_000 + 5_000_000, "{after_run}");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now_ns(), after_run, "paused time counted");
        let exits = Arc::new(AtomicU64::new(3));
        clock.track_exits(exits.clone());
        exits.fetch_add(2, Ordering::Relaxed);
        assert_eq!(clock.progress(), 12);
        assert_eq!(
            clock.state(),
            ClockState {
                vm_time_ns: after_run,
                progress: 12
            }
        );
    }
}
