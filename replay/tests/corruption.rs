//! Damaged captures: a flipped byte, a truncated segment, an unsupported version, a
//! damaged index. Each problem is reported with its file, offset and seq, and everything
//! else is still read.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use replay::capture::format::index_path;
use replay::capture::reader::{CaptureReader, Problem, ProblemKind, Query, Severity};
use replay::capture::BufferConfig;
use replay::{Event, EventKind, SourceId};

/// Records 300 frames of varied sizes into small segments; returns every event written.
fn make_capture(dir: &Path) -> Vec<Event> {
    let mut cfg = BufferConfig::new("all", dir);
    cfg.max_segment_bytes = 16 << 10;
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    let mut rng = Rng::new(7);
    for i in 0..300u64 {
        clock.set_vm_time_ns(i * 1000);
        let len = 60 + rng.below(200) as usize;
        rec.record(SourceId(NET0), EventKind::net_rx(vec![i as u8; len]));
    }
    rec.stop().unwrap();
    read(dir).0
}

fn read(dir: &Path) -> (Vec<Event>, Vec<Problem>) {
    let r = CaptureReader::open(dir).unwrap();
    let mut events = Vec::new();
    let mut problems = Vec::new();
    for item in r.events(&Query::default()).unwrap() {
        match item {
            Ok(e) => events.push(e.event),
            Err(p) => problems.push(p),
        }
    }
    (events, problems)
}

