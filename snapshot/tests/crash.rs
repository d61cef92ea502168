//! Crash safety: a child process takes snapshots in a loop (full and diff, consolidating and
//! deleting by retention as it goes) and is killed with SIGKILL at a random moment. After
//! each kill the store must list only complete snapshots, each reading back exactly (state
//! and memory), and report the rest as half-written. The next child cleans up and goes on.
//!
//! The child is this test binary run again with `REPRISE_SNAPSHOT_CRASH_DIR` set, selecting
//! the `crash_child` test.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::snap::{take, Guest};
use common::{Rng, TempDir};
use snapshot::{DirtyBitmap, FullImage, SnapshotKind, SnapshotStore};

const DIR_ENV: &str = "REPRISE_SNAPSHOT_CRASH_DIR";
const ROUNDS_ENV: &str = "REPRISE_SNAPSHOT_CRASH_ROUNDS";
const REGIONS: &[(u64, u64)] = &[(0, 1 << 20), (1 << 32, 3 << 20)];
const KEEP: usize = 4;

fn id(n: u64) -> String {
    format!("s{n:06}")
}

fn index(id: &str) -> u64 {
    id[1..].parse().expect("snapshot id")
}

/// The writes between snapshot `n - 1` and snapshot `n` (deterministic in `n`).
fn step(g: &mut Guest, n: u64) -> DirtyBitmap {
    let mut dirty = DirtyBitmap::new(&g.layout);
    let mut rng = Rng::new(0x5EED ^ n);
    let count = if n == 0 {
        300
    } else {
        1 + rng.below(40) as usize
    };
    g.scribble(&mut rng, count, &mut dirty);
    dirty
}

/// Guest memory as it was at every snapshot up to `last`, keeping only `wanted` ones.
fn memories(last: u64, wanted: &[u64]) -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut g = Guest::new(REGIONS);
    let mut out = Vec::new();
    for n in 0..=last {
        step(&mut g, n);
        if wanted.contains(&n) {
            out.push((n, g.mem.clone()));
        }
    }
    out
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let store = SnapshotStore::open(Path::new(&dir)).unwrap();
    store.clean_partial().unwrap();
    let newest = store
        .list()
        .unwrap()
        .snapshots
        .iter()
        .map(|m| index(&m.id))
        .max();
    let mut g = Guest::new(REGIONS);
    let start = match newest {
        Some(n) => {
            for i in 0..=n {
                step(&mut g, i);
            }
            n + 1
        }
        None => 0,
    };
    for n in start.. {
        let dirty = step(&mut g, n);
        // Every 7th snapshot is full; the others are diffs against the one before, holding
        // the pages dirtied since it.
        let parent = (n % 7 != 0 && n > 0)
            .then(|| id(n - 1))
            .filter(|p| store.get(p).is_ok());
        take(&store, &id(n), n, parent.as_deref(), &g, &dirty, n);
        println!("CRASHLOG committed {n}");
        let plan = store.select_expired(n, Some(KEEP), None).unwrap();
        if let Some(oldest) = plan.keep.last() {
            if !plan.pinned.is_empty() {
                store.consolidate(oldest).unwrap();
            }
        }
        let plan = store.select_expired(n, Some(KEEP), None).unwrap();
        for d in &plan.delete {
            store.delete(d).unwrap();
        }
    }
}

fn check_store(dir: &Path, scratch: &Path) -> Vec<u64> {
    let store = SnapshotStore::open(dir).unwrap();
    let l = store.list().unwrap();
    for ig in &l.ignored {
        assert!(
            ig.partial,
            "{} is not a complete snapshot and not half-written: {}",
            ig.name, ig.reason
        );
    }
    let present: Vec<u64> = l.snapshots.iter().map(|m| index(&m.id)).collect();
    let Some(&last) = present.iter().max() else {
        return present;
    };
    for (n, mem) in memories(last, &present) {
        let sid = id(n);
        let st = store.open_state(&sid).unwrap();
        assert_eq!(
            st.get::<(u64, String)>("vm").unwrap(),
            (n, format!("clock-{n}"))
        );
        assert_eq!(st.get::<Vec<u64>>("vcpu0").unwrap(), vec![n; 64]);
        let out = scratch.join("export");
        store.export_full_memory(&sid, &out).unwrap();
        let img = FullImage::open(&out).unwrap();
        img.verify().unwrap();
        let g = Guest {
            layout: img.layout().clone(),
            mem,
        };
        assert!(g.matches(&img), "memory of {sid} differs");
        if store.get(&sid).unwrap().kind == SnapshotKind::Full {
            store.open_memory(&sid).unwrap().verify().unwrap();
        }
    }
    present
}

#[test]
fn killed_writers_leave_only_complete_snapshots() {
    let rounds: u64 = std::env::var(ROUNDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let tmp = TempDir::new("crash");
    let dir = tmp.join("store");
    std::fs::create_dir(&dir).unwrap();
    let mut rng = Rng::new(rounds);
    let mut newest_seen = 0;
    let mut partial_seen = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the child stopped by itself ({status})"
        );
        partial_seen += SnapshotStore::open(&dir)
            .unwrap()
            .list()
            .unwrap()
            .ignored
            .len();
        let present = check_store(&dir, tmp.path());
        assert!(
            present.len() <= KEEP + 7 + 1,
            "round {round}: retention kept {present:?}"
        );
        newest_seen = newest_seen.max(present.iter().copied().max().unwrap_or(0));
    }
    assert!(
        newest_seen >= rounds,
        "the children made too little progress ({newest_seen} snapshots)"
    );
    eprintln!(
        "{rounds} kills, {newest_seen} snapshots, {partial_seen} half-written directories found"
    );
}
