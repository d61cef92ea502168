//! Crash safety: a child process records continuously (snapshots rotating segments,
//! flushes reported on its stdout) and is killed with SIGKILL at a random moment, again and
//! again, each child continuing the same buffer directory. After every kill the reader
//! must return a gap-free run of seqs from 0 holding every event the child had flushed,
//! each intact, and report a partly written last record as a torn tail (a warning), never
//! as corruption.
//!
//! The child is this test binary run again with `REPRISE_CAPTURE_CRASH_DIR` set, selecting
//! the `crash_child` test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use replay::capture::reader::{CaptureReader, ProblemKind, Query, Severity};
use replay::capture::BufferConfig;
use replay::{EventKind, SourceId};

const DIR_ENV: &str = "REPRISE_CAPTURE_CRASH_DIR";
const ROUNDS_ENV: &str = "REPRISE_CAPTURE_CRASH_ROUNDS";

/// The frame of the `n`th event of a child: its number, then bytes derived from it.
fn frame(n: u64) -> Vec<u8> {
    let len = 8 + (n.wrapping_mul(0x9E37_79B9) % 8_000) as usize;
    let mut f = n.to_le_bytes().to_vec();
    f.resize(len, (n % 251) as u8);
    f
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let mut cfg = BufferConfig::new("crash", Path::new(&dir));
    cfg.max_segment_bytes = 2 << 20;
    cfg.ring_bytes = 4 << 20;
    cfg.sync_interval = Duration::from_millis(50);
    let clock = clock();
    let rec = start(vec![cfg], &clock);
    for n in 1u64.. {
        clock.advance(1000);
        rec.record(SourceId(NET0), EventKind::net_rx(frame(n)));
        if n.is_multiple_of(1000) {
            rec.snapshot_taken(&format!("s{n}")).unwrap();
        }
        if n.is_multiple_of(5000) {
            rec.flush().unwrap();
            let last = rec.status()[0].next_seq - 1;
            println!("FLUSHED {last}");
        }
    }
}

/// Checks the directory; returns (highest seq, torn tails seen).
fn check(dir: &Path, flushed: Option<u64>, round: u64) -> (u64, usize) {
    let r = CaptureReader::open(dir).unwrap();
    let mut seqs = Vec::new();
    let mut torn = 0;
    for item in r.events(&Query::default()).unwrap() {
        match item {
            Ok(e) => {
                if let EventKind::NetRx { frame: f } = &e.event.kind {
                    let n = u64::from_le_bytes(f[..8].try_into().unwrap());
                    assert_eq!(
                        *f,
                        frame(n),
                        "round {round}: seq {} is damaged",
                        e.event.seq
                    );
                }
                seqs.push(e.event.seq);
            }
            Err(p) => {
                assert_eq!(p.severity, Severity::Warning, "round {round}: {p}");
                match p.kind {
                    ProblemKind::TornTail { bytes } => {
                        let len = std::fs::metadata(&p.file).unwrap().len();
                        assert_eq!(
                            p.offset.unwrap() + bytes,
                            len,
                            "round {round}: the torn tail runs to the end: {p}"
                        );
                        torn += 1;
                    }
                    ProblemKind::BadHeader { .. } => {}
                    other => panic!("round {round}: unexpected {other:?}"),
                }
            }
        }
    }
    let n = seqs.len() as u64;
    assert_eq!(
        seqs,
        (0..n).collect::<Vec<_>>(),
        "round {round}: seqs are a gap-free run from 0"
    );
    if let Some(f) = flushed {
        assert!(
            n > f,
            "round {round}: flushed seq {f} is missing (read {n} records)"
        );
    }
    let v = r.verify().unwrap();
    assert!(v.is_ok(), "round {round}: {:?}", v.problems);
    (n.saturating_sub(1), torn)
}

#[test]
fn killed_recorders_leave_a_readable_prefix() {
    let rounds: u64 = std::env::var(ROUNDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let tmp = TempDir::new("crash");
    let dir = tmp.join("buffer");
    let mut rng = Rng::new(rounds + 99);
    let mut torn_total = 0;
    let mut torn_now = 0;
    let mut last = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(300)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the child stopped by itself ({status})"
        );
        let out = child.stdout.take().unwrap();
        let flushed = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                l.strip_prefix("FLUSHED ")
                    .and_then(|s| s.parse::<u64>().ok())
            })
            .max();
        let (newest, torn) = check(&dir, flushed, round);
        assert!(newest >= last, "round {round}: records disappeared");
        last = newest;
        torn_total += torn;
        torn_now = torn;
    }
    assert!(
        last > rounds * 100,
        "the children made too little progress ({last})"
    );

    // What an interrupted append leaves, made on purpose (the kills above land inside a
    // write only now and then): the first bytes of a record at the end of the newest
    // segment. It is reported as a torn tail, and the next session goes on after it.
    let r = CaptureReader::open(&dir).unwrap();
    // (The newest segment may be one the last child was creating, with no header yet.)
    let seg = r
        .segments()
        .iter()
        .rev()
        .find(|s| s.header.is_some())
        .unwrap();
    let (newest, newest_records) = (seg.path.clone(), seg.records);
    let torn_tails = |dir: &Path| -> Vec<replay::capture::reader::Problem> {
        CaptureReader::open(dir)
            .unwrap()
            .events(&Query::default())
            .unwrap()
            .filter_map(|e| e.err())
            .filter(|p| matches!(p.kind, ProblemKind::TornTail { .. }))
            .collect()
    };
    // A kill inside a write may already have left a torn tail there.
    let earlier = torn_tails(&dir).into_iter().find(|p| p.file == newest);
    let len = std::fs::metadata(&newest).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut f, &[200, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    drop(f);
    let (n, torn) = check(&dir, Some(last), rounds);
    let ours = usize::from(earlier.is_none());
    assert_eq!((n, torn), (last, torn_now + ours));
    let p = torn_tails(&dir)
        .into_iter()
        .find(|p| p.file == newest)
        .expect("a torn tail in the newest segment");
    assert_eq!(
        p.offset,
        Some(earlier.as_ref().and_then(|e| e.offset).unwrap_or(len))
    );
    assert_eq!(p.seq, Some(last + 1));
    let clock = clock();
    let rec = start(vec![BufferConfig::new("crash", &dir)], &clock);
    rec.record(SourceId(NET0), EventKind::net_rx(frame(1)));
    rec.stop().unwrap();
    let (n, torn) = check(&dir, Some(last + 3), rounds + 1);
    // A segment holding no complete record is removed by the next session (it would be
    // where that session's first segment goes); one holding records keeps its torn tail.
    let want = if newest_records > 0 {
        torn_now + ours
    } else {
        torn_now - usize::from(earlier.is_some())
    };
    assert_eq!((n, torn), (last + 3, want));
    eprintln!("{rounds} kills, {last} records, {torn_total} torn-tail reports over all checks");
}
