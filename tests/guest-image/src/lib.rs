//! The Reprise test guest, seen from the host: where its ELF is, and the
//! deterministic data its workloads produce, so tests can check them exactly.
//!
//! The guest itself lives in `tests/guest` (see its README for the command line
//! and the serial output); `build.rs` builds it with a nested cargo.

use std::path::Path;

/// Path of the test guest ELF (PVH-bootable, load address 1 MiB).
pub fn guest_elf() -> &'static Path {
    Path::new(env!("REPRISE_GUEST_ELF"))
}

/// Word `w` of the `workload=blk` disk pattern for `seed`: the 8 bytes at
/// absolute disk byte offset `8 * w`, little-endian.
pub fn pattern_word(seed: u64, w: u64) -> u64 {
    let mut z = seed.wrapping_add(w.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` bytes of the pattern for `seed` starting at disk byte `offset`.
///
/// # Panics
/// If `offset` is not a multiple of 8.
pub fn pattern_bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    assert_eq!(offset % 8, 0, "pattern offset must be a multiple of 8");
    let first = offset / 8;
    let mut out: Vec<u8> = (0..len.div_ceil(8) as u64)
        .flat_map(|i| pattern_word(seed, first + i).to_le_bytes())
        .collect();
    out.truncate(len);
    out
}

/// The checksum `workload=dirty` prints after `writes` writes to a working set
/// of `mib` MiB: FNV-1a 64 over the little-endian first u64 of every page, in
/// page order, where write k stored k at page `(k * 7919) % npages`.
pub fn dirty_checksum(mib: u64, writes: u64) -> u64 {
    let npages = mib * 256;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for page in 0..npages {
        let value = last_write_to(page, npages, writes);
        for b in value.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The value page `page` holds after `writes` writes (0 if never written).
fn last_write_to(page: u64, npages: u64, writes: u64) -> u64 {
    const STRIDE: u64 = 7919;
    match mod_inverse(STRIDE % npages, npages) {
        // Writes to `page` are exactly k = k0 + j * npages.
        Some(inv) => {
            let k0 = (u128::from(page) * u128::from(inv) % u128::from(npages)) as u64;
            if k0 < writes {
                k0 + (writes - 1 - k0) / npages * npages
            } else {
                0
            }
        }
        None => (0..writes)
            .rev()
            .find(|k| k.wrapping_mul(STRIDE) % npages == page)
            .unwrap_or(0),
    }
}

/// Inverse of `a` modulo `m`, if they are coprime.
fn mod_inverse(a: u64, m: u64) -> Option<u64> {
    if m == 1 {
        return Some(0);
    }
    let (mut r0, mut r1) = (i128::from(m), i128::from(a));
    let (mut t0, mut t1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    (r0 == 1).then(|| t0.rem_euclid(i128::from(m)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_word_known_values() {
        // splitmix64 of seed 0: the published first outputs of the generator.
        assert_eq!(pattern_word(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(pattern_word(0, 1), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(pattern_word(1, 0), 0x910a_2dec_8902_5cc1);
    }

    #[test]
    fn pattern_bytes_match_words() {
        let bytes = pattern_bytes(7, 4096, 24);
        assert_eq!(bytes.len(), 24);
        for i in 0..3 {
            let w = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
            assert_eq!(w, pattern_word(7, 512 + i as u64));
        }
        assert_eq!(pattern_bytes(7, 4096, 5), bytes[..5]);
    }

    #[test]
    #[should_panic]
    fn pattern_bytes_rejects_unaligned_offset() {
        pattern_bytes(1, 3, 8);
    }

    #[test]
    fn dirty_checksum_matches_simulation() {
        for (mib, writes) in [(1, 0), (1, 1), (1, 255), (1, 256), (1, 1000), (2, 70_000)] {
            let npages = mib * 256;
            let mut pages = vec![0u64; npages as usize];
            for k in 0..writes {
                pages[(k * 7919 % npages) as usize] = k;
            }
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for v in pages {
                for b in v.to_le_bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
            assert_eq!(dirty_checksum(mib, writes), h, "mib={mib} writes={writes}");
        }
    }

    #[test]
    fn dirty_checksum_known_value() {
        // Printed by the guest under QEMU: dirty.mib=16, 1000 writes.
        assert_eq!(dirty_checksum(16, 1000), 0xe92e_18cc_1a8b_c839);
    }

    #[test]
    fn guest_elf_is_a_pvh_elf() {
        let elf = std::fs::read(guest_elf()).expect("guest ELF readable");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 2, "ELF64");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "x86-64");
        // A "Xen" note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE segment.
        let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes([elf[54], elf[55]]) as usize;
        let phnum = u16::from_le_bytes([elf[56], elf[57]]) as usize;
        let entry = (0..phnum)
            .map(|i| &elf[phoff + i * phentsize..phoff + (i + 1) * phentsize])
            .filter(|ph| u32::from_le_bytes(ph[0..4].try_into().unwrap()) == 4)
            .find_map(|ph| {
                let off = u64::from_le_bytes(ph[8..16].try_into().unwrap()) as usize;
                let note = &elf[off..];
                let namesz = u32::from_le_bytes(note[0..4].try_into().unwrap());
                let kind = u32::from_le_bytes(note[8..12].try_into().unwrap());
                (namesz == 4 && kind == 18 && &note[12..16] == b"Xen\0")
                    .then(|| u32::from_le_bytes(note[16..20].try_into().unwrap()))
            })
            .expect("PVH note");
        assert!((0x10_0000..0x14_0000).contains(&entry), "entry {entry:#x}");
    }
}
