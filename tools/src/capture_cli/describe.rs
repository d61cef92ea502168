//! Events as text and as JSON.

use replay::capture::reader::RecordedEvent;
use replay::frame::FrameInfo;
use replay::{BlkData, EventKind, SourceTable};
use serde_json::{json, Map, Value};

/// VM time as seconds with nanoseconds: `12.000001500`.
pub fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Console bytes, escaped and cut at 60 characters.
fn text(b: &[u8]) -> String {
    let s: String = b.escape_ascii().to_string();
    if s.len() > 60 {
        format!("\"{}...\"", &s[..57])
    } else {
        format!("\"{s}\"")
    }
}

/// What follows the kind on a `show` line.
pub fn detail(kind: &EventKind) -> String {
    match kind {
        EventKind::NetRx { frame } | EventKind::NetTx { frame } => {
            format!(
                "{} bytes {}",
                frame.len(),
                FrameInfo::parse(frame).summary()
            )
        }
        EventKind::BlkCompletion {
            request,
            sector,
            len,
            status,
            data,
        } => {
            let d = match data {
                BlkData::None => String::new(),
                BlkData::Full(b) => format!(" data {} bytes", b.len()),
                BlkData::Hash(h) => format!(" data hash {h}"),
            };
            format!(
                "{} sector {sector} len {len} status {status}{d}",
                request.name()
            )
        }
        EventKind::BlkWrite {
            sector,
            len,
            hash,
            data,
        } => format!(
            "sector {sector} len {len} hash {hash}{}",
            if data.is_some() { " (data kept)" } else { "" }
        ),
        EventKind::SerialIn { bytes } | EventKind::SerialOut { bytes } => text(bytes),
        EventKind::SnapshotTaken { id } => format!("snapshot {id}"),
        EventKind::Injected { what } => format!("injected: {what}"),
        EventKind::RecordingStarted | EventKind::RecordingStopped => String::new(),
        EventKind::Gap {
            lost_events,
            lost_bytes,
            reason,
        } => format!(
            "{lost_events} events ({lost_bytes} bytes) lost: {}",
            reason.name()
        ),
    }
}

/// One `show` line.
pub fn line(r: &RecordedEvent, sources: &SourceTable) -> String {
    let e = &r.event;
    format!(
        "{:>8} {:>20} {:>10} {:<8} {:<16} {}",
        e.seq,
        seconds(e.vm_time_ns),
        e.progress,
        sources.name_of(e.source),
        e.kind.name(),
        detail(&e.kind)
    )
    .trim_end()
    .to_string()
}

/// One event as a JSON object; payloads as hex with `data`.
pub fn json(r: &RecordedEvent, sources: &SourceTable, data: bool) -> Value {
    let e = &r.event;
    let mut m = Map::new();
    m.insert("seq".into(), json!(e.seq));
    m.insert("vm_time_ns".into(), json!(e.vm_time_ns));
    m.insert("progress".into(), json!(e.progress));
    m.insert("source".into(), json!(sources.name_of(e.source)));
    m.insert("kind".into(), json!(e.kind.name()));
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    match &e.kind {
        EventKind::NetRx { frame } | EventKind::NetTx { frame } => {
            let f = FrameInfo::parse(frame);
            put("len", json!(frame.len()));
            put("src_mac", json!(f.src_mac.map(|m| m.to_string())));
            put("dst_mac", json!(f.dst_mac.map(|m| m.to_string())));
            put("src_ip", json!(f.src_ip.map(|a| a.to_string())));
            put("dst_ip", json!(f.dst_ip.map(|a| a.to_string())));
            put("protocol", json!(f.protocol.map(|p| p.to_string())));
            put("src_port", json!(f.src_port));
            put("dst_port", json!(f.dst_port));
            if data {
                put("frame", json!(hex(frame)));
            }
        }
        EventKind::BlkCompletion {
            request,
            sector,
            len,
            status,
            data: d,
        } => {
            put("request", json!(request.name()));
            put("sector", json!(sector));
            put("len", json!(len));
            put("status", json!(status));
            put("data_hash", json!(d.hash().map(|h| h.to_string())));
            if let (true, BlkData::Full(b)) = (data, d) {
                put("data", json!(hex(b)));
            }
        }
        EventKind::BlkWrite {
            sector,
            len,
            hash,
            data: d,
        } => {
            put("sector", json!(sector));
            put("len", json!(len));
            put("hash", json!(hash.to_string()));
            if let (true, Some(b)) = (data, d) {
                put("data", json!(hex(b)));
            }
        }
        EventKind::SerialIn { bytes } | EventKind::SerialOut { bytes } => {
            put("len", json!(bytes.len()));
            put("text", json!(String::from_utf8_lossy(bytes)));
            if data {
                put("bytes", json!(hex(bytes)));
            }
        }
        EventKind::SnapshotTaken { id } => put("snapshot", json!(id)),
        EventKind::Injected { what } => put("injected", json!(what)),
        EventKind::RecordingStarted | EventKind::RecordingStopped => {}
        EventKind::Gap {
            lost_events,
            lost_bytes,
            reason,
        } => {
            put("lost_events", json!(lost_events));
            put("lost_bytes", json!(lost_bytes));
            put("reason", json!(reason.name()));
        }
    }
    Value::Object(m)
}
