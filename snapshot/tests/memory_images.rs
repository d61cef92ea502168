//! Memory images: full (sparse, mappable) and diff round trips, chains consolidated byte for
//! byte, and damaged or mismatched images reported clearly.

mod common;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use common::{Rng, TempDir};
use snapshot::limits::PAGE_SIZE;
use snapshot::memory::ImageKind;
use snapshot::{
    apply_diff, consolidate, write_diff, write_full, DiffImage, DirtyBitmap, FullImage,
    MemoryLayout, PrecopiedImage, SnapshotError,
};

const PS: usize = PAGE_SIZE as usize;

/// Guest memory as one buffer per region.
struct Guest {
    layout: MemoryLayout,
    mem: Vec<Vec<u8>>,
}

impl Guest {
    fn new(regions: &[(u64, u64)]) -> Guest {
        let layout = MemoryLayout::new(regions).unwrap();
        let mem = layout
            .regions
            .iter()
            .map(|r| vec![0u8; r.len as usize])
            .collect();
        Guest { layout, mem }
    }

    fn slices(&self) -> Vec<&[u8]> {
        self.mem.iter().map(|m| m.as_slice()).collect()
    }

    /// Writes `n` random pages (some made zero, some partly written), marking them dirty.
    fn scribble(&mut self, rng: &mut Rng, n: usize, dirty: &mut DirtyBitmap) {
        for _ in 0..n {
            let r = rng.below(self.mem.len() as u64) as usize;
            let pages = (self.mem[r].len() / PS) as u64;
            let p = rng.below(pages) as usize;
            let page = &mut self.mem[r][p * PS..(p + 1) * PS];
            match rng.below(4) {
                0 => page.fill(0),
                1 => {
                    let at = rng.below(PS as u64) as usize;
                    page[at] = page[at].wrapping_add(1 + rng.below(255) as u8);
                }
                _ => rng.fill(page),
            }
            dirty.set(r, p as u64).unwrap();
        }
    }

    fn check_image(&self, img: &FullImage) {
        for (i, m) in self.mem.iter().enumerate() {
            let mut buf = vec![0u8; m.len()];
            img.read(i, 0, &mut buf).unwrap();
            assert!(buf == *m, "region {i} differs");
        }
    }
}

fn nonzero_pages(g: &Guest) -> u64 {
    g.mem
        .iter()
        .flat_map(|m| m.chunks(PS))
        .filter(|p| p.iter().any(|&b| b != 0))
        .count() as u64
}

#[test]
fn full_image_round_trip() {
    let dir = TempDir::new("mem-full");
    let mut g = Guest::new(&[(0, 3 << 20), (1 << 32, (5 << 20) + 3 * PAGE_SIZE)]);
    let mut rng = Rng::new(1);
    let mut dirty = DirtyBitmap::new(&g.layout);
    g.scribble(&mut rng, 400, &mut dirty);
    rng.fill(&mut g.mem[1][(2 << 20)..(3 << 20)]);
    let path = dir.join("memory.full");
    let stats = write_full(&path, "snap-1", &g.layout, &g.slices()).unwrap();
    assert_eq!(stats.data_bytes, nonzero_pages(&g) * PAGE_SIZE);
    assert_eq!(stats.file_bytes, std::fs::metadata(&path).unwrap().len());
    let img = FullImage::open(&path).unwrap();
    assert_eq!(img.layout(), &g.layout);
    assert_eq!(img.tag(), "snap-1");
    assert_eq!(img.data_bytes(), stats.data_bytes);
    assert_eq!(img.region_offset(0), 4096);
    assert_eq!(img.region_offset(1), 4096 + (3 << 20));
    img.expect_layout(&g.layout).unwrap();
    img.verify().unwrap();
    g.check_image(&img);
    // Only the image itself is in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn precopied_image_patched_with_later_writes_equals_a_full_image_of_the_final_memory() {
    let dir = TempDir::new("mem-precopy");
    let mut g = Guest::new(&[(0, 3 << 20), (1 << 32, (5 << 20) + 3 * PAGE_SIZE)]);
    let mut rng = Rng::new(7);
    let mut ignored = DirtyBitmap::new(&g.layout);
    g.scribble(&mut rng, 600, &mut ignored);
    let path = dir.join("memory.full");
    let mut image = PrecopiedImage::create(&path, "snap-1", &g.layout).unwrap();
    // What the copy saw, then the writes made while it ran (some pages zeroed, some zero
    // pages filled, some changed by one byte).
    image.copy_live(&g.slices()).unwrap();
    let mut written = DirtyBitmap::new(&g.layout);
    g.scribble(&mut rng, 300, &mut written);
    rng.fill(&mut g.mem[1][PS..2 * PS]);
    written.set(1, 1).unwrap();
    let first_data = (0..PS).find(|&at| g.mem[0][at * PS..(at + 1) * PS] != [0u8; PS]);
    if let Some(p) = first_data {
        g.mem[0][p * PS..(p + 1) * PS].fill(0);
        written.set(0, p as u64).unwrap();
    }
    image.patch(&written, &g.slices()).unwrap();
    let stats = image.finish().unwrap();
    assert_eq!(stats.data_bytes, nonzero_pages(&g) * PAGE_SIZE);
    let img = FullImage::open(&path).unwrap();
    img.verify().unwrap();
    g.check_image(&img);
    // Checksums and present pages are those of an image written from the final memory.
    let reference = dir.join("reference.full");
    write_full(&reference, "snap-1", &g.layout, &g.slices()).unwrap();
    let (a, b) = (
        std::fs::read(&path).unwrap(),
        std::fs::read(&reference).unwrap(),
    );
    assert!(
        a == b,
        "the patched image differs from a full image of the same memory"
    );
}

