//! Crash safety: a child process writes, discards, flushes, snapshots and deletes snapshots
//! in a loop, reporting each step it completed on stdout, and is killed with SIGKILL at a
//! random moment. The volume must then check without unrepairable problems, open, hold
//! every flushed write (and an interrupted flush either entirely or not at all), and check
//! clean after opening.
//!
//! The child is this test binary run again with `REPRISE_CRASH_CHILD_DIR` set, selecting
//! the `crash_child` test.

mod volume_common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use blockstore::volume::{CreateOptions, Volume};
use volume_common::{pattern, read_all, Rng, TempStore};

const SIZE: u64 = 1 << 20;
const CHUNK: u32 = 4096;
const DIR_ENV: &str = "REPRISE_CRASH_CHILD_DIR";
const SEED_ENV: &str = "REPRISE_CRASH_CHILD_SEED";

/// One change, as the child reports it: `W off len seed`, `D off len` or `Z off len`.
#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: u64, seed: u64 },
    Discard { off: u64, len: u64 },
    Zeroes { off: u64, len: u64 },
}

impl Op {
    fn encode(&self) -> String {
        match self {
            Op::Write { off, len, seed } => format!("W {off} {len} {seed}"),
            Op::Discard { off, len } => format!("D {off} {len}"),
            Op::Zeroes { off, len } => format!("Z {off} {len}"),
        }
    }

    fn decode(s: &str) -> Op {
        let f: Vec<u64> = s[2..]
            .split(' ')
            .map(|x| x.parse().expect("number"))
            .collect();
        match &s[..1] {
            "W" => Op::Write {
                off: f[0],
                len: f[1],
                seed: f[2],
            },
            "D" => Op::Discard {
                off: f[0],
                len: f[1],
            },
            _ => Op::Zeroes {
                off: f[0],
                len: f[1],
            },
        }
    }

    fn apply_model(&self, model: &mut [u8]) {
        match *self {
            Op::Write { off, len, seed } => model[off as usize..(off + len) as usize]
                .copy_from_slice(&pattern(seed, len as usize)),
            Op::Discard { off, len } | Op::Zeroes { off, len } => {
                model[off as usize..(off + len) as usize].fill(0)
            }
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "CRASHLOG {line}").unwrap();
    out.flush().unwrap();
}

/// The child: runs until killed. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng(seed.wrapping_mul(7919) + 1);
    let mut v = Volume::open(std::path::Path::new(&dir)).unwrap();
    let mut snaps: Vec<String> = v.snapshots().into_iter().map(|s| s.name).collect();
    let mut round = 0u64;
    loop {
        round += 1;
        let r = rng.below(100);
        if r < 8 && snaps.len() < 6 {
            let name = format!("s{seed}-{round}");
            say(&format!("SNAP-BEGIN {name}"));
            v.snapshot(&name).unwrap();
            say(&format!("SNAP-DONE {name}"));
            snaps.push(name);
            continue;
        }
        if r < 14 && !snaps.is_empty() {
            let name = snaps.remove(rng.below(snaps.len() as u64) as usize);
            say(&format!("DEL-BEGIN {name}"));
            v.delete_snapshot(&name).unwrap();
            say(&format!("DEL-DONE {name}"));
            continue;
        }
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let off = rng.below(SIZE / 512) * 512;
            let len = (1 + rng.below(24)).min((SIZE - off) / 512) * 512;
            let op = match rng.below(10) {
                0 => Op::Discard { off, len },
                1 => Op::Zeroes { off, len },
                _ => Op::Write {
                    off,
                    len,
                    seed: rng.next(),
                },
            };
            match &op {
                Op::Write { off, len, seed } => {
                    v.write_at(*off, &pattern(*seed, *len as usize)).unwrap()
                }
                Op::Discard { off, len } => v.discard(*off, *len).unwrap(),
                Op::Zeroes { off, len } => v.write_zeroes(*off, *len).unwrap(),
            }
            ops.push(op.encode());
        }
        say(&format!("BEGIN {}", ops.join(",")));
        v.flush().unwrap();
        say("DONE");
    }
}

/// What the parent knows after a child died.
struct Outcome {
    /// Changes of completed flushes, in order, each as a list of ops.
    done: Vec<Vec<Op>>,
    /// A flush that started and may or may not have completed.
    pending: Option<Vec<Op>>,
}

