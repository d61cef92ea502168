//! The snapshot store: committing, listing (with half-written and damaged entries ignored
//! and kept), chains, consolidation, deletion and retention.

mod common;

use std::time::Duration;

use common::snap::{state_for, take, Guest};
use common::{Rng, TempDir};
use snapshot::{DirtyBitmap, NewSnapshot, SnapshotError, SnapshotKind, SnapshotStore, StateWriter};

fn ids(l: &snapshot::Listing) -> Vec<String> {
    l.snapshots.iter().map(|m| m.id.clone()).collect()
}

/// Guest memory after each snapshot of a chain s0 (full), s1, s2, s3 (diffs).
fn build_chain(store: &SnapshotStore, g: &mut Guest, rng: &mut Rng) -> Vec<Vec<Vec<u8>>> {
    let mut states = Vec::new();
    let mut dirty = DirtyBitmap::new(&g.layout);
    g.scribble(rng, 200, &mut dirty);
    take(store, "s0", 1000, None, g, &dirty, 0);
    states.push(g.mem.clone());
    for i in 1..4u64 {
        let mut dirty = DirtyBitmap::new(&g.layout);
        g.scribble(rng, 40, &mut dirty);
        take(
            store,
            &format!("s{i}"),
            1000 + i,
            Some(&format!("s{}", i - 1)),
            g,
            &dirty,
            i,
        );
        states.push(g.mem.clone());
    }
    states
}

#[test]
fn commit_list_read_back() {
    let dir = TempDir::new("store-basic");
    let store = SnapshotStore::open(&dir.join("snaps")).unwrap();
    let mut g = Guest::new(&[(0, 1 << 20), (1 << 32, 2 << 20)]);
    let states = build_chain(&store, &mut g, &mut Rng::new(1));
    let l = store.list().unwrap();
    assert_eq!(ids(&l), ["s0", "s1", "s2", "s3"]);
    assert!(l.ignored.is_empty(), "{:?}", l.ignored);
    let m = store.get("s2").unwrap();
    assert_eq!(
        (m.kind, m.parent.as_deref()),
        (SnapshotKind::Diff, Some("s1"))
    );
    assert_eq!(m.volumes[0].snapshot_name, "s2");
    assert_eq!(m.vm_config["vcpus"], 1);
    assert_eq!(store.chain("s3").unwrap(), ["s0", "s1", "s2", "s3"]);
    assert_eq!(store.chain("s0").unwrap(), ["s0"]);
    assert!(matches!(
        store.chain("nope").unwrap_err(),
        SnapshotError::NotFound { .. }
    ));
    let st = store.open_state("s2").unwrap();
    assert_eq!(
        st.get::<(u64, String)>("vm").unwrap(),
        (2, "clock-2".to_string())
    );
    // Restore needs a full image: s0 directly, s3 after exporting or consolidating.
    let img = store.open_memory("s0").unwrap();
    g.mem = states[0].clone();
    assert!(g.matches(&img));
    assert!(store
        .open_memory("s3")
        .unwrap_err()
        .to_string()
        .contains("consolidate"));
    for (i, s) in states.iter().enumerate() {
        let out = dir.join(&format!("export{i}"));
        store.export_full_memory(&format!("s{i}"), &out).unwrap();
        g.mem = s.clone();
        assert!(
            g.matches(&snapshot::FullImage::open(&out).unwrap()),
            "export of s{i}"
        );
    }
    // Ids that cannot be directory names, and ids in use.
    for bad in ["", "a/b", "..", ".hidden", "x.tmp", &"x".repeat(65)] {
        let e = store
            .begin(NewSnapshot {
                id: bad.into(),
                created: 0,
                vm_config: serde_json::Value::Null,
                volumes: vec![],
            })
            .err()
            .unwrap();
        assert!(matches!(e, SnapshotError::InvalidId { .. }), "{bad:?}: {e}");
    }
    let e = store
        .begin(NewSnapshot {
            id: "s1".into(),
            created: 0,
            vm_config: serde_json::Value::Null,
            volumes: vec![],
        })
        .err()
        .unwrap();
    assert!(matches!(e, SnapshotError::AlreadyExists { .. }), "{e}");
}

