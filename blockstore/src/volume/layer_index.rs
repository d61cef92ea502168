//! A layer's index: `<store>/layers/<id>.index`, which chunks the layer holds and where.
//!
//! Binary, little-endian, committed atomically (write `.index.tmp`, fsync, rename, fsync the
//! directory), so it always describes slots whose data was made durable before it:
//!
//! ```text
//! header (64 bytes)
//!   0  magic       8 bytes  "RPRSIDX\0"
//!   8  version     u32      1
//!  12  chunk_size  u32
//!  16  layer id    16 bytes (the file name's 32 hex digits)
//!  32  entries     u64
//!  40  generation  u64      commit counter of this layer
//!  48  reserved    16 bytes (zero)
//! entries (24 bytes each, chunk numbers strictly ascending)
//!   0  chunk       u64
//!   8  slot        u64      slot in `<id>.data` (chunk_size bytes each); u64::MAX for zero
//!  16  crc32       u32      of the slot's chunk_size bytes (0 for zero)
//!  20  kind        u32      1 = data, 2 = zero (a tombstone hiding lower layers)
//! trailer
//!   0  crc32       u32      of the header and the entries
//! ```

use std::io;

use super::error::VolumeError;
use super::fsutil::{read_limited, write_atomic};
use super::paths::VolumePaths;

/// The index file magic.
pub const INDEX_MAGIC: [u8; 8] = *b"RPRSIDX\0";
/// The index version this build writes and reads.
pub const INDEX_VERSION: u32 = 1;
/// Largest index file read (4 GiB: 178 million entries).
pub const MAX_INDEX_BYTES: u64 = 4 << 30;
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 24;
const TRAILER_LEN: usize = 4;
const KIND_DATA: u32 = 1;
const KIND_ZERO: u32 = 2;

/// What a layer says about one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkState {
    /// The chunk's bytes are in `slot` of the data file, with this checksum.
    Data { slot: u64, crc: u32 },
    /// The chunk reads as zeros, whatever lower layers hold.
    Zero,
}

/// A decoded index.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerIndex {
    pub generation: u64,
    /// Sorted by chunk, unique.
    pub entries: Vec<(u64, ChunkState)>,
}

impl LayerIndex {
    /// How many entries hold data and how many are zero.
    pub fn counts(&self) -> (u64, u64) {
        let data = self
            .entries
            .iter()
            .filter(|(_, s)| matches!(s, ChunkState::Data { .. }))
            .count() as u64;
        (data, self.entries.len() as u64 - data)
    }
}

fn id_bytes(id: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = id
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    out
}

/// Serializes an index; `entries` must be sorted by chunk and unique.
pub(crate) fn encode(
    id: &str,
    chunk_size: u32,
    generation: u64,
    entries: &[(u64, ChunkState)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + entries.len() * ENTRY_LEN + TRAILER_LEN);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&chunk_size.to_le_bytes());
    out.extend_from_slice(&id_bytes(id));
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&[0u8; 16]);
    for (chunk, state) in entries {
        let (slot, crc, kind) = match *state {
            ChunkState::Data { slot, crc } => (slot, crc, KIND_DATA),
            ChunkState::Zero => (u64::MAX, 0, KIND_ZERO),
        };
        out.extend_from_slice(&chunk.to_le_bytes());
        out.extend_from_slice(&slot.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why an index could not be decoded.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Corrupt(String),
    Unsupported(String),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and checks an index of layer `id` whose data file holds `data_slots` whole slots.
pub(crate) fn decode(
    bytes: &[u8],
    id: &str,
    chunk_size: u32,
    data_slots: u64,
) -> Result<LayerIndex, DecodeError> {
    use DecodeError::*;
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Corrupt(format!(
            "index is truncated: {} bytes, shorter than its {}-byte header and trailer",
            bytes.len(),
            HEADER_LEN + TRAILER_LEN
        )));
    }
    if bytes[..8] != INDEX_MAGIC {
        return Err(Corrupt("not a layer index (bad magic)".into()));
    }
    let version = u32_at(bytes, 8);
    if version != INDEX_VERSION {
        return Err(Unsupported(format!(
            "index version {version} is not supported (this build reads version {INDEX_VERSION})"
        )));
    }
    let count = u64_at(bytes, 32);
    let expected_len = (count as u128) * ENTRY_LEN as u128 + (HEADER_LEN + TRAILER_LEN) as u128;
    if expected_len != bytes.len() as u128 {
        return Err(Corrupt(format!(
            "index is truncated or padded: its header says {count} entries ({expected_len} bytes) \
             but the file has {} bytes",
            bytes.len()
        )));
    }
    let body_len = bytes.len() - TRAILER_LEN;
    let stored = u32_at(bytes, body_len);
    let actual = crc32fast::hash(&bytes[..body_len]);
    if stored != actual {
        return Err(Corrupt(format!(
            "index checksum mismatch: stored crc32 {stored:08x}, contents have {actual:08x}"
        )));
    }
    let file_chunk = u32_at(bytes, 12);
    if file_chunk != chunk_size {
        return Err(Corrupt(format!(
            "index is for chunk size {file_chunk}, the volume uses {chunk_size}"
        )));
    }
    if bytes[16..32] != id_bytes(id) {
        return Err(Corrupt(format!(
            "index belongs to another layer (its header does not carry id {id})"
        )));
    }
    let generation = u64_at(bytes, 40);
    let mut entries = Vec::with_capacity(count as usize);
    // One bit per slot of the data file, to find slots used twice.
    let mut slots_used = vec![0u64; data_slots.div_ceil(64).min(count.max(1) * 64) as usize];
    let mut prev: Option<u64> = None;
    for i in 0..count as usize {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let chunk = u64_at(bytes, at);
        let slot = u64_at(bytes, at + 8);
        let crc = u32_at(bytes, at + 16);
        let kind = u32_at(bytes, at + 20);
        if let Some(p) = prev {
            if chunk == p {
                return Err(Corrupt(format!("entry {i}: chunk {chunk} is listed twice")));
            }
            if chunk < p {
                return Err(Corrupt(format!(
                    "entry {i}: chunk {chunk} is out of order (after chunk {p})"
                )));
            }
        }
        prev = Some(chunk);
        let state = match kind {
            KIND_DATA => {
                if slot >= data_slots {
                    return Err(Corrupt(format!(
                        "entry {i}: chunk {chunk} is in slot {slot}, beyond the end of the data \
                         file ({data_slots} whole slots): the data file is truncated"
                    )));
                }
                let (word, bit) = ((slot / 64) as usize, 1u64 << (slot % 64));
                if word >= slots_used.len() {
                    slots_used.resize(word + 1, 0);
                }
                let seen = slots_used[word] & bit != 0;
                slots_used[word] |= bit;
                if seen {
                    return Err(Corrupt(format!(
                        "entry {i}: slot {slot} is used by two chunks (chunk {chunk} and another)"
                    )));
                }
                ChunkState::Data { slot, crc }
            }
            KIND_ZERO => ChunkState::Zero,
            k => {
                return Err(Corrupt(format!(
                    "entry {i}: chunk {chunk} has unknown kind {k}"
                )))
            }
        };
        entries.push((chunk, state));
    }
    Ok(LayerIndex {
        generation,
        entries,
    })
}

