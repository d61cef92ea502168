//! Volume behaviour: I/O, sparseness, snapshots, clones, resize, deep chains, locking, and
//! the errors for bad input.

mod volume_common;

use std::fs;

use blockstore::limits::{Bucket, Limits};
use blockstore::volume::{CreateOptions, ResizeOptions, Volume, VolumeError};
use volume_common::{assert_same, pattern, read_all, TempStore};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn opts(size: u64, chunk_size: u32) -> CreateOptions {
    CreateOptions { size, chunk_size }
}

#[test]
fn write_read_flush_reopen_and_sparseness() {
    let store = TempStore::new("basic");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(4 * MIB, 64 * 1024)).unwrap();
    assert_eq!(v.size(), 4 * MIB);
    assert_eq!(v.chunk_size(), 65536);
    assert_eq!(v.name(), "v");
    assert!(!v.read_only());
    let mut model = vec![0u8; (4 * MIB) as usize];
    // Unaligned to chunks, spanning chunk boundaries.
    for (i, (off, len)) in [(512u64, 1024usize), (60 * KIB, 10 * 1024), (MIB, 64 * 1024)]
        .into_iter()
        .enumerate()
    {
        let data = pattern(i as u64, len);
        v.write_at(off, &data).unwrap();
        model[off as usize..off as usize + len].copy_from_slice(&data);
    }
    assert_same("before flush", &read_all(&mut v), &model);
    assert_eq!(v.allocated_chunks(), 3);
    v.flush().unwrap();
    drop(v);
    let mut v = Volume::open(&dir).unwrap();
    assert_same("after reopen", &read_all(&mut v), &model);
    // Discarding a whole chunk frees it; a partial discard zeroes.
    v.discard(MIB, 64 * KIB).unwrap();
    v.write_zeroes(512, 512).unwrap();
    model[MIB as usize..(MIB + 64 * KIB) as usize].fill(0);
    model[512..1024].fill(0);
    assert_eq!(v.allocated_chunks(), 2);
    v.flush().unwrap();
    let head = v.info().layers.last().unwrap().clone();
    assert!(head.head);
    assert!(
        head.bytes_on_disk <= 2 * 64 * KIB,
        "discarded chunk space returned: {head:?}"
    );
    assert_same("after discard", &read_all(&mut v), &model);
    let json = serde_json::to_string(&v.info()).unwrap();
    assert!(json.contains("\"allocated_chunks\":2"), "{json}");
}

#[test]
fn second_writer_gets_a_clear_error() {
    let store = TempStore::new("lock");
    let dir = store.vol("v");
    let _v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    let err = Volume::open(&dir).unwrap_err();
    assert!(matches!(err, VolumeError::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("lock"), "{msg}");
    // Readers are not writers.
    let r = Volume::open_read_only(&dir).unwrap();
    assert!(r.read_only());
}

#[test]
fn read_only_handles_refuse_changes() {
    let store = TempStore::new("ro");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 4096)).unwrap();
    v.flush().unwrap();
    v.snapshot("s").unwrap();
    drop(v);
    let mut r = Volume::open_read_only(&dir).unwrap();
    assert_eq!(read_all(&mut r)[..4096], pattern(1, 4096)[..]);
    for err in [
        r.write_at(0, &[0u8; 512]).unwrap_err(),
        r.discard(0, 512).unwrap_err(),
        r.snapshot("x").unwrap_err(),
        r.resize(2 * MIB, &ResizeOptions::default()).unwrap_err(),
        r.delete_snapshot("s").unwrap_err(),
    ] {
        assert!(matches!(err, VolumeError::ReadOnly { .. }), "{err}");
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    r.flush().unwrap();
}

