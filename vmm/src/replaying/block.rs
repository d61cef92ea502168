//! The block backend of a replaying clone: the clone's own copy of the volume, with the
//! replay's faults (recorded failures repeated, seeded errors and latency) applied and,
//! in strict mode, every completion checked against the recorded one. It sits under the
//! recording tap, so a clone that records logs the failures it was given.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use devices::backends::{BlockBackend, IoDirection};
use replay::player::blocks::Completion;
use replay::player::Replayer;
use replay::{BlkRequestType, EventKind, Hash128, SourceId};

use crate::recording::block::{SECTOR, STATUS_IOERR, STATUS_OK};
use crate::recording::Taps;

/// A block backend under replay.
pub struct ReplayBlock {
    inner: Box<dyn BlockBackend>,
    source: SourceId,
    replayer: Arc<Replayer>,
    /// Where injected faults are logged (the clone's own capture, if it records).
    taps: Arc<Taps>,
}

impl ReplayBlock {
    /// Wraps `inner` (device `source`) for `replayer`.
    pub fn new(
        inner: Box<dyn BlockBackend>,
        source: SourceId,
        replayer: Arc<Replayer>,
        taps: Arc<Taps>,
    ) -> Self {
        ReplayBlock {
            inner,
            source,
            replayer,
            taps,
        }
    }

    /// Applies the replay's fault for a request of `len` bytes at `offset`: waits out any
    /// latency, and returns the injected error if there is one.
    fn fault(&self, offset: u64, len: u64) -> io::Result<()> {
        let fault = self
            .replayer
            .block_fault(self.source, offset / SECTOR, len.div_ceil(SECTOR));
        for what in &fault.what {
            self.taps
                .record(SourceId::RECORDER, || EventKind::Injected {
                    what: format!("blk#{} {what}", fault.index),
                });
        }
        if fault.latency_ns > 0 {
            // The device's requests are served in order on the event loop, so the whole
            // queue waits, as it would behind a slow disk.
            std::thread::sleep(Duration::from_nanos(fault.latency_ns));
        }
        if fault.error {
            return Err(io::Error::other(format!(
                "replay: injected I/O error at sector {}",
                offset / SECTOR
            )));
        }
        Ok(())
    }

    fn completed<T>(
        &self,
        request: BlkRequestType,
        offset: u64,
        len: u64,
        result: &io::Result<T>,
        hash: Option<Hash128>,
    ) {
        self.replayer.block_completed(
            self.source,
            &Completion {
                request,
                sector: offset / SECTOR,
                len: u32::try_from(len).unwrap_or(u32::MAX),
                status: if result.is_ok() {
                    STATUS_OK
                } else {
                    STATUS_IOERR
                },
                hash: if result.is_ok() { hash } else { None },
            },
        );
    }
}

impl BlockBackend for ReplayBlock {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    fn read_only(&self) -> bool {
        self.inner.read_only()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = buf.len() as u64;
        let result = self
            .fault(offset, len)
            .and_then(|()| self.inner.read_at(offset, buf));
        // Only strict mode compares read data: hash it only then.
        let hash = (result.is_ok() && self.replayer.strict()).then(|| Hash128::of(buf));
        self.completed(BlkRequestType::Read, offset, len, &result, hash);
        result
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let len = buf.len() as u64;
        let result = self
            .fault(offset, len)
            .and_then(|()| self.inner.write_at(offset, buf));
        self.completed(BlkRequestType::Write, offset, len, &result, None);
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.completed(BlkRequestType::Flush, 0, 0, &result, None);
        result
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let result = self.inner.discard(offset, len);
        self.completed(BlkRequestType::Discard, offset, len, &result, None);
        result
    }

    fn device_id(&self) -> &str {
        self.inner.device_id()
    }

    fn admit(&mut self, dir: IoDirection, bytes: u64) -> Option<Duration> {
        self.inner.admit(dir, bytes)
    }

    fn resize(&mut self, bytes: u64) -> io::Result<()> {
        self.inner.resize(bytes)
    }
}
