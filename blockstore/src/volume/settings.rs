//! Changing a volume's settings: size and I/O limits.

use super::error::VolumeError;
use super::handle::{ResizeOptions, Volume};
use super::manifest::{self, check_size};
use crate::limits::Limits;

impl Volume {
    /// Changes the size. Growing is a manifest update; the new space reads as zeros.
    /// Shrinking needs `allow_shrink`, and is refused (changing nothing) if data lies beyond
    /// the new size unless `discard_data` is also set, in which case that data is dropped.
    pub fn resize(&mut self, new_size: u64, opts: &ResizeOptions) -> Result<(), VolumeError> {
        self.require_writable("resize")?;
        check_size(new_size)
            .map_err(|p| VolumeError::invalid(&self.paths.dir, format!("resize: {p}")))?;
        if new_size == self.size {
            return Ok(());
        }
        if new_size < self.size {
            if !opts.allow_shrink {
                return Err(VolumeError::invalid(
                    &self.paths.dir,
                    format!(
                        "shrinking from {} to {new_size} bytes needs allow_shrink",
                        self.size
                    ),
                ));
            }
            if let Some((offset, chunk)) = self.first_data_beyond(new_size)? {
                if !opts.discard_data {
                    return Err(VolumeError::WouldDropData {
                        volume: self.paths.dir.clone(),
                        new_size,
                        offset,
                        chunk,
                    });
                }
                self.zero_range_unchecked(new_size, self.size - new_size)?;
            }
        }
        // The head must be durable before the manifest says the new size: after a shrink
        // that dropped data, a later grow must not bring old data back.
        self.flush()?;
        let mut body = self.body.clone();
        body.size = new_size;
        body.generation += 1;
        manifest::write(&self.paths, &body)?;
        log::info!(
            "volume {}: resized from {} to {new_size} bytes",
            self.paths.dir.display(),
            self.size
        );
        self.body = body;
        self.size = new_size;
        Ok(())
    }

    /// The first byte at or after `new_size` that holds data, with its chunk: a non-zero byte
    /// in the chunk straddling `new_size`, or the start of an allocated chunk past it.
    fn first_data_beyond(&mut self, new_size: u64) -> Result<Option<(u64, u64)>, VolumeError> {
        let cs = u64::from(self.body.chunk_size);
        let mut first: Option<u64> = None;
        if !new_size.is_multiple_of(cs) {
            let chunk = new_size / cs;
            if !self.chunk_is_unallocated(chunk) {
                let mut buf = vec![0u8; cs as usize];
                self.read_piece(chunk, 0, &mut buf)?;
                let from = (new_size % cs) as usize;
                let to = ((self.size - chunk * cs).min(cs)) as usize;
                if let Some(i) = buf[from..to].iter().position(|&b| b != 0) {
                    return Ok(Some((chunk * cs + (from + i) as u64, chunk)));
                }
            }
        }
        let first_whole = new_size.div_ceil(cs);
        for chunk in self.map.chunks() {
            if chunk >= first_whole && first.is_none_or(|f| chunk < f) {
                first = Some(chunk);
            }
        }
        Ok(first.map(|c| (c * cs, c)))
    }

    /// Replaces the I/O limits recorded in the manifest.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), VolumeError> {
        self.require_writable("set limits")?;
        limits.validate().map_err(|source| VolumeError::Limits {
            volume: self.paths.dir.clone(),
            source,
        })?;
        let mut body = self.body.clone();
        body.limits = limits;
        body.generation += 1;
        manifest::write(&self.paths, &body)?;
        self.body = body;
        Ok(())
    }
}
