//! Copying between raw images (`qemu-img`-compatible) and volumes, with progress bars.
//! Zero blocks are skipped both ways, so sparse stays sparse.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use blockstore::volume::{CreateOptions, Volume};
use indicatif::{ProgressBar, ProgressStyle};

/// Bytes moved per step.
const BLOCK: usize = 1 << 20;

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CopyStats {
    /// Bytes of the source.
    pub size: u64,
    /// Bytes that held data and were written.
    pub written: u64,
}

fn bar(size: u64, show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

fn is_zero(buf: &[u8]) -> bool {
    buf.iter().all(|&b| b == 0)
}

/// Creates the volume `dir` from the raw image `image`.
pub fn import_raw(
    image: &Path,
    dir: &Path,
    chunk_size: u32,
    progress: bool,
) -> Result<CopyStats, String> {
    let mut file =
        File::open(image).map_err(|e| format!("cannot open raw image {}: {e}", image.display()))?;
    let size = file
        .metadata()
        .map_err(|e| format!("raw image {}: {e}", image.display()))?
        .len();
    if size == 0 || !size.is_multiple_of(512) {
        return Err(format!(
            "raw image {}: {size} bytes is not a positive multiple of 512",
            image.display()
        ));
    }
    let mut volume =
        Volume::create(dir, &CreateOptions { size, chunk_size }).map_err(|e| e.to_string())?;
    let piece = (chunk_size as usize).clamp(512, BLOCK);
    let bar = bar(size, progress, "import");
    let mut buf = vec![0u8; BLOCK];
    let mut stats = CopyStats { size, written: 0 };
    let mut offset = 0u64;
    while offset < size {
        let n = (size - offset).min(BLOCK as u64) as usize;
        file.read_exact(&mut buf[..n])
            .map_err(|e| format!("reading {} at {offset}: {e}", image.display()))?;
        for (i, part) in buf[..n].chunks(piece).enumerate() {
            if !is_zero(part) {
                let at = offset + (i * piece) as u64;
                volume.write_at(at, part).map_err(|e| e.to_string())?;
                stats.written += part.len() as u64;
            }
        }
        offset += n as u64;
        bar.set_position(offset);
    }
    volume.flush().map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(stats)
}

/// Writes the volume `dir` (or one of its snapshots) to the raw image `out`, through a
/// temporary file renamed into place when complete.
pub fn export_raw(
    dir: &Path,
    snapshot: Option<&str>,
    out: &Path,
    progress: bool,
) -> Result<CopyStats, String> {
    let mut volume = match snapshot {
        Some(name) => Volume::open_snapshot(dir, name),
        None => Volume::open_read_only(dir),
    }
    .map_err(|e| e.to_string())?;
    let size = volume.size();
    let tmp = out.with_extension("part");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    file.set_len(size)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let bar = bar(size, progress, "export");
    let mut buf = vec![0u8; BLOCK];
    let mut stats = CopyStats { size, written: 0 };
    let mut offset = 0u64;
    while offset < size {
        let n = (size - offset).min(BLOCK as u64) as usize;
        volume
            .read_at(offset, &mut buf[..n])
            .map_err(|e| e.to_string())?;
        if !is_zero(&buf[..n]) {
            file.write_all_at(&buf[..n], offset)
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            stats.written += n as u64;
        }
        offset += n as u64;
        bar.set_position(offset);
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), out.display()))?;
    bar.finish_and_clear();
    Ok(stats)
}
