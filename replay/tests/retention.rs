//! Retention over simulated VM time: two minutes with a snapshot every 10 s and a 30 s
//! window keep exactly the segments from the snapshot that still covers the window, each
//! retained chain starting at a snapshot that exists.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::*;
use replay::capture::reader::CaptureReader;
use replay::capture::{BufferConfig, Recorder, Retention, SegmentStart};
use replay::{EventKind, SourceId};

const SEC: u64 = 1_000_000_000;

/// Records 120 s of traffic (a frame every 100 ms, 2 KiB, segments of 16 KiB so each
/// snapshot interval spans several) with a snapshot every 10 s; the VMM keeps snapshots
/// for which `keep` says so. Returns the segments' (first VM time, start) left at the end.
fn simulate(keep: fn(u64) -> bool) -> (Vec<(u64, SegmentStart)>, BTreeSet<String>, TempDir) {
    let tmp = TempDir::new("retention");
    let dir = tmp.join("b");
    let mut cfg = BufferConfig::new("ring", &dir);
    cfg.max_segment_bytes = 16 << 10;
    cfg.retention = Retention {
        window_ns: Some(30 * SEC),
        ..Retention::default()
    };
    let existing: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let e2 = Arc::clone(&existing);
    let clock = clock();
    let rec = Recorder::start(
        sources(),
        vec![cfg],
        clock.clone(),
        Arc::new(move |id: &str| e2.lock().unwrap().contains(id)),
    )
    .unwrap();
    for tick in 1..=1200u64 {
        let t = tick * SEC / 10;
        clock.set_vm_time_ns(t);
        if t.is_multiple_of(10 * SEC) && t < 120 * SEC {
            let s = t / SEC;
            let id = format!("snap-{s:03}");
            let mut ex = existing.lock().unwrap();
            ex.insert(id.clone());
            // The VMM's own snapshot retention.
            ex.retain(|i| keep(i[5..].parse().unwrap()) || *i == id);
            drop(ex);
            rec.snapshot_taken(&id).unwrap();
        }
        rec.record(SourceId(NET0), EventKind::net_rx(vec![tick as u8; 2048]));
    }
    let st = rec.stop().unwrap();
    assert!(st[0].segments_deleted > 0);
    let r = CaptureReader::open(&dir).unwrap();
    let segs = r
        .segments()
        .iter()
        .map(|s| (s.first_vm_ns.unwrap(), s.header.clone().unwrap().start))
        .collect();
    assert!(r.verify().unwrap().is_ok());
    assert_eq!(st[0].segments, r.segments().len());
    assert_eq!(st[0].oldest_vm_time_ns, r.segments()[0].first_vm_ns);
    let ex = existing.lock().unwrap().clone();
    (segs, ex, tmp)
}

fn chain_starts(segs: &[(u64, SegmentStart)]) -> Vec<String> {
    segs.iter()
        .filter_map(|(_, s)| s.snapshot().map(str::to_string))
        .collect()
}

#[test]
fn thirty_second_window_keeps_the_chains_covering_it() {
    let (segs, existing, _tmp) = simulate(|_| true);
    // The newest event is at 120 s: the window starts at 90 s, where snapshot-090 starts
    // its chain; older chains are gone.
    assert_eq!(segs[0].1, SegmentStart::Snapshot("snap-090".to_string()));
    assert_eq!(segs[0].0, 90 * SEC);
    assert_eq!(chain_starts(&segs), ["snap-090", "snap-100", "snap-110"]);
    // Every retained segment is a snapshot start or continues the one before it.
    assert!(segs[1..]
        .iter()
        .all(|(_, s)| matches!(s, SegmentStart::Continuation | SegmentStart::Snapshot(_))));
    assert!(
        segs.iter()
            .filter(|(_, s)| *s == SegmentStart::Continuation)
            .count()
            > 3
    );
    for id in chain_starts(&segs) {
        assert!(existing.contains(&id));
    }
}

#[test]
fn chains_whose_snapshot_is_gone_are_not_kept() {
    // The VMM keeps only snapshots at multiples of 20 s: snapshot-090 is gone, so the
    // segments from 90 s to 100 s cannot be replayed and go; snapshot-100 is kept.
    let (segs, existing, _tmp) = simulate(|s| s % 20 == 0);
    assert_eq!(segs[0].1, SegmentStart::Snapshot("snap-100".to_string()));
    let starts = chain_starts(&segs);
    assert_eq!(starts, ["snap-100", "snap-110"]);
    assert!(existing.contains("snap-100") && !existing.contains("snap-090"));
}
