//! The head: the one writable layer at the top of a volume's chain, log-structured so that
//! the last flush stays readable whatever happens after it.
//!
//! The committed index (on disk) names slots whose data was made durable before the index
//! was committed. A chunk whose current slot is committed is never overwritten: a write goes
//! to a free slot (copy-on-write) and the old slot is released only once an index that no
//! longer names it has been committed. A chunk written since the last flush sits in an
//! uncommitted slot and is overwritten in place. A crash therefore loses at most what was
//! written after the last flush, and the slots it leaves behind are found (they are not in
//! the committed index) and released when the volume is next opened.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::chunk_map::{ChunkLoc, ChunkMap};
use super::error::VolumeError;
use super::fsutil::{punch_hole, remove_if_exists, slots_with_data};
use super::layer_file::LayerFile;
use super::layer_index::{self, ChunkState};
use super::paths::VolumePaths;

/// What the head says about one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadEntry {
    /// In `slot`; `crc` is `None` while a partial in-place write has not been summed yet.
    /// `hides` says whether the frozen layers below hold data for this chunk (so discarding
    /// it needs a tombstone rather than just dropping the entry).
    Data {
        slot: u64,
        crc: Option<u32>,
        hides: bool,
    },
    /// Reads as zeros, hiding lower layers.
    Zero,
}

/// The writable head layer of a volume open for writing.
#[derive(Debug)]
pub(crate) struct HeadLayer {
    pub file: LayerFile,
    chunk_size: u32,
    /// The working index: committed state plus everything since.
    entries: HashMap<u64, HeadEntry>,
    /// Slots named by the committed index.
    committed_slots: HashSet<u64>,
    /// Committed slots no longer in the working index, freed after the next commit.
    pending_release: Vec<u64>,
    /// Slots below `next_slot` that nothing uses.
    free: BTreeSet<u64>,
    /// Slots in the data file.
    next_slot: u64,
    /// Chunks written in place whose checksum is computed at the next flush.
    crc_pending: HashSet<u64>,
    /// Whether the working index differs from the committed one.
    dirty: bool,
    generation: u64,
    data_count: u64,
    zero_count: u64,
}

impl HeadLayer {
    /// A head on a newly created, empty layer.
    pub fn new_empty(file: LayerFile, chunk_size: u32) -> Self {
        HeadLayer {
            file,
            chunk_size,
            entries: HashMap::new(),
            committed_slots: HashSet::new(),
            pending_release: Vec::new(),
            free: BTreeSet::new(),
            next_slot: 0,
            crc_pending: HashSet::new(),
            dirty: false,
            generation: 0,
            data_count: 0,
            zero_count: 0,
        }
    }

    /// Opens the head layer `id` for writing and repairs what an interrupted run left: a
    /// leftover `.index.tmp`, a partial slot at the end of the data file, slots written after
    /// the last flush. Each repair is described in `repairs`.
    pub fn open(
        paths: &VolumePaths,
        id: &str,
        chunk_size: u32,
        repairs: &mut Vec<String>,
    ) -> Result<Self, VolumeError> {
        let tmp = paths.layer_index_tmp(id);
        if remove_if_exists(&tmp).map_err(|e| VolumeError::io(&paths.dir, &tmp, "remove", e))? {
            repairs.push(format!(
                "removed {} (an index commit interrupted before its rename)",
                tmp.display()
            ));
        }
        let file = LayerFile::open(paths, id, true)?;
        let io = |op, e| VolumeError::io(&paths.dir, &file.path, op, e);
        let len = file.len().map_err(|e| io("stat", e))?;
        let index = layer_index::load(paths, id, chunk_size, len)?;
        let cs = u64::from(chunk_size);
        let slots = len / cs;
        if len % cs != 0 {
            file.file()
                .set_len(slots * cs)
                .map_err(|e| io("truncate", e))?;
            repairs.push(format!(
                "cut {} bytes of a partly written slot from the end of {}",
                len % cs,
                file.path.display()
            ));
        }
        let mut head = HeadLayer::new_empty(file, chunk_size);
        head.generation = index.generation;
        head.next_slot = slots;
        for &(chunk, state) in &index.entries {
            let entry = match state {
                ChunkState::Data { slot, crc } => {
                    head.committed_slots.insert(slot);
                    HeadEntry::Data {
                        slot,
                        crc: Some(crc),
                        hides: false,
                    }
                }
                ChunkState::Zero => HeadEntry::Zero,
            };
            head.put(chunk, entry);
        }
        head.free = (0..slots)
            .filter(|s| !head.committed_slots.contains(s))
            .collect();
        let leaked = head.release_unreferenced_data(paths)?;
        if leaked > 0 {
            repairs.push(format!(
                "released {leaked} slots of {} that the committed index does not name \
                 (written after the last flush)",
                head.file.path.display()
            ));
        }
        head.trim_tail(paths)?;
        Ok(head)
    }

