//! Reclaiming space after snapshots are deleted: a frozen layer that is no longer the top of
//! any snapshot is merged with the layer above it, so chunks it holds that were overwritten
//! above stop taking space.
//!
//! Two frozen layers are merged into a new layer (frozen layers are immutable), then the
//! manifest switches to it atomically; the old layers become garbage once no manifest names
//! them and no reader has them open. A frozen layer just below the head is merged into the
//! head instead: its chunks the head does not override are copied into the head, the head
//! is flushed, then the manifest drops the layer (a crash in between leaves the same
//! contents either way). Layers that other volumes (clones) also use are never merged: that
//! would duplicate their data rather than free any.

use std::collections::{BTreeMap, HashSet};

use super::error::VolumeError;
use super::fsutil::remove_if_exists;
use super::gc;
use super::handle::{FrozenLayer, Volume};
use super::layer_file::LayerFile;
use super::layer_index::{self, ChunkState, LayerIndex};
use super::manifest::{self, ManifestBody};

impl Volume {
    /// Merges every pair of adjacent layers that no snapshot or other volume needs apart;
    /// returns how many merges were done. [`Volume::delete_snapshot`] calls it.
    pub fn reclaim(&mut self) -> Result<usize, VolumeError> {
        self.require_writable("reclaim")?;
        let others = match gc::layers_used_elsewhere(&self.paths) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{e}; not merging layers until every manifest in the store reads");
                return Ok(0);
            }
        };
        let mut merged = 0;
        while let Some(k) = self.merge_candidate(&others) {
            if k + 2 == self.body.layers.len() {
                self.merge_into_head(k)?;
            } else {
                self.merge_pair(k)?;
            }
            merged += 1;
        }
        if merged > 0 {
            log::info!(
                "volume {}: merged {merged} layers; the chain now has {}",
                self.paths.dir.display(),
                self.body.layers.len()
            );
        }
        Ok(merged)
    }

    /// The lowest `k` such that layer `k` (frozen) may be merged with layer `k + 1`.
    fn merge_candidate(&self, others: &HashSet<String>) -> Option<usize> {
        let layers = &self.body.layers;
        let tops: HashSet<&str> = self
            .body
            .snapshots
            .iter()
            .filter_map(|s| s.layers.last().map(String::as_str))
            .collect();
        (0..layers.len().saturating_sub(1)).find(|&k| {
            !tops.contains(layers[k].as_str())
                && !others.contains(&layers[k])
                && !others.contains(&layers[k + 1])
        })
    }

    fn load_frozen_index(&self, pos: usize) -> Result<LayerIndex, VolumeError> {
        let file = &self.layers[pos].file;
        let len = file
            .len()
            .map_err(|e| VolumeError::io(&self.paths.dir, &file.path, "stat", e))?;
        layer_index::load(&self.paths, &file.id, self.body.chunk_size, len)
    }

    /// Reads a chunk from slot `slot` of frozen layer `pos` and verifies it.
    fn read_frozen_chunk(
        &self,
        pos: usize,
        chunk: u64,
        slot: u64,
        crc: u32,
        buf: &mut [u8],
    ) -> Result<(), VolumeError> {
        let file = &self.layers[pos].file;
        file.read_exact_at(buf, slot * u64::from(self.body.chunk_size))
            .map_err(|e| VolumeError::io(&self.paths.dir, &file.path, "read", e))?;
        let actual = crc32fast::hash(buf);
        if actual != crc {
            return Err(VolumeError::ChecksumMismatch {
                volume: self.paths.dir.clone(),
                file: file.path.clone(),
                chunk,
                slot,
                expected: crc,
                actual,
            });
        }
        Ok(())
    }

    /// Merges frozen layers `k` and `k + 1` into a new layer.
    fn merge_pair(&mut self, k: usize) -> Result<(), VolumeError> {
        let out = LayerFile::create(&self.paths, self.body.chunk_size)?;
        match self.write_merged(k, &out) {
            Ok((body, data_chunks, zero_chunks)) => {
                self.body = body;
                self.layers.splice(
                    k..k + 2,
                    [FrozenLayer {
                        file: out,
                        data_chunks,
                        zero_chunks,
                    }],
                );
                self.rebuild_map()
            }
            Err(e) => {
                let id = out.id.clone();
                drop(out);
                let _ = remove_if_exists(&self.paths.layer_index(&id));
                let _ = remove_if_exists(&self.paths.layer_data(&id));
                Err(e)
            }
        }
    }

    /// Writes layers `k` and `k + 1` merged into `out`, then switches the manifest to it.
    fn write_merged(
        &self,
        k: usize,
        out: &LayerFile,
    ) -> Result<(ManifestBody, u64, u64), VolumeError> {
        let cs = self.body.chunk_size;
        let mut merged: BTreeMap<u64, (usize, ChunkState)> = BTreeMap::new();
        for (pos, index) in [
            (k, self.load_frozen_index(k)?),
            (k + 1, self.load_frozen_index(k + 1)?),
        ] {
            for (chunk, state) in index.entries {
                merged.insert(chunk, (pos, state));
            }
        }
        let mut buf = vec![0u8; cs as usize];
        let mut entries = Vec::with_capacity(merged.len());
        let mut next = 0u64;
        for (&chunk, &(pos, state)) in &merged {
            match state {
                ChunkState::Data { slot, crc } => {
                    self.read_frozen_chunk(pos, chunk, slot, crc, &mut buf)?;
                    out.write_all_at(&buf, next * u64::from(cs))
                        .map_err(|e| VolumeError::io(&self.paths.dir, &out.path, "write", e))?;
                    entries.push((chunk, ChunkState::Data { slot: next, crc }));
                    next += 1;
                }
                // Nothing is below the bottom layer for a tombstone to hide.
                ChunkState::Zero if k == 0 => {}
                ChunkState::Zero => entries.push((chunk, ChunkState::Zero)),
            }
        }
        out.file()
            .sync_data()
            .map_err(|e| VolumeError::io(&self.paths.dir, &out.path, "fdatasync", e))?;
        layer_index::commit(&self.paths, &out.id, cs, 1, &entries)?;
        let mut body = self.body.clone();
        let pair = [body.layers[k].clone(), body.layers[k + 1].clone()];
        body.layers.splice(k..k + 2, [out.id.clone()]);
        for s in &mut body.snapshots {
            if s.layers.len() > k + 1 && s.layers[k..k + 2] == pair {
                s.layers.splice(k..k + 2, [out.id.clone()]);
            }
        }
        body.generation += 1;
        manifest::write(&self.paths, &body)?;
        let zero_chunks = entries.len() as u64 - next;
        Ok((body, next, zero_chunks))
    }

    /// Merges frozen layer `k` (just below the head) into the head.
    fn merge_into_head(&mut self, k: usize) -> Result<(), VolumeError> {
        let index = self.load_frozen_index(k)?;
        let mut buf = vec![0u8; self.body.chunk_size as usize];
        for (chunk, state) in index.entries {
            let overridden = self.head.as_ref().and_then(|h| h.get(chunk)).is_some();
            if overridden {
                continue;
            }
            match state {
                ChunkState::Data { slot, crc } => {
                    self.read_frozen_chunk(k, chunk, slot, crc, &mut buf)?;
                    if let Some(head) = self.head.as_mut() {
                        head.write_new(&self.paths, chunk, &buf, true)?;
                    }
                }
                ChunkState::Zero if k == 0 => {}
                ChunkState::Zero => {
                    if let Some(head) = self.head.as_mut() {
                        head.set_zero(chunk, true);
                    }
                }
            }
        }
        self.flush()?;
        let mut body = self.body.clone();
        body.layers.remove(k);
        body.generation += 1;
        manifest::write(&self.paths, &body)?;
        self.body = body;
        self.layers.remove(k);
        self.rebuild_map()
    }
}