#[test]
fn killed_writers_lose_nothing_flushed() {
    let store = TempStore::new("crash");
    let dir = store.vol("v");
    drop(
        Volume::create(
            &dir,
            &CreateOptions {
                size: SIZE,
                chunk_size: CHUNK,
            },
        )
        .unwrap(),
    );
    let exe = std::env::current_exe().unwrap();
    // `REPRISE_CRASH_SEED` and `REPRISE_CRASH_ITERATIONS` vary the run (for soaking).
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let base_seed = env("REPRISE_CRASH_SEED", 42);
    let iterations = env("REPRISE_CRASH_ITERATIONS", 30);
    let mut rng = Rng(base_seed);
    let mut model = vec![0u8; SIZE as usize];
    // Snapshot name -> contents; `None` while unknown (interrupted creation).
    let mut snaps: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total_rounds = 0usize;
    for iter in 0..iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, &dir)
            .env(SEED_ENV, (base_seed * 1000 + iter).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    // libtest's "test crash_child ... " may precede the first line.
                    l.find("CRASHLOG ")
                        .map(|i| l[i + "CRASHLOG ".len()..].to_string())
                })
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(250)));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let mut out = Outcome {
            done: Vec::new(),
            pending: None,
        };
        let mut snap_pending: Option<String> = None;
        let mut del_pending: Option<String> = None;
        for line in &lines {
            if let Some(ops) = line.strip_prefix("BEGIN ") {
                out.pending = Some(ops.split(',').map(Op::decode).collect());
            } else if line == "DONE" {
                let ops = out.pending.take().expect("DONE after BEGIN");
                for op in &ops {
                    op.apply_model(&mut model);
                }
                out.done.push(ops);
            } else if let Some(name) = line.strip_prefix("SNAP-BEGIN ") {
                snap_pending = Some(name.to_string());
            } else if let Some(name) = line.strip_prefix("SNAP-DONE ") {
                snaps.insert(name.to_string(), model.clone());
                snap_pending = None;
            } else if let Some(name) = line.strip_prefix("DEL-BEGIN ") {
                del_pending = Some(name.to_string());
            } else if let Some(name) = line.strip_prefix("DEL-DONE ") {
                snaps.remove(name);
                del_pending = None;
            }
        }
        total_rounds += out.done.len();
        eprintln!(
            "iteration {iter}: {} flushes completed, interrupted: flush {}, snapshot {:?}, \
             delete {:?}",
            out.done.len(),
            out.pending.is_some(),
            snap_pending,
            del_pending
        );

        let report = Volume::check(&dir, true).unwrap();
        assert!(
            report.is_repairable(),
            "iteration {iter}: after the kill: {report:?}"
        );
        let mut v = Volume::open(&dir).unwrap();
        let got = read_all(&mut v);
        if let Some(ops) = out.pending.take() {
            let mut with = model.clone();
            for op in &ops {
                op.apply_model(&mut with);
            }
            if got == with {
                model = with;
            }
        }
        assert!(
            got == model,
            "iteration {iter}: the volume differs from its flushed writes at byte {:?} \
             ({} rounds completed)",
            got.iter().zip(&model).position(|(a, b)| a != b),
            out.done.len()
        );
        // Snapshots: the completed ones are there with their contents; an interrupted
        // creation or deletion may have gone either way.
        let present: Vec<String> = v.snapshots().into_iter().map(|s| s.name).collect();
        if let Some(name) = snap_pending {
            if present.contains(&name) {
                snaps.insert(name, model.clone());
            }
        }
        if let Some(name) = del_pending {
            if !present.contains(&name) {
                snaps.remove(&name);
            }
        }
        let mut expected: Vec<&String> = snaps.keys().collect();
        expected.sort();
        let mut present_sorted: Vec<&String> = present.iter().collect();
        present_sorted.sort();
        assert_eq!(present_sorted, expected, "iteration {iter}: snapshot list");
        for (name, contents) in &snaps {
            let mut s = Volume::open_snapshot(&dir, name).unwrap();
            assert!(
                read_all(&mut s) == *contents,
                "iteration {iter}: snapshot {name}"
            );
        }
        drop(v);
        let report = Volume::check(&dir, true).unwrap();
        assert!(
            report.is_clean(),
            "iteration {iter}: after reopening: {report:?}"
        );
    }
    assert!(
        total_rounds > 30,
        "the children got some work done ({total_rounds} flushes)"
    );
}
