//! The recorder: the handle device threads record through, fanning each event out to the
//! capture buffers.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::clock::{Clock, SnapshotExists};
use super::config::BufferConfig;
use super::resume::load_existing;
use super::ring::{Item, Ring};
use super::status::BufferStatus;
use super::writer::Writer;
use crate::error::{CaptureError, Result};
use crate::event::{Event, EventKind, KindClass, SourceId};
use crate::limits::MAX_SNAPSHOT_ID_BYTES;
use crate::source::SourceTable;

/// Ring bytes an event takes beyond its payload.
const EVENT_OVERHEAD: usize = 64;
/// The lock file in a buffer directory, held while a recorder writes there.
const LOCK_FILE: &str = "lock";

/// Records events into capture buffers. Cheap to clone; all clones share the buffers.
///
/// Sequence numbers are per buffer: each buffer numbers the records it keeps 0, 1, 2, ...
/// over its whole directory (continuing across recording sessions), so a reader can tell a
/// missing record from a filtered one. Events are stamped and queued under one lock, so
/// every buffer sees them in the same order and VM time never goes backwards.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Buffer {
    cfg: BufferConfig,
    ring: Arc<Ring>,
    status: Arc<Mutex<BufferStatus>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Held while the writer may write; released by `stop`.
    lock: Mutex<Option<File>>,
}

struct Order {
    last_vm_ns: u64,
    stopped: bool,
}

struct Inner {
    clock: Arc<dyn Clock>,
    sources: SourceTable,
    buffers: Vec<Buffer>,
    order: Mutex<Order>,
}

/// Marks the ring when its writer thread ends, however it ends, so that nobody waits for
/// room that will never come.
struct ExitGuard(Arc<Ring>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.writer_exited();
    }
}

impl Recorder {
    /// Starts recording into `buffers` (each gets a writer thread, and its first record in
    /// this session is `RecordingStarted`). `sources` names the devices; `clock` stamps
    /// events; `snapshot_exists` tells retention which snapshots are still there.
    pub fn start(
        sources: SourceTable,
        buffers: Vec<BufferConfig>,
        clock: Arc<dyn Clock>,
        snapshot_exists: SnapshotExists,
    ) -> Result<Recorder> {
        let mut names = HashSet::new();
        let mut dirs = HashSet::new();
        for b in &buffers {
            b.validate()?;
            if !names.insert(b.name.clone()) {
                return Err(CaptureError::InvalidConfig {
                    buffer: b.name.clone(),
                    problem: "two buffers have this name".to_string(),
                });
            }
            std::fs::create_dir_all(&b.dir)
                .map_err(|e| CaptureError::io(&b.dir, "create directory", e))?;
            let canon = b
                .dir
                .canonicalize()
                .map_err(|e| CaptureError::io(&b.dir, "resolve", e))?;
            if !dirs.insert(canon) {
                return Err(CaptureError::InvalidConfig {
                    buffer: b.name.clone(),
                    problem: format!("{} is another buffer's directory", b.dir.display()),
                });
            }
        }
        let session = (clock.unix_time_ns(), clock.vm_time_ns());
        let mut started: Vec<Buffer> = Vec::new();
        for cfg in buffers {
            match start_buffer(cfg, &sources, &clock, &snapshot_exists, session) {
                Ok(b) => started.push(b),
                Err(e) => {
                    // End the writers already started (they have written nothing).
                    for b in &started {
                        let (tx, rx) = sync_channel(1);
                        b.ring.push_command(Item::Stop(tx));
                        let _ = rx.recv();
                        if let Some(h) = b.thread.lock().ok().and_then(|mut t| t.take()) {
                            let _ = h.join();
                        }
                    }
                    return Err(e);
                }
            }
        }
        let inner = Arc::new(Inner {
            clock,
            sources,
            buffers: started,
            order: Mutex::new(Order {
                last_vm_ns: session.1,
                stopped: false,
            }),
        });
        let rec = Recorder { inner };
        rec.marker(EventKind::RecordingStarted, None);
        Ok(rec)
    }

