//! Periodic snapshots: a thread that takes one every interval while the VM runs (the first
//! full, then diffs) and applies the retention policy after each.

use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use snapshot::SnapshotStore;

use crate::api::{SnapshotCreate, SnapshotSchedule, SnapshotType};
use crate::controller::Vmm;

/// The schedule in force, shared by the API and the snapshot thread.
#[derive(Default)]
pub struct Scheduler {
    schedule: Mutex<Option<SnapshotSchedule>>,
    changed: Condvar,
}

impl Scheduler {
    /// Replaces the schedule (`interval_ms` 0 stops it) and wakes the thread.
    pub fn set(&self, schedule: SnapshotSchedule) {
        let mut s = devices::bus::lock(&self.schedule);
        *s = (schedule.interval_ms > 0).then_some(schedule);
        self.changed.notify_all();
    }

    /// Waits until the next snapshot is due; `None` when nothing is scheduled yet.
    fn next_due(&self) -> Option<SnapshotSchedule> {
        let s = devices::bus::lock(&self.schedule);
        let Some(current) = s.clone() else {
            let _ = self.changed.wait_timeout(s, Duration::from_secs(1));
            return None;
        };
        let due = Instant::now() + Duration::from_millis(current.interval_ms);
        let (s, _) = self
            .changed
            .wait_timeout_while(s, due.saturating_duration_since(Instant::now()), |s| {
                s.as_ref() == Some(&current)
            })
            .unwrap_or_else(|p| p.into_inner());
        // Changed while waiting: start over with the new schedule.
        (s.as_ref() == Some(&current)).then_some(current)
    }
}

/// The longest chain of diffs a restore lays over a full image: when a periodic diff would
/// make it longer, the snapshot thread consolidates that diff into a full image (in the
/// background: the VM runs meanwhile).
pub const MAX_DIFFS_AT_RESTORE: usize = 4;

/// Consolidates snapshot `id` if its chain holds more than [`MAX_DIFFS_AT_RESTORE`] diffs.
pub fn keep_chain_short(store_dir: &std::path::Path, id: &str) -> Result<bool, String> {
    let store = SnapshotStore::open(store_dir).map_err(|e| e.to_string())?;
    let chain = store.chain(id).map_err(|e| e.to_string())?;
    if chain.len() <= MAX_DIFFS_AT_RESTORE + 1 {
        return Ok(false);
    }
    store.consolidate(id).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Keeps what `schedule` asks for: consolidates the oldest kept snapshot when older ones are
/// pinned by its chain, then deletes the expired ones.
pub fn apply_retention(schedule: &SnapshotSchedule) -> Result<usize, String> {
    if schedule.keep_count.is_none() && schedule.max_age_secs.is_none() {
        return Ok(0);
    }
    let store = SnapshotStore::open(&schedule.snapshot_dir).map_err(|e| e.to_string())?;
    let keep = schedule.keep_count.map(|k| k as usize);
    let age = schedule.max_age_secs.map(Duration::from_secs);
    let now = snapshot::unix_ms_now();
    let mut plan = store
        .select_expired(now, keep, age)
        .map_err(|e| e.to_string())?;
    if !plan.pinned.is_empty() {
        if let Some(oldest) = plan.keep.last() {
            store.consolidate(oldest).map_err(|e| e.to_string())?;
        }
        plan = store
            .select_expired(now, keep, age)
            .map_err(|e| e.to_string())?;
    }
    for id in &plan.delete {
        store.delete(id).map_err(|e| e.to_string())?;
    }
    Ok(plan.delete.len())
}

/// Runs the periodic snapshots of `vmm` until it is dropped.
pub fn spawn(vmm: Weak<Vmm>, scheduler: std::sync::Arc<Scheduler>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || loop {
            let Some(schedule) = scheduler.next_due() else {
                if vmm.strong_count() == 0 {
                    return;
                }
                continue;
            };
            let Some(vmm) = vmm.upgrade() else { return };
            if !vmm.is_running() {
                continue;
            }
            let diff =
                vmm.previous_snapshot_dir().as_deref() == Some(schedule.snapshot_dir.as_path());
            let request = SnapshotCreate {
                snapshot_dir: schedule.snapshot_dir.clone(),
                snapshot_id: None,
                snapshot_type: Some(if diff {
                    SnapshotType::Diff
                } else {
                    SnapshotType::Full
                }),
            };
            use crate::api::VmmControl;
            let created = match vmm.create_snapshot(request) {
                Ok(created) => created,
                Err(e) => {
                    log::warn!("periodic snapshot: {}", e.message);
                    continue;
                }
            };
            // The VM runs on; this thread tidies the store.
            drop(vmm);
            if let Err(e) = keep_chain_short(&schedule.snapshot_dir, &created.id) {
                log::warn!("consolidating snapshot {}: {e}", created.id);
            }
            match apply_retention(&schedule) {
                Ok(n) if n > 0 => log::debug!("retention removed {n} snapshot(s)"),
                Ok(_) => {}
                Err(e) => log::warn!("snapshot retention: {e}"),
            }
        })?;
    Ok(())
}