#[test]
fn full_image_is_sparse() {
    let dir = TempDir::new("mem-sparse");
    let mut g = Guest::new(&[(0, 256 << 20)]);
    let mut rng = Rng::new(2);
    // 1 MiB of data at the start, 200 scattered pages, and pages with a single byte set.
    rng.fill(&mut g.mem[0][..1 << 20]);
    for _ in 0..200 {
        let p = rng.below(65536) as usize;
        rng.fill(&mut g.mem[0][p * PS..(p + 1) * PS]);
    }
    g.mem[0][(200 << 20) + 4095] = 1;
    let data = nonzero_pages(&g) * PAGE_SIZE;
    let path = dir.join("memory.full");
    let stats = write_full(&path, "s", &g.layout, &g.slices()).unwrap();
    assert_eq!(stats.data_bytes, data);
    let md = std::fs::metadata(&path).unwrap();
    let allocated = md.blocks() * 512;
    assert_eq!(md.len(), stats.file_bytes);
    assert!(md.len() > 256 << 20);
    assert!(allocated >= data, "allocated {allocated} < data {data}");
    // Header page + table (8 KiB bitmap + 1 KiB checksums) + file-system metadata slack.
    assert!(
        allocated <= data + (256 << 10),
        "allocated {allocated} bytes for {data} bytes of data"
    );
    let img = FullImage::open(&path).unwrap();
    img.verify().unwrap();
    g.check_image(&img);
}

#[test]
fn map_private_restore_leaves_the_file_untouched() {
    let dir = TempDir::new("mem-mmap");
    let mut g = Guest::new(&[(0, 1 << 20), (1 << 30, 2 << 20)]);
    let mut rng = Rng::new(3);
    let mut dirty = DirtyBitmap::new(&g.layout);
    g.scribble(&mut rng, 100, &mut dirty);
    let path = dir.join("memory.full");
    write_full(&path, "s", &g.layout, &g.slices()).unwrap();
    let before = std::fs::read(&path).unwrap();
    let img = FullImage::open(&path).unwrap();
    for (i, r) in img.layout().regions.iter().enumerate() {
        use std::os::fd::AsRawFd;
        let len = r.len as usize;
        // SAFETY: a fresh private mapping of a range of an open file, used only within this
        // block and unmapped at its end.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                img.file().as_raw_fd(),
                img.region_offset(i) as libc::off_t,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let s = std::slice::from_raw_parts_mut(p as *mut u8, len);
            assert!(s == g.mem[i].as_slice(), "region {i} maps differently");
            s.fill(0xAA);
            libc::munmap(p, len);
        }
    }
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

