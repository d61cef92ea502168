//! One [`Event`] as a record payload (segment format version 1):
//!
//! ```text
//! varint seq | varint vm_time_ns | varint progress | u16 source | u8 kind | kind fields
//! kind 1 NetRx          bytes frame
//! kind 2 BlkCompletion  u8 request | varint sector | varint len | u8 status |
//!                       u8 data (0 none | 1 full: bytes | 2 hash: 16 bytes)
//! kind 3 SerialIn       bytes
//! kind 4 NetTx          bytes frame
//! kind 5 BlkWrite       varint sector | varint len | 16 bytes hash | u8 has_data [| bytes]
//! kind 6 SerialOut      bytes
//! kind 16 SnapshotTaken string id
//! kind 17 RecordingStarted, 18 RecordingStopped (no fields)
//! kind 19 Gap           varint lost_events | varint lost_bytes | u8 reason
//! kind 20 Injected      string what
//! ```
//!
//! `bytes` and `string` are a varint length then the bytes; integers are little-endian.

use super::{DecodeError, Decoder, Encoder};
use crate::event::{BlkData, BlkRequestType, Event, EventKind, GapReason, SourceId};
use crate::hash::Hash128;
use crate::limits::{MAX_INJECTED_BYTES, MAX_RECORD_BYTES, MAX_SNAPSHOT_ID_BYTES};

const NET_RX: u8 = 1;
const BLK_COMPLETION: u8 = 2;
const SERIAL_IN: u8 = 3;
const NET_TX: u8 = 4;
const BLK_WRITE: u8 = 5;
const SERIAL_OUT: u8 = 6;
const SNAPSHOT_TAKEN: u8 = 16;
const RECORDING_STARTED: u8 = 17;
const RECORDING_STOPPED: u8 = 18;
const GAP: u8 = 19;
const INJECTED: u8 = 20;

const DATA_NONE: u8 = 0;
const DATA_FULL: u8 = 1;
const DATA_HASH: u8 = 2;

/// Encodes `event` with sequence number `seq` (the event's own `seq` is ignored). With
/// `compact`, block data is stored as compact block mode does (see
/// [`EventKind::to_compact`]).
pub fn encode_event(out: &mut Encoder, seq: u64, event: &Event, compact: bool) {
    out.var(seq);
    out.var(event.vm_time_ns);
    out.var(event.progress);
    out.u16(event.source.0);
    match &event.kind {
        EventKind::NetRx { frame } => {
            out.u8(NET_RX);
            out.bytes(frame);
        }
        EventKind::BlkCompletion {
            request,
            sector,
            len,
            status,
            data,
        } => {
            out.u8(BLK_COMPLETION);
            out.u8(request.code());
            out.var(*sector);
            out.var(u64::from(*len));
            out.u8(*status);
            match data {
                BlkData::None => out.u8(DATA_NONE),
                BlkData::Full(d) if compact => {
                    out.u8(DATA_HASH);
                    out.raw(&Hash128::of(d).to_bytes());
                }
                BlkData::Full(d) => {
                    out.u8(DATA_FULL);
                    out.bytes(d);
                }
                BlkData::Hash(h) => {
                    out.u8(DATA_HASH);
                    out.raw(&h.to_bytes());
                }
            }
        }
        EventKind::SerialIn { bytes } => {
            out.u8(SERIAL_IN);
            out.bytes(bytes);
        }
        EventKind::NetTx { frame } => {
            out.u8(NET_TX);
            out.bytes(frame);
        }
        EventKind::BlkWrite {
            sector,
            len,
            hash,
            data,
        } => {
            out.u8(BLK_WRITE);
            out.var(*sector);
            out.var(u64::from(*len));
            out.raw(&hash.to_bytes());
            match data {
                Some(d) if !compact => {
                    out.u8(1);
                    out.bytes(d);
                }
                _ => out.u8(0),
            }
        }
        EventKind::SerialOut { bytes } => {
            out.u8(SERIAL_OUT);
            out.bytes(bytes);
        }
        EventKind::SnapshotTaken { id } => {
            out.u8(SNAPSHOT_TAKEN);
            out.str(id);
        }
        EventKind::RecordingStarted => out.u8(RECORDING_STARTED),
        EventKind::RecordingStopped => out.u8(RECORDING_STOPPED),
        EventKind::Injected { what } => {
            out.u8(INJECTED);
            out.str(what);
        }
        EventKind::Gap {
            lost_events,
            lost_bytes,
            reason,
        } => {
            out.u8(GAP);
            out.var(*lost_events);
            out.var(*lost_bytes);
            out.u8(reason.code());
        }
    }
}

