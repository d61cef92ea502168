//! Reading and writing a volume: chunk lookup, checksum verification, copy-on-write into the
//! head, discard and write-zeroes, flush.

use super::chunk_map::ChunkLoc;
use super::error::VolumeError;
use super::handle::Volume;
use super::head::HeadEntry;
use super::layer_file::LayerFile;
use super::paths::VolumePaths;

/// Granularity of offsets and lengths.
pub const SECTOR_SIZE: u64 = 512;

/// The part of one chunk that a request covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub chunk: u64,
    /// Offset inside the chunk.
    pub offset: usize,
    pub len: usize,
    /// Offset inside the request's buffer.
    pub pos: usize,
}

/// Splits `len` bytes at `offset` into per-chunk pieces.
pub(crate) fn pieces(offset: u64, len: u64, chunk_size: u32) -> impl Iterator<Item = Piece> {
    let cs = u64::from(chunk_size);
    let end = offset + len;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let chunk = at / cs;
        let in_chunk = at % cs;
        let n = (cs - in_chunk).min(end - at);
        let p = Piece {
            chunk,
            offset: in_chunk as usize,
            len: n as usize,
            pos: (at - offset) as usize,
        };
        at += n;
        Some(p)
    })
}

/// One slot to read, and the checksum to verify it against (if any).
struct SlotRead<'a> {
    file: &'a LayerFile,
    chunk: u64,
    slot: u64,
    expect: Option<u32>,
}

