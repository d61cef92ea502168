//! The append-only log on the virtio-blk disk (layout in the `kv` module docs).
//!
//! Records are packed byte after byte into the active half. The sectors holding
//! the tail are kept in memory, so an append is one write of one or two sectors
//! followed by a flush. Reads fetch the one or two sectors holding a record and
//! check it against the index entry that led there and against its checksum.
//! When a record does not fit, [`Log::compact`] copies the live records into
//! the other half and commits the switch by rewriting the superblock.

use core::ops::Range;

use super::index::{Entry, Index};
use super::proto::MAX_KEY;
use crate::cmdline::Bytes;
use crate::crc32::Crc32;
use crate::dma;
use crate::virtio::blk::{Blk, S_OK};

const SECTOR: usize = crate::virtio::blk::SECTOR as usize;
const SB_MAGIC: &[u8; 8] = b"RPKVLOG1";
const SB_VERSION: u32 = 1;
const SB_LEN: usize = 28;
const REC_MAGIC: u8 = 0xa7;
/// Bytes in a record header.
pub const REC_HDR: usize = 16;
pub const KIND_PUT: u8 = 1;
pub const KIND_DEL: u8 = 2;
/// Smallest log half (256 KiB): room for the most live keys with the longest
/// values, plus one more record, so a compaction always makes room.
pub const MIN_HALF_SECTORS: u64 = 512;
/// Largest log half (1 GiB): offsets are 32-bit.
pub const MAX_HALF_SECTORS: u64 = 1 << 21;
/// Buffer for scanning the log at start and for writing compacted records.
const CHUNK: usize = 64 << 10;

/// A record as read back from the log.
pub struct Record<'a> {
    pub kind: u8,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// How the scan at start ended.