/// The sequence number and VM time at the start of a payload, without decoding the rest.
pub fn peek_seq_time(payload: &[u8]) -> Result<(u64, u64), DecodeError> {
    let mut d = Decoder::new(payload);
    Ok((d.var("seq")?, d.var("vm_time_ns")?))
}

/// Decodes a record payload; every byte must belong to the event.
pub fn decode_event(payload: &[u8]) -> Result<Event, DecodeError> {
    let mut d = Decoder::new(payload);
    let seq = d.var("seq")?;
    let vm_time_ns = d.var("vm_time_ns")?;
    let progress = d.var("progress")?;
    let source = SourceId(d.u16("source")?);
    let tag_at = d.pos();
    let tag = d.u8("kind")?;
    let kind = match tag {
        NET_RX => EventKind::NetRx {
            frame: d.bytes(MAX_RECORD_BYTES, "frame")?.to_vec(),
        },
        BLK_COMPLETION => {
            let at = d.pos();
            let code = d.u8("request type")?;
            let request = BlkRequestType::from_code(code).ok_or(DecodeError {
                offset: at,
                problem: format!("unknown block request type {code}"),
            })?;
            let sector = d.var("sector")?;
            let len = d.var_u32("len")?;
            let status = d.u8("status")?;
            let at = d.pos();
            let data = match d.u8("data tag")? {
                DATA_NONE => BlkData::None,
                DATA_FULL => BlkData::Full(d.bytes(MAX_RECORD_BYTES, "read data")?.to_vec()),
                DATA_HASH => BlkData::Hash(read_hash(&mut d)?),
                other => {
                    return Err(DecodeError {
                        offset: at,
                        problem: format!("unknown block data tag {other}"),
                    })
                }
            };
            EventKind::BlkCompletion {
                request,
                sector,
                len,
                status,
                data,
            }
        }
        SERIAL_IN => EventKind::SerialIn {
            bytes: d.bytes(MAX_RECORD_BYTES, "console input")?.to_vec(),
        },
        NET_TX => EventKind::NetTx {
            frame: d.bytes(MAX_RECORD_BYTES, "frame")?.to_vec(),
        },
        BLK_WRITE => {
            let sector = d.var("sector")?;
            let len = d.var_u32("len")?;
            let hash = read_hash(&mut d)?;
            let at = d.pos();
            let data = match d.u8("data flag")? {
                0 => None,
                1 => Some(d.bytes(MAX_RECORD_BYTES, "write data")?.to_vec()),
                other => {
                    return Err(DecodeError {
                        offset: at,
                        problem: format!("bad write data flag {other}"),
                    })
                }
            };
            EventKind::BlkWrite {
                sector,
                len,
                hash,
                data,
            }
        }
        SERIAL_OUT => EventKind::SerialOut {
            bytes: d.bytes(MAX_RECORD_BYTES, "console output")?.to_vec(),
        },
        SNAPSHOT_TAKEN => EventKind::SnapshotTaken {
            id: d.str(MAX_SNAPSHOT_ID_BYTES, "snapshot id")?.to_string(),
        },
        RECORDING_STARTED => EventKind::RecordingStarted,
        RECORDING_STOPPED => EventKind::RecordingStopped,
        INJECTED => EventKind::Injected {
            what: d.str(MAX_INJECTED_BYTES, "injection")?.to_string(),
        },
        GAP => {
            let lost_events = d.var("lost events")?;
            let lost_bytes = d.var("lost bytes")?;
            let at = d.pos();
            let code = d.u8("gap reason")?;
            let reason = GapReason::from_code(code).ok_or(DecodeError {
                offset: at,
                problem: format!("unknown gap reason {code}"),
            })?;
            EventKind::Gap {
                lost_events,
                lost_bytes,
                reason,
            }
        }
        other => {
            return Err(DecodeError {
                offset: tag_at,
                problem: format!("unknown event kind {other}"),
            })
        }
    };
    d.finish("the event")?;
    Ok(Event {
        seq,
        vm_time_ns,
        progress,
        source,
        kind,
    })
}

