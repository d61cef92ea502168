//! A buffer's writer thread: drains the ring into segments, rotates them (by size, at
//! snapshots), keeps them durable and indexed, and applies retention.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clock::{Clock, SnapshotExists};
use super::config::BufferConfig;
use super::format::header::{BlockMode, SegmentHeader, SegmentStart};
use super::format::index_path;
use super::resume::SegmentMeta;
use super::retention::{plan_retention, SegmentSpan};
use super::ring::{Item, Ring};
use super::segment_writer::{Batch, SegmentWriter};
use super::status::BufferStatus;
use crate::codec::event::encode_event;
use crate::codec::Encoder;
use crate::error::{CaptureError, Result};
use crate::event::{Event, EventKind, GapReason, SourceId};
use crate::fsutil::fsync_dir;
use crate::limits::MAX_RECORD_BYTES;
use crate::source::SourceTable;

/// Events that could not be written, to be accounted for by a `Gap` record.
struct Loss {
    first_seq: u64,
    bytes: u64,
    vm_time_ns: u64,
    progress: u64,
}

/// The state of one buffer's writer thread.
pub(crate) struct Writer {
    pub cfg: BufferConfig,
    pub ring: Arc<Ring>,
    pub status: Arc<Mutex<BufferStatus>>,
    pub sources: SourceTable,
    pub clock: Arc<dyn Clock>,
    pub snapshot_exists: SnapshotExists,
    pub session_unix_ns: u64,
    pub session_vm_ns: u64,
    pub segments: Vec<SegmentMeta>,
    current: Option<SegmentWriter>,
    next_start: SegmentStart,
    loss: Option<Loss>,
    error: Option<String>,
    last_sync: Instant,
    batch: Batch,
    batch_cost: usize,
    written: u64,
    newest_vm: Option<u64>,
    deleted: u64,
}

