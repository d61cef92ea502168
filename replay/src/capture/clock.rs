//! What the recorder needs from the VMM: the VM's clock and progress, and whether a
//! snapshot still exists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The VM's notion of time, provided by the VMM.
pub trait Clock: Send + Sync {
    /// Nanoseconds the VM has run (paused time excluded). Should not go backwards; the
    /// recorder never lets stamped times go backwards anyway.
    fn vm_time_ns(&self) -> u64;
    /// The guest-progress marker (e.g. the vCPU exit count).
    fn progress(&self) -> u64;
    /// Wall-clock time as nanoseconds since the Unix epoch (the system clock by default),
    /// stored in segment headers to map VM time to wall time.
    fn unix_time_ns(&self) -> u64 {
        unix_now_ns()
    }
}

/// Whether a VM snapshot with this id still exists (retention keeps no segment whose
/// replay would need a deleted snapshot).
pub type SnapshotExists = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The system clock as Unix nanoseconds.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A clock set by hand: for tests, tools and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    vm_ns: AtomicU64,
    progress: AtomicU64,
    unix_ns: AtomicU64,
}

impl ManualClock {
    /// A clock at VM time 0, progress 0, whose wall clock reads `unix_ns` at VM time 0 and
    /// advances with VM time.
    pub fn new(unix_ns: u64) -> ManualClock {
        ManualClock {
            vm_ns: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            unix_ns: AtomicU64::new(unix_ns),
        }
    }

    /// Sets VM time.
    pub fn set_vm_time_ns(&self, ns: u64) {
        self.vm_ns.store(ns, Ordering::SeqCst);
    }

    /// Advances VM time by `ns`.
    pub fn advance(&self, ns: u64) {
        self.vm_ns.fetch_add(ns, Ordering::SeqCst);
    }

    /// Sets the progress marker.
    pub fn set_progress(&self, p: u64) {
        self.progress.store(p, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn vm_time_ns(&self) -> u64 {
        self.vm_ns.load(Ordering::SeqCst)
    }

    fn progress(&self) -> u64 {
        self.progress.load(Ordering::SeqCst)
    }

    fn unix_time_ns(&self) -> u64 {
        self.unix_ns
            .load(Ordering::SeqCst)
            .saturating_add(self.vm_time_ns())
    }
}