/// Reads and checks the committed index of layer `id`, whose data file is `data_len` bytes.
pub(crate) fn load(
    paths: &VolumePaths,
    id: &str,
    chunk_size: u32,
    data_len: u64,
) -> Result<LayerIndex, VolumeError> {
    let path = paths.layer_index(id);
    let bytes = match read_limited(&path, MAX_INDEX_BYTES) {
        Ok(Ok(b)) => b,
        Ok(Err(len)) => {
            return Err(VolumeError::corrupt(
                &paths.dir,
                &path,
                format!("index is {len} bytes, more than the limit of {MAX_INDEX_BYTES}"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VolumeError::corrupt(
                &paths.dir,
                &path,
                "layer index is missing (the manifest refers to this layer)",
            ))
        }
        Err(e) => return Err(VolumeError::io(&paths.dir, &path, "read", e)),
    };
    decode(&bytes, id, chunk_size, data_len / u64::from(chunk_size)).map_err(|e| match e {
        DecodeError::Corrupt(problem) => VolumeError::corrupt(&paths.dir, &path, problem),
        DecodeError::Unsupported(problem) => VolumeError::Unsupported {
            volume: paths.dir.clone(),
            file: path.clone(),
            problem,
        },
    })
}

/// Commits a new index for layer `id` atomically.
pub(crate) fn commit(
    paths: &VolumePaths,
    id: &str,
    chunk_size: u32,
    generation: u64,
    entries: &[(u64, ChunkState)],
) -> Result<(), VolumeError> {
    let bytes = encode(id, chunk_size, generation, entries);
    write_atomic(
        &paths.dir,
        &paths.layer_index(id),
        &paths.layer_index_tmp(id),
        &bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00112233445566778899aabbccddeeff";

    fn sample() -> Vec<(u64, ChunkState)> {
        vec![
            (1, ChunkState::Data { slot: 0, crc: 7 }),
            (5, ChunkState::Zero),
            (9, ChunkState::Data { slot: 1, crc: 8 }),
        ]
    }

    #[test]
    fn round_trip() {
        let b = encode(ID, 4096, 3, &sample());
        let idx = decode(&b, ID, 4096, 2).unwrap();
        assert_eq!(idx.entries, sample());
        assert_eq!(idx.generation, 3);
        assert_eq!(idx.counts(), (2, 1));
    }

    fn corrupt_msg(r: Result<LayerIndex, DecodeError>) -> String {
        match r {
            Err(DecodeError::Corrupt(m)) => m,
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    #[test]
    fn rejects_damage() {
        let b = encode(ID, 4096, 3, &sample());
        assert!(corrupt_msg(decode(&b[..b.len() - 10], ID, 4096, 2)).contains("truncated"));
        let mut c = b.clone();
        c[HEADER_LEN + 3] ^= 1;
        assert!(corrupt_msg(decode(&c, ID, 4096, 2)).contains("checksum"));
        assert!(corrupt_msg(decode(&b, ID, 4096, 1)).contains("beyond the end"));
        assert!(corrupt_msg(decode(&b, ID, 8192, 2)).contains("chunk size"));
        let dup = vec![
            (1, ChunkState::Data { slot: 0, crc: 7 }),
            (2, ChunkState::Data { slot: 0, crc: 7 }),
        ];
        let d = encode(ID, 4096, 1, &dup);
        assert!(corrupt_msg(decode(&d, ID, 4096, 2)).contains("two chunks"));
        let twice = vec![(1, ChunkState::Zero), (1, ChunkState::Zero)];
        let d = encode(ID, 4096, 1, &twice);
        assert!(corrupt_msg(decode(&d, ID, 4096, 2)).contains("twice"));
    }
}
