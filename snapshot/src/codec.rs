//! Little-endian encoding for the binary headers, and a reader over untrusted bytes whose
//! every read is bounds-checked and reports the offset where the data ran out.

use std::path::Path;

use crate::error::{Result, SnapshotError};

/// Appends little-endian fields to a byte vector.
#[derive(Default)]
pub struct Encoder {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder::default()
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Appends a `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a string with a `u16` length.
    pub fn str16(&mut self, s: &str) {
        self.u16(s.len() as u16);
        self.bytes(s.as_bytes());
    }
    /// Appends words.
    pub fn words(&mut self, w: &[u64]) {
        self.buf.reserve(w.len() * 8);
        for x in w {
            self.u64(*x);
        }
    }
}

/// Reads fields from untrusted bytes, `base` being the file offset of `data[0]`.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    path: &'a Path,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`, which starts at file offset `base` of `path`.
    pub fn new(data: &'a [u8], base: u64, path: &'a Path) -> Self {
        Decoder {
            data,
            pos: 0,
            base,
            path,
        }
    }

    /// The file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes, which must be present.
    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(SnapshotError::Truncated {
                path: self.path.into(),
                offset: self.offset(),
                what: format!("{what} needs {n} bytes, {} left", self.remaining()),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A `u16`.
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A UTF-8 string with a `u16` length of at most `max` bytes.
    pub fn str16(&mut self, max: usize, what: &str) -> Result<&'a str> {
        let at = self.offset();
        let n = self.u16(what)? as usize;
        if n > max {
            return Err(SnapshotError::corrupt(
                self.path,
                format!("{what} at offset {at} is {n} bytes long, over the limit of {max}"),
            ));
        }
        let b = self.bytes(n, what)?;
        std::str::from_utf8(b).map_err(|_| {
            SnapshotError::corrupt(self.path, format!("{what} at offset {at} is not UTF-8"))
        })
    }

    /// `n` words (the caller has bounded `n`; the bytes must be present before anything is
    /// allocated).
    pub fn words(&mut self, n: usize, what: &str) -> Result<Vec<u64>> {
        let len = n.checked_mul(8).ok_or_else(|| {
            SnapshotError::corrupt(self.path, format!("{what}: length overflows"))
        })?;
        let b = self.bytes(len, what)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }
}

impl Decoder<'_> {
    /// `n` `u32`s (the bytes must be present before anything is allocated).
    pub fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>> {
        let len = n.checked_mul(4).ok_or_else(|| {
            SnapshotError::corrupt(self.path, format!("{what}: length overflows"))
        })?;
        let b = self.bytes(len, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl Encoder {
    /// Appends `u32`s.
    pub fn u32s(&mut self, v: &[u32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.u32(*x);
        }
    }
}