    /// The devices.
    pub fn sources(&self) -> &SourceTable {
        &self.inner.sources
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        // The guarded values stay consistent through a panic (single assignments).
        self.inner.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stamp(&self, order: &mut Order, source: SourceId, kind: EventKind) -> Arc<Event> {
        let vm = self.inner.clock.vm_time_ns().max(order.last_vm_ns);
        order.last_vm_ns = vm;
        Arc::new(Event {
            seq: 0,
            vm_time_ns: vm,
            progress: self.inner.clock.progress(),
            source,
            kind,
        })
    }

    /// Records that `kind` happened on `source` now. Stamps VM time and progress from the
    /// clock and queues the event in every buffer whose filter takes it. Cheap unless a
    /// buffer with the `Backpressure` policy is full, in which case it waits for room.
    /// Does nothing once the recorder is stopped.
    pub fn record(&self, source: SourceId, kind: EventKind) {
        if kind.class() == KindClass::Marker {
            // Markers are the recorder's own; a device cannot write them.
            log::warn!("ignoring a {} marker recorded by {source}", kind.name());
            return;
        }
        let mut order = self.order();
        if order.stopped {
            return;
        }
        let event = self.stamp(&mut order, source, kind);
        let cost = event.kind.payload_len() + EVENT_OVERHEAD;
        for b in &self.inner.buffers {
            if b.cfg.filter.matches(&event) {
                b.ring.push_event(&event, cost);
            }
        }
    }

    /// Queues a marker in every buffer, after `command` if given.
    fn marker(&self, kind: EventKind, command: Option<&dyn Fn() -> Item>) -> bool {
        let mut order = self.order();
        if order.stopped {
            return false;
        }
        let event = self.stamp(&mut order, SourceId::RECORDER, kind);
        for b in &self.inner.buffers {
            if let Some(c) = command {
                b.ring.push_command(c());
            }
            b.ring.push_event(&event, 0);
        }
        true
    }

    /// A VM snapshot `id` was taken now: every buffer closes its segment and starts a new
    /// one whose first record is `SnapshotTaken { id }`, so that the snapshot and the
    /// segments from there on replay together. Call it while the VM is paused for the
    /// snapshot, so that no event falls between the snapshot and the marker. Retention
    /// runs on each closed segment.
    pub fn snapshot_taken(&self, id: &str) -> Result<()> {
        if id.is_empty() || id.len() > MAX_SNAPSHOT_ID_BYTES {
            return Err(CaptureError::InvalidConfig {
                buffer: "*".to_string(),
                problem: format!(
                    "snapshot id {id:?} must be 1 to {MAX_SNAPSHOT_ID_BYTES} bytes long"
                ),
            });
        }
        let rotate = || Item::Rotate(id.to_string());
        if self.marker(
            EventKind::SnapshotTaken { id: id.to_string() },
            Some(&rotate),
        ) {
            Ok(())
        } else {
            Err(CaptureError::Stopped)
        }
    }

    /// Waits until everything recorded before the call is written and durable in every
    /// buffer (and the indexes rewritten). Returns the first write error any buffer met
    /// since its previous flush.
    pub fn flush(&self) -> Result<()> {
        let mut waits = Vec::new();
        {
            let order = self.order();
            if order.stopped {
                return Err(CaptureError::Stopped);
            }
            for b in &self.inner.buffers {
                let (tx, rx) = sync_channel(1);
                b.ring.push_command(Item::Flush(tx));
                waits.push((b, rx));
            }
        }
        let mut result = Ok(());
        for (b, rx) in waits {
            let r = rx.recv().unwrap_or_else(|_| {
                Err(CaptureError::WriterFailed {
                    buffer: b.cfg.name.clone(),
                    problem: "the writer thread has ended".to_string(),
                })
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Stops recording: writes `RecordingStopped` to every buffer, drains and fsyncs them,
    /// closes their segments and ends their threads. Later `record()` calls do nothing.
    /// Returns each buffer's final status, or the first error met. Stopping twice is
    /// harmless.
    pub fn stop(&self) -> Result<Vec<BufferStatus>> {
        self.inner.stop()?;
        Ok(self.status())
    }

    /// The state of every buffer.
    pub fn status(&self) -> Vec<BufferStatus> {
        let stopped = self.order().stopped;
        self.inner
            .buffers
            .iter()
            .map(|b| {
                let mut st = b
                    .status
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or_else(|p| p.into_inner().clone());
                let (dropped, dropped_bytes, queued, next_seq) = b.ring.counters();
                st.dropped_events += dropped;
                st.dropped_bytes += dropped_bytes;
                st.queued_bytes = queued;
                st.next_seq = next_seq;
                st.stopped = stopped;
                st
            })
            .collect()
    }
}

impl Inner {
    fn stop(&self) -> Result<()> {
        let mut waits = Vec::new();
        {
            let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            if order.stopped {
                return Ok(());
            }
            let vm = self.clock.vm_time_ns().max(order.last_vm_ns);
            let event = Arc::new(Event {
                seq: 0,
                vm_time_ns: vm,
                progress: self.clock.progress(),
                source: SourceId::RECORDER,
                kind: EventKind::RecordingStopped,
            });
            order.stopped = true;
            for b in &self.buffers {
                b.ring.push_event(&event, 0);
                let (tx, rx) = sync_channel(1);
                b.ring.push_command(Item::Stop(tx));
                waits.push((b, rx));
            }
        }
        let mut result = Ok(());
        for (b, rx) in waits {
            let r = rx.recv().unwrap_or_else(|_| {
                Err(CaptureError::WriterFailed {
                    buffer: b.cfg.name.clone(),
                    problem: "the writer thread ended before stopping".to_string(),
                })
            });
            let handle = b.thread.lock().ok().and_then(|mut t| t.take());
            let joined = match handle {
                Some(h) => h.join().map_err(|_| CaptureError::WriterFailed {
                    buffer: b.cfg.name.clone(),
                    problem: "the writer thread panicked".to_string(),
                }),
                None => Ok(()),
            };
            if let Ok(mut l) = b.lock.lock() {
                l.take();
            }
            if result.is_ok() {
                result = r.and(joined);
            }
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!("stopping the recorder: {e}");
        }
    }
}

fn start_buffer(
    cfg: BufferConfig,
    sources: &SourceTable,
    clock: &Arc<dyn Clock>,
    snapshot_exists: &SnapshotExists,
    session: (u64, u64),
) -> Result<Buffer> {
    let lock_path = cfg.dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| CaptureError::io(&lock_path, "open", e))?;
    lock.try_lock().map_err(|_| CaptureError::DirNotUsable {
        path: cfg.dir.clone(),
        problem: "another recorder is writing there".to_string(),
    })?;
    let (segments, next_seq) = load_existing(&cfg.dir)?;
    let ring = Arc::new(Ring::new(cfg.ring_bytes, cfg.overflow, next_seq));
    let status = Arc::new(Mutex::new(BufferStatus {
        name: cfg.name.clone(),
        dir: cfg.dir.clone(),
        next_seq,
        ..BufferStatus::default()
    }));
    let writer = Writer::new(
        cfg.clone(),
        Arc::clone(&ring),
        Arc::clone(&status),
        sources.clone(),
        Arc::clone(clock),
        Arc::clone(snapshot_exists),
        session,
        segments,
    );
    let guard = ExitGuard(Arc::clone(&ring));
    let thread = std::thread::Builder::new()
        .name(format!("capture-{}", cfg.name))
        .spawn(move || {
            let _guard = guard;
            writer.run();
        })
        .map_err(|e| CaptureError::io(&cfg.dir, "spawn writer thread", e))?;
    Ok(Buffer {
        cfg,
        ring,
        status,
        thread: Mutex::new(Some(thread)),
        lock: Mutex::new(Some(lock)),
    })
}
