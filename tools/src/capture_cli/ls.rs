//! `reprise-capture ls`.

use std::path::Path;

use replay::capture::reader::{CaptureReader, IndexState, SegmentInfo};
use replay::capture::SegmentStart;
use serde_json::{json, Value};

use super::describe::seconds;
use super::{buffers, print_json, CliError};

fn start_text(s: &SegmentInfo) -> String {
    match s.header.as_ref().map(|h| &h.start) {
        Some(SegmentStart::RecordingStarted) => "recording".to_string(),
        Some(SegmentStart::Snapshot(id)) => format!("snapshot {id}"),
        Some(SegmentStart::Continuation) => "continued".to_string(),
        None => "unreadable".to_string(),
    }
}

fn index_text(s: &IndexState) -> String {
    match s {
        IndexState::Missing => "missing".to_string(),
        IndexState::Bad { .. } => "bad".to_string(),
        IndexState::Stale { covered_bytes } => format!("stale ({covered_bytes} B)"),
        IndexState::Current => "current".to_string(),
        IndexState::Closed => "closed".to_string(),
    }
}

fn opt_time(t: Option<u64>) -> String {
    t.map(seconds).unwrap_or_else(|| "-".to_string())
}

fn segment_json(s: &SegmentInfo) -> Value {
    json!({
        "file": s.file_name(),
        "start": start_text(s),
        "snapshot": s.snapshot(),
        "first_seq": s.name_seq,
        "last_seq": s.last_seq,
        "records": s.records,
        "bytes": s.file_len,
        "first_vm_time_ns": s.first_vm_ns,
        "last_vm_time_ns": s.last_vm_ns,
        "index": s.index_state,
        "header_error": s.header_error,
        "block_mode": s.header.as_ref().map(|h| format!("{:?}", h.block_mode).to_lowercase()),
    })
}

fn buffer_json(r: &CaptureReader) -> Value {
    let segs = r.segments();
    json!({
        "buffer": r.buffer_name(),
        "dir": r.dir(),
        "segments": segs.iter().map(segment_json).collect::<Vec<_>>(),
        "records": r.records(),
        "bytes": segs.iter().map(|s| s.file_len).sum::<u64>(),
        "first_seq": segs.first().map(|s| s.name_seq),
        "next_seq": r.next_seq(),
        "snapshots": r.snapshots().iter().map(|(id, seq, t)| json!({
            "id": id, "first_seq": seq, "vm_time_ns": t
        })).collect::<Vec<_>>(),
        "sources": r.latest_header().map(|h| h.sources.iter().map(|s| json!({
            "id": s.id.0,
            "name": s.name,
            "class": s.class.name(),
            "mac": s.mac.map(|m| replay::frame::MacAddr(m).to_string()),
        })).collect::<Vec<_>>()),
    })
}

pub fn run(dir: &Path, json: bool) -> Result<i32, CliError> {
    let mut readers = Vec::new();
    for d in buffers(dir)? {
        readers.push(CaptureReader::open(&d)?);
    }
    if json {
        print_json(&readers.iter().map(buffer_json).collect::<Vec<_>>())?;
        return Ok(0);
    }
    for (i, r) in readers.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let segs = r.segments();
        let bytes: u64 = segs.iter().map(|s| s.file_len).sum();
        println!(
            "buffer {} ({}): {} segments, {} records, {bytes} bytes, seqs {}..{}",
            r.buffer_name().unwrap_or("?"),
            r.dir().display(),
            segs.len(),
            r.records(),
            segs.first().map_or(0, |s| s.name_seq),
            r.next_seq(),
        );
        if let Some(h) = r.latest_header() {
            let names: Vec<String> = h
                .sources
                .iter()
                .map(|s| format!("{}={}", s.id.0, s.name))
                .collect();
            println!("sources: {}", names.join(" "));
        }
        let snaps: Vec<String> = r
            .snapshots()
            .iter()
            .map(|(id, seq, t)| format!("{id} (seq {seq}, {})", opt_time(*t)))
            .collect();
        if !snaps.is_empty() {
            println!("snapshots: {}", snaps.join(", "));
        }
        println!(
            "{:<26} {:<22} {:>21} {:>20} {:>20} {:>8} {:>10}  index",
            "segment", "starts at", "seqs", "first VM time", "last VM time", "records", "bytes"
        );
        for s in segs {
            let seqs = match s.last_seq {
                Some(l) => format!("{}..={l}", s.name_seq),
                None => format!("{}..", s.name_seq),
            };
            println!(
                "{:<26} {:<22} {:>21} {:>20} {:>20} {:>8} {:>10}  {}",
                s.file_name(),
                start_text(s),
                seqs,
                opt_time(s.first_vm_ns),
                opt_time(s.last_vm_ns),
                s.records,
                s.file_len,
                index_text(&s.index_state)
            );
        }
    }
    Ok(0)
}
