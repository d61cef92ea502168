//! The segment header.
//!
//! ```text
//! 0   8 bytes  magic "RPRSCAPT"
//! 8   u32      format version (1)
//! 12  u32      body length N
//! 16  N bytes  body:
//!              string  buffer name
//!              varint  first seq (the seq of the segment's first record)
//!              u8      start: 0 recording started | 1 snapshot (+ string id) | 2 continuation
//!              varint  session wall clock (Unix ns when the recording session started)
//!              varint  session VM time (VM ns then)
//!              varint  anchor wall clock (Unix ns when this segment was opened)
//!              varint  anchor VM time (VM ns then)
//!              u8      block mode: 0 full | 1 compact
//!              varint  source count, then per source:
//!                      u16 id | u8 class (0 net, 1 blk, 2 serial) | string name |
//!                      u8 has MAC (+ 6 bytes)
//! 16+N u32     CRC32 of bytes 0..16+N
//! ```
//!
//! VM time maps to wall-clock time through the anchor of the segment holding the event:
//! `unix_ns = anchor_unix_ns + (vm_time_ns - anchor_vm_ns)` (paused time is excluded from
//! VM time, so the anchor nearest to the event gives the best mapping).

use crate::codec::{DecodeError, Decoder, Encoder};
use crate::event::KindClass;
use crate::event::SourceId;
use crate::limits::{MAX_NAME_BYTES, MAX_SNAPSHOT_ID_BYTES, MAX_SOURCES};
use crate::source::{SourceInfo, SourceTable};

/// The magic bytes opening a segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RPRSCAPT";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Bytes before the header body (magic, version, body length).
pub const PREFIX_BYTES: usize = 16;

/// Why a segment starts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SegmentStart {
    /// A recording session started (its first record is `RecordingStarted`).
    RecordingStarted,
    /// A VM snapshot was taken (its first record is `SnapshotTaken { id }`): this segment
    /// and the ones after it replay from that snapshot.
    Snapshot(String),
    /// The previous segment reached its size limit.
    Continuation,
}

impl SegmentStart {
    /// The snapshot id, for a segment starting at a snapshot.
    pub fn snapshot(&self) -> Option<&str> {
        match self {
            SegmentStart::Snapshot(id) => Some(id),
            _ => None,
        }
    }
}

/// How block data is stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum BlockMode {
    /// Read and write data are stored.
    #[default]
    Full,
    /// Only hashes of block data are stored.
    Compact,
}

/// A segment header.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SegmentHeader {
    /// The buffer's name.
    pub buffer: String,
    /// The seq of the segment's first record.
    pub first_seq: u64,
    /// Why the segment starts.
    pub start: SegmentStart,
    /// Unix ns when the recording session started.
    pub session_unix_ns: u64,
    /// VM ns when the recording session started.
    pub session_vm_ns: u64,
    /// Unix ns when this segment was opened.
    pub anchor_unix_ns: u64,
    /// VM ns when this segment was opened.
    pub anchor_vm_ns: u64,
    /// How block data is stored.
    pub block_mode: BlockMode,
    /// The devices.
    pub sources: SourceTable,
}

impl SegmentHeader {
    /// Wall-clock Unix ns for VM time `vm_ns`, by this segment's anchor.
    pub fn unix_ns_at(&self, vm_ns: u64) -> u64 {
        if vm_ns >= self.anchor_vm_ns {
            self.anchor_unix_ns
                .saturating_add(vm_ns - self.anchor_vm_ns)
        } else {
            self.anchor_unix_ns
                .saturating_sub(self.anchor_vm_ns - vm_ns)
        }
    }