#[test]
fn diff_chain_consolidates_to_the_full_image_of_the_final_memory() {
    let dir = TempDir::new("mem-chain");
    let mut g = Guest::new(&[(0, 2 << 20), (0x1_0000_0000, (6 << 20) + 5 * PAGE_SIZE)]);
    let mut rng = Rng::new(4);
    let mut dirty = DirtyBitmap::new(&g.layout);
    g.scribble(&mut rng, 300, &mut dirty);
    let base = dir.join("s0.full");
    write_full(&base, "s0", &g.layout, &g.slices()).unwrap();
    let mut diffs = Vec::new();
    for i in 1..=10 {
        let mut dirty = DirtyBitmap::new(&g.layout);
        let n = 5 + rng.below(60) as usize;
        g.scribble(&mut rng, n, &mut dirty);
        // A page dirtied but written with the same contents, and a page zeroed.
        dirty.set(0, 7).unwrap();
        g.mem[1][PS * 9..PS * 10].fill(0);
        dirty.set(1, 9).unwrap();
        let p = dir.join(&format!("s{i}.diff"));
        let stats = write_diff(
            &p,
            &format!("s{i}"),
            &format!("s{}", i - 1),
            &g.layout,
            &dirty,
            &g.slices(),
        )
        .unwrap();
        assert_eq!(stats.pages, dirty.count());
        let d = DiffImage::open(&p).unwrap();
        assert_eq!(d.dirty_bitmap(), dirty);
        assert_eq!(d.stored_pages() * PAGE_SIZE, stats.data_bytes);
        assert!(d.zero(1).get(9));
        d.verify().unwrap();
        diffs.push(p);
    }
    let refs: Vec<&Path> = diffs.iter().map(|p| p.as_path()).collect();
    let out = dir.join("consolidated.full");
    consolidate(&base, &refs, &out).unwrap();
    let expected = dir.join("expected.full");
    write_full(&expected, "s10", &g.layout, &g.slices()).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&expected).unwrap(),
        "consolidated image differs"
    );
    let img = FullImage::open(&out).unwrap();
    img.verify().unwrap();
    g.check_image(&img);
    // Applying the diffs one at a time in place gives the same file.
    let step = dir.join("step.full");
    std::fs::copy(&base, &step).unwrap();
    for d in &diffs {
        apply_diff(&step, d).unwrap();
    }
    assert!(std::fs::read(&step).unwrap() == std::fs::read(&expected).unwrap());
    // Laid over the base image's memory (as a restore does), the diffs give the final memory.
    let base_img = FullImage::open(&base).unwrap();
    let mut mem: Vec<Vec<u8>> = g.mem.iter().map(|m| vec![0u8; m.len()]).collect();
    for (i, m) in mem.iter_mut().enumerate() {
        base_img.read(i, 0, m).unwrap();
    }
    for d in &diffs {
        let d = DiffImage::open(d).unwrap();
        let mut slices: Vec<&mut [u8]> = mem.iter_mut().map(|m| m.as_mut_slice()).collect();
        assert_eq!(d.apply_to(&mut slices).unwrap(), d.dirty_pages());
    }
    assert!(
        mem == g.mem,
        "diffs laid over the base differ from the final memory"
    );
    // A flipped byte in a diff's data is caught while it is laid over memory.
    let bad = dir.join("flipped.diff");
    let mut bytes = std::fs::read(&diffs[3]).unwrap();
    bytes[4096 + 100] ^= 0x40;
    std::fs::write(&bad, bytes).unwrap();
    let mut slices: Vec<&mut [u8]> = mem.iter_mut().map(|m| m.as_mut_slice()).collect();
    let e = DiffImage::open(&bad)
        .unwrap()
        .apply_to(&mut slices)
        .unwrap_err();
    assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("flipped.diff"), "{e}");
    // Out of order: refused, naming the diff and the images.
    let e = consolidate(&base, &[refs[1], refs[0]], &dir.join("bad.full")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SnapshotError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("s2.diff") && msg.contains("\"s1\"") && msg.contains("\"s0\""),
        "{msg}"
    );
    assert!(!dir.join("bad.full").exists() && !dir.join("bad.full.partial").exists());
}

#[test]
fn diff_of_nothing_and_of_everything() {
    let dir = TempDir::new("mem-diff-edge");
    let mut g = Guest::new(&[(0, 1 << 20)]);
    let base = dir.join("base");
    write_full(&base, "a", &g.layout, &g.slices()).unwrap();
    let empty = dir.join("empty.diff");
    let st = write_diff(
        &empty,
        "b",
        "a",
        &g.layout,
        &DirtyBitmap::new(&g.layout),
        &g.slices(),
    )
    .unwrap();
    assert_eq!((st.pages, st.data_bytes), (0, 0));
    Rng::new(5).fill(&mut g.mem[0]);
    let all = dir.join("all.diff");
    let st = write_diff(
        &all,
        "c",
        "b",
        &g.layout,
        &DirtyBitmap::all(&g.layout),
        &g.slices(),
    )
    .unwrap();
    assert_eq!(st.data_bytes, 1 << 20);
    let out = dir.join("out");
    consolidate(&base, &[&empty, &all], &out).unwrap();
    let img = FullImage::open(&out).unwrap();
    assert_eq!(img.tag(), "c");
    g.check_image(&img);
}

