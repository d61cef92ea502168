//! The segment index.
//!
//! ```text
//! 0   8 bytes  magic "RPRSCIDX"
//! 8   u32      format version (1)
//! 12  u32      body length N
//! 16  N bytes  body:
//!              varint first seq (must equal the segment's)
//!              varint covered bytes (the segment length this index describes)
//!              u8     closed (1 once the writer closed the segment)
//!              varint records, varint last seq, varint next seq, varint first VM time,
//!                     varint last VM time (seqs and times 0 when there are no records)
//!              varint entry count, then per entry: varint seq | varint VM time | varint offset
//! 16+N u32     CRC32 of bytes 0..16+N
//! ```
//!
//! Entries are sparse (the first record, then one at least every
//! [`ENTRY_EVERY_BYTES`] of segment) and sorted by seq, VM time and offset alike. An index
//! whose covered bytes are fewer than the segment's length is *stale* (the writer appended
//! since): readers use it for the part it covers and scan the rest.

use crate::codec::{DecodeError, Decoder, Encoder};

/// The magic bytes opening an index.
pub const INDEX_MAGIC: [u8; 8] = *b"RPRSCIDX";
/// The index format version this build writes and reads.
pub const INDEX_VERSION: u32 = 1;
/// Segment bytes between index entries, at most.
pub const ENTRY_EVERY_BYTES: u64 = 64 << 10;
/// Most entries an index may hold.
pub const MAX_ENTRIES: u64 = 4 << 20;

/// One index entry: the record with `seq` starts at `offset` in the segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IndexEntry {
    /// The record's seq.
    pub seq: u64,
    /// Its VM time.
    pub vm_time_ns: u64,
    /// Its offset in the segment file.
    pub offset: u64,
}

/// The summary of the records a segment holds up to `covered_bytes`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IndexSummary {
    /// Records.
    pub records: u64,
    /// The last record's seq.
    pub last_seq: u64,
    /// The seq a record after the last would get (`last_seq + 1`, or past the events a
    /// closing `Gap` marker stands for).
    pub next_seq: u64,
    /// The first record's VM time.
    pub first_vm_ns: u64,
    /// The last record's VM time.
    pub last_vm_ns: u64,
}

/// A segment index.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SegmentIndex {
    /// The segment's first seq.
    pub first_seq: u64,
    /// The segment length described.
    pub covered_bytes: u64,
    /// Whether the segment is closed (nothing more will be appended).
    pub closed: bool,
    /// The records up to `covered_bytes`.
    pub summary: IndexSummary,
    /// Sparse entries.
    pub entries: Vec<IndexEntry>,
}

impl SegmentIndex {
    /// The encoded index, CRC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Encoder::new();
        body.var(self.first_seq);
        body.var(self.covered_bytes);
        body.u8(u8::from(self.closed));
        body.var(self.summary.records);
        body.var(self.summary.last_seq);
        body.var(self.summary.next_seq);
        body.var(self.summary.first_vm_ns);
        body.var(self.summary.last_vm_ns);
        body.var(self.entries.len() as u64);
        for e in &self.entries {
            body.var(e.seq);
            body.var(e.vm_time_ns);
            body.var(e.offset);
        }
        let mut out = Encoder::new();
        out.raw(&INDEX_MAGIC);
        out.u32(INDEX_VERSION);
        out.u32(body.buf.len() as u32);
        out.raw(&body.buf);
        let crc = crc32fast::hash(&out.buf);
        out.u32(crc);
        out.buf
    }

    /// Decodes an index body (CRC already checked).
    pub fn decode_body(body: &[u8]) -> Result<SegmentIndex, DecodeError> {
        let mut d = Decoder::new(body);
        let first_seq = d.var("first seq")?;
        let covered_bytes = d.var("covered bytes")?;
        let at = d.pos();
        let closed = match d.u8("closed flag")? {
            0 => false,
            1 => true,
            other => {
                return Err(DecodeError {
                    offset: at,
                    problem: format!("bad closed flag {other}"),
                })
            }
        };
        let summary = IndexSummary {
            records: d.var("record count")?,
            last_seq: d.var("last seq")?,
            next_seq: d.var("next seq")?,
            first_vm_ns: d.var("first VM time")?,
            last_vm_ns: d.var("last VM time")?,
        };
        let at = d.pos();
        let n = d.var("entry count")?;
        // Each entry takes at least 3 bytes: refuse counts the body cannot hold.
        if n > MAX_ENTRIES || n.saturating_mul(3) > d.remaining() as u64 {
            return Err(DecodeError {
                offset: at,
                problem: format!("{n} entries do not fit in the index"),
            });
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let at = d.pos();
            let e = IndexEntry {
                seq: d.var("entry seq")?,
                vm_time_ns: d.var("entry VM time")?,
                offset: d.var("entry offset")?,
            };
            if let Some(prev) = entries.last() {
                let prev: &IndexEntry = prev;
                if e.seq <= prev.seq || e.offset <= prev.offset || e.vm_time_ns < prev.vm_time_ns {
                    return Err(DecodeError {
                        offset: at,
                        problem: format!("entry for seq {} is out of order", e.seq),
                    });
                }
            }
            entries.push(e);
        }
        d.finish("the index")?;
        Ok(SegmentIndex {
            first_seq,
            covered_bytes,
            closed,
            summary,
            entries,
        })
    }

    /// The last entry at or before VM time `t` (the place to start scanning for `t`).
    pub fn entry_for_time(&self, t: u64) -> Option<&IndexEntry> {
        let i = self.entries.partition_point(|e| e.vm_time_ns < t);
        // Entries before `i` are strictly earlier; several records may share a time, so
        // start from the last strictly earlier one.
        i.checked_sub(1).and_then(|j| self.entries.get(j))
    }

    /// The last entry at or before seq `seq`.
    pub fn entry_for_seq(&self, seq: u64) -> Option<&IndexEntry> {
        let i = self.entries.partition_point(|e| e.seq <= seq);
        i.checked_sub(1).and_then(|j| self.entries.get(j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookups() {
        let idx = SegmentIndex {
            first_seq: 100,
            covered_bytes: 999_999,
            closed: true,
            summary: IndexSummary {
                records: 50,
                last_seq: 149,
                next_seq: 150,
                first_vm_ns: 5,
                last_vm_ns: 5000,
            },
            entries: vec![
                IndexEntry {
                    seq: 100,
                    vm_time_ns: 5,
                    offset: 60,
                },
                IndexEntry {
                    seq: 120,
                    vm_time_ns: 2000,
                    offset: 70_000,
                },
                IndexEntry {
                    seq: 140,
                    vm_time_ns: 2000,
                    offset: 140_000,
                },
            ],
        };
        let bytes = idx.encode();
        let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let back = SegmentIndex::decode_body(&bytes[16..16 + n]).unwrap();
        assert_eq!(back, idx);
        assert_eq!(idx.entry_for_time(0), None);
        assert_eq!(idx.entry_for_time(2000).unwrap().seq, 100);
        assert_eq!(idx.entry_for_time(2001).unwrap().seq, 140);
        assert_eq!(idx.entry_for_seq(99), None);
        assert_eq!(idx.entry_for_seq(120).unwrap().seq, 120);
        assert_eq!(idx.entry_for_seq(139).unwrap().seq, 120);

        let mut bad = idx.clone();
        bad.entries.swap(0, 1);
        let bytes = bad.encode();
        assert!(SegmentIndex::decode_body(&bytes[16..16 + n]).is_err());
    }
}
