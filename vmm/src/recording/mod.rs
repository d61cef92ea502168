//! Recording taps. Bytes cross the guest boundary in the device backends and the console;
//! each is wrapped in a tap that, while a recording runs, hands what passes to the
//! [`replay::Recorder`] (which stamps VM time and guest progress and writes the capture
//! buffers). Devices do not know they are recorded. The taps are always installed; with no
//! recording running they cost a lock-free check per I/O.

pub mod block;
pub mod clock;
pub mod config;
pub mod net;
pub mod serial;
pub mod sources;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use replay::{EventKind, Recorder, SourceId};

/// Sees every event crossing a VM's boundary, recorded or not (a replay's output checker).
pub trait TapObserver: Send + Sync {
    /// `kind` passed device `source`.
    fn observe(&self, source: SourceId, kind: &EventKind);
}

/// The recorder the taps of one VM feed, when a recording runs, and the observer they
/// show events to, when one watches.
#[derive(Default)]
pub struct Taps {
    on: AtomicBool,
    recorder: RwLock<Option<Running>>,
    watched: AtomicBool,
    observer: RwLock<Option<Arc<dyn TapObserver>>>,
    /// The store of the VM's latest snapshot: retention keeps capture segments only while
    /// the snapshot they start at is there.
    snapshot_store: Arc<Mutex<Option<PathBuf>>>,
}

/// A running recording.
struct Running {
    recorder: Recorder,
    /// Whether a buffer keeps block data (else hashes of it are all that is needed).
    block_data: bool,
}

impl Taps {
    /// Taps with no recording running.
    pub fn new() -> Arc<Taps> {
        Arc::new(Taps::default())
    }

    /// Records the event `make` builds, if a recording runs (`make` is not called
    /// otherwise).
    pub fn record(&self, source: SourceId, make: impl FnOnce() -> EventKind) {
        self.record_block(source, |_| make());
    }

    /// Like [`Taps::record`]; `make` is told whether any buffer keeps block data. When
    /// none does (every buffer is in compact block mode), the event may carry hashes
    /// instead of the data: the capture is the same, and the data is not copied.
    pub fn record_block(&self, source: SourceId, make: impl FnOnce(bool) -> EventKind) {
        let on = self.on.load(Ordering::Acquire);
        let watched = self.watched.load(Ordering::Acquire);
        if !on && !watched {
            return;
        }
        let guard = self.recorder.read().unwrap_or_else(|p| p.into_inner());
        let running = guard.as_ref().filter(|_| on);
        let kind = make(running.is_some_and(|r| r.block_data));
        if watched {
            if let Some(o) = self
                .observer
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                o.observe(source, &kind);
            }
        }
        if let Some(r) = running {
            r.recorder.record(source, kind);
        }
    }

    /// Shows every later event to `observer` (replacing any other).
    pub fn watch(&self, observer: Arc<dyn TapObserver>) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
        self.watched.store(true, Ordering::Release);
    }

    /// Installs `recorder`, whose buffers keep block data if `block_data` (at least one is
    /// in full block mode); returns the one it replaces.
    pub fn start(&self, recorder: Recorder, block_data: bool) -> Option<Recorder> {
        self.replace(Some(Running {
            recorder,
            block_data,
        }))
    }

    /// Removes the running recorder and returns it.
    pub fn stop(&self) -> Option<Recorder> {
        self.replace(None)
    }

    fn replace(&self, running: Option<Running>) -> Option<Recorder> {
        let mut guard = self.recorder.write().unwrap_or_else(|p| p.into_inner());
        self.on.store(running.is_some(), Ordering::Release);
        std::mem::replace(&mut *guard, running).map(|r| r.recorder)
    }

    /// The running recorder.
    pub fn recorder(&self) -> Option<Recorder> {
        self.recorder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| r.recorder.clone())
    }

    /// Notes where the VM's snapshots now go.
    pub fn set_snapshot_store(&self, dir: &std::path::Path) {
        *devices::bus::lock(&self.snapshot_store) = Some(dir.to_path_buf());
    }

    /// Whether snapshot `id` exists in the VM's snapshot store (for capture retention).
    pub fn snapshot_exists_fn(&self) -> replay::capture::SnapshotExists {
        let store = self.snapshot_store.clone();
        Arc::new(move |id: &str| {
            devices::bus::lock(&store)
                .as_ref()
                .is_some_and(|dir| dir.join(id).join("manifest.json").is_file())
        })
    }
}
