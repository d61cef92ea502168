//! The block tap: what each request returned to the guest (inputs: status, and the data of
//! reads) and what the guest wrote (outputs: sector, length, hash, data).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use devices::backends::{BlockBackend, IoDirection};
use replay::{BlkData, BlkRequestType, EventKind, SourceId};

use super::Taps;

/// Sector size of block events.
const SECTOR: u64 = 512;
/// virtio-blk status bytes.
const STATUS_OK: u8 = 0;
const STATUS_IOERR: u8 = 1;

/// A block backend whose requests are recorded.
pub struct TappedBlock {
    inner: Box<dyn BlockBackend>,
    source: SourceId,
    taps: Arc<Taps>,
}

impl TappedBlock {
    /// Wraps `inner`, recording as `source`.
    pub fn new(inner: Box<dyn BlockBackend>, source: SourceId, taps: Arc<Taps>) -> Self {
        TappedBlock {
            inner,
            source,
            taps,
        }
    }

    fn completed<T>(
        &self,
        request: BlkRequestType,
        offset: u64,
        len: u64,
        result: &io::Result<T>,
        data: impl FnOnce() -> BlkData,
    ) {
        self.taps.record(self.source, || EventKind::BlkCompletion {
            request,
            sector: offset / SECTOR,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            status: if result.is_ok() {
                STATUS_OK
            } else {
                STATUS_IOERR
            },
            data: if result.is_ok() {
                data()
            } else {
                BlkData::None
            },
        });
    }
}

impl BlockBackend for TappedBlock {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    fn read_only(&self) -> bool {
        self.inner.read_only()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let result = self.inner.read_at(offset, buf);
        self.completed(
            BlkRequestType::Read,
            offset,
            buf.len() as u64,
            &result,
            || BlkData::Full(buf.to_vec()),
        );
        result
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let result = self.inner.write_at(offset, buf);
        if result.is_ok() {
            self.taps.record(self.source, || {
                EventKind::blk_write(offset / SECTOR, buf.to_vec())
            });
        }
        self.completed(
            BlkRequestType::Write,
            offset,
            buf.len() as u64,
            &result,
            || BlkData::None,
        );
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.completed(BlkRequestType::Flush, 0, 0, &result, || BlkData::None);
        result
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let result = self.inner.discard(offset, len);
        self.completed(BlkRequestType::Discard, offset, len, &result, || {
            BlkData::None
        });
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
