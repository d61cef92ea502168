//! The chunk map of a volume's frozen layers: for every chunk that holds data below the head,
//! which layer and slot hold it. Built once when the volume is opened by walking the chain
//! bottom to top; a read then costs one hash lookup whatever the depth of the chain.

use std::collections::HashMap;

use super::layer_index::{ChunkState, LayerIndex};

/// Where a chunk's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkLoc {
    /// Position of the layer in the chain (0 = bottom).
    pub layer: u32,
    /// Slot in the layer's data file.
    pub slot: u64,
    /// The chunk's checksum.
    pub crc: u32,
    /// Whether the checksum was already verified since the volume was opened.
    pub verified: bool,
}

/// Chunk number → location, for chunks that hold data. Absent chunks read as zeros.
#[derive(Debug, Default)]
pub(crate) struct ChunkMap {
    map: HashMap<u64, ChunkLoc>,
}

impl ChunkMap {
    /// Lays the index of the layer at position `layer` over the map: its data entries replace
    /// what lower layers said, its zero entries remove them.
    pub fn apply(&mut self, layer: u32, index: &LayerIndex) {
        self.map.reserve(index.entries.len());
        for &(chunk, state) in &index.entries {
            self.set(chunk, layer, state);
        }
    }

    /// Lays one chunk state of the layer at position `layer` over the map.
    pub fn set(&mut self, chunk: u64, layer: u32, state: ChunkState) {
        match state {
            ChunkState::Data { slot, crc } => {
                self.map.insert(
                    chunk,
                    ChunkLoc {
                        layer,
                        slot,
                        crc,
                        verified: false,
                    },
                );
            }
            ChunkState::Zero => {
                self.map.remove(&chunk);
            }
        }
    }

    /// Where `chunk` is, if it holds data.
    pub fn get(&self, chunk: u64) -> Option<ChunkLoc> {
        self.map.get(&chunk).copied()
    }

    /// Notes that `chunk`'s checksum has been verified.
    pub fn mark_verified(&mut self, chunk: u64) {
        if let Some(loc) = self.map.get_mut(&chunk) {
            loc.verified = true;
        }
    }

    /// Whether `chunk` holds data.
    pub fn contains(&self, chunk: u64) -> bool {
        self.map.contains_key(&chunk)
    }

    /// Chunks that hold data.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The chunks that hold data, in no particular order.
    pub fn chunks(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.keys().copied()
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
                ],
            },
        );
        assert_eq!(m.get(1), None);
        assert_eq!(m.get(2).map(|l| (l.layer, l.slot, l.crc)), Some((1, 0, 3)));
        assert_eq!(m.len(), 1);
    }
}