#[test]
fn snapshots_and_clones_share_layers_and_diverge() {
    let store = TempStore::new("snap");
    let src = store.vol("src");
    let mut v = Volume::create(&src, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 16384)).unwrap();
    let s1 = v.snapshot("s1").unwrap();
    assert_eq!(s1.name, "s1");
    assert_eq!(s1.size, MIB);
    v.write_at(4096, &pattern(2, 4096)).unwrap();
    v.flush().unwrap();
    let mut want_src = pattern(1, 16384);
    want_src[4096..8192].copy_from_slice(&pattern(2, 4096));

    // A snapshot view and a clone while the writer has the volume open.
    let mut view = Volume::open_snapshot(&src, "s1").unwrap();
    assert!(view.read_only());
    assert_eq!(view.snapshot_name(), Some("s1"));
    assert_eq!(read_all(&mut view)[..16384], pattern(1, 16384)[..]);
    let mut c = Volume::clone_from_snapshot(&src, "s1", &store.vol("clone")).unwrap();
    assert_eq!(read_all(&mut c)[..16384], pattern(1, 16384)[..]);
    let info = c.info();
    assert_eq!(
        info.origin.as_ref().map(|o| o.snapshot.as_str()),
        Some("s1")
    );
    assert_eq!(
        info.layers[0].id, s1.layers[0],
        "the clone shares the snapshot's layer"
    );
    c.write_at(8192, &pattern(3, 4096)).unwrap();
    c.flush().unwrap();

    assert_eq!(read_all(&mut v)[..16384], want_src[..]);
    let mut view = Volume::open_snapshot(&src, "s1").unwrap();
    assert_eq!(read_all(&mut view)[..16384], pattern(1, 16384)[..]);
    let mut want_clone = pattern(1, 16384);
    want_clone[8192..12288].copy_from_slice(&pattern(3, 4096));
    assert_eq!(read_all(&mut c)[..16384], want_clone[..]);
    assert_eq!(v.snapshots().len(), 1);
    assert!(c.snapshots().is_empty());
}

#[test]
fn a_prepared_snapshot_holds_writes_up_to_the_snapshot_and_an_unused_spare_is_removed() {
    let store = TempStore::new("prepared");
    let src = store.vol("src");
    let layer_files = || fs::read_dir(store.layers_dir()).unwrap().count();
    let mut v = Volume::create(&src, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 8192)).unwrap();
    v.prepare_snapshot().unwrap();
    // Written between the preparation and the snapshot: part of the snapshot.
    v.write_at(8192, &pattern(2, 4096)).unwrap();
    let s1 = v.snapshot("s1").unwrap();
    v.write_at(0, &pattern(3, 4096)).unwrap();
    v.flush().unwrap();
    let mut want = pattern(1, 8192);
    want.extend_from_slice(&pattern(2, 4096));
    let mut view = Volume::open_snapshot(&src, "s1").unwrap();
    assert_eq!(read_all(&mut view)[..12288], want[..]);
    assert_eq!(s1.layers.len(), 1);
    drop(view);

    // A preparation never followed by a snapshot leaves nothing behind once closed.
    let before = layer_files();
    v.prepare_snapshot().unwrap();
    v.prepare_snapshot().unwrap();
    assert_eq!(
        layer_files(),
        before + 2,
        "one spare layer (data and index)"
    );
    drop(v);
    assert_eq!(layer_files(), before);
    let mut v = Volume::open(&src).unwrap();
    want[..4096].copy_from_slice(&pattern(3, 4096));
    assert_eq!(read_all(&mut v)[..12288], want[..]);
}

