//! The recorder end to end: events fan out to buffers by filter, markers reach every
//! buffer, snapshots start segments, block modes, drop accounting, status, and a new
//! session continuing a directory.

mod common;

use std::time::Duration;

use common::*;
use replay::capture::reader::{CaptureReader, Query, Severity};
use replay::capture::{BlockMode, BufferConfig, OverflowPolicy, SegmentStart};
use replay::filter::NetFilter;
use replay::{BlkData, BlkRequestType, Event, EventKind, Filter, Hash128, KindClass, SourceId};

fn read_all(dir: &std::path::Path) -> Vec<Event> {
    let r = CaptureReader::open(dir).unwrap();
    r.events(&Query::default())
        .unwrap()
        .map(|i| i.expect("no problem").event)
        .collect()
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

#[test]
fn fan_out_filters_markers_and_block_modes() {
    let tmp = TempDir::new("fanout");
    let all = BufferConfig::new("all", tmp.join("all"));
    let mut dns = BufferConfig::new("dns", tmp.join("dns"));
    dns.filter = Filter {
        classes: Some([KindClass::Net].into()),
        net: NetFilter {
            ports: vec![53],
            ..NetFilter::default()
        },
        ..Filter::default()
    };
    let mut disk = BufferConfig::new("disk", tmp.join("disk"));
    disk.filter = Filter::classes(&[KindClass::Blk]);
    disk.block_mode = BlockMode::Compact;
    let clock = clock();
    let rec = start(vec![all, dns, disk], &clock);

    let read_data = vec![7u8; 4096];
    clock.set_vm_time_ns(1_000);
    clock.set_progress(10);
    rec.record(
        SourceId(NET0),
        EventKind::net_rx(udp(true, 4000, 53, b"query")),
    );
    clock.set_vm_time_ns(2_000);
    rec.record(
        SourceId(NET0),
        EventKind::net_tx(udp(false, 80, 4000, b"http")),
    );
    rec.record(
        SourceId(BLK0),
        EventKind::BlkCompletion {
            request: BlkRequestType::Read,
            sector: 8,
            len: 4096,
            status: 0,
            data: BlkData::Full(read_data.clone()),
        },
    );
    rec.snapshot_taken("snap-1").unwrap();
    clock.set_vm_time_ns(3_000);
    rec.record(SourceId(BLK0), EventKind::blk_write(16, vec![9u8; 512]));
    rec.record(
        SourceId(SERIAL),
        EventKind::SerialOut {
            bytes: b"ok\n".to_vec(),
        },
    );
    // A device cannot forge a marker.
    rec.record(SourceId(SERIAL), EventKind::RecordingStopped);
    let st = rec.stop().unwrap();
    assert!(st.iter().all(|s| s.stopped && s.dropped_events == 0));
    assert_eq!(st[0].events, 8);

    let all = read_all(&tmp.join("all"));
    assert_eq!(
        names(&all),
        [
            "RecordingStarted",
            "NetRx",
            "NetTx",
            "BlkCompletion",
            "SnapshotTaken",
            "BlkWrite",
            "SerialOut",
            "RecordingStopped"
        ]
    );
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(all[1].vm_time_ns, 1_000);
    assert_eq!(all[1].progress, 10);
    assert_eq!(all[1].source, SourceId(NET0));
    assert_eq!(all[4].source, SourceId::RECORDER);
    match &all[3].kind {
        EventKind::BlkCompletion { data, .. } => {
            assert_eq!(data, &BlkData::Full(read_data.clone()))
        }
        other => panic!("{other:?}"),
    }

    let dns = read_all(&tmp.join("dns"));
    assert_eq!(
        names(&dns),
        [
            "RecordingStarted",
            "NetRx",
            "SnapshotTaken",
            "RecordingStopped"
        ]
    );
    assert_eq!(dns[1].seq, 1, "seqs are per buffer");

    let disk = read_all(&tmp.join("disk"));
    assert_eq!(
        names(&disk),
        [
            "RecordingStarted",
            "BlkCompletion",
            "SnapshotTaken",
            "BlkWrite",
            "RecordingStopped"
        ]
    );
    match (&disk[1].kind, &disk[3].kind) {
        (EventKind::BlkCompletion { data, .. }, EventKind::BlkWrite { data: w, hash, .. }) => {
            assert_eq!(data, &BlkData::Hash(Hash128::of(&read_data)));
            assert_eq!(w, &None);
            assert_eq!(*hash, Hash128::of(&[9u8; 512]));
        }
        other => panic!("{other:?}"),
    }

    // The snapshot started a segment in every buffer.
    for b in ["all", "dns", "disk"] {
        let r = CaptureReader::open(&tmp.join(b)).unwrap();
        let starts: Vec<SegmentStart> = r
            .segments()
            .iter()
            .map(|s| s.header.as_ref().unwrap().start.clone())
            .collect();
        assert_eq!(
            starts,
            [
                SegmentStart::RecordingStarted,
                SegmentStart::Snapshot("snap-1".to_string())
            ],
            "{b}"
        );
        assert_eq!(r.buffer_name(), Some(b));
        let v = r.verify().unwrap();
        assert!(v.problems.is_empty(), "{b}: {:?}", v.problems);
    }
}

#[test]
fn drop_policy_writes_a_gap_and_keeps_seqs_consistent() {
    let tmp = TempDir::new("drop");
    let mut cfg = BufferConfig::new("lossy", tmp.join("b"));
    cfg.overflow = OverflowPolicy::Drop;
    cfg.ring_bytes = 4096;
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    // Far more than the ring holds, faster than the writer drains it (most of the time).
    for i in 0..20_000u64 {
        clock.set_vm_time_ns(i);
        rec.record(SourceId(NET0), EventKind::net_rx(vec![i as u8; 1000]));
    }
    let st = rec.stop().unwrap();
    let dropped = st[0].dropped_events;
    let events = read_all(&tmp.join("b"));
    let mut lost_in_gaps = 0;
    let mut kept = 0;
    for e in &events {
        match e.kind {
            EventKind::Gap { lost_events, .. } => lost_in_gaps += lost_events,
            EventKind::NetRx { .. } => kept += 1,
            _ => {}
        }
    }
    assert!(dropped > 0, "the ring overflowed");
    assert_eq!(lost_in_gaps, dropped, "every drop is in a Gap");
    assert_eq!(kept + dropped, 20_000);
    // verify accepts seqs jumping over what a Gap stands for.
    let v = CaptureReader::open(&tmp.join("b"))
        .unwrap()
        .verify()
        .unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn backpressure_loses_nothing() {
    let tmp = TempDir::new("backpressure");
    let mut cfg = BufferConfig::new("all", tmp.join("b"));
    cfg.ring_bytes = 4096;
    cfg.max_segment_bytes = 64 << 10;
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let rec = rec.clone();
            std::thread::spawn(move || {
                for i in 0..2000u32 {
                    let mut b = i.to_le_bytes().to_vec();
                    b.push(t);
                    rec.record(SourceId(SERIAL), EventKind::SerialIn { bytes: b });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = rec.stop().unwrap();
    assert_eq!(st[0].dropped_events, 0);
    assert!(st[0].segments > 1, "segments rotated by size");
    let events = read_all(&tmp.join("b"));
    assert_eq!(events.len(), 6002);
    for t in 0..3u8 {
        let mine: Vec<u32> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::SerialIn { bytes } if bytes[4] == t => {
                    Some(u32::from_le_bytes(bytes[..4].try_into().unwrap()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(mine, (0..2000).collect::<Vec<_>>(), "thread {t} in order");
    }
}

#[test]
fn status_flush_and_a_second_session() {
    let tmp = TempDir::new("session");
    let dir = tmp.join("b");
    let clock = clock();
    let rec = start(vec![BufferConfig::new("all", &dir)], &clock);
    clock.set_vm_time_ns(5_000);
    rec.record(SourceId(NET0), EventKind::net_rx(vec![1; 60]));
    rec.flush().unwrap();
    let st = &rec.status()[0];
    assert_eq!(st.events, 2);
    assert_eq!(st.next_seq, 2);
    assert_eq!(st.segments, 1);
    assert_eq!(st.oldest_vm_time_ns, Some(0));
    assert_eq!(st.newest_vm_time_ns, Some(5_000));
    assert!(st.bytes > 0);
    // A second recorder on the same directory is refused while the first runs.
    let err = replay::Recorder::start(
        sources(),
        vec![BufferConfig::new("all", &dir)],
        clock.clone(),
        all_exist(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("another recorder"), "{err}");
    rec.stop().unwrap();
    assert!(rec.flush().is_err());
    assert!(rec.snapshot_taken("late").is_err());
    rec.record(SourceId(NET0), EventKind::net_rx(vec![2; 60]));

    // A new session continues the seqs (VM time restarts).
    let clock2 = common::clock();
    let rec = start(vec![BufferConfig::new("all", &dir)], &clock2);
    rec.record(SourceId(NET0), EventKind::net_rx(vec![3; 60]));
    rec.stop().unwrap();
    let events = read_all(&dir);
    assert_eq!(
        names(&events),
        [
            "RecordingStarted",
            "NetRx",
            "RecordingStopped",
            "RecordingStarted",
            "NetRx",
            "RecordingStopped"
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    let v = CaptureReader::open(&dir).unwrap().verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn periodic_sync_writes_the_index() {
    let tmp = TempDir::new("sync");
    let dir = tmp.join("b");
    let mut cfg = BufferConfig::new("all", &dir);
    cfg.sync_interval = Duration::from_millis(20);
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    rec.record(SourceId(NET0), EventKind::net_rx(vec![1; 60]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = CaptureReader::open(&dir).unwrap();
        let v = r.verify().unwrap();
        if r.records() == 2 && v.problems.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", v.problems);
        assert!(v.problems.iter().all(|p| p.severity == Severity::Warning));
        std::thread::sleep(Duration::from_millis(10));
    }
    rec.stop().unwrap();
}

#[test]
fn bad_configurations_are_refused() {
    let tmp = TempDir::new("config");
    let clock = clock();
    let start_with = |b: Vec<BufferConfig>| {
        replay::Recorder::start(sources(), b, clock.clone(), all_exist())
            .err()
            .expect("refused")
            .to_string()
    };
    let e = start_with(vec![
        BufferConfig::new("a", tmp.join("a")),
        BufferConfig::new("a", tmp.join("b")),
    ]);
    assert!(e.contains("two buffers have this name"), "{e}");
    let e = start_with(vec![
        BufferConfig::new("a", tmp.join("a")),
        BufferConfig::new("b", tmp.join("a")),
    ]);
    assert!(e.contains("another buffer's directory"), "{e}");
    let e = start_with(vec![BufferConfig::new("has space", tmp.join("c"))]);
    assert!(e.contains("printable ASCII"), "{e}");
    let mut small = BufferConfig::new("small", tmp.join("d"));
    small.ring_bytes = 10;
    let e = start_with(vec![small]);
    assert!(e.contains("ring_bytes"), "{e}");
    // A directory that cannot be created (a file is in the way).
    std::fs::write(tmp.join("file"), b"x").unwrap();
    let e = start_with(vec![
        BufferConfig::new("ok", tmp.join("e")),
        BufferConfig::new("bad", tmp.join("file").join("sub")),
    ]);
    assert!(e.contains("create directory"), "{e}");
    let dup = replay::SourceTable::new(vec![
        replay::SourceInfo::blk(1, "blk0"),
        replay::SourceInfo::blk(1, "blk1"),
    ]);
    assert!(dup.is_err());
}