#[test]
fn wrong_size_wrong_layout_wrong_kind() {
    let dir = TempDir::new("mem-size");
    let g = Guest::new(&[(0, 1 << 20)]);
    let path = dir.join("memory.full");
    write_full(&path, "s", &g.layout, &g.slices()).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // Longer than the header says.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len + 4096).unwrap();
    let e = FullImage::open(&path).unwrap_err();
    assert!(matches!(e, SnapshotError::Mismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("is {} bytes, its header says {len}", len + 4096)),
        "{e}"
    );
    // Shorter.
    f.set_len(len - 1).unwrap();
    let e = FullImage::open(&path).unwrap_err();
    assert!(
        matches!(e, SnapshotError::Truncated { offset, .. } if offset == len - 1),
        "{e}"
    );
    f.set_len(len).unwrap();
    // Not the VM's layout.
    let img = FullImage::open(&path).unwrap();
    let other = MemoryLayout::new(&[(0, 2 << 20)]).unwrap();
    let e = img.expect_layout(&other).unwrap_err();
    assert!(
        e.to_string().contains("memory.full") && e.to_string().contains("but the VM has"),
        "{e}"
    );
    // A diff is not a full image, and the other way round.
    let d = dir.join("d");
    write_diff(
        &d,
        "t",
        "s",
        &g.layout,
        &DirtyBitmap::new(&g.layout),
        &g.slices(),
    )
    .unwrap();
    assert!(FullImage::open(&d)
        .unwrap_err()
        .to_string()
        .contains("a full memory image was expected"));
    assert!(DiffImage::open(&path)
        .unwrap_err()
        .to_string()
        .contains("a diff memory image was expected"));
    // Not an image at all.
    std::fs::write(dir.join("junk"), b"hello").unwrap();
    assert!(matches!(
        FullImage::open(&dir.join("junk")).unwrap_err(),
        SnapshotError::BadMagic { .. }
    ));
    std::fs::write(dir.join("empty"), b"").unwrap();
    assert!(FullImage::open(&dir.join("empty")).is_err());
    // Source slices that do not match the layout.
    let e = write_full(&dir.join("x"), "s", &g.layout, &[&g.mem[0][..4096]]).unwrap_err();
    assert!(matches!(e, SnapshotError::InvalidInput(_)), "{e}");
    assert!(write_full(&dir.join("x"), "s", &g.layout, &[]).is_err());
}