#[test]
fn deleting_a_snapshot_keeps_what_clones_and_other_snapshots_need() {
    let store = TempStore::new("del");
    let src = store.vol("src");
    let mut v = Volume::create(&src, &opts(256 * KIB, 4096)).unwrap();
    let mut model = vec![0u8; 256 * 1024];
    let mut snaps = Vec::new();
    for i in 0..6u64 {
        let off = (i * 3 % 64) * 4096;
        let d = pattern(100 + i, 8192);
        v.write_at(off, &d).unwrap();
        model[off as usize..off as usize + 8192].copy_from_slice(&d);
        v.snapshot(&format!("s{i}")).unwrap();
        snaps.push(model.clone());
    }
    let mut c = Volume::clone_from_snapshot(&src, "s2", &store.vol("c")).unwrap();
    let layers_before = v.layer_count();
    assert_eq!(layers_before, 7);
    // s2 is used by the clone: deleting it on the source must not lose its layers.
    v.delete_snapshot("s2").unwrap();
    v.delete_snapshot("s4").unwrap();
    v.delete_snapshot("s5").unwrap();
    assert!(v.layer_count() < layers_before, "layers merged");
    assert_same("clone after deletes", &read_all(&mut c), &snaps[2]);
    for i in [0usize, 1, 3] {
        let mut view = Volume::open_snapshot(&src, &format!("s{i}")).unwrap();
        assert_same(&format!("snapshot s{i}"), &read_all(&mut view), &snaps[i]);
    }
    assert_same("source", &read_all(&mut v), &model);
    let err = Volume::open_snapshot(&src, "s2").unwrap_err();
    assert!(matches!(err, VolumeError::SnapshotNotFound { .. }), "{err}");
    drop(c);
    Volume::delete(&store.vol("c")).unwrap();
    v.delete_snapshot("s0").unwrap();
    v.delete_snapshot("s1").unwrap();
    v.delete_snapshot("s3").unwrap();
    assert_eq!(v.layer_count(), 1, "everything merged into the head");
    assert_same("source at the end", &read_all(&mut v), &model);
    drop(v);
    assert_eq!(store.layer_ids().len(), 1, "unused layer files collected");
    let report = Volume::check(&src, true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let mut v = Volume::open(&src).unwrap();
    assert_same("source reopened", &read_all(&mut v), &model);
}

#[test]
fn a_deep_chain_reads_each_chunk_with_one_layer_read() {
    let store = TempStore::new("deep");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    for i in 0..20u64 {
        v.write_at(i * 4096, &pattern(i, 4096)).unwrap();
        v.write_at(100 * 4096, &pattern(1000 + i, 4096)).unwrap();
        v.snapshot(&format!("s{i}")).unwrap();
    }
    assert_eq!(v.layer_count(), 21);
    drop(v);
    let mut v = Volume::open(&dir).unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..20u64 {
        let before = v.io_stats().layer_reads;
        v.read_at(i * 4096, &mut buf).unwrap();
        assert_eq!(buf, pattern(i, 4096), "chunk {i}");
        assert_eq!(v.io_stats().layer_reads - before, 1, "chunk {i}: one read");
    }
    let before = v.io_stats().layer_reads;
    v.read_at(100 * 4096, &mut buf).unwrap();
    assert_eq!(buf, pattern(1019, 4096));
    assert_eq!(v.io_stats().layer_reads - before, 1);
    let before = v.io_stats().layer_reads;
    v.read_at(50 * 4096, &mut buf).unwrap();
    assert_eq!(buf, vec![0u8; 4096]);
    assert_eq!(
        v.io_stats().layer_reads,
        before,
        "unwritten chunks read nothing"
    );
    // A partial read of a chunk not yet verified reads (and verifies) the whole chunk in
    // one call; later partial reads read just what is asked.
    drop(v);
    let mut v = Volume::open(&dir).unwrap();
    for _ in 0..2 {
        let before = v.io_stats().layer_reads;
        v.read_at(3 * 4096 + 512, &mut buf[..1024]).unwrap();
        assert_eq!(buf[..1024], pattern(3, 4096)[512..1536]);
        assert_eq!(v.io_stats().layer_reads - before, 1);
    }
    // Every snapshot in the chain still reads right.
    for i in [0u64, 7, 19] {
        let mut s = Volume::open_snapshot(&dir, &format!("s{i}")).unwrap();
        s.read_at(100 * 4096, &mut buf).unwrap();
        assert_eq!(buf, pattern(1000 + i, 4096));
        s.read_at((i + 1) * 4096, &mut buf).unwrap();
        assert_eq!(buf, vec![0u8; 4096]);
    }
}

#[test]
fn snapshot_and_clone_of_a_large_volume_copy_no_data() {
    let store = TempStore::new("large");
    let dir = store.vol("big");
    let mut v = Volume::create(&dir, &opts(10 << 30, 64 * 1024)).unwrap();
    for i in 0..64u64 {
        v.write_at(i * (150 * MIB), &pattern(i, 64 * 1024)).unwrap();
    }
    v.flush().unwrap();
    let before = v.io_stats();
    v.snapshot("s").unwrap();
    assert_eq!(
        v.io_stats(),
        before,
        "a snapshot reads and writes no chunk data"
    );
    let mut c = Volume::clone_from_snapshot(&dir, "s", &store.vol("c")).unwrap();
    assert_eq!(c.io_stats().layer_reads + c.io_stats().layer_writes, 0);
    let mut buf = vec![0u8; 65536];
    c.read_at(63 * 150 * MIB, &mut buf).unwrap();
    assert_eq!(buf, pattern(63, 65536));
    assert_eq!(c.size(), 10 << 30);
}

#[test]
fn resize_grows_instantly_and_shrinks_only_when_allowed() {
    let store = TempStore::new("resize");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(64 * KIB, 4096)).unwrap();
    v.write_at(60 * KIB, &pattern(1, 4096)).unwrap();
    v.resize(128 * KIB, &ResizeOptions::default()).unwrap();
    assert_eq!(v.size(), 128 * KIB);
    let all = read_all(&mut v);
    assert_eq!(all[60 * 1024..64 * 1024], pattern(1, 4096)[..]);
    assert!(all[64 * 1024..].iter().all(|&b| b == 0));

    let err = v.resize(32 * KIB, &ResizeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("allow_shrink"), "{err}");
    let shrink = ResizeOptions {
        allow_shrink: true,
        discard_data: false,
    };
    let err = v.resize(32 * KIB, &shrink).unwrap_err();
    assert!(
        matches!(err, VolumeError::WouldDropData { offset, .. } if offset == 60 * KIB),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.display().to_string()) && msg.contains("discard_data"),
        "{msg}"
    );
    assert_eq!(v.size(), 128 * KIB, "nothing changed");
    assert_eq!(read_all(&mut v)[60 * 1024..64 * 1024], pattern(1, 4096)[..]);
    // Shrinking above the data is fine, also in the middle of a chunk.
    v.resize(64 * KIB + 512, &shrink).unwrap();
    v.resize(64 * KIB, &shrink).unwrap();
    // A shrink into the middle of a written chunk, dropping data, then a grow: zeros.
    v.snapshot("before").unwrap();
    let discard = ResizeOptions {
        allow_shrink: true,
        discard_data: true,
    };
    let err = v.resize(62 * KIB, &shrink).unwrap_err();
    assert!(matches!(err, VolumeError::WouldDropData { .. }), "{err}");
    v.resize(62 * KIB, &discard).unwrap();
    v.resize(32 * KIB, &discard).unwrap();
    v.resize(128 * KIB, &ResizeOptions::default()).unwrap();
    assert!(read_all(&mut v).iter().all(|&b| b == 0));
    drop(v);
    let mut v = Volume::open(&dir).unwrap();
    assert_eq!(v.size(), 128 * KIB);
    assert!(read_all(&mut v).iter().all(|&b| b == 0));
    let mut s = Volume::open_snapshot(&dir, "before").unwrap();
    assert_eq!(s.size(), 64 * KIB);
    assert_eq!(read_all(&mut s)[60 * 1024..], pattern(1, 4096)[..]);
    let err = v.resize(1000, &ResizeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("multiple of 512"), "{err}");
}

