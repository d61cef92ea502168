//! Memory-image figures: writing a full image of a 2 GiB guest (sparse and dense), opening
//! and mapping it for restore, verifying it, writing a diff, and consolidating.
//!
//! `cargo bench -p reprise-snapshot --bench memory_images [-- GUEST_MIB]` (default 2048).

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use snapshot::{consolidate, write_diff, write_full, DirtyBitmap, FullImage, MemoryLayout};

const PS: usize = 4096;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Fills `fraction` of the pages of `mem` (chosen at random) with non-zero data.
fn fill(mem: &mut [u8], fraction: f64, rng: &mut Rng) {
    for page in mem.chunks_mut(PS) {
        if (rng.next() % 1000) as f64 / 1000.0 < fraction {
            for w in page.chunks_mut(8) {
                w.copy_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            page.fill(0);
        }
    }
}

/// Time to map every region `MAP_PRIVATE` and touch one byte.
fn map_private(img: &FullImage) -> f64 {
    let t = Instant::now();
    for (i, r) in img.layout().regions.iter().enumerate() {
        // SAFETY: a fresh private mapping of an open file, read once and unmapped here.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                r.len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                img.file().as_raw_fd(),
                img.region_offset(i) as libc::off_t,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::read_volatile(p as *const u8);
            libc::munmap(p, r.len as usize);
        }
    }
    ms(t)
}

fn report_full(label: &str, path: &Path, layout: &MemoryLayout, mem: &[u8]) {
    let t = Instant::now();
    let stats = write_full(path, "bench", layout, &[mem]).unwrap();
    let write = ms(t);
    let md = std::fs::metadata(path).unwrap();
    let t = Instant::now();
    let img = FullImage::open(path).unwrap();
    let open = ms(t);
    let map = map_private(&img);
    let t = Instant::now();
    img.verify().unwrap();
    let verify = ms(t);
    println!(
        "full image, {label}: write {write:.0} ms ({:.0} MiB/s of guest memory, fsync included), \
         {:.0} MiB data, {:.0} MiB allocated of {:.0} MiB file; open {open:.2} ms, map {map:.3} ms, verify {verify:.0} ms",
        mib(layout.total_bytes()) / (write / 1e3),
        mib(stats.data_bytes),
        mib(md.blocks() * 512),
        mib(md.len()),
    );
}

fn main() {
    let guest_mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2048);
    let dir = std::env::temp_dir().join(format!("reprise-snapshot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let len = guest_mib << 20;
    let layout = MemoryLayout::new(&[(0, len)]).unwrap();
    let mut mem = vec![0u8; len as usize];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    println!("guest memory: {guest_mib} MiB");

    fill(&mut mem, 0.25, &mut rng);
    let base = dir.join("base.full");
    report_full("25% of pages used", &base, &layout, &mem);

    // A diff of 1% of the pages, then consolidation of base + diff.
    let mut dirty = DirtyBitmap::new(&layout);
    let pages = len / PS as u64;
    for _ in 0..pages / 100 {
        let p = rng.next() % pages;
        let page = &mut mem[p as usize * PS..(p as usize + 1) * PS];
        page[..8].copy_from_slice(&rng.next().to_le_bytes());
        dirty.set(0, p).unwrap();
    }
    let diff = dir.join("d.diff");
    let t = Instant::now();
    let ds = write_diff(&diff, "d", "bench", &layout, &dirty, &[&mem]).unwrap();
    println!(
        "diff of {} dirty pages: write {:.1} ms, {:.1} MiB",
        dirty.count(),
        ms(t),
        mib(ds.file_bytes)
    );
    let out = dir.join("consolidated.full");
    let t = Instant::now();
    consolidate(&base, &[&diff], &out).unwrap();
    println!(
        "consolidate base + diff into a new full image: {:.0} ms",
        ms(t)
    );
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&base).unwrap();

    fill(&mut mem, 0.0, &mut rng);
    report_full("all pages zero", &dir.join("zero.full"), &layout, &mem);
    std::fs::remove_file(dir.join("zero.full")).unwrap();

    fill(&mut mem, 1.0, &mut rng);
    report_full("all pages used", &dir.join("dense.full"), &layout, &mem);
    std::fs::remove_dir_all(&dir).unwrap();
}
