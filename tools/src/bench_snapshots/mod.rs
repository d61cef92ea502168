//! Snapshot benchmarks: how long a snapshot pauses the guest, how much it stores and how
//! fast a VM comes back from it, for Reprise and for QEMU microvm running the same test
//! guest (`workload=dirty`, which writes pages of a 16 MiB working set at a set rate).
//!
//! The pause is measured three ways: Reprise's own figure (`pause_us` of
//! `PUT /snapshot/create`), the host-side time (the API request's round trip; for QEMU, QMP
//! `stop` → migration to a file completed → `cont`), and the gap the guest itself saw in
//! its loop, timed with its TSC (`dirty.gap_us`; see `tests/guest/src/workload/dirty.rs`).
//! QEMU has no incremental snapshot: each of its saves writes all of guest RAM (zero pages
//! as markers), so its figure stands next to Reprise's full and diff snapshots alike.
//! Restore is timed from process start to the guest running (Reprise: the first `KVM_RUN`,
//! from the VMM's log; QEMU: `cont` done) and to the guest's first serial line (the dirty
//! workload reports the time it lost at once, so that line comes as soon as it runs).

mod guest;
mod qemu;
mod report;
mod reprise;

use std::path::Path;
use std::time::Duration;

use crate::guest_run::GuestSpec;

pub use report::print_tables;

use qemu::qemu_run;
use reprise::reprise_run;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SnapshotBenchOptions {
    /// Guest memory sizes, MiB.
    pub mem_mib: Vec<u64>,
    /// Dirty rates, page writes per second (0 = as fast as the guest can).
    pub rates: Vec<u64>,
    /// Full snapshots per run (at least 1), before the diffs (QEMU saves `fulls + diffs`
    /// times).
    pub fulls: usize,
    /// Diff snapshots per run (Reprise).
    pub diffs: usize,
    /// Time between snapshots; each is taken in the middle of its interval.
    pub interval: Duration,
    /// Restores of the last full snapshot timed per run (QEMU: of the save taken then).
    pub restores: usize,
    /// Gaps the guest reports at once, µs and longer.
    pub gap_threshold_us: u64,
    /// Timer ticks per second in the guest (the resolution of gaps seen while it sleeps).
    pub guest_hz: u64,
    /// Also measure QEMU.
    pub qemu: bool,
}

/// One snapshot (or QEMU save).
#[derive(Debug, Clone, Copy)]
pub struct PauseSample {
    /// Reprise: `pause_us` from the API; QEMU: `stop` → `cont` as the QMP client saw it. ms.
    pub pause_ms: f64,
    /// Reprise: the API request's round trip; QEMU: same as `pause_ms`. ms.
    pub request_ms: f64,
    /// The gap the guest reported for it, ms (0 if below the threshold).
    pub guest_gap_ms: f64,
    /// Allocated bytes on disk.
    pub bytes: u64,
}

/// One restore.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSample {
    /// Process start → the first `KVM_RUN` (Reprise), or → QMP `cont` done (QEMU). ms.
    pub running_ms: f64,
    /// Process start → the guest's first serial line. ms.
    pub line_ms: f64,
}

/// One VMM's figures for one guest size and dirty rate.
#[derive(Debug, Clone, Default)]
pub struct VmmFigures {
    /// The guest's longest gap in a second without snapshots, ms.
    pub baseline_gap_ms: f64,
    /// Full snapshots, the VM's first one first (QEMU: every save).
    pub full: Vec<PauseSample>,
    /// Diff snapshots (Reprise only).
    pub diff: Vec<PauseSample>,
    /// Restores of the last full snapshot (QEMU: of the save taken at the same time).
    pub restore: Vec<RestoreSample>,
    /// A restore of the last diff snapshot, which lays its chain's diffs over the full image (Reprise).
    pub restore_diff: Option<RestoreSample>,
}

/// Figures for one guest size and dirty rate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Guest memory, MiB.
    pub mem_mib: u64,
    /// Page writes per second (0 = unlimited).
    pub rate: u64,
    /// Reprise's figures.
    pub reprise: VmmFigures,
    /// QEMU's, if measured.
    pub qemu: Option<VmmFigures>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs every scenario of `opts`, printing progress to stderr.
pub fn run_all(
    kernel: &Path,
    dir: &Path,
    opts: &SnapshotBenchOptions,
) -> Result<Vec<Scenario>, String> {
    if opts.fulls == 0 || opts.restores == 0 {
        return Err("the snapshot bench needs at least one full snapshot and one restore".into());
    }
    let mut out = Vec::new();
    for &mem_mib in &opts.mem_mib {
        for &rate in &opts.rates {
            let spec = GuestSpec {
                kernel,
                args: format!(
                    "workload=dirty dirty.mib=16 dirty.rate={rate} dirty.hz={} dirty.gap_us={}",
                    opts.guest_hz, opts.gap_threshold_us
                ),
                mem_mib,
                vcpus: 1,
                disks: vec![],
                net: None,
            };
            eprintln!("snapshots: {mem_mib} MiB guest, rate {}", rate_label(rate));
            let reprise = reprise_run(&spec, dir, opts)?;
            let qemu = if opts.qemu {
                Some(qemu_run(&spec, dir, opts)?)
            } else {
                None
            };
            out.push(Scenario {
                mem_mib,
                rate,
                reprise,
                qemu,
            });
        }
    }
    Ok(out)
}

/// `1000/s`, or `unlimited` for 0.
pub fn rate_label(rate: u64) -> String {
    if rate == 0 {
        "unlimited".into()
    } else {
        format!("{rate}/s")
    }
}

/// Allocated bytes of a file, or of everything under a directory.
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| allocated_bytes(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0);
    own + children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_bytes_counts_blocks_not_length() {
        let dir = std::env::temp_dir().join(format!("bench-snap-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        let sparse = dir.join("sub/sparse");
        std::fs::File::create(&sparse)
            .and_then(|f| f.set_len(1 << 30))
            .expect("sparse file");
        std::fs::write(dir.join("data"), vec![1u8; 1 << 20]).expect("data");
        let bytes = allocated_bytes(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!((1 << 20..8 << 20).contains(&bytes), "{bytes}");
    }
}