#[test]
fn limits_are_kept_in_the_manifest() {
    let store = TempStore::new("limits");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    assert!(v.limits().is_unlimited());
    let limits = Limits {
        write_iops: Some(Bucket {
            rate: 100,
            burst: 10,
        }),
        ..Default::default()
    };
    v.set_limits(limits).unwrap();
    let err = v
        .set_limits(Limits {
            bps: Some(Bucket { rate: 0, burst: 0 }),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("bps"), "{err}");
    drop(v);
    assert_eq!(Volume::open(&dir).unwrap().limits(), limits);
    v = Volume::open(&dir).unwrap();
    v.snapshot("s").unwrap();
    let c = Volume::clone_from_snapshot(&dir, "s", &store.vol("c")).unwrap();
    assert_eq!(
        c.limits(),
        limits,
        "a clone starts with its source's limits"
    );
}

fn assert_names(err: &VolumeError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "{msg:?} should contain {p:?}");
    }
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let store = TempStore::new("args");
    let dir = store.vol("v");
    let d = dir.display().to_string();
    let err = Volume::create(&dir, &opts(1000, 4096)).unwrap_err();
    assert_names(&err, &[&d, "not a multiple of 512"]);
    let err = Volume::create(&dir, &opts(MIB, 3000)).unwrap_err();
    assert_names(&err, &[&d, "chunk size 3000"]);
    let err = Volume::create(&store.root.join("elsewhere/v"), &opts(MIB, 4096)).unwrap_err();
    assert_names(&err, &["<store>/volumes/<name>"]);
    let err = Volume::open(&dir).unwrap_err();
    assert!(matches!(err, VolumeError::NotFound { .. }));
    assert_names(&err, &[&d, "manifest.json"]);

    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    drop(Volume::create(&store.vol("w"), &opts(MIB, 4096)).unwrap());
    let err = Volume::create(&store.vol("w"), &opts(MIB, 4096)).unwrap_err();
    assert!(matches!(err, VolumeError::AlreadyExists { .. }), "{err}");
    let err = v.write_at(100, &[0u8; 512]).unwrap_err();
    assert_names(&err, &[&d, "multiples of 512"]);
    let err = v.read_at(MIB - 512, &mut [0u8; 1024]).unwrap_err();
    assert_names(&err, &[&d, "beyond the end"]);
    let err = v.discard(MIB, 512).unwrap_err();
    assert_names(&err, &[&d, "beyond the end"]);

    v.snapshot("s").unwrap();
    let err = v.snapshot("s").unwrap_err();
    assert!(matches!(err, VolumeError::SnapshotExists { .. }));
    assert_names(&err, &[&d, "manifest.json", "\"s\" already exists"]);
    let err = v.snapshot("bad/name").unwrap_err();
    assert_names(&err, &[&d, "not a valid snapshot name"]);
    let err = v.delete_snapshot("nope").unwrap_err();
    assert_names(&err, &[&d, "no snapshot named \"nope\"", "snapshots: s"]);
    let err = Volume::clone_from_snapshot(&dir, "missing", &store.vol("c")).unwrap_err();
    assert!(matches!(err, VolumeError::SnapshotNotFound { .. }));
    assert_names(&err, &[&d, "manifest.json", "\"missing\""]);
    assert!(!store.vol("c").join("manifest.json").exists());
    let err = Volume::clone_from_snapshot(&dir, "s", &store.vol("w")).unwrap_err();
    assert!(matches!(err, VolumeError::AlreadyExists { .. }), "{err}");
    let other = TempStore::new("other");
    let err = Volume::clone_from_snapshot(&dir, "s", &other.vol("c")).unwrap_err();
    assert_names(&err, &["same store"]);
}