/// Reads `out.len()` bytes at `offset` of a slot. When a checksum is expected, the whole
/// chunk is read (still one read call) and verified first.
fn read_slot(
    paths: &VolumePaths,
    chunk_size: u32,
    r: SlotRead<'_>,
    offset: usize,
    out: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<(), VolumeError> {
    let cs = chunk_size as usize;
    let base = r.slot * u64::from(chunk_size);
    let io = |e| VolumeError::io(&paths.dir, &r.file.path, "read", e);
    let Some(expected) = r.expect else {
        return r.file.read_exact_at(out, base + offset as u64).map_err(io);
    };
    let whole: &mut [u8] = if out.len() == cs {
        r.file.read_exact_at(out, base).map_err(io)?;
        out
    } else {
        scratch.resize(cs, 0);
        r.file.read_exact_at(scratch, base).map_err(io)?;
        scratch
    };
    let actual = crc32fast::hash(whole);
    if actual != expected {
        return Err(VolumeError::ChecksumMismatch {
            volume: paths.dir.clone(),
            file: r.file.path.clone(),
            chunk: r.chunk,
            slot: r.slot,
            expected,
            actual,
        });
    }
    if out.len() != cs {
        out.copy_from_slice(&scratch[offset..offset + out.len()]);
    }
    Ok(())
}

impl Volume {
    /// Checks that a request of `len` bytes at `offset` is sector-aligned and inside the
    /// volume.
    pub(crate) fn check_range(&self, what: &str, offset: u64, len: u64) -> Result<(), VolumeError> {
        if !offset.is_multiple_of(SECTOR_SIZE) || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(VolumeError::invalid(
                &self.paths.dir,
                format!(
                    "{what} at offset {offset}, length {len}: offset and length must be \
                     multiples of {SECTOR_SIZE}"
                ),
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(VolumeError::invalid(
                &self.paths.dir,
                format!(
                    "{what} at offset {offset}, length {len}: beyond the end of the volume \
                     ({} bytes)",
                    self.size
                ),
            )),
        }
    }

    /// The chain position of the head (when there is one).
    pub(crate) fn head_pos(&self) -> u32 {
        self.layers.len() as u32
    }

    /// Whether `chunk` currently reads as zeros without holding data.
    pub(crate) fn chunk_is_unallocated(&self, chunk: u64) -> bool {
        !self.map.contains(chunk)
    }

    /// Reads part of one chunk.
    pub(crate) fn read_piece(
        &mut self,
        chunk: u64,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), VolumeError> {
        let cs = self.body.chunk_size;
        let Some(loc) = self.map.get(chunk) else {
            out.fill(0);
            return Ok(());
        };
        let expect = loc.crc.filter(|_| self.verify_reads && !loc.verified);
        let file = match (&self.head, self.layers.get(loc.layer as usize)) {
            (_, Some(layer)) => &layer.file,
            (Some(head), None) if loc.layer == self.head_pos() => &head.file,
            _ => {
                return Err(VolumeError::corrupt(
                    &self.paths.dir,
                    &self.paths.manifest(),
                    format!("chunk {chunk} refers to layer position {}", loc.layer),
                ))
            }
        };
        let r = SlotRead {
            file,
            chunk,
            slot: loc.slot,
            expect,
        };
        read_slot(&self.paths, cs, r, offset, out, &mut self.scratch)?;
        if expect.is_some() {
            self.map.mark_verified(chunk);
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`. Offset and length must be multiples of 512 and
    /// inside the volume. Unwritten and discarded ranges read as zeros.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        self.check_range("read", offset, buf.len() as u64)?;
        for p in pieces(offset, buf.len() as u64, self.body.chunk_size) {
            self.read_piece(p.chunk, p.offset, &mut buf[p.pos..p.pos + p.len])?;
        }
        Ok(())
    }

    /// Writes part of one chunk into the head: in place if the chunk's slot was written since
    /// the last flush, otherwise the whole chunk goes to a new slot (its other bytes from
    /// lower layers, or zeros).
    pub(crate) fn write_piece(
        &mut self,
        chunk: u64,
        offset: usize,
        data: &[u8],
    ) -> Result<(), VolumeError> {
        let cs = self.body.chunk_size as usize;
        let Some(head) = self.head.as_mut() else {
            return Err(VolumeError::ReadOnly {
                volume: self.paths.dir.clone(),
                what: "write".into(),
            });
        };
        let pos = self.layers.len() as u32;
        if let Some(HeadEntry::Data { slot, .. }) = head.get(chunk) {
            if head.is_uncommitted(slot) {
                head.write_in_place(&self.paths, chunk, slot, offset, data)?;
                self.map.insert(
                    chunk,
                    ChunkLoc {
                        layer: pos,
                        slot,
                        crc: None,
                        verified: false,
                    },
                );
                return Ok(());
            }
        }
        if data.len() == cs {
            return self.write_whole_chunk(chunk, data);
        }
        let mut buf = vec![0u8; cs];
        self.read_piece(chunk, 0, &mut buf)?;
        buf[offset..offset + data.len()].copy_from_slice(data);
        self.write_whole_chunk(chunk, &buf)
    }

    /// Writes a whole chunk to a new slot of the head.
    pub(crate) fn write_whole_chunk(&mut self, chunk: u64, data: &[u8]) -> Result<(), VolumeError> {
        let pos = self.head_pos();
        let Some(head) = self.head.as_mut() else {
            return Err(VolumeError::ReadOnly {
                volume: self.paths.dir.clone(),
                what: "write".into(),
            });
        };
        let hides = head.hides_lower(chunk, &self.map);
        let (slot, crc) = head.write_new(&self.paths, chunk, data, hides)?;
        self.map.insert(
            chunk,
            ChunkLoc {
                layer: pos,
                slot,
                crc: Some(crc),
                verified: true,
            },
        );
        Ok(())
    }

    /// Makes a whole chunk read as zeros: drops it from the head, or hides lower layers'
    /// data with a tombstone.
    pub(crate) fn zero_whole_chunk(&mut self, chunk: u64) {
        if let Some(head) = self.head.as_mut() {
            let hides = head.hides_lower(chunk, &self.map);
            head.set_zero(chunk, hides);
            self.map.remove(chunk);
        }
    }

    /// Writes `data` at `offset`. Offset and length must be multiples of 512 and inside the
    /// volume. Durable after the next [`Volume::flush`].
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), VolumeError> {
        self.require_writable("write")?;
        self.check_range("write", offset, data.len() as u64)?;
        for p in pieces(offset, data.len() as u64, self.body.chunk_size) {
            self.write_piece(p.chunk, p.offset, &data[p.pos..p.pos + p.len])?;
        }
        Ok(())
    }

    /// Makes a range read as zeros: whole chunks are dropped from the head (or hidden by a
    /// tombstone when lower layers hold them), partial chunks that hold data are zeroed.
    pub(crate) fn zero_range(
        &mut self,
        what: &str,
        offset: u64,
        len: u64,
    ) -> Result<(), VolumeError> {
        self.require_writable(what)?;
        self.check_range(what, offset, len)?;
        self.zero_range_unchecked(offset, len)
    }

    /// [`Self::zero_range`] without the range check (used by shrink beyond the new size).
    pub(crate) fn zero_range_unchecked(
        &mut self,
        offset: u64,
        len: u64,
    ) -> Result<(), VolumeError> {
        let cs = u64::from(self.body.chunk_size);
        let mut zeros = Vec::new();
        for p in pieces(offset, len, self.body.chunk_size) {
            let chunk_start = p.chunk * cs;
            // The bytes of a chunk past the end of the volume are zeros already.
            let in_volume = (self.size.max(offset + len) - chunk_start).min(cs) as usize;
            let whole = p.offset == 0 && p.len >= in_volume;
            if whole {
                self.zero_whole_chunk(p.chunk);
            } else if !self.chunk_is_unallocated(p.chunk) {
                zeros.resize(p.len, 0);
                self.write_piece(p.chunk, p.offset, &zeros[..p.len])?;
            }
        }
        Ok(())
    }

    /// Discards a range: it reads as zeros afterwards and whole chunks stop taking space.
    pub fn discard(&mut self, offset: u64, len: u64) -> Result<(), VolumeError> {
        self.zero_range("discard", offset, len)
    }

    /// Writes zeros to a range; whole chunks are deallocated rather than written.
    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), VolumeError> {
        self.zero_range("write zeroes", offset, len)
    }

    /// Makes every write so far durable: after it returns, a crash leaves the volume
    /// readable exactly as it is now. A no-op for read-only handles and when nothing
    /// changed.
    pub fn flush(&mut self) -> Result<(), VolumeError> {
        if let Some(head) = self.head.as_mut() {
            for (chunk, crc) in head.flush(&self.paths)? {
                self.map.set_crc(chunk, crc);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_at_chunk_boundaries() {
        let v: Vec<_> = pieces(3072, 8192, 4096)
            .map(|p| (p.chunk, p.offset, p.len, p.pos))
            .collect();
        assert_eq!(
            v,
            vec![(0, 3072, 1024, 0), (1, 0, 4096, 1024), (2, 0, 3072, 5120)]
        );
        assert_eq!(pieces(0, 0, 4096).count(), 0);
    }
}
