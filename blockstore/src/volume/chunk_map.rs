//! The chunk map: for every chunk of the volume that holds data, which layer of the chain
//! and which slot of that layer hold it. Built once when the volume is opened by walking
//! the chain bottom to top, then kept up to date by writes, so a read costs one lookup
//! whatever the depth of the chain. The head's chunks are in it too, under the head's
//! position: freezing the head for a snapshot leaves the map as it is.
//!
//! Stored as pages of 1024 fixed-size entries (16 bytes each) found through a hash map of
//! page numbers: filling it from a sorted index is a linear pass, a lookup is one hash of the
//! page number, and untouched regions of the volume cost nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::layer_index::{ChunkState, LayerIndex};

const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;

const PRESENT: u16 = 1;
const VERIFIED: u16 = 2;
const CRC_KNOWN: u16 = 4;

/// Where a chunk's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkLoc {
    /// Position of the layer in the chain (0 = bottom).
    pub layer: u32,
    /// Slot in the layer's data file.
    pub slot: u64,
    /// The chunk's checksum; `None` while a head chunk written in place awaits its flush.
    pub crc: Option<u32>,
    /// Whether the checksum was already verified since the volume was opened.
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Packed {
    slot: u64,
    crc: u32,
    layer: u16,
    flags: u16,
}

#[derive(Debug)]
struct Page {
    entries: Box<[Packed]>,
    used: u32,
}

/// A multiplicative hash for page numbers (which are small consecutive integers).
#[derive(Default)]
struct PageHasher(u64);

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Chunk number → location, for chunks that hold data. Absent chunks read as zeros.
#[derive(Debug, Default)]
pub(crate) struct ChunkMap {
    pages: HashMap<u64, Page, BuildHasherDefault<PageHasher>>,
    len: usize,
}

fn split(chunk: u64) -> (u64, usize) {
    (chunk >> PAGE_BITS, (chunk as usize) & (PAGE - 1))
}

impl ChunkMap {
    /// Lays the index of the layer at position `layer` over the map: its data entries replace
    /// what lower layers said, its zero entries remove them.
    pub fn apply(&mut self, layer: u32, index: &LayerIndex) {
        for &(chunk, state) in &index.entries {
            match state {
                ChunkState::Data { slot, crc } => self.insert(
                    chunk,
                    ChunkLoc {
                        layer,
                        slot,
                        crc: Some(crc),
                        verified: false,
                    },
                ),
                ChunkState::Zero => self.remove(chunk),
            }
        }
    }

    /// Points `chunk` at `loc`.
    pub fn insert(&mut self, chunk: u64, loc: ChunkLoc) {
        let (page, i) = split(chunk);
        let p = self.pages.entry(page).or_insert_with(|| Page {
            entries: vec![Packed::default(); PAGE].into_boxed_slice(),
            used: 0,
        });
        let e = &mut p.entries[i];
        if e.flags & PRESENT == 0 {
            p.used += 1;
            self.len += 1;
        }
        let mut flags = PRESENT;
        if loc.verified {
            flags |= VERIFIED;
        }
        if loc.crc.is_some() {
            flags |= CRC_KNOWN;
        }
        *e = Packed {
            slot: loc.slot,
            crc: loc.crc.unwrap_or(0),
            layer: loc.layer as u16,
            flags,
        };
    }

    /// Makes `chunk` read as zeros.
    pub fn remove(&mut self, chunk: u64) {
        let (page, i) = split(chunk);
        let Some(p) = self.pages.get_mut(&page) else {
            return;
        };
        let e = &mut p.entries[i];
        if e.flags & PRESENT != 0 {
            *e = Packed::default();
            p.used -= 1;
            self.len -= 1;
            if p.used == 0 {
                self.pages.remove(&page);
            }
        }
    }

    fn entry_mut(&mut self, chunk: u64) -> Option<&mut Packed> {
        let (page, i) = split(chunk);
        let e = &mut self.pages.get_mut(&page)?.entries[i];
        (e.flags & PRESENT != 0).then_some(e)
    }

    /// Where `chunk` is, if it holds data.
    pub fn get(&self, chunk: u64) -> Option<ChunkLoc> {
        let (page, i) = split(chunk);
        let e = self.pages.get(&page)?.entries[i];
        (e.flags & PRESENT != 0).then(|| ChunkLoc {
            layer: u32::from(e.layer),
            slot: e.slot,
            crc: (e.flags & CRC_KNOWN != 0).then_some(e.crc),
            verified: e.flags & VERIFIED != 0,
        })
    }

    /// Notes that `chunk`'s checksum has been verified.
    pub fn mark_verified(&mut self, chunk: u64) {
        if let Some(e) = self.entry_mut(chunk) {
            e.flags |= VERIFIED;
        }
    }

    /// Records the checksum of a chunk written in place, computed at flush.
    pub fn set_crc(&mut self, chunk: u64, crc: u32) {
        if let Some(e) = self.entry_mut(chunk) {
            e.crc = crc;
            e.flags |= CRC_KNOWN | VERIFIED;
        }
    }

    /// Whether `chunk` holds data.
    pub fn contains(&self, chunk: u64) -> bool {
        self.get(chunk).is_some()
    }

    /// Chunks that hold data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunks that hold data, in no particular order.
    pub fn chunks(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.iter().flat_map(|(&page, p)| {
            p.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.flags & PRESENT != 0)
                .map(move |(i, _)| (page << PAGE_BITS) | i as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_win() {
        let mut m = ChunkMap::default();
        m.apply(
            0,
            &LayerIndex {
                generation: 1,
                entries: vec![
                    (1, ChunkState::Data { slot: 0, crc: 1 }),
                    (2, ChunkState::Data { slot: 1, crc: 2 }),
                    (5000, ChunkState::Data { slot: 2, crc: 2 }),
                ],
            },
        );
        m.apply(
            1,
            &LayerIndex {
                generation: 1,
                entries: vec![
                    (1, ChunkState::Zero),
                    (2, ChunkState::Data { slot: 0, crc: 3 }),
                    (3, ChunkState::Zero),
                    (5000, ChunkState::Zero),
                ],
            },
        );
        assert_eq!(m.get(1), None);
        assert_eq!(
            m.get(2).map(|l| (l.layer, l.slot, l.crc)),
            Some((1, 0, Some(3)))
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m.chunks().collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.pages.len(), 1, "empty pages are dropped");
        m.mark_verified(2);
        assert!(m.get(2).unwrap().verified);
        m.insert(
            u64::MAX >> 14,
            ChunkLoc {
                layer: 4095,
                slot: 7,
                crc: None,
                verified: false,
            },
        );
        assert_eq!(m.get(u64::MAX >> 14).unwrap().crc, None);
        m.set_crc(u64::MAX >> 14, 9);
        assert_eq!(m.get(u64::MAX >> 14).unwrap().crc, Some(9));
    }
}