/// The head layer's id of the volume in `dir` (from its info).
fn head_id(dir: &std::path::Path) -> String {
    let v = Volume::open_read_only(dir).unwrap();
    v.info().layers.last().unwrap().id.clone()
}

#[test]
fn a_corrupt_manifest_is_refused_naming_the_file() {
    let store = TempStore::new("badmanifest");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 4096)).unwrap();
    drop(v);
    let path = dir.join("manifest.json");
    let good = fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    // Flip one digit of the size inside the checksummed body.
    let bad = text.replacen("1048576", "1048064", 1);
    assert_ne!(bad, text);
    fs::write(&path, bad).unwrap();
    let err = Volume::open(&dir).unwrap_err();
    assert!(matches!(err, VolumeError::Corrupt { .. }), "{err}");
    assert_names(
        &err,
        &[
            &dir.display().to_string(),
            "manifest.json",
            "checksum mismatch",
        ],
    );
    let report = Volume::check(&dir, false).unwrap();
    assert!(!report.is_repairable(), "{report:?}");
    let err = Volume::repair(&dir).unwrap_err();
    assert_names(&err, &["cannot be repaired", "manifest.json", "checksum"]);
    // A truncated manifest.
    fs::write(&path, &good[..good.len() / 2]).unwrap();
    let err = Volume::open_read_only(&dir).unwrap_err();
    assert_names(&err, &["manifest.json", "JSON"]);
    // Restored, nothing was lost.
    fs::write(&path, &good).unwrap();
    let mut v = Volume::open(&dir).unwrap();
    assert_eq!(read_all(&mut v)[..4096], pattern(1, 4096)[..]);
}