pub enum End {
    /// At a position holding no record of this generation (zeros, older data).
    Clean,
    /// At a record of this generation that is damaged (a torn write, or worse).
    Damaged(&'static str),
}

/// What [`Log::open`] found.
pub struct Opened {
    /// No superblock was found; a new, empty log was written.
    pub formatted: bool,
    /// Valid records in the active half.
    pub records: u32,
    pub end: End,
}

/// Failures that leave the log as it was.
pub enum LogError {
    /// The record does not fit in the rest of the active half.
    NoRoom,
    /// The disk refused a request (virtio-blk status).
    Io(u8),
}

/// Statistics of one compaction.
pub struct Compacted {
    pub records_before: u32,
    pub records_after: u32,
    pub bytes_after: u32,
}

/// The log.
pub struct Log {
    dev: Blk,
    /// Sector of the superblock; the halves follow it.
    base: u64,
    half_sectors: u64,
    generation: u32,
    /// Byte offset of the next record in the active half.
    tail: u32,
    /// Records in the active half (the next record's sequence number).
    records: u32,
    /// The sector holding `tail` and the one after it, as on disk.
    tail_buf: &'static mut [u8],
    /// Sectors read for one record (and the superblock).
    rec_buf: &'static mut [u8],
    chunk: &'static mut [u8],
}

/// A record header.
struct Header {
    kind: u8,
    klen: u8,
    // Deliberate latent bug (see the `kv` module docs): values may be MAX_VALUE
    // = 256 bytes long, which one byte cannot hold; a 256-byte value is recorded
    // as 0 bytes long.
    vlen: u8,
    generation: u32,
    seq: u32,
}

impl Header {
    fn parse(b: &[u8]) -> Option<Header> {
        (b[0] == REC_MAGIC).then(|| Header {
            kind: b[1],
            klen: b[2],
            vlen: b[3],
            generation: le32(b, 4),
            seq: le32(b, 8),
        })
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = REC_MAGIC;
        out[1] = self.kind;
        out[2] = self.klen;
        out[3] = self.vlen;
        out[4..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
    }

    /// Length of the record this header starts.
    fn record_len(&self) -> usize {
        REC_HDR + usize::from(self.klen) + usize::from(self.vlen)
    }
}

/// Encode a record at the start of `out`; returns its length.
fn encode(out: &mut [u8], generation: u32, seq: u32, kind: u8, key: &[u8], value: &[u8]) -> usize {
    let hdr = Header {
        kind,
        klen: key.len() as u8,
        vlen: value.len() as u8,
        generation,
        seq,
    };
    hdr.write(out);
    let body = &mut out[REC_HDR..REC_HDR + key.len() + value.len()];
    body[..key.len()].copy_from_slice(key);
    body[key.len()..].copy_from_slice(value);
    let crc = record_crc(&out[..REC_HDR + key.len() + value.len()]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    hdr.record_len()
}

/// CRC-32 of a whole record, its checksum field left out.
fn record_crc(record: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(&record[..12]);
    crc.update(&record[REC_HDR..]);
    crc.finish()
}

impl Log {
    /// Open the log whose superblock is at sector `base`, or write a new one there
    /// with halves of `half_sectors` if there is none, and pass every valid record
    /// of the active half to `each` with its offset, in order.
    pub fn open(
        dev: Blk,
        base: u64,
        half_sectors: u64,
        mut each: impl FnMut(u32, &Record),
    ) -> (Log, Opened) {
        let mut log = Log {
            dev,
            base,
            half_sectors,
            generation: 0,
            tail: 0,
            records: 0,
            tail_buf: dma::alloc(2 * SECTOR, 4096),
            rec_buf: dma::alloc(2 * SECTOR, 4096),
            chunk: dma::alloc(CHUNK, 4096),
        };
        let formatted = !log.read_superblock();
        if formatted {
            log.write_superblock(0);
        }
        let need = base + 1 + 2 * log.half_sectors;
        if need > log.dev.capacity() {
            crate::fatal!(
                "kv: the log needs {} sectors, the disk has {}",
                need,
                log.dev.capacity()
            );
        }
        let end = log.scan(&mut each);
        let first = log.tail as usize / SECTOR;
        log.load_tail(first);
        let records = log.records;
        (
            log,
            Opened {
                formatted,
                records,
                end,
            },
        )
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Byte offset of the next record in the active half.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Records in the active half.
    pub fn records(&self) -> u32 {
        self.records
    }

    pub fn half_sectors(&self) -> u64 {
        self.half_sectors
    }

    fn half_bytes(&self) -> usize {
        self.half_sectors as usize * SECTOR
    }

    /// First sector of half `generation & 1`.
    fn half_start(&self, generation: u32) -> u64 {
        self.base + 1 + u64::from(generation & 1) * self.half_sectors
    }

    /// Read the superblock; false if there is none. A damaged one is fatal.
    fn read_superblock(&mut self) -> bool {
        let sb = &mut self.rec_buf[..SECTOR];
        let status = self.dev.read(self.base, sb);
        if status != S_OK {
            crate::fatal!(
                "kv: cannot read the superblock at sector {}: status={}",
                self.base,
                status
            );
        }
        if &sb[..8] != SB_MAGIC {
            return false;
        }
        let mut crc = Crc32::new();
        crc.update(&sb[..SB_LEN - 4]);
        if crc.finish() != le32(sb, SB_LEN - 4) || le32(sb, 8) != SB_VERSION {
            crate::fatal!(
                "kv: the superblock at sector {} is damaged or of another version",
                self.base
            );
        }
        let half_sectors = u64::from(le32(sb, 16)) | u64::from(le32(sb, 20)) << 32;
        if !(MIN_HALF_SECTORS..=MAX_HALF_SECTORS).contains(&half_sectors) {
            crate::fatal!(
                "kv: the superblock at sector {} gives halves of {} sectors (need {}-{})",
                self.base,
                half_sectors,
                MIN_HALF_SECTORS,
                MAX_HALF_SECTORS
            );
        }
        self.generation = le32(sb, 12);
        self.half_sectors = half_sectors;
        true
    }

    /// Write and flush the superblock naming `generation` as the live one.
    fn write_superblock(&mut self, generation: u32) {
        let sb = &mut self.rec_buf[..SECTOR];
        sb.fill(0);
        sb[..8].copy_from_slice(SB_MAGIC);
        sb[8..12].copy_from_slice(&SB_VERSION.to_le_bytes());
        sb[12..16].copy_from_slice(&generation.to_le_bytes());
        sb[16..24].copy_from_slice(&self.half_sectors.to_le_bytes());
        let mut crc = Crc32::new();
        crc.update(&sb[..SB_LEN - 4]);
        sb[SB_LEN - 4..SB_LEN].copy_from_slice(&crc.finish().to_le_bytes());
        let status = self.dev.write(self.base, sb);
        let status = if status == S_OK { self.flush() } else { status };
        if status != S_OK {
            crate::fatal!(
                "kv: cannot write the superblock at sector {}: status={}",
                self.base,
                status
            );
        }
        self.generation = generation;
    }

    fn flush(&mut self) -> u8 {
        if self.dev.has_flush() {
            self.dev.flush()
        } else {
            S_OK
        }
    }

    /// Walk the active half from its start; sets `tail` and `records`.
    fn scan(&mut self, each: &mut impl FnMut(u32, &Record)) -> End {
        let half = self.half_bytes();
        let start = self.half_start(self.generation);
        // The chunk holds the half's bytes [loaded.start, loaded.end).
        let mut loaded = 0..0;
        let mut off = 0usize;
        let mut seq = 0u32;
        let end = loop {
            if off + REC_HDR > half {
                break End::Clean;
            }
            self.ensure_loaded(start, &mut loaded, off, REC_HDR, half);
            let at = off - loaded.start;
            let hdr = match Header::parse(&self.chunk[at..]) {
                Some(h) if h.generation == self.generation && h.seq == seq => h,
                _ => break End::Clean,
            };
            let klen = usize::from(hdr.klen);
            if !(hdr.kind == KIND_PUT || hdr.kind == KIND_DEL)
                || klen == 0
                || klen > MAX_KEY
                || (hdr.kind == KIND_DEL && hdr.vlen != 0)
            {
                break End::Damaged("bad record header");
            }
            let len = hdr.record_len();
            if off + len > half {
                break End::Damaged("record runs past the end of the log");
            }
            self.ensure_loaded(start, &mut loaded, off, len, half);
            let at = off - loaded.start;
            let rec = &self.chunk[at..at + len];
            if record_crc(rec) != le32(rec, 12) {
                break End::Damaged("bad checksum");
            }
            let record = Record {
                kind: hdr.kind,
                key: &rec[REC_HDR..REC_HDR + klen],
                value: &rec[REC_HDR + klen..],
            };
            each(off as u32, &record);
            off += len;
            seq += 1;
        };
        self.tail = off as u32;
        self.records = seq;
        end
    }

    /// Make the chunk hold the half's bytes [off, off + len), reading from `off`'s
    /// sector on if it does not. `half` is the half's length in bytes.
    fn ensure_loaded(
        &mut self,
        start: u64,
        loaded: &mut Range<usize>,
        off: usize,
        len: usize,
        half: usize,
    ) {
        if off >= loaded.start && off + len <= loaded.end {
            return;
        }
        let from = off / SECTOR * SECTOR;
        let n = CHUNK.min(half - from);
        let status = self
            .dev
            .read(start + (from / SECTOR) as u64, &mut self.chunk[..n]);
        if status != S_OK {
            crate::fatal!(
                "kv: cannot read the log at sector {}: status={}",
                start + (from / SECTOR) as u64,
                status
            );
        }
        *loaded = from..from + n;
    }

    /// Fill the tail buffer with sector `first` of the active half and the one
    /// after it (zeros past the end of the half).
    fn load_tail(&mut self, first: usize) {
        self.tail_buf.fill(0);
        let sectors = (self.half_bytes() / SECTOR).saturating_sub(first).min(2);
        if sectors == 0 {
            return;
        }
        let start = self.half_start(self.generation) + first as u64;
        let status = self.dev.read(start, &mut self.tail_buf[..sectors * SECTOR]);
        if status != S_OK {
            crate::fatal!(
                "kv: cannot read the log tail at sector {}: status={}",
                start,
                status
            );
        }
    }

    /// Append a record, write it and flush; returns its offset.
    pub fn append(&mut self, kind: u8, key: &[u8], value: &[u8]) -> Result<u32, LogError> {
        let need = REC_HDR + key.len() + value.len();
        let offset = self.tail;
        if offset as usize + need > self.half_bytes() {
            return Err(LogError::NoRoom);
        }
        let at = offset as usize % SECTOR;
        let len = encode(
            &mut self.tail_buf[at..],
            self.generation,
            self.records,
            kind,
            key,
            value,
        );
        let sectors = (at + need).div_ceil(SECTOR);
        let first = self.half_start(self.generation) + u64::from(offset) / SECTOR as u64;
        let status = self.dev.write(first, &self.tail_buf[..sectors * SECTOR]);
        let status = if status == S_OK { self.flush() } else { status };
        if status != S_OK {
            // The tail stays put: the next record overwrites whatever reached the disk.
            return Err(LogError::Io(status));
        }
        self.tail = offset + len as u32;
        self.records += 1;
        if self.tail as usize / SECTOR > offset as usize / SECTOR {
            self.tail_buf.copy_within(SECTOR.., 0);
            self.tail_buf[SECTOR..].fill(0);
        }
        Ok(offset)
    }

    /// The value of the record `e` points at, checked.
    pub fn read_value(&mut self, e: &Entry) -> Result<&[u8], LogError> {
        let start = self.half_start(self.generation);
        let range = read_record(&mut self.dev, self.rec_buf, start, self.generation, e)?;
        Ok(&self.rec_buf[range])
    }

    /// Copy every live record (those `index` points at) into the other half,
    /// switch to it and repoint the index. Failures are fatal: the index has
    /// been partly repointed by then.
    pub fn compact(&mut self, index: &mut Index) -> Compacted {
        let records_before = self.records;
        let old_start = self.half_start(self.generation);
        let generation = self.generation.wrapping_add(1);
        let new_start = self.half_start(generation);
        // The chunk holds the new half's bytes from `flushed` (a sector boundary) to `pos`.
        let mut flushed = 0usize;
        let mut pos = 0usize;
        let mut seq = 0u32;
        for e in index.entries_mut() {
            let value =
                match read_record(&mut self.dev, self.rec_buf, old_start, self.generation, e) {
                    Ok(r) => r,
                    Err(_) => {
                        crate::fatal!("kv: compaction cannot read the record at byte {}", e.offset)
                    }
                };
            let need = REC_HDR + e.key().len() + value.len();
            if pos + need > self.half_bytes() {
                crate::fatal!("kv: compaction: the live records do not fit in a log half");
            }
            if pos + need - flushed > CHUNK {
                let full = (pos - flushed) / SECTOR * SECTOR;
                self.write_new(new_start, flushed, full);
                self.chunk.copy_within(full..pos - flushed, 0);
                flushed += full;
            }
            let len = encode(
                &mut self.chunk[pos - flushed..],
                generation,
                seq,
                KIND_PUT,
                e.key(),
                &self.rec_buf[value],
            );
            e.offset = pos as u32;
            pos += len;
            seq += 1;
        }
        // The last, partial sector: zeros after the tail.
        let used = (pos - flushed).div_ceil(SECTOR) * SECTOR;
        self.chunk[pos - flushed..used].fill(0);
        self.write_new(new_start, flushed, used);
        let tail_sector = (pos - flushed) / SECTOR * SECTOR;
        self.tail_buf.fill(0);
        let keep = (used - tail_sector).min(SECTOR);
        self.tail_buf[..keep].copy_from_slice(&self.chunk[tail_sector..tail_sector + keep]);
        // Commit: once the records are durable, the superblock names the new
        // generation (write_superblock flushes it in turn).
        let status = self.flush();
        if status != S_OK {
            crate::fatal!("kv: compaction: flush failed status={}", status);
        }
        self.write_superblock(generation);
        self.tail = pos as u32;
        self.records = seq;
        Compacted {
            records_before,
            records_after: seq,
            bytes_after: pos as u32,
        }
    }

    /// Write the chunk's first `len` bytes (whole sectors) at byte `at` of the half
    /// starting at sector `start`.
    fn write_new(&mut self, start: u64, at: usize, len: usize) {
        if len == 0 {
            return;
        }
        let sector = start + (at / SECTOR) as u64;
        let status = self.dev.write(sector, &self.chunk[..len]);
        if status != S_OK {
            crate::fatal!(
                "kv: compaction: write of sector {} failed status={}",
                sector,
                status
            );
        }
    }
}

/// Read the record `e` points at (in the half starting at sector `start`) into
/// `buf`; returns the range of its value there. A record that is not the PUT of
/// `e`'s key, or that fails its checksum, breaks the store's invariants: fatal.
fn read_record(
    dev: &mut Blk,
    buf: &mut [u8],
    start: u64,
    generation: u32,
    e: &Entry,
) -> Result<Range<usize>, LogError> {
    let off = e.offset as usize;
    let key = e.key();
    let len = REC_HDR + key.len() + usize::from(e.vlen);
    let first = off / SECTOR;
    let sectors = (off + len).div_ceil(SECTOR) - first;
    let status = dev.read(start + first as u64, &mut buf[..sectors * SECTOR]);
    if status != S_OK {
        return Err(LogError::Io(status));
    }
    let at = off % SECTOR;
    let rec = &buf[at..at + len];
    let matches = Header::parse(rec).is_some_and(|h| {
        h.kind == KIND_PUT && h.generation == generation && usize::from(h.klen) == key.len()
    }) && &rec[REC_HDR..REC_HDR + key.len()] == key;
    if !matches {
        crate::kv_panic!(
            "the index points key '{}' at log byte {} of generation {}, which holds no PUT record of it",
            Bytes(key),
            off,
            generation
        );
    }
    let (stored, computed) = (le32(rec, 12), record_crc(rec));
    if stored != computed {
        crate::kv_panic!(
            "log record {} at byte {} of generation {} (key '{}', {} bytes) fails its checksum: stored {:08x}, computed {:08x}",
            le32(rec, 8),
            off,
            generation,
            Bytes(key),
            len,
            stored,
            computed
        );
    }
    Ok(at + REC_HDR + key.len()..at + len)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
