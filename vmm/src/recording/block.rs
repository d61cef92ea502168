//! The block tap: what each request returned to the guest (inputs: status, and the data of
//! reads) and what the guest wrote (outputs: sector, length, hash, data).
//!
//! When no buffer keeps block data (all are in compact block mode), the tap hashes the
//! data where it is instead of copying it for the recorder: the capture is the same (the
//! compact mode stores only the hash), without a copy of every request's data, and the
//! events take little room in the buffers' rings.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use devices::backends::{BlockBackend, IoDirection};
use replay::{BlkData, BlkRequestType, EventKind, Hash128, SourceId};

use super::Taps;

/// Sector size of block events.
pub(crate) const SECTOR: u64 = 512;
/// virtio-blk status byte of a request that succeeded.
pub(crate) const STATUS_OK: u8 = 0;
/// virtio-blk status byte of a request that failed.
pub(crate) const STATUS_IOERR: u8 = 1;

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
        data: impl FnOnce(bool) -> BlkData,
    ) {
        self.taps
            .record_block(self.source, |keep| EventKind::BlkCompletion {
                request,
                sector: offset / SECTOR,
                len: u32::try_from(len).unwrap_or(u32::MAX),
                status: if result.is_ok() {
                    STATUS_OK
                } else {
                    STATUS_IOERR
                },
                data: if result.is_ok() {
                    data(keep)
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
            |keep| {
                if keep {
                    BlkData::Full(buf.to_vec())
                } else {
                    BlkData::Hash(Hash128::of(buf))
                }
            },
        );
        result
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let result = self.inner.write_at(offset, buf);
        if result.is_ok() {
            self.taps.record_block(self.source, |keep| {
                if keep {
                    EventKind::blk_write(offset / SECTOR, buf.to_vec())
                } else {
                    EventKind::BlkWrite {
                        sector: offset / SECTOR,
                        len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
                        hash: Hash128::of(buf),
                        data: None,
                    }
                }
            });
        }
        self.completed(
            BlkRequestType::Write,
            offset,
            buf.len() as u64,
            &result,
            |_| BlkData::None,
        );
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.completed(BlkRequestType::Flush, 0, 0, &result, |_| BlkData::None);
        result
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let result = self.inner.discard(offset, len);
        self.completed(BlkRequestType::Discard, offset, len, &result, |_| {
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use replay::capture::format::header::BlockMode;
    use replay::capture::reader::CaptureReader;
    use replay::{BufferConfig, Recorder, SourceInfo, SourceTable};

    use super::*;

    /// A disk in memory.
    struct MemDisk(Vec<u8>);

    impl BlockBackend for MemDisk {
        fn capacity(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let at = offset as usize;
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
            let at = offset as usize;
            self.0[at..at + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn discard(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
            Ok(())
        }
        fn device_id(&self) -> &str {
            "d0"
        }
    }

    struct Clock;

    impl replay::Clock for Clock {
        fn vm_time_ns(&self) -> u64 {
            1
        }
        fn progress(&self) -> u64 {
            0
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("reprise-block-tap-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Records a write, a read and a flush through the tap into one buffer in `mode`;
    /// returns the block events of the capture.
    fn record(dir: &Path, mode: BlockMode) -> Vec<EventKind> {
        let sources = SourceTable::new(vec![
            SourceInfo::serial(0, "serial"),
            SourceInfo::blk(1, "d0"),
        ])
        .expect("sources");
        let mut cfg = BufferConfig::new("all", dir.to_path_buf());
        cfg.block_mode = mode;
        let recorder = Recorder::start(
            sources,
            vec![cfg],
            Arc::new(Clock),
            Arc::new(|_: &str| false),
        )
        .expect("recorder");
        let taps = Taps::new();
        taps.start(recorder, mode == BlockMode::Full);
        let mut disk = TappedBlock::new(
            Box::new(MemDisk(vec![0; 1 << 20])),
            SourceId(1),
            taps.clone(),
        );
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        disk.write_at(4096, &data).expect("write");
        let mut back = vec![0; 8192];
        disk.read_at(4096, &mut back).expect("read");
        assert_eq!(back, data);
        disk.flush().expect("flush");
        taps.stop().expect("running").stop().expect("stop");
        let reader = CaptureReader::open(dir).expect("capture");
        reader
            .events(&Default::default())
            .expect("events")
            .map(|r| {
                r.unwrap_or_else(|p| panic!("capture problem: {p}"))
                    .event
                    .kind
            })
            .filter(|k| k.class() == replay::KindClass::Blk)
            .collect()
    }

    #[test]
    fn compact_captures_hold_what_full_ones_do_as_hashes() {
        let (full_dir, compact_dir) = (scratch("full"), scratch("compact"));
        let full = record(&full_dir, BlockMode::Full);
        let compact = record(&compact_dir, BlockMode::Compact);
        let _ = std::fs::remove_dir_all(&full_dir);
        let _ = std::fs::remove_dir_all(&compact_dir);
        // Write, its completion, the read's completion, the flush's.
        assert_eq!(full.len(), 4, "{full:?}");
        assert!(matches!(&full[0], EventKind::BlkWrite { data: Some(d), .. } if d.len() == 8192));
        assert!(matches!(
            &full[2],
            EventKind::BlkCompletion { data: BlkData::Full(d), .. } if d.len() == 8192
        ));
        let expected: Vec<EventKind> = full.iter().map(EventKind::to_compact).collect();
        assert_eq!(compact, expected);
    }
}