#[test]
fn a_truncated_index_or_data_file_is_refused_naming_the_file() {
    let store = TempStore::new("badindex");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 8192)).unwrap();
    let snap = v.snapshot("s").unwrap();
    drop(v);
    let id = &snap.layers[0];
    let index = store.layers_dir().join(format!("{id}.index"));
    let good = fs::read(&index).unwrap();
    fs::write(&index, &good[..good.len() - 7]).unwrap();
    let err = Volume::open(&dir).unwrap_err();
    assert_names(
        &err,
        &[
            &dir.display().to_string(),
            &format!("{id}.index"),
            "truncated",
        ],
    );
    let err = Volume::open_snapshot(&dir, "s").unwrap_err();
    assert_names(&err, &[&format!("{id}.index"), "truncated"]);
    fs::write(&index, &good).unwrap();
    // A truncated data file: the index names slots past its end.
    let data = store.layers_dir().join(format!("{id}.data"));
    let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.set_len(4096).unwrap();
    let err = Volume::open(&dir).unwrap_err();
    assert_names(
        &err,
        &[&format!("{id}.index"), "beyond the end of the data file"],
    );
    let report = Volume::check(&dir, false).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file.ends_with(format!("{id}.index"))),
        "{report:?}"
    );
}

#[test]
fn a_corrupt_chunk_is_reported_on_read_and_by_check() {
    let store = TempStore::new("badchunk");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 8192)).unwrap();
    let snap = v.snapshot("s").unwrap();
    v.write_at(65536, &pattern(2, 4096)).unwrap();
    drop(v);
    let id = &snap.layers[0];
    let data = store.layers_dir().join(format!("{id}.data"));
    let mut bytes = fs::read(&data).unwrap();
    bytes[4096 + 100] ^= 0xff;
    fs::write(&data, &bytes).unwrap();
    let mut v = Volume::open(&dir).unwrap();
    let mut buf = vec![0u8; 512];
    v.read_at(0, &mut buf).unwrap();
    let err = v.read_at(4096, &mut buf).unwrap_err();
    assert!(
        matches!(err, VolumeError::ChecksumMismatch { chunk: 1, .. }),
        "{err}"
    );
    assert_names(
        &err,
        &[
            &dir.display().to_string(),
            &format!("{id}.data"),
            "chunk 1",
            "checksum",
        ],
    );
    // A write into that chunk must not silently build on bad data.
    assert!(v.write_at(4096, &[1u8; 512]).is_err());
    v.set_verify_reads(false);
    v.read_at(4096, &mut buf).unwrap();
    drop(v);
    let report = Volume::check(&dir, true).unwrap();
    let p = report
        .problems
        .iter()
        .find(|p| !p.repairable)
        .expect("a problem");
    assert!(
        p.file.ends_with(format!("{id}.data")) && p.problem.contains("chunk 1"),
        "{p:?}"
    );
    assert!(Volume::check(&dir, false).unwrap().is_clean());
    // Repair does the cheap checks only; it cannot invent lost data, and a full check
    // still reports the chunk afterwards.
    Volume::repair(&dir).unwrap();
    assert!(!Volume::check(&dir, true).unwrap().is_clean());
}

