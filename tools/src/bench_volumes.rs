//! Block-store benchmarks: the guest's block throughput on a raw image next to a volume with
//! one layer and with twenty, the time to snapshot and clone a large volume, and NBD read
//! throughput next to nbdkit's memory plugin.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blockstore::volume::{CreateOptions, Volume};

use crate::bench::{blk_bench, BlkFigure, Vmm};

/// Guest block figures for one kind of disk.
pub struct DiskFigures {
    /// What the disk is.
    pub label: String,
    /// Its figures, in the guest's test order.
    pub figures: Vec<BlkFigure>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A volume of `size` bytes whose first `data` bytes are spread over `layers` layers: layer
/// k holds the k-th slice, with a snapshot taken after each but the last.
pub fn layered_volume(dir: &Path, size: u64, data: u64, layers: u32) -> Result<(), String> {
    let mut v = Volume::create(
        dir,
        &CreateOptions {
            size,
            ..CreateOptions::default()
        },
    )
    .map_err(err)?;
    let slice = data / u64::from(layers) / 65536 * 65536;
    let buf: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8 | 1)
        .collect();
    for k in 0..layers {
        let mut at = u64::from(k) * slice;
        let end = at + slice;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            v.write_at(at, &buf[..n]).map_err(err)?;
            at += n as u64;
        }
        if k + 1 < layers {
            v.snapshot(&format!("layer-{k}")).map_err(err)?;
        }
    }
    v.flush().map_err(err)
}

/// Guest QD1 figures on a raw image, a 1-layer volume and a `deep`-layer volume.
pub fn disk_comparison(
    kernel: &Path,
    dir: &Path,
    mib: u64,
    ops: u64,
    deep: u32,
) -> Result<Vec<DiskFigures>, String> {
    let size = (mib + 64) << 20;
    let mut out = Vec::new();
    let raw = dir.join("raw.img");
    std::fs::File::create(&raw)
        .and_then(|f| f.set_len(size))
        .map_err(err)?;
    out.push(DiskFigures {
        label: "raw image".into(),
        figures: blk_bench(Vmm::Reprise, kernel, dir, &raw, mib, ops).map_err(err)?,
    });
    for layers in [1, deep] {
        let vol = dir.join(format!("store/volumes/l{layers}"));
        layered_volume(&vol, size, size, layers)?;
        let figures = blk_bench(Vmm::Reprise, kernel, dir, &vol, mib, ops).map_err(err)?;
        out.push(DiskFigures {
            label: format!(
                "volume, {layers} layer{}",
                if layers == 1 { "" } else { "s" }
            ),
            figures,
        });
    }
    Ok(out)
}

/// Milliseconds to snapshot and then clone a volume of `size` bytes with `written` bytes of
/// data (written in one layer, then flushed).
pub fn snapshot_clone_ms(dir: &Path, size: u64, written: u64) -> Result<(f64, f64), String> {
    let vol = dir.join("volumes/big");
    let mut v = Volume::create(
        &vol,
        &CreateOptions {
            size,
            ..CreateOptions::default()
        },
    )
    .map_err(err)?;
    let buf: Vec<u8> = (0..4u32 << 20).map(|i| (i >> 3) as u8 | 1).collect();
    let mut at = 0;
    while at < written {
        v.write_at(at, &buf).map_err(err)?;
        at += buf.len() as u64;
    }
    v.flush().map_err(err)?;
    let t = Instant::now();
    v.snapshot("s").map_err(err)?;
    let snap = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    Volume::clone_from_snapshot(&vol, "s", &dir.join("volumes/big-clone")).map_err(err)?;
    let clone = t.elapsed().as_secs_f64() * 1e3;
    Ok((snap, clone))
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} never appeared", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn nbdcopy_secs(from: &str, to: &str) -> Result<f64, String> {
    let t = Instant::now();
    let status = Command::new("nbdcopy")
        .args([from, to])
        .status()
        .map_err(|e| format!("nbdcopy (libnbd-bin): {e}"))?;
    if !status.success() {
        return Err(format!("nbdcopy {from} {to} failed"));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// MiB/s reading `mib` MiB with nbdcopy from a served volume and from nbdkit's memory plugin
/// holding the same data.
pub fn nbd_read_rates(volume_tool: &Path, dir: &Path, mib: u64) -> Result<(f64, f64), String> {
    let size = mib << 20;
    let vol = dir.join("store/volumes/nbdsrc");
    layered_volume(&vol, size, size, 1)?;
    let sock = dir.join("vol.sock");
    let _server = Killed(
        Command::new(volume_tool)
            .args(["serve-nbd", "--read-only", "--socket"])
            .arg(&sock)
            .arg(&vol)
            .stdout(Stdio::null())
            .spawn()
            .map_err(err)?,
    );
    wait_for(&sock)?;
    let vol_url = format!("nbd+unix:///nbdsrc?socket={}", sock.display());
    let reprise = mib as f64 / nbdcopy_secs(&vol_url, "null:")?;
    let kit_sock = dir.join("nbdkit.sock");
    let _kit = Killed(
        Command::new("nbdkit")
            .args(["--foreground", "--exit-with-parent", "-U"])
            .arg(&kit_sock)
            .args(["memory", &format!("{size}")])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("nbdkit: {e}"))?,
    );
    wait_for(&kit_sock)?;
    let kit_url = format!("nbd+unix:///?socket={}", kit_sock.display());
    nbdcopy_secs(&vol_url, &kit_url)?;
    let nbdkit = mib as f64 / nbdcopy_secs(&kit_url, "null:")?;
    Ok((reprise, nbdkit))
}