fn header_with(path: &Path, at: usize, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut h = [0u8; 56];
    f.read_exact_at(&mut h, 0).unwrap();
    h[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32fast::hash(&h[..52]);
    h[52..].copy_from_slice(&crc.to_le_bytes());
    f.write_all_at(&h, 0).unwrap();
}

#[test]
fn damaged_images_are_reported() {
    let dir = TempDir::new("mem-damage");
    let mut g = Guest::new(&[(0, 2 << 20), (4 << 20, 1 << 20)]);
    Rng::new(6).fill(&mut g.mem[1][..8192]);
    Rng::new(7).fill(&mut g.mem[0][(1 << 20) + 4096..(1 << 20) + 8192]);
    let good = dir.join("good");
    write_full(&good, "s", &g.layout, &g.slices()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let case = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let p = dir.join(name);
        let mut b = bytes.clone();
        f(&mut b);
        std::fs::write(&p, &b).unwrap();
        p
    };
    // Data of region 1, block 0.
    let p = case("data", &|b| b[4096 + (2 << 20) + 100] ^= 1);
    let e = FullImage::open(&p).unwrap().verify().unwrap_err();
    assert!(
        e.to_string()
            .contains("block 0 of region 1 (guest physical 0x400000)"),
        "{e}"
    );
    // A hole that holds data.
    let p = case("hole", &|b| b[4096 + 5] = 9);
    let e = FullImage::open(&p).unwrap().verify().unwrap_err();
    assert!(
        e.to_string().contains("page 0 of region 0 should be zero"),
        "{e}"
    );
    // The same in a sparse file: only the hole's new data extent is read.
    let p = dir.join("sparse-hole");
    write_full(&p, "s", &g.layout, &g.slices()).unwrap();
    FullImage::open(&p).unwrap().verify().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(&[7], 4096 + 300 * 4096 + 1)
        .unwrap();
    let e = FullImage::open(&p).unwrap().verify().unwrap_err();
    assert!(
        e.to_string()
            .contains("page 300 of region 0 should be zero"),
        "{e}"
    );
    // The table.
    let p = case("table", &|b| {
        let n = b.len();
        b[n - 3] ^= 0x10
    });
    let e = FullImage::open(&p).unwrap_err();
    assert!(
        e.to_string()
            .contains("layout and checksum table: checksum mismatch"),
        "{e}"
    );
    // The header.
    let p = case("header", &|b| b[30] ^= 1);
    assert!(FullImage::open(&p)
        .unwrap_err()
        .to_string()
        .contains("header: checksum mismatch"));
    // Version 2.
    let p = case("version", &|b| b[8] = 2);
    let e = FullImage::open(&p).unwrap_err();
    assert!(
        matches!(e, SnapshotError::UnsupportedVersion { found: 2, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("unsupported memory image version 2"),
        "{e}"
    );
    // A forged table length: refused before allocating.
    let p = case("meta-len", &|_| {});
    header_with(&p, 40, &u64::MAX.to_le_bytes());
    assert!(matches!(
        FullImage::open(&p).unwrap_err(),
        SnapshotError::TooLarge { .. }
    ));
    let p = case("meta-len2", &|_| {});
    header_with(&p, 40, &(64u64 << 20).to_le_bytes());
    assert!(matches!(
        FullImage::open(&p).unwrap_err(),
        SnapshotError::Truncated { .. }
    ));
    // A forged data length.
    let p = case("data-len", &|_| {});
    header_with(&p, 32, &(1u64 << 50).to_le_bytes());
    assert!(matches!(
        FullImage::open(&p).unwrap_err(),
        SnapshotError::Truncated { .. }
    ));
    let p = case("data-len2", &|_| {});
    header_with(&p, 32, &u64::MAX.to_le_bytes());
    assert!(FullImage::open(&p).is_err());
    // A full image whose data length disagrees with its layout (file length kept right).
    let p = case("layout", &|_| {});
    header_with(&p, 32, &((3u64 << 20) - 4096).to_le_bytes());
    assert!(FullImage::open(&p).is_err());
    // Truncated anywhere.
    for cut in (0..bytes.len())
        .step_by(4099)
        .chain([bytes.len() - 1, 10, 55, 56, 4096])
    {
        let p = case("cut", &|b| b.truncate(cut));
        assert!(FullImage::open(&p).is_err(), "cut at {cut}");
    }
    // Nothing is removed or repaired.
    assert!(dir.join("data").exists() && dir.join("table").exists());
}

#[test]
fn damaged_diffs_are_reported() {
    let dir = TempDir::new("mem-diff-damage");
    let mut g = Guest::new(&[(0, 2 << 20)]);
    Rng::new(9).fill(&mut g.mem[0][3 * PS..4 * PS]);
    let base = dir.join("base");
    write_full(&base, "a", &g.layout, &g.slices()).unwrap();
    Rng::new(8).fill(&mut g.mem[0][..(1 << 20) + 4096]);
    let dirty = DirtyBitmap::all(&g.layout);
    let good = dir.join("good");
    write_diff(&good, "b", "a", &g.layout, &dirty, &g.slices()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let d = DiffImage::open(&good).unwrap();
    assert_eq!(d.base_tag(), "a");
    assert!(d.stored_pages() > 256);
    let p = dir.join("bad");
    let mut b = bytes.clone();
    b[4096 + 300 * 4096 / 2] ^= 4;
    std::fs::write(&p, &b).unwrap();
    let e = DiffImage::open(&p).unwrap().verify().unwrap_err();
    assert!(e.to_string().contains("stored pages 0..256"), "{e}");
    let e = consolidate(&base, &[&p], &dir.join("out")).unwrap_err();
    assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
    assert!(!dir.join("out").exists());
    for cut in (0..bytes.len()).step_by(997) {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(DiffImage::open(&p).is_err(), "cut at {cut}");
    }
    // A damaged base block under a dirty page is caught while consolidating (its pages
    // with data are read and checked; its holes are zero by the page bitmap).
    let mut b = std::fs::read(&base).unwrap();
    b[4096 + 3 * PS + 10] ^= 1;
    let bad_base = dir.join("bad-base");
    std::fs::write(&bad_base, &b).unwrap();
    let e = consolidate(&bad_base, &[&good], &dir.join("out")).unwrap_err();
    assert!(e.to_string().contains("block 0 of region 0"), "{e}");
    assert_eq!(FullImage::open(&base).unwrap().layout().regions.len(), 1);
    let _ = ImageKind::Diff;
}
