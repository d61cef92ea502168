//! The deterministic disk pattern: the 8 bytes at absolute disk byte offset 8*w
//! are `pattern_word(seed, w)` in little-endian (a splitmix64 step).

/// The pattern word `w` for `seed`.
pub fn pattern_word(seed: u64, w: u64) -> u64 {
    let mut z = seed.wrapping_add((w.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fill `buf` (a multiple of 8 bytes) with the pattern starting at disk byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let first = offset / 8;
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&pattern_word(seed, first + i as u64).to_le_bytes());
    }
}

/// Index of the first byte of `buf` that differs from the pattern at `offset`.
pub fn first_mismatch(seed: u64, offset: u64, buf: &[u8]) -> Option<usize> {
    let first = offset / 8;
    buf.chunks_exact(8).enumerate().find_map(|(i, chunk)| {
        let want = pattern_word(seed, first + i as u64).to_le_bytes();
        let pos = chunk.iter().zip(want).position(|(a, b)| *a != b)?;
        Some(i * 8 + pos)
    })
}