fn read_hash(d: &mut Decoder<'_>) -> Result<Hash128, DecodeError> {
    let mut b = [0u8; 16];
    b.copy_from_slice(d.raw(16, "hash")?);
    Ok(Hash128::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<EventKind> {
        vec![
            EventKind::net_rx(vec![0xff; 60]),
            EventKind::BlkCompletion {
                request: BlkRequestType::Read,
                sector: 1 << 40,
                len: 4096,
                status: 0,
                data: BlkData::Full((0..=255).collect()),
            },
            EventKind::BlkCompletion {
                request: BlkRequestType::Read,
                sector: 8,
                len: 512,
                status: 0,
                data: BlkData::Hash(Hash128::of(b"x")),
            },
            EventKind::BlkCompletion {
                request: BlkRequestType::Unsupported,
                sector: 0,
                len: 0,
                status: 2,
                data: BlkData::None,
            },
            EventKind::SerialIn {
                bytes: b"ls\n".to_vec(),
            },
            EventKind::net_tx(vec![]),
            EventKind::blk_write(77, vec![5; 1024]),
            EventKind::BlkWrite {
                sector: 3,
                len: 9,
                hash: Hash128(42),
                data: None,
            },
            EventKind::SerialOut {
                bytes: b"hello\r\n".to_vec(),
            },
            EventKind::SnapshotTaken {
                id: "snap-0001".to_string(),
            },
            EventKind::RecordingStarted,
            EventKind::RecordingStopped,
            EventKind::Injected {
                what: "net#3 drop".to_string(),
            },
            EventKind::Gap {
                lost_events: 12,
                lost_bytes: 9000,
                reason: GapReason::Overflow,
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for (i, kind) in all_kinds().into_iter().enumerate() {
            let ev = Event {
                seq: i as u64 * 1000,
                vm_time_ns: u64::MAX - i as u64,
                progress: 17 + i as u64,
                source: SourceId(i as u16),
                kind,
            };
            let mut e = Encoder::new();
            encode_event(&mut e, ev.seq, &ev, false);
            assert_eq!(decode_event(&e.buf).unwrap(), ev, "{}", ev.kind.name());
            assert_eq!(peek_seq_time(&e.buf).unwrap(), (ev.seq, ev.vm_time_ns));
            // Compact mode stores what `to_compact` says.
            let mut c = Encoder::new();
            encode_event(&mut c, ev.seq, &ev, true);
            let back = decode_event(&c.buf).unwrap();
            assert_eq!(back.kind, ev.kind.to_compact());
        }
    }

    #[test]
    fn truncated_or_padded_payloads_are_refused() {
        for kind in all_kinds() {
            let ev = Event {
                seq: 1,
                vm_time_ns: 2,
                progress: 3,
                source: SourceId(4),
                kind,
            };
            let mut e = Encoder::new();
            encode_event(&mut e, 1, &ev, false);
            for cut in 0..e.buf.len() {
                assert!(decode_event(&e.buf[..cut]).is_err(), "cut at {cut}");
            }
            let mut padded = e.buf.clone();
            padded.push(0);
            assert!(decode_event(&padded).is_err());
        }
    }

    #[test]
    fn unknown_tags_name_their_offset() {
        let mut e = Encoder::new();
        e.var(1);
        e.var(2);
        e.var(3);
        e.u16(0);
        e.u8(99);
        let err = decode_event(&e.buf).unwrap_err();
        assert_eq!(err.offset, 5);
        assert!(err.problem.contains("unknown event kind 99"));
    }
}