#[test]
fn diff_needs_a_matching_parent_and_commit_needs_everything() {
    let dir = TempDir::new("store-misuse");
    let store = SnapshotStore::open(dir.path()).unwrap();
    let g = Guest::new(&[(0, 1 << 20)]);
    let new = |id: &str| NewSnapshot {
        id: id.into(),
        created: 5,
        vm_config: serde_json::Value::Null,
        volumes: vec![],
    };
    take(&store, "base", 1, None, &g, &DirtyBitmap::new(&g.layout), 0);
    let other = Guest::new(&[(0, 2 << 20)]);
    let mut p = store.begin(new("d")).unwrap();
    let e = p
        .write_diff_memory(
            "base",
            &other.layout,
            &DirtyBitmap::new(&other.layout),
            &other.slices(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("memory layout"), "{e}");
    assert!(p
        .write_diff_memory(
            "missing",
            &g.layout,
            &DirtyBitmap::new(&g.layout),
            &g.slices()
        )
        .is_err());
    assert!(store
        .list()
        .unwrap()
        .ignored
        .iter()
        .any(|i| i.reason.contains("being written")));
    drop(p);
    assert!(
        !dir.join("d.tmp").exists(),
        "a dropped pending snapshot removes its directory"
    );
    let mut p = store.begin(new("d")).unwrap();
    p.write_state(&StateWriter::new()).unwrap();
    assert!(p.commit().unwrap_err().to_string().contains("no memory"));
    let mut p = store.begin(new("d")).unwrap();
    p.write_full_memory(&g.layout, &g.slices()).unwrap();
    assert!(p.write_full_memory(&g.layout, &g.slices()).is_err());
    assert!(p.commit().unwrap_err().to_string().contains("no state"));
    assert_eq!(ids(&store.list().unwrap()), ["base"]);
}

#[test]
fn half_written_and_damaged_entries_are_ignored_and_kept() {
    let dir = TempDir::new("store-partial");
    let store = SnapshotStore::open(dir.path()).unwrap();
    let mut g = Guest::new(&[(0, 1 << 20)]);
    build_chain(&store, &mut g, &mut Rng::new(2));
    let copy = |from: &str, to: &str| {
        std::fs::create_dir(dir.join(to)).unwrap();
        for e in std::fs::read_dir(dir.join(from)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(to).join(e.file_name())).unwrap();
        }
    };
    // A half-written snapshot (as a killed writer leaves it), a truncated manifest, no
    // manifest, a manifest edited by hand, a manifest of a future version, a memory image
    // of the wrong size, a manifest naming another snapshot, and a stray file.
    copy("s1", "s9.tmp");
    std::fs::remove_file(dir.join("s9.tmp/manifest.json")).unwrap();
    copy("s1", "trunc");
    let m = std::fs::read(dir.join("trunc/manifest.json")).unwrap();
    std::fs::write(dir.join("trunc/manifest.json"), &m[..m.len() / 2]).unwrap();
    copy("s1", "nomanifest");
    std::fs::remove_file(dir.join("nomanifest/manifest.json")).unwrap();
    copy("s0", "edited");
    let text = std::fs::read_to_string(dir.join("s0/manifest.json")).unwrap();
    std::fs::write(
        dir.join("edited/manifest.json"),
        text.replace("\"id\": \"s0\"", "\"id\": \"edited\""),
    )
    .unwrap();
    copy("s0", "future");
    std::fs::write(
        dir.join("future/manifest.json"),
        text.replace("\"version\": 1", "\"version\": 2"),
    )
    .unwrap();
    copy("s0", "short");
    std::fs::write(
        dir.join("short/manifest.json"),
        std::fs::read_to_string(dir.join("s0/manifest.json")).unwrap(),
    )
    .unwrap();
    copy("s0", "renamed");
    std::fs::write(dir.join("stray.txt"), b"x").unwrap();
    let mem = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("s0/memory.full"))
        .unwrap();
    let len = mem.metadata().unwrap().len();

    let l = store.list().unwrap();
    assert_eq!(ids(&l), ["s0", "s1", "s2", "s3"]);
    let reason = |n: &str| {
        l.ignored
            .iter()
            .find(|i| i.name == n)
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason("s9.tmp").contains("half-written"), "{:?}", l.ignored);
    assert!(
        reason("trunc").contains("not valid JSON"),
        "{}",
        reason("trunc")
    );
    assert!(
        reason("nomanifest").contains("manifest.json: open"),
        "{}",
        reason("nomanifest")
    );
    assert!(
        reason("edited").contains("manifest: checksum mismatch"),
        "{}",
        reason("edited")
    );
    assert!(
        reason("future").contains("unsupported snapshot manifest version 2"),
        "{}",
        reason("future")
    );
    assert!(
        reason("short").contains("for snapshot \"s0\""),
        "{}",
        reason("short")
    );
    assert!(
        reason("renamed").contains("for snapshot \"s0\""),
        "{}",
        reason("renamed")
    );
    assert!(reason("stray.txt").contains("not a directory"));
    assert_eq!(l.ignored.iter().filter(|i| i.partial).count(), 1);

    // A memory image of the wrong size: the snapshot is reported, not listed, not removed.
    mem.set_len(len - 4096).unwrap();
    let l = store.list().unwrap();
    assert_eq!(ids(&l), ["s1", "s2", "s3"]);
    assert!(
        l.ignored
            .iter()
            .any(|i| i.name == "s0" && i.reason.contains("the manifest says")),
        "{:?}",
        l.ignored
    );
    assert!(store.open_memory("s0").is_err());
    assert!(matches!(
        store.chain("s3").unwrap_err(),
        SnapshotError::BrokenChain { .. }
    ));
    assert!(store.delete("s0").is_err());
    mem.set_len(len).unwrap();

    // Nothing was deleted; clean_partial removes only the half-written directory.
    for n in [
        "s9.tmp",
        "trunc",
        "nomanifest",
        "edited",
        "future",
        "short",
        "renamed",
        "stray.txt",
        "s0",
    ] {
        assert!(dir.join(n).exists(), "{n} was removed");
    }
    assert!(store
        .begin(NewSnapshot {
            id: "s9".into(),
            created: 0,
            vm_config: serde_json::Value::Null,
            volumes: vec![]
        })
        .err()
        .unwrap()
        .to_string()
        .contains("half-written"));
    assert_eq!(store.clean_partial().unwrap(), ["s9.tmp"]);
    assert!(
        !dir.join("s9.tmp").exists() && dir.join("trunc").exists() && dir.join("edited").exists()
    );
    assert_eq!(ids(&store.list().unwrap()), ["s0", "s1", "s2", "s3"]);
}

