//! Walking the records of one segment file: framing and CRC checks, torn-tail detection,
//! and resynchronisation past damage.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::capture::format::record::{parse_head, record_crc, RECORD_HEAD_BYTES};
use crate::codec::event::peek_seq_time;
use crate::error::{CaptureError, Result};
use crate::limits::MAX_RECORD_BYTES;

const WINDOW_BYTES: usize = 1 << 20;

/// What the scanner found at a position.
#[derive(Debug)]
pub(crate) enum Scanned {
    /// A record whose framing and CRC are good.
    Record { offset: u64, payload: Vec<u8> },
    /// Damage from `offset`: `skipped` bytes up to the next good record (or the end).
    Bad {
        offset: u64,
        skipped: u64,
        problem: String,
        /// No good record follows in this segment.
        at_end: bool,
    },
}

/// Reads records of a segment from a start offset to the file's length at open.
pub(crate) struct Scanner {
    file: File,
    path: PathBuf,
    len: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
    /// Records before this seq are not taken as resynchronisation points.
    pub min_seq: u64,
}

impl Scanner {
    /// A scanner of `file` (`len` bytes) starting at `pos`.
    pub fn new(file: File, path: &Path, len: u64, pos: u64) -> Scanner {
        Scanner {
            file,
            path: path.to_path_buf(),
            len,
            pos,
            window: Vec::new(),
            window_start: 0,
            min_seq: 0,
        }
    }

    /// The offset of the next record.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// `n` bytes at `off` (which must be within the file).
    fn bytes_at(&mut self, off: u64, n: usize) -> Result<&[u8]> {
        let end = off + n as u64;
        let ws = self.window_start;
        if off < ws || end > ws + self.window.len() as u64 {
            let want = n.max(WINDOW_BYTES).min((self.len - off) as usize).max(n);
            self.window.resize(want, 0);
            self.file
                .read_exact_at(&mut self.window, off)
                .map_err(|e| CaptureError::io(&self.path, "read", e))?;
            self.window_start = off;
        }
        let s = (off - self.window_start) as usize;
        Ok(&self.window[s..s + n])
    }

    /// Whether a good record (framing, CRC, a seq of at least `min_seq`) starts at `off`.
    fn good_record_at(&mut self, off: u64) -> Result<Option<u32>> {
        if self.len - off < RECORD_HEAD_BYTES as u64 {
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEAD_BYTES];
        head.copy_from_slice(self.bytes_at(off, RECORD_HEAD_BYTES)?);
        let (len, crc) = parse_head(&head);
        if len as usize > MAX_RECORD_BYTES
            || off + (RECORD_HEAD_BYTES as u64) + u64::from(len) > self.len
        {
            return Ok(None);
        }
        let min_seq = self.min_seq;
        let payload = self.bytes_at(off + RECORD_HEAD_BYTES as u64, len as usize)?;
        if record_crc(payload) != crc {
            return Ok(None);
        }
        match peek_seq_time(payload) {
            Ok((seq, _)) if seq >= min_seq => Ok(Some(len)),
            _ => Ok(None),
        }
    }

    /// The next good record at or after `from`, if any.
    fn resync(&mut self, from: u64) -> Result<Option<u64>> {
        let mut off = from;
        while off + RECORD_HEAD_BYTES as u64 <= self.len {
            if self.good_record_at(off)?.is_some() {
                return Ok(Some(off));
            }
            off += 1;
        }
        Ok(None)
    }

    /// The next record or damage; `None` at the end of the file.
    pub fn next(&mut self) -> Option<Result<Scanned>> {
        if self.pos >= self.len {
            return None;
        }
        Some(self.next_inner())
    }

    fn next_inner(&mut self) -> Result<Scanned> {
        let off = self.pos;
        let left = self.len - off;
        let problem;
        if left < RECORD_HEAD_BYTES as u64 {
            problem = format!("{left} bytes, less than a record head");
        } else {
            let mut head = [0u8; RECORD_HEAD_BYTES];
            head.copy_from_slice(self.bytes_at(off, RECORD_HEAD_BYTES)?);
            let (len, crc) = parse_head(&head);
            let end = off + RECORD_HEAD_BYTES as u64 + u64::from(len);
            if len as usize > MAX_RECORD_BYTES {
                problem = format!("record length {len} is over the limit of {MAX_RECORD_BYTES}");
            } else if end > self.len {
                problem = format!(
                    "a {len}-byte record runs {} bytes past the end of the segment",
                    end - self.len
                );
            } else {
                let payload = self
                    .bytes_at(off + RECORD_HEAD_BYTES as u64, len as usize)?
                    .to_vec();
                let computed = record_crc(&payload);
                if computed == crc {
                    self.pos = end;
                    return Ok(Scanned::Record {
                        offset: off,
                        payload,
                    });
                }
                problem =
                    format!("checksum mismatch (stored {crc:#010x}, computed {computed:#010x})");
            }
        }
        let next = self.resync(off + 1)?;
        let to = next.unwrap_or(self.len);
        self.pos = to;
        Ok(Scanned::Bad {
            offset: off,
            skipped: to - off,
            problem,
            at_end: next.is_none(),
        })
    }
}