    /// The encoded header, CRC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Encoder::new();
        body.str(&self.buffer);
        body.var(self.first_seq);
        match &self.start {
            SegmentStart::RecordingStarted => body.u8(0),
            SegmentStart::Snapshot(id) => {
                body.u8(1);
                body.str(id);
            }
            SegmentStart::Continuation => body.u8(2),
        }
        body.var(self.session_unix_ns);
        body.var(self.session_vm_ns);
        body.var(self.anchor_unix_ns);
        body.var(self.anchor_vm_ns);
        body.u8(match self.block_mode {
            BlockMode::Full => 0,
            BlockMode::Compact => 1,
        });
        body.var(self.sources.len() as u64);
        for s in self.sources.iter() {
            body.u16(s.id.0);
            body.u8(match s.class {
                KindClass::Net => 0,
                KindClass::Blk => 1,
                _ => 2,
            });
            body.str(&s.name);
            match s.mac {
                Some(m) => {
                    body.u8(1);
                    body.raw(&m);
                }
                None => body.u8(0),
            }
        }
        let mut out = Encoder::new();
        out.raw(&SEGMENT_MAGIC);
        out.u32(SEGMENT_VERSION);
        out.u32(body.buf.len() as u32);
        out.raw(&body.buf);
        let crc = crc32fast::hash(&out.buf);
        out.u32(crc);
        out.buf
    }

    /// Decodes a header body (the bytes after the 16-byte prefix, CRC already checked).
    pub fn decode_body(body: &[u8]) -> Result<SegmentHeader, DecodeError> {
        let mut d = Decoder::new(body);
        let buffer = d.str(MAX_NAME_BYTES, "buffer name")?.to_string();
        let first_seq = d.var("first seq")?;
        let at = d.pos();
        let start = match d.u8("segment start")? {
            0 => SegmentStart::RecordingStarted,
            1 => SegmentStart::Snapshot(d.str(MAX_SNAPSHOT_ID_BYTES, "snapshot id")?.to_string()),
            2 => SegmentStart::Continuation,
            other => {
                return Err(DecodeError {
                    offset: at,
                    problem: format!("unknown segment start {other}"),
                })
            }
        };
        let session_unix_ns = d.var("session wall clock")?;
        let session_vm_ns = d.var("session VM time")?;
        let anchor_unix_ns = d.var("anchor wall clock")?;
        let anchor_vm_ns = d.var("anchor VM time")?;
        let at = d.pos();
        let block_mode = match d.u8("block mode")? {
            0 => BlockMode::Full,
            1 => BlockMode::Compact,
            other => {
                return Err(DecodeError {
                    offset: at,
                    problem: format!("unknown block mode {other}"),
                })
            }
        };
        let at = d.pos();
        let count = d.var("source count")?;
        if count > MAX_SOURCES as u64 {
            return Err(DecodeError {
                offset: at,
                problem: format!("{count} sources, over the limit of {MAX_SOURCES}"),
            });
        }
        let mut sources = Vec::new();
        for _ in 0..count {
            let id = SourceId(d.u16("source id")?);
            let at = d.pos();
            let class = match d.u8("source class")? {
                0 => KindClass::Net,
                1 => KindClass::Blk,
                2 => KindClass::Serial,
                other => {
                    return Err(DecodeError {
                        offset: at,
                        problem: format!("unknown source class {other}"),
                    })
                }
            };
            let name = d.str(MAX_NAME_BYTES, "source name")?.to_string();
            let at = d.pos();
            let mac = match d.u8("MAC flag")? {
                0 => None,
                1 => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(d.raw(6, "MAC")?);
                    Some(m)
                }
                other => {
                    return Err(DecodeError {
                        offset: at,
                        problem: format!("bad MAC flag {other}"),
                    })
                }
            };
            sources.push(SourceInfo {
                id,
                name,
                class,
                mac,
            });
        }
        let end = d.pos();
        d.finish("the header")?;
        let sources = SourceTable::new(sources).map_err(|e| DecodeError {
            offset: end,
            problem: format!("bad source table: {e}"),
        })?;
        Ok(SegmentHeader {
            buffer,
            first_seq,
            start,
            session_unix_ns,
            session_vm_ns,
            anchor_unix_ns,
            anchor_vm_ns,
            block_mode,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SegmentHeader {
        SegmentHeader {
            buffer: "all".to_string(),
            first_seq: 1234,
            start: SegmentStart::Snapshot("s1".to_string()),
            session_unix_ns: 1_700_000_000_000_000_000,
            session_vm_ns: 0,
            anchor_unix_ns: 1_700_000_010_000_000_000,
            anchor_vm_ns: 9_000_000_000,
            block_mode: BlockMode::Compact,
            sources: SourceTable::new(vec![
                SourceInfo::net(0, "net0", Some([2, 0, 0, 0, 0, 1])),
                SourceInfo::blk(1, "blk0"),
                SourceInfo::serial(2, "serial"),
            ])
            .unwrap(),
        }
    }

    #[test]
    fn round_trip_and_anchor() {
        let h = sample();
        let bytes = h.encode();
        assert_eq!(&bytes[..8], &SEGMENT_MAGIC);
        let body_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        assert_eq!(bytes.len(), PREFIX_BYTES + body_len + 4);
        let body = &bytes[PREFIX_BYTES..PREFIX_BYTES + body_len];
        assert_eq!(SegmentHeader::decode_body(body).unwrap(), h);
        assert_eq!(h.unix_ns_at(10_000_000_000), 1_700_000_011_000_000_000);
        assert_eq!(h.unix_ns_at(8_000_000_000), 1_700_000_009_000_000_000);
        for cut in 0..body.len() {
            assert!(SegmentHeader::decode_body(&body[..cut]).is_err());
        }
    }
}