#[test]
fn a_live_writer_is_not_cleaned_up() {
    let dir = TempDir::new("store-live");
    let store = SnapshotStore::open(dir.path()).unwrap();
    let g = Guest::new(&[(0, 1 << 20)]);
    let mut p = store
        .begin(NewSnapshot {
            id: "w".into(),
            created: 0,
            vm_config: serde_json::Value::Null,
            volumes: vec![],
        })
        .unwrap();
    assert!(store.clean_partial().unwrap().is_empty());
    assert!(dir.join("w.tmp").exists());
    p.write_state(&state_for(1)).unwrap();
    p.write_full_memory(&g.layout, &g.slices()).unwrap();
    p.commit().unwrap();
    let l = store.list().unwrap();
    assert_eq!(ids(&l), ["w"]);
    assert!(l.ignored.is_empty());
    assert!(!dir.join("w/.writer.lock").exists());
}

#[test]
fn consolidate_then_delete() {
    let dir = TempDir::new("store-consolidate");
    let store = SnapshotStore::open(dir.path()).unwrap();
    let mut g = Guest::new(&[(0, 2 << 20), (1 << 30, 1 << 20)]);
    let states = build_chain(&store, &mut g, &mut Rng::new(3));
    let e = store.delete("s1").unwrap_err();
    assert!(
        matches!(e, SnapshotError::InUse { ref dependents, .. } if dependents == &["s2"]),
        "{e}"
    );
    assert!(matches!(
        store.delete("zz").unwrap_err(),
        SnapshotError::NotFound { .. }
    ));
    let m = store.consolidate("s2").unwrap();
    assert_eq!((m.kind, m.parent.as_deref()), (SnapshotKind::Full, None));
    assert!(!dir.join("s2/memory.diff").exists());
    assert_eq!(store.get("s2").unwrap(), m);
    assert_eq!(store.chain("s3").unwrap(), ["s2", "s3"]);
    g.mem = states[2].clone();
    let img = store.open_memory("s2").unwrap();
    img.verify().unwrap();
    assert!(g.matches(&img));
    // s1 and then s0 are no longer needed by anything.
    store.delete("s1").unwrap();
    store.delete("s0").unwrap();
    assert_eq!(ids(&store.list().unwrap()), ["s2", "s3"]);
    let out = dir
        .path()
        .parent()
        .unwrap()
        .join(format!("s3-export-{}", std::process::id()));
    store.export_full_memory("s3", &out).unwrap();
    g.mem = states[3].clone();
    assert!(g.matches(&snapshot::FullImage::open(&out).unwrap()));
    std::fs::remove_file(&out).unwrap();
    assert_eq!(
        store.consolidate("s2").unwrap(),
        m,
        "consolidating a full snapshot changes nothing"
    );
    store.delete("s3").unwrap();
    store.delete("s2").unwrap();
    assert!(store.list().unwrap().snapshots.is_empty());
    assert!(store.list().unwrap().ignored.is_empty());
}