impl Writer {
    /// A writer whose first segment starts a new recording session.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: BufferConfig,
        ring: Arc<Ring>,
        status: Arc<Mutex<BufferStatus>>,
        sources: SourceTable,
        clock: Arc<dyn Clock>,
        snapshot_exists: SnapshotExists,
        session: (u64, u64),
        segments: Vec<SegmentMeta>,
    ) -> Writer {
        Writer {
            cfg,
            ring,
            status,
            sources,
            clock,
            snapshot_exists,
            session_unix_ns: session.0,
            session_vm_ns: session.1,
            segments,
            current: None,
            next_start: SegmentStart::RecordingStarted,
            loss: None,
            error: None,
            last_sync: Instant::now(),
            batch: Batch::default(),
            batch_cost: 0,
            written: 0,
            newest_vm: None,
            deleted: 0,
        }
    }

    /// The thread's body: runs until a `Stop` command.
    pub fn run(mut self) {
        loop {
            let wait = self
                .cfg
                .sync_interval
                .saturating_sub(self.last_sync.elapsed())
                .max(Duration::from_millis(1));
            let items = self.ring.take(wait);
            for item in items {
                match item {
                    Item::Event { seq, event, cost } => self.add(seq, &event, cost),
                    Item::Rotate(id) => {
                        self.write_batch();
                        self.close_current();
                        self.next_start = SegmentStart::Snapshot(id);
                    }
                    Item::Flush(ack) => {
                        self.write_batch();
                        self.sync();
                        let _ = ack.send(self.take_error());
                    }
                    Item::Stop(ack) => {
                        self.write_batch();
                        self.close_current();
                        self.publish();
                        let _ = ack.send(self.take_error());
                        self.ring.writer_exited();
                        return;
                    }
                }
            }
            self.write_batch();
            if self.last_sync.elapsed() >= self.cfg.sync_interval {
                self.sync();
            }
            self.publish();
        }
    }

    fn note_error(&mut self, e: &CaptureError) {
        log::error!("capture buffer {:?}: {e}", self.cfg.name);
        self.error.get_or_insert_with(|| e.to_string());
        if let Ok(mut st) = self.status.lock() {
            st.last_error = Some(e.to_string());
        }
    }

    fn take_error(&mut self) -> Result<()> {
        match self.error.take() {
            None => Ok(()),
            Some(problem) => Err(CaptureError::WriterFailed {
                buffer: self.cfg.name.clone(),
                problem,
            }),
        }
    }

    /// Opens a segment whose first record gets `first_seq`, if none is open.
    fn ensure_segment(&mut self, first_seq: u64) -> bool {
        if self.current.is_some() {
            return true;
        }
        let header = SegmentHeader {
            buffer: self.cfg.name.clone(),
            first_seq,
            start: self.next_start.clone(),
            session_unix_ns: self.session_unix_ns,
            session_vm_ns: self.session_vm_ns,
            anchor_unix_ns: self.clock.unix_time_ns(),
            anchor_vm_ns: self.clock.vm_time_ns(),
            block_mode: self.cfg.block_mode,
            sources: self.sources.clone(),
        };
        match SegmentWriter::create(&self.cfg.dir, header) {
            Ok(w) => {
                self.current = Some(w);
                self.next_start = SegmentStart::Continuation;
                true
            }
            Err(e) => {
                self.note_error(&e);
                false
            }
        }
    }

    /// Encodes one event into the batch (opening a segment first if needed).
    fn add(&mut self, seq: u64, event: &Event, cost: usize) {
        self.batch_cost += cost;
        let first = self.loss.as_ref().map_or(seq, |l| l.first_seq);
        if !self.ensure_segment(first) {
            self.lose(seq, event);
            return;
        }
        if let Some(l) = self.loss.take() {
            let gap = Event {
                seq: l.first_seq,
                vm_time_ns: l.vm_time_ns,
                progress: l.progress,
                source: SourceId::RECORDER,
                kind: EventKind::Gap {
                    lost_events: seq - l.first_seq,
                    lost_bytes: l.bytes,
                    reason: GapReason::WriteFailed,
                },
            };
            self.encode(l.first_seq, &gap);
        }
        self.encode(seq, event);
        let full = self
            .current
            .as_ref()
            .is_some_and(|c| c.len() + self.batch.bytes.len() as u64 >= self.cfg.max_segment_bytes);
        if full {
            self.write_batch();
            self.close_current();
        }
    }

    fn encode(&mut self, seq: u64, event: &Event) {
        let mut enc = Encoder::new();
        let compact = self.cfg.block_mode == BlockMode::Compact;
        encode_event(&mut enc, seq, event, compact);
        let mut next = match &event.kind {
            EventKind::Gap { lost_events, .. } => seq + (*lost_events).max(1),
            _ => seq + 1,
        };
        if enc.buf.len() > MAX_RECORD_BYTES {
            let gap = Event {
                seq,
                vm_time_ns: event.vm_time_ns,
                progress: event.progress,
                source: event.source,
                kind: EventKind::Gap {
                    lost_events: 1,
                    lost_bytes: event.kind.payload_len() as u64,
                    reason: GapReason::TooLarge,
                },
            };
            enc = Encoder::new();
            encode_event(&mut enc, seq, &gap, compact);
            next = seq + 1;
            if let Ok(mut st) = self.status.lock() {
                st.dropped_events += 1;
                st.dropped_bytes += event.kind.payload_len() as u64;
            }
        }
        let payload_bytes = if compact {
            event.kind.to_compact().payload_len()
        } else {
            event.kind.payload_len()
        } as u64;
        self.batch
            .push(seq, next, event.vm_time_ns, &enc.buf, payload_bytes);
        self.newest_vm = Some(event.vm_time_ns);
    }

    /// Counts an event that could not be written.
    fn lose(&mut self, seq: u64, event: &Event) {
        let bytes = event.kind.payload_len() as u64;
        match &mut self.loss {
            Some(l) => l.bytes += bytes,
            None => {
                self.loss = Some(Loss {
                    first_seq: seq,
                    bytes,
                    vm_time_ns: event.vm_time_ns,
                    progress: event.progress,
                })
            }
        }
        if let Ok(mut st) = self.status.lock() {
            st.dropped_events += 1;
            st.dropped_bytes += bytes;
        }
    }

    /// Appends the batch to the current segment.
    fn write_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let cost = std::mem::take(&mut self.batch_cost);
        if !batch.is_empty() {
            match self.current.as_mut().map(|c| c.append(&batch)) {
                Some(Ok(())) => self.written += batch.records.len() as u64,
                Some(Err(e)) => {
                    self.note_error(&e);
                    self.fail_batch(&batch);
                }
                None => self.fail_batch(&batch),
            }
        }
        self.ring.release(cost);
    }

    /// The batch was not written: account for its records and give up the segment, which
    /// may end inside a record.
    fn fail_batch(&mut self, batch: &Batch) {
        let Some(first) = batch.records.first() else {
            return;
        };
        let bytes: u64 = batch.records.iter().map(|r| r.payload_bytes).sum();
        match &mut self.loss {
            Some(l) => l.bytes += bytes,
            None => {
                self.loss = Some(Loss {
                    first_seq: first.seq,
                    bytes,
                    vm_time_ns: first.vm_time_ns,
                    progress: 0,
                })
            }
        }
        if let Ok(mut st) = self.status.lock() {
            st.dropped_events += batch.records.len() as u64;
            st.dropped_bytes += bytes;
        }
        let Some(seg) = self.current.take() else {
            return;
        };
        if seg.records() == 0 {
            // Nothing of it is readable: remove it, and start the next segment as this one
            // would have (a snapshot boundary is not lost).
            self.next_start = seg.header.start.clone();
            let path = seg.path().to_path_buf();
            drop(seg);
            let _ = std::fs::remove_file(index_path(&path));
            if let Err(e) = std::fs::remove_file(&path) {
                self.note_error(&CaptureError::io(&path, "remove", e));
            }
        } else {
            self.finish_segment(seg);
        }
    }

    fn sync(&mut self) {
        self.last_sync = Instant::now();
        if let Some(c) = self.current.as_mut() {
            if let Err(e) = c.sync() {
                self.note_error(&e);
            }
        }
    }

    /// Closes the current segment and applies retention.
    fn close_current(&mut self) {
        if let Some(seg) = self.current.take() {
            self.finish_segment(seg);
            self.apply_retention();
        }
    }

    fn finish_segment(&mut self, seg: SegmentWriter) {
        let meta = meta_of(&seg);
        if let Err(e) = seg.close() {
            self.note_error(&e);
        }
        self.segments.push(meta);
    }

    fn apply_retention(&mut self) {
        let spans: Vec<SegmentSpan> = self.segments.iter().map(|m| m.span.clone()).collect();
        let exists = Arc::clone(&self.snapshot_exists);
        let k = plan_retention(&spans, &self.cfg.retention, &|id| exists(id));
        if k == 0 {
            return;
        }
        let doomed: Vec<SegmentMeta> = self.segments.drain(..k).collect();
        for m in &doomed {
            log::debug!(
                "capture buffer {:?}: retention deletes {}",
                self.cfg.name,
                m.path.display()
            );
            // The segment first: a leftover index without its segment is ignored.
            for p in [m.path.clone(), index_path(&m.path)] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => self.note_error(&CaptureError::io(&p, "remove", e)),
                }
            }
            self.deleted += 1;
        }
        if let Err(e) = fsync_dir(&self.cfg.dir) {
            self.note_error(&e);
        }
    }

    /// Updates the shared status.
    fn publish(&self) {
        let current = self.current.as_ref().map(meta_of);
        let all = || self.segments.iter().chain(current.iter());
        let Ok(mut st) = self.status.lock() else {
            return;
        };
        st.events = self.written;
        st.events_retained = all().map(|m| m.records).sum();
        st.bytes = all().map(|m| m.span.bytes).sum();
        st.oldest_vm_time_ns = all().find_map(|m| m.span.first_vm_ns);
        st.newest_vm_time_ns = self.newest_vm.or(st.newest_vm_time_ns);
        st.segments = all().count();
        st.segments_deleted = self.deleted;
    }
}

fn meta_of(seg: &SegmentWriter) -> SegmentMeta {
    let s = seg.summary();
    SegmentMeta {
        path: PathBuf::from(seg.path()),
        span: SegmentSpan {
            start: seg.header.start.clone(),
            session: seg.header.session_unix_ns,
            first_vm_ns: (s.records > 0).then_some(s.first_vm_ns),
            last_vm_ns: (s.records > 0).then_some(s.last_vm_ns),
            bytes: seg.len(),
        },
        records: s.records,
    }
}