    /// Punches every free slot that still holds data; returns how many did.
    fn release_unreferenced_data(&mut self, paths: &VolumePaths) -> Result<u64, VolumeError> {
        let cs = u64::from(self.chunk_size);
        let with_data = slots_with_data(self.file.file(), cs)
            .map_err(|e| VolumeError::io(&paths.dir, &self.file.path, "seek data", e))?;
        let mut released = 0;
        for slot in with_data.into_iter().filter(|s| self.free.contains(s)) {
            punch_hole(self.file.file(), slot * cs, cs)
                .map_err(|e| VolumeError::io(&paths.dir, &self.file.path, "punch hole", e))?;
            released += 1;
        }
        Ok(released)
    }

    /// Shortens the data file past its last used slot.
    fn trim_tail(&mut self, paths: &VolumePaths) -> Result<(), VolumeError> {
        let before = self.next_slot;
        while self.next_slot > 0 && self.free.remove(&(self.next_slot - 1)) {
            self.next_slot -= 1;
        }
        if self.next_slot != before {
            self.file
                .file()
                .set_len(self.next_slot * u64::from(self.chunk_size))
                .map_err(|e| VolumeError::io(&paths.dir, &self.file.path, "truncate", e))?;
        }
        Ok(())
    }

    /// Sets `chunk`'s entry, keeping the counts.
    fn put(&mut self, chunk: u64, entry: HeadEntry) -> Option<HeadEntry> {
        self.count(&entry, 1);
        let old = self.entries.insert(chunk, entry);
        if let Some(o) = &old {
            self.count(o, -1);
        }
        old
    }

    /// Removes `chunk`'s entry, keeping the counts.
    fn take(&mut self, chunk: u64) -> Option<HeadEntry> {
        let old = self.entries.remove(&chunk);
        if let Some(o) = &old {
            self.count(o, -1);
        }
        old
    }

    fn count(&mut self, e: &HeadEntry, delta: i64) {
        let n = match e {
            HeadEntry::Data { .. } => &mut self.data_count,
            HeadEntry::Zero => &mut self.zero_count,
        };
        *n = n.wrapping_add_signed(delta);
    }

    /// Lays the head over `map` (built from the frozen layers below it) as the layer at
    /// position `pos`, noting for each entry whether it hides data below.
    pub fn overlay(&mut self, map: &mut ChunkMap, pos: u32) {
        for (&chunk, entry) in self.entries.iter_mut() {
            match entry {
                HeadEntry::Data { slot, crc, hides } => {
                    *hides = map.contains(chunk);
                    map.insert(
                        chunk,
                        ChunkLoc {
                            layer: pos,
                            slot: *slot,
                            crc: *crc,
                            verified: false,
                        },
                    );
                }
                HeadEntry::Zero => map.remove(chunk),
            }
        }
    }

    /// Whether the frozen layers below hold data for `chunk`; `map` is the volume's chunk
    /// map, which shows the frozen layers for chunks the head has no entry for.
    pub fn hides_lower(&self, chunk: u64, map: &ChunkMap) -> bool {
        match self.get(chunk) {
            Some(HeadEntry::Data { hides, .. }) => hides,
            Some(HeadEntry::Zero) => true,
            None => map.contains(chunk),
        }
    }

    /// What the head says about `chunk`.
    pub fn get(&self, chunk: u64) -> Option<HeadEntry> {
        self.entries.get(&chunk).copied()
    }

    /// Whether `slot` was written since the last flush (so it may be overwritten in place).
    pub fn is_uncommitted(&self, slot: u64) -> bool {
        !self.committed_slots.contains(&slot)
    }

    /// Overwrites part of an uncommitted slot in place; its checksum is computed at flush.
    pub fn write_in_place(
        &mut self,
        paths: &VolumePaths,
        chunk: u64,
        slot: u64,
        offset: usize,
        data: &[u8],
    ) -> Result<(), VolumeError> {
        debug_assert!(self.is_uncommitted(slot));
        let at = slot * u64::from(self.chunk_size) + offset as u64;
        self.file
            .write_all_at(data, at)
            .map_err(|e| VolumeError::io(&paths.dir, &self.file.path, "write", e))?;
        if let Some(HeadEntry::Data { crc, .. }) = self.entries.get_mut(&chunk) {
            *crc = None;
        }
        self.crc_pending.insert(chunk);
        self.dirty = true;
        Ok(())
    }