#[test]
fn retention_keeps_chains_intact() {
    let dir = TempDir::new("store-retention");
    let store = SnapshotStore::open(dir.path()).unwrap();
    let mut g = Guest::new(&[(0, 1 << 20)]);
    let mut rng = Rng::new(4);
    // s0 full, s1..s4 diffs, s5 full, s6..s9 diffs; s(i) created at 1000 * i.
    for i in 0..10u64 {
        let mut dirty = DirtyBitmap::new(&g.layout);
        g.scribble(&mut rng, 10, &mut dirty);
        let parent = (i % 5 != 0).then(|| format!("s{}", i - 1));
        take(
            &store,
            &format!("s{i}"),
            1000 * i,
            parent.as_deref(),
            &g,
            &dirty,
            i,
        );
    }
    let plan = store.select_expired(10_000, Some(3), None).unwrap();
    assert_eq!(plan.keep, ["s9", "s8", "s7"]);
    assert_eq!(plan.pinned, ["s6", "s5"]);
    assert_eq!(plan.delete, ["s4", "s3", "s2", "s1", "s0"]);
    // By age: 2.5 s keeps s9 and s8 (1 s and 2 s old).
    let plan = store
        .select_expired(10_000, None, Some(Duration::from_millis(2500)))
        .unwrap();
    assert_eq!(plan.keep, ["s9", "s8"]);
    assert_eq!(plan.pinned, ["s7", "s6", "s5"]);
    // Both, and a snapshot that is kept by count but too old.
    let plan = store
        .select_expired(10_000, Some(5), Some(Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(plan.keep, ["s9"]);
    // A kept full snapshot pins nothing.
    let plan = store.select_expired(10_000, Some(5), None).unwrap();
    assert_eq!(plan.keep, ["s9", "s8", "s7", "s6", "s5"]);
    assert!(plan.pinned.is_empty());
    assert_eq!(plan.delete, ["s4", "s3", "s2", "s1", "s0"]);
    // The plan can be carried out in its order, and every kept chain still reads.
    let plan = store.select_expired(10_000, Some(3), None).unwrap();
    for id in &plan.delete {
        store.delete(id).unwrap();
    }
    for id in plan.keep.iter().chain(&plan.pinned) {
        store.chain(id).unwrap();
        store.export_full_memory(id, &dir.join("x")).unwrap();
    }
    // Consolidating the oldest kept snapshot frees what it pinned.
    store.consolidate("s7").unwrap();
    let plan = store.select_expired(10_000, Some(3), None).unwrap();
    assert!(plan.pinned.is_empty());
    assert_eq!(plan.delete, ["s6", "s5"]);
    for id in &plan.delete {
        store.delete(id).unwrap();
    }
    assert_eq!(ids(&store.list().unwrap()), ["s7", "s8", "s9"]);
    // Keeping nothing deletes everything, children first.
    let plan = store.select_expired(10_000, Some(0), None).unwrap();
    assert_eq!(plan.delete, ["s9", "s8", "s7"]);
}