#[test]
fn check_and_repair_clean_up_after_an_interruption() {
    let store = TempStore::new("repair");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 8192)).unwrap();
    v.flush().unwrap();
    drop(v);
    let head = head_id(&dir);
    let data = store.layers_dir().join(format!("{head}.data"));
    // What a crash can leave: temporary files and data written after the last flush.
    fs::write(dir.join("manifest.json.tmp"), b"{\"partial").unwrap();
    fs::write(
        store.layers_dir().join(format!("{head}.index.tmp")),
        b"junk",
    )
    .unwrap();
    let mut bytes = fs::read(&data).unwrap();
    bytes.extend_from_slice(&pattern(9, 4096 * 3 + 100));
    fs::write(&data, &bytes).unwrap();
    let report = Volume::check(&dir, true).unwrap();
    assert!(!report.is_clean());
    assert!(report.is_repairable(), "{report:?}");
    assert_eq!(report.problems.len(), 4, "{report:?}");
    let report = Volume::repair(&dir).unwrap();
    assert_eq!(report.repaired.len(), 4, "{report:?}");
    let after = Volume::check(&dir, true).unwrap();
    assert!(after.is_clean(), "{after:?}");
    let mut v = Volume::open(&dir).unwrap();
    assert_eq!(read_all(&mut v)[..8192], pattern(1, 8192)[..]);
    assert_eq!(fs::metadata(&data).unwrap().len(), 8192);
}

#[test]
fn opening_repairs_automatically() {
    let store = TempStore::new("autorepair");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 4096)).unwrap();
    v.flush().unwrap();
    drop(v);
    let head = head_id(&dir);
    fs::write(dir.join("manifest.json.tmp"), b"x").unwrap();
    fs::write(store.layers_dir().join(format!("{head}.index.tmp")), b"x").unwrap();
    // A layer written by a snapshot or merge that was cut short: no manifest names it.
    let orphan = "0123456789abcdef0123456789abcdef";
    fs::write(
        store.layers_dir().join(format!("{orphan}.data")),
        [1u8; 4096],
    )
    .unwrap();
    fs::write(store.layers_dir().join(format!("{orphan}.index.tmp")), b"x").unwrap();
    let report = Volume::check(&dir, true).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("used by no volume")),
        "{report:?}"
    );
    let mut v = Volume::open(&dir).unwrap();
    assert_eq!(read_all(&mut v)[..4096], pattern(1, 4096)[..]);
    drop(v);
    assert!(!dir.join("manifest.json.tmp").exists());
    assert!(
        !store.layer_ids().contains(&orphan.to_string()),
        "orphan collected"
    );
    assert!(!store
        .layers_dir()
        .join(format!("{orphan}.index.tmp"))
        .exists());
    assert!(Volume::check(&dir, true).unwrap().is_clean());
}

#[test]
fn garbage_collection_spares_layers_in_use() {
    let store = TempStore::new("gc");
    let dir = store.vol("v");
    let mut v = Volume::create(&dir, &opts(MIB, 4096)).unwrap();
    v.write_at(0, &pattern(1, 4096)).unwrap();
    v.snapshot("a").unwrap();
    v.write_at(0, &pattern(2, 4096)).unwrap();
    v.snapshot("b").unwrap();
    // A reader holds snapshot a's layers open while the writer deletes it.
    let mut view = Volume::open_snapshot(&dir, "a").unwrap();
    v.delete_snapshot("a").unwrap();
    let mut buf = vec![0u8; 4096];
    view.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, pattern(1, 4096));
    let before = store.layer_ids().len();
    drop(view);
    let report = Volume::gc(&dir).unwrap();
    assert!(!report.removed.is_empty(), "{report:?}");
    assert!(store.layer_ids().len() < before);
    v.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, pattern(2, 4096));
    let mut b = Volume::open_snapshot(&dir, "b").unwrap();
    b.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, pattern(2, 4096));
}
