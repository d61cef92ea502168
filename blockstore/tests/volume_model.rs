//! Model-based test: random sequences of operations on small volumes, their snapshots and
//! clones, every read checked against a plain in-memory model.
//!
//! `REPRISE_MODEL_SEED=<n>` runs only the case with that seed; `REPRISE_MODEL_CASES=<n>`
//! and `REPRISE_MODEL_STEPS=<n>` change the number of cases and their length.

mod volume_common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use blockstore::volume::{CreateOptions, ResizeOptions, Volume, VolumeError};
use volume_common::{assert_same, read_all, Rng, TempStore};

const CHUNK: u32 = 4096;
const MAX_SIZE_SECTORS: u64 = 1024;

struct Actor {
    dir: PathBuf,
    vol: Volume,
    model: Vec<u8>,
    snaps: BTreeMap<String, Vec<u8>>,
}

struct Case {
    rng: Rng,
    store: TempStore,
    actors: Vec<Actor>,
    next_name: u64,
    seed: u64,
    step: usize,
}

impl Case {
    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    /// A random sector-aligned range inside `size`, up to three chunks long.
    fn range(&mut self, size: u64) -> (u64, u64) {
        let sectors = size / 512;
        let start = self.rng.below(sectors);
        let max_len = (sectors - start).min(3 * u64::from(CHUNK) / 512);
        let len = 1 + self.rng.below(max_len);
        // Often align to chunks, to hit the whole-chunk paths.
        if self.rng.chance(30) {
            let per = u64::from(CHUNK) / 512;
            let s = start / per * per;
            let l = (len.div_ceil(per) * per).min(sectors - s);
            return (s * 512, l * 512);
        }
        (start * 512, len * 512)
    }

    fn check_read(&mut self, a: usize) {
        let size = self.actors[a].vol.size();
        let (off, len) = self.range(size);
        let mut buf = vec![0u8; len as usize];
        let ctx = self.ctx();
        let actor = &mut self.actors[a];
        actor.vol.read_at(off, &mut buf).unwrap();
        assert_same(
            &format!("{ctx}: read {off}+{len} of {}", actor.dir.display()),
            &buf,
            &actor.model[off as usize..(off + len) as usize],
        );
    }

    fn check_all(&mut self, a: usize) {
        let ctx = self.ctx();
        let actor = &mut self.actors[a];
        assert_eq!(actor.vol.size() as usize, actor.model.len(), "{ctx}");
        let got = read_all(&mut actor.vol);
        assert_same(
            &format!("{ctx}: whole {}", actor.dir.display()),
            &got,
            &actor.model,
        );
    }

    fn check_snapshot(&mut self, a: usize, name: &str) {
        let ctx = self.ctx();
        let actor = &self.actors[a];
        let mut view = Volume::open_snapshot(&actor.dir, name)
            .unwrap_or_else(|e| panic!("{ctx}: open snapshot {name}: {e}"));
        let got = read_all(&mut view);
        assert_same(
            &format!("{ctx}: snapshot {name} of {}", actor.dir.display()),
            &got,
            &actor.snaps[name],
        );
    }

