//! Building snapshots of a fake guest in a store.

use snapshot::{
    DirtyBitmap, MemoryLayout, NewSnapshot, SnapshotStore, StateWriter, VolumeSnapshot,
};

use super::Rng;

pub const PS: usize = 4096;

/// Guest memory as one buffer per region.
pub struct Guest {
    pub layout: MemoryLayout,
    pub mem: Vec<Vec<u8>>,
}

impl Guest {
    pub fn new(regions: &[(u64, u64)]) -> Guest {
        let layout = MemoryLayout::new(regions).unwrap();
        let mem = layout
            .regions
            .iter()
            .map(|r| vec![0u8; r.len as usize])
            .collect();
        Guest { layout, mem }
    }

    pub fn slices(&self) -> Vec<&[u8]> {
        self.mem.iter().map(|m| m.as_slice()).collect()
    }

    /// Writes `n` pages chosen by `rng` (some zeroed), marking them dirty.
    pub fn scribble(&mut self, rng: &mut Rng, n: usize, dirty: &mut DirtyBitmap) {
        for _ in 0..n {
            let r = rng.below(self.mem.len() as u64) as usize;
            let p = rng.below((self.mem[r].len() / PS) as u64) as usize;
            let page = &mut self.mem[r][p * PS..(p + 1) * PS];
            if rng.below(5) == 0 {
                page.fill(0);
            } else {
                rng.fill(page);
            }
            dirty.set(r, p as u64).unwrap();
        }
    }

    /// Whether the full image `img` holds exactly this memory.
    pub fn matches(&self, img: &snapshot::FullImage) -> bool {
        self.mem.iter().enumerate().all(|(i, m)| {
            let mut buf = vec![0u8; m.len()];
            img.read(i, 0, &mut buf).unwrap();
            buf == *m
        })
    }
}

/// The state a snapshot `n` holds (deterministic).
pub fn state_for(n: u64) -> StateWriter {
    let mut w = StateWriter::new();
    w.put("vm", &(n, format!("clock-{n}"))).unwrap();
    w.put("vcpu0", &vec![n; 64]).unwrap();
    w.put("devices", &format!("devices of snapshot {n}"))
        .unwrap();
    w
}

/// Writes snapshot `id` (full if `parent` is `None`) of `g` with state `n`.
pub fn take(
    store: &SnapshotStore,
    id: &str,
    created: u64,
    parent: Option<&str>,
    g: &Guest,
    dirty: &DirtyBitmap,
    n: u64,
) -> snapshot::Manifest {
    let mut p = store
        .begin(NewSnapshot {
            id: id.into(),
            created,
            vm_config: serde_json::json!({ "vcpus": 1, "memory": g.layout.total_bytes(), "ratio": 0.1 }),
            volumes: vec![VolumeSnapshot {
                drive_id: "root".into(),
                volume_path: "/vols/root".into(),
                snapshot_name: id.into(),
            }],
        })
        .unwrap();
    p.write_state(&state_for(n)).unwrap();
    match parent {
        None => p.write_full_memory(&g.layout, &g.slices()).unwrap(),
        Some(parent) => p
            .write_diff_memory(parent, &g.layout, dirty, &g.slices())
            .unwrap(),
    };
    p.commit().unwrap()
}