/// The segment holding `seq` and the offset of that record.
fn locate(dir: &Path, seq: u64) -> (PathBuf, u64) {
    let r = CaptureReader::open(dir).unwrap();
    let rec = r
        .events(&Query::default())
        .unwrap()
        .map(|i| i.unwrap())
        .find(|e| e.event.seq == seq)
        .unwrap();
    (r.segments()[rec.segment].path.clone(), rec.offset)
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[test]
fn flipped_byte_is_reported_at_its_record_and_the_rest_is_read() {
    let tmp = TempDir::new("flip");
    let dir = tmp.join("b");
    let all = make_capture(&dir);
    assert!(CaptureReader::open(&dir).unwrap().segments().len() >= 4);
    let (seg, offset) = locate(&dir, 150);
    // A byte in the middle of the payload of record 150.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset + 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], offset + 40).unwrap();
    drop(f);

    let (events, problems) = read(&dir);
    let want: Vec<u64> = (0..all.len() as u64).filter(|&s| s != 150).collect();
    assert_eq!(
        seqs(&events),
        want,
        "everything but the damaged record is read"
    );
    let first = &problems[0];
    assert_eq!(first.file, seg);
    assert_eq!(first.offset, Some(offset));
    assert_eq!(first.seq, Some(150));
    assert_eq!(first.severity, Severity::Error);
    match &first.kind {
        ProblemKind::BadRecord { problem, .. } => {
            assert!(problem.contains("checksum"), "{problem}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(
            problems[1].kind,
            ProblemKind::SeqGap {
                expected: 150,
                found: 151
            }
        ),
        "{problems:?}"
    );
    let text = first.to_string();
    assert!(
        text.contains(&seg.display().to_string()) && text.contains(&format!("offset {offset}")),
        "{text}"
    );

    let v = CaptureReader::open(&dir).unwrap().verify().unwrap();
    assert_eq!(v.records, all.len() as u64 - 1);
    assert_eq!(v.problems[0], *first);
    // The index of that segment no longer agrees with it.
    assert!(
        v.problems
            .iter()
            .any(|p| p.file == index_path(&seg)
                && matches!(p.kind, ProblemKind::IndexMismatch { .. }))
    );
    assert!(!v.is_ok());
}

#[test]
fn truncated_segment_is_reported_and_the_rest_is_read() {
    let tmp = TempDir::new("trunc");
    let dir = tmp.join("b");
    let all = make_capture(&dir);
    let (seg, offset) = locate(&dir, 100);
    // Cut segment holding record 100 in the middle of that record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(offset + 20)
        .unwrap();
    let (events, problems) = read(&dir);
    let r = CaptureReader::open(&dir).unwrap();
    let seg_i = r.segments().iter().position(|s| s.path == seg).unwrap();
    let next_first = r.segments()[seg_i + 1].name_seq;
    let want: Vec<u64> = (0..all.len() as u64)
        .filter(|&s| s < 100 || s >= next_first)
        .collect();
    assert_eq!(seqs(&events), want);
    let p = &problems[0];
    assert_eq!(
        (p.file.clone(), p.offset, p.seq),
        (seg.clone(), Some(offset), Some(100))
    );
    // The segment was closed with an index covering more: real damage, not a torn write.
    assert_eq!(p.severity, Severity::Error);
    assert!(
        matches!(
            p.kind,
            ProblemKind::BadRecord {
                skipped_bytes: 20,
                ..
            }
        ),
        "{p:?}"
    );
    assert!(
        matches!(problems[1].kind, ProblemKind::SeqGap { expected: 100, found } if found == next_first),
        "{problems:?}"
    );
    let v = r.verify().unwrap();
    assert!(v
        .problems
        .iter()
        .any(|p| p.file == index_path(&seg) && matches!(p.kind, ProblemKind::BadIndex { .. })));
}

#[test]
fn unsupported_version_skips_the_segment_only() {
    let tmp = TempDir::new("version");
    let dir = tmp.join("b");
    let all = make_capture(&dir);
    let r = CaptureReader::open(&dir).unwrap();
    let seg = r.segments()[1].path.clone();
    let (first, next) = (r.segments()[1].name_seq, r.segments()[2].name_seq);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&99u32.to_le_bytes(), 8)
        .unwrap();
    let (events, problems) = read(&dir);
    let want: Vec<u64> = (0..all.len() as u64)
        .filter(|&s| s < first || s >= next)
        .collect();
    assert_eq!(seqs(&events), want);
    let p = &problems[0];
    assert_eq!((p.file.clone(), p.offset), (seg, Some(0)));
    match &p.kind {
        ProblemKind::BadHeader { problem } => assert!(
            problem.contains("unsupported capture segment version 99"),
            "{problem}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(problems[1].kind, ProblemKind::SeqGap { expected, found } if expected == first && found == next)
    );
}

#[test]
fn damaged_or_missing_index_falls_back_to_scanning() {
    let tmp = TempDir::new("index");
    let dir = tmp.join("b");
    let all = make_capture(&dir);
    let r = CaptureReader::open(&dir).unwrap();
    let seg0 = r.segments()[0].path.clone();
    let seg1 = r.segments()[1].path.clone();
    std::fs::remove_file(index_path(&seg0)).unwrap();
    let idx1 = index_path(&seg1);
    let f = std::fs::OpenOptions::new().write(true).open(&idx1).unwrap();
    f.write_all_at(&[0xee], 20).unwrap();
    drop(f);

    let (events, problems) = read(&dir);
    assert_eq!(events, all);
    assert!(problems.is_empty(), "{problems:?}");
    let r = CaptureReader::open(&dir).unwrap();
    assert_eq!(r.records(), all.len() as u64);
    // Seeking by seq or time still works without those indexes.
    let q = Query {
        from_seq: Some(3),
        to_seq: Some(5),
        ..Query::default()
    };
    let got: Vec<u64> = r
        .events(&q)
        .unwrap()
        .map(|e| e.unwrap().event.seq)
        .collect();
    assert_eq!(got, [3, 4, 5]);
    let v = r.verify().unwrap();
    let kinds: Vec<(&Path, Severity)> = v
        .problems
        .iter()
        .map(|p| (p.file.as_path(), p.severity))
        .collect();
    assert_eq!(
        kinds,
        [
            (index_path(&seg0).as_path(), Severity::Warning),
            (idx1.as_path(), Severity::Error)
        ]
    );
    assert!(matches!(v.problems[0].kind, ProblemKind::IndexMissing));
    assert!(matches!(v.problems[1].kind, ProblemKind::BadIndex { .. }));
}

#[test]
fn seeking_by_time_seq_and_snapshot() {
    let tmp = TempDir::new("seek");
    let dir = tmp.join("b");
    let mut cfg = BufferConfig::new("all", &dir);
    cfg.max_segment_bytes = 8 << 10;
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    for i in 0..2000u64 {
        clock.set_vm_time_ns(i * 10);
        if i == 1200 {
            rec.snapshot_taken("mid").unwrap();
        }
        rec.record(
            SourceId(SERIAL),
            EventKind::SerialOut {
                bytes: vec![b'x'; 50],
            },
        );
    }
    rec.stop().unwrap();
    let r = CaptureReader::open(&dir).unwrap();
    assert!(r.segments().len() > 10);
    let q = Query {
        from_vm_ns: Some(10_005),
        to_vm_ns: Some(10_040),
        ..Query::default()
    };
    let got: Vec<u64> = r
        .events(&q)
        .unwrap()
        .map(|e| e.unwrap().event.vm_time_ns)
        .collect();
    assert_eq!(got, [10_010, 10_020, 10_030]);
    let q = Query {
        from_snapshot: Some("mid".to_string()),
        to_seq: Some(1203),
        ..Query::default()
    };
    let got: Vec<(u64, &str)> = r
        .events(&q)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.event.seq, e.event.kind.name()))
        .collect();
    assert_eq!(
        got,
        [
            (1201, "SnapshotTaken"),
            (1202, "SerialOut"),
            (1203, "SerialOut")
        ]
    );
    let q = Query {
        from_snapshot: Some("nope".to_string()),
        ..Query::default()
    };
    assert!(r.events(&q).is_err());
    assert_eq!(r.snapshots()[0].0, "mid");
    assert_eq!(r.snapshots()[0].1, 1201);
}