    /// Writes a whole chunk to a free slot and points `chunk` at it; `hides` says whether
    /// lower layers hold data for it. Returns the slot and the checksum.
    pub fn write_new(
        &mut self,
        paths: &VolumePaths,
        chunk: u64,
        data: &[u8],
        hides: bool,
    ) -> Result<(u64, u32), VolumeError> {
        debug_assert_eq!(data.len(), self.chunk_size as usize);
        let slot = match self.free.pop_first() {
            Some(s) => s,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        };
        if let Err(e) = self
            .file
            .write_all_at(data, slot * u64::from(self.chunk_size))
        {
            self.free.insert(slot);
            return Err(VolumeError::io(&paths.dir, &self.file.path, "write", e));
        }
        let crc = crc32fast::hash(data);
        let old = self.put(
            chunk,
            HeadEntry::Data {
                slot,
                crc: Some(crc),
                hides,
            },
        );
        self.crc_pending.remove(&chunk);
        self.dispose(old);
        self.dirty = true;
        Ok((slot, crc))
    }

    /// Makes `chunk` read as zeros: a tombstone if lower layers hold data for it
    /// (`hides_lower`), otherwise no entry at all.
    pub fn set_zero(&mut self, chunk: u64, hides_lower: bool) {
        let old = self.entries.get(&chunk).copied();
        match (old, hides_lower) {
            (Some(HeadEntry::Zero), true) | (None, false) => return,
            (_, true) => {
                self.put(chunk, HeadEntry::Zero);
            }
            (_, false) => {
                self.take(chunk);
            }
        }
        self.crc_pending.remove(&chunk);
        self.dispose(old);
        self.dirty = true;
    }

    /// Returns the slot of a replaced entry: at once if uncommitted, after the next commit
    /// otherwise.
    fn dispose(&mut self, old: Option<HeadEntry>) {
        if let Some(HeadEntry::Data { slot, .. }) = old {
            if self.committed_slots.contains(&slot) {
                self.pending_release.push(slot);
            } else {
                let cs = u64::from(self.chunk_size);
                if let Err(e) = punch_hole(self.file.file(), slot * cs, cs) {
                    log::warn!("{}: punch hole: {e}", self.file.path.display());
                }
                self.free.insert(slot);
            }
        }
    }

    /// The working index, sorted, with every checksum known (call after [`Self::flush`]).
    pub fn sorted_entries(&self) -> Vec<(u64, ChunkState)> {
        let mut out: Vec<(u64, ChunkState)> = self
            .entries
            .iter()
            .map(|(&c, &e)| {
                let state = match e {
                    HeadEntry::Data { slot, crc, .. } => ChunkState::Data {
                        slot,
                        crc: crc.unwrap_or(0),
                    },
                    HeadEntry::Zero => ChunkState::Zero,
                };
                (c, state)
            })
            .collect();
        out.sort_unstable_by_key(|&(c, _)| c);
        out
    }

    /// Makes everything written so far durable: sums in-place writes, fdatasyncs the data
    /// file, commits the index atomically, then releases the slots it no longer names.
    /// Returns the checksums computed for chunks written in place.
    pub fn flush(&mut self, paths: &VolumePaths) -> Result<Vec<(u64, u32)>, VolumeError> {
        let mut summed = Vec::new();
        if !self.dirty {
            return Ok(summed);
        }
        let cs = u64::from(self.chunk_size);
        let io = |op, e| VolumeError::io(&paths.dir, &self.file.path, op, e);
        let mut buf = vec![0u8; self.chunk_size as usize];
        let pending: Vec<u64> = self.crc_pending.iter().copied().collect();
        for chunk in pending {
            if let Some(HeadEntry::Data { slot, crc, .. }) = self.entries.get_mut(&chunk) {
                self.file
                    .read_exact_at(&mut buf, *slot * cs)
                    .map_err(|e| io("read", e))?;
                let sum = crc32fast::hash(&buf);
                *crc = Some(sum);
                summed.push((chunk, sum));
            }
            self.crc_pending.remove(&chunk);
        }
        self.file
            .file()
            .sync_data()
            .map_err(|e| io("fdatasync", e))?;
        let entries = self.sorted_entries();
        layer_index::commit(
            paths,
            &self.file.id,
            self.chunk_size,
            self.generation + 1,
            &entries,
        )?;
        self.generation += 1;
        self.committed_slots = entries
            .iter()
            .filter_map(|(_, s)| match s {
                ChunkState::Data { slot, .. } => Some(*slot),
                ChunkState::Zero => None,
            })
            .collect();
        for slot in std::mem::take(&mut self.pending_release) {
            if let Err(e) = punch_hole(self.file.file(), slot * cs, cs) {
                log::warn!("{}: punch hole: {e}", self.file.path.display());
            }
            self.free.insert(slot);
        }
        self.dirty = false;
        self.trim_tail(paths)?;
        Ok(summed)
    }

    /// Data and zero entries.
    pub fn counts(&self) -> (u64, u64) {
        (self.data_count, self.zero_count)
    }
}