    fn step_once(&mut self) {
        let a = self.rng.below(self.actors.len() as u64) as usize;
        let op = self.rng.below(100);
        let size = self.actors[a].vol.size();
        match op {
            0..=29 => {
                let (off, len) = self.range(size);
                let mut data = vec![0u8; len as usize];
                if self.rng.chance(90) {
                    self.rng.fill(&mut data);
                }
                let actor = &mut self.actors[a];
                actor.vol.write_at(off, &data).unwrap();
                actor.model[off as usize..(off + len) as usize].copy_from_slice(&data);
            }
            30..=45 => {
                let (off, len) = self.range(size);
                let actor = &mut self.actors[a];
                if op < 38 {
                    actor.vol.discard(off, len).unwrap();
                } else {
                    actor.vol.write_zeroes(off, len).unwrap();
                }
                actor.model[off as usize..(off + len) as usize].fill(0);
            }
            46..=52 => self.actors[a].vol.flush().unwrap(),
            53..=60 => {
                let actor = &self.actors[a];
                if actor.snaps.len() < 12 && self.rng.chance(90) {
                    self.next_name += 1;
                    let name = format!("s{}", self.next_name);
                    let actor = &mut self.actors[a];
                    let info = actor.vol.snapshot(&name).unwrap();
                    assert_eq!(info.size, actor.model.len() as u64);
                    actor.snaps.insert(name, actor.model.clone());
                } else if let Some(name) = actor.snaps.keys().next().cloned() {
                    let err = self.actors[a].vol.snapshot(&name).unwrap_err();
                    assert!(matches!(err, VolumeError::SnapshotExists { .. }), "{err}");
                }
            }
            61..=67 => {
                let names: Vec<String> = self.actors[a].snaps.keys().cloned().collect();
                if !names.is_empty() {
                    let name = names[self.rng.below(names.len() as u64) as usize].clone();
                    let actor = &mut self.actors[a];
                    actor.vol.delete_snapshot(&name).unwrap();
                    actor.snaps.remove(&name);
                    assert!(Volume::open_snapshot(&actor.dir, &name).is_err());
                    self.check_all(a);
                }
            }
            68..=71 => {
                let names: Vec<String> = self.actors[a].snaps.keys().cloned().collect();
                if self.actors.len() < 4 && !names.is_empty() {
                    let name = names[self.rng.below(names.len() as u64) as usize].clone();
                    self.next_name += 1;
                    let dir = self.store.vol(&format!("c{}", self.next_name));
                    let vol =
                        Volume::clone_from_snapshot(&self.actors[a].dir, &name, &dir).unwrap();
                    let model = self.actors[a].snaps[&name].clone();
                    self.actors.push(Actor {
                        dir,
                        vol,
                        model,
                        snaps: BTreeMap::new(),
                    });
                    let last = self.actors.len() - 1;
                    self.check_all(last);
                }
            }
            72..=78 => {
                let new_size = 512 * (1 + self.rng.below(MAX_SIZE_SECTORS));
                let discard_data = self.rng.chance(50);
                let opts = ResizeOptions {
                    allow_shrink: true,
                    discard_data,
                };
                let ctx = self.ctx();
                let actor = &mut self.actors[a];
                let old = actor.model.len();
                match actor.vol.resize(new_size, &opts) {
                    Ok(()) => {
                        if new_size < old as u64 && !discard_data {
                            assert!(
                                actor.model[new_size as usize..].iter().all(|&b| b == 0),
                                "{ctx}: a shrink without discard_data dropped data"
                            );
                        }
                        actor.model.resize(new_size as usize, 0);
                    }
                    Err(VolumeError::WouldDropData { .. }) => {
                        assert!(!discard_data && (new_size as usize) < old, "{ctx}");
                    }
                    Err(e) => panic!("{ctx}: resize: {e}"),
                }
                self.check_all(a);
            }
            79..=83 => {
                let actor = &mut self.actors[a];
                let dir = actor.dir.clone();
                // Replace the handle: the old one is dropped (flushing) before the reopen.
                let placeholder = Volume::open_read_only(&dir).unwrap();
                drop(std::mem::replace(&mut actor.vol, placeholder));
                actor.vol = Volume::open(&dir).unwrap();
                self.check_all(a);
            }
            84..=88 => {
                let names: Vec<String> = self.actors[a].snaps.keys().cloned().collect();
                if !names.is_empty() {
                    let name = names[self.rng.below(names.len() as u64) as usize].clone();
                    self.check_snapshot(a, &name);
                }
            }
            89..=91 => {
                let actor = &mut self.actors[a];
                actor.vol.flush().unwrap();
                let mut ro = Volume::open_read_only(&actor.dir).unwrap();
                let got = read_all(&mut ro);
                let ctx = self.ctx();
                assert_same(
                    &format!("{ctx}: read-only open"),
                    &got,
                    &self.actors[a].model,
                );
            }
            92..=93 => {
                // Delete a clone volume (never the first).
                if a > 0 {
                    let actor = self.actors.remove(a);
                    let dir = actor.dir.clone();
                    drop(actor);
                    Volume::delete(&dir).unwrap();
                }
            }
            _ => self.check_all(a),
        }
        // Every step also reads a random range of some volume.
        let b = self.rng.below(self.actors.len() as u64) as usize;
        self.check_read(b);
    }
}

fn run_case(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let store = TempStore::new("model");
    let size = 512 * (64 + rng.below(MAX_SIZE_SECTORS - 64));
    let dir = store.vol("v");
    let vol = Volume::create(
        &dir,
        &CreateOptions {
            size,
            chunk_size: CHUNK,
        },
    )
    .unwrap();
    let mut case = Case {
        rng,
        actors: vec![Actor {
            dir,
            vol,
            model: vec![0u8; size as usize],
            snaps: BTreeMap::new(),
        }],
        store,
        next_name: 0,
        seed,
        step: 0,
    };
    for step in 0..steps {
        case.step = step;
        case.step_once();
    }
    // Finally: every volume and snapshot, then a clean check of each after closing.
    for a in 0..case.actors.len() {
        case.check_all(a);
        let names: Vec<String> = case.actors[a].snaps.keys().cloned().collect();
        for name in names {
            case.check_snapshot(a, &name);
        }
    }
    let dirs: Vec<PathBuf> = case.actors.iter().map(|a| a.dir.clone()).collect();
    let models: Vec<Vec<u8>> = case.actors.iter().map(|a| a.model.clone()).collect();
    case.actors.clear();
    for (dir, model) in dirs.iter().zip(&models) {
        let report = Volume::check(dir, true).unwrap();
        assert!(report.is_clean(), "seed {seed}: {report:?}");
        let mut v = Volume::open(dir).unwrap();
        assert_same(
            &format!("seed {seed}: reopened at the end"),
            &read_all(&mut v),
            model,
        );
    }
}

#[test]
fn random_operations_match_the_model() {
    let steps = std::env::var("REPRISE_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    if let Some(seed) = std::env::var("REPRISE_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_case(seed, steps);
        return;
    }
    let cases: u64 = std::env::var("REPRISE_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 0..cases {
        eprintln!("case seed {seed}");
        run_case(seed, steps);
    }
}
