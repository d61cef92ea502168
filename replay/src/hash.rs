//! The content hash of block data: 128-bit XXH3 (`xxh3_128` from the `xxhash-rust` crate,
//! seed 0), stored little-endian. It identifies data for comparison (did the clone read or
//! write the same bytes?); it is not a cryptographic hash.

use std::fmt;

/// A 128-bit XXH3 hash of some bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash128(pub u128);

impl Hash128 {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Hash128 {
        Hash128(xxhash_rust::xxh3::xxh3_128(data))
    }

    /// The 16 bytes stored on disk (little-endian).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// The hash from its 16 stored bytes.
    pub fn from_bytes(b: [u8; 16]) -> Hash128 {
        Hash128(u128::from_le_bytes(b))
    }
}

impl fmt::Display for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash128({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_round_trips() {
        let h = Hash128::of(b"reprise");
        assert_eq!(h, Hash128::of(b"reprise"));
        assert_ne!(h, Hash128::of(b"Reprise"));
        assert_eq!(Hash128::from_bytes(h.to_bytes()), h);
        assert_eq!(h.to_string().len(), 32);
        // The empty input's XXH3-128 (seed 0) is a published constant.
        assert_eq!(Hash128::of(b"").0, 0x99aa06d3014798d86001c324468d497f);
    }
}
