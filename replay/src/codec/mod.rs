//! The binary encoding of capture files: little-endian fixed-width integers, LEB128
//! variable-length integers ("varints"), and length-prefixed byte strings; plus the
//! encoding of one [`Event`](crate::event::Event) as a record payload ([`event`]).
//!
//! Decoding works on untrusted bytes: every read is bounds-checked and reports the offset
//! (within the decoded slice) where the data ran out or went wrong.

pub mod event;

/// Why bytes could not be decoded; `offset` is relative to the start of the decoded slice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {problem}")]
pub struct DecodeError {
    /// Where in the slice.
    pub offset: usize,
    /// What is wrong.
    pub problem: String,
}

/// Appends fields to a byte vector.
#[derive(Default, Debug)]
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
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_le_bytes());
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }

    /// Appends a LEB128 varint (1 to 10 bytes).
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends a byte string with a varint length.
    pub fn bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.raw(b);
    }

    /// Appends a string with a varint length.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Reads fields from untrusted bytes.
#[derive(Debug)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }

    /// The offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An error at the current offset.
    pub fn error(&self, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            problem: problem.into(),
        }
    }

    /// The next `n` bytes, which must be present.
    pub fn raw(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!("{what} needs {n} bytes, {} left", self.remaining())));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.raw(1, what)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.raw(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.raw(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.raw(8, what)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A LEB128 varint that fits in 64 bits.
    pub fn var(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8(what)?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                self.pos = start;
                return Err(self.error(format!("{what}: varint overflows 64 bits")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.pos = start;
        Err(self.error(format!("{what}: varint longer than 10 bytes")))
    }

    /// A varint that must fit in a `u32`.
    pub fn var_u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let v = self.var(what)?;
        u32::try_from(v).map_err(|_| DecodeError {
            offset: at,
            problem: format!("{what}: {v} does not fit in 32 bits"),
        })
    }

    /// A byte string with a varint length of at most `max` bytes.
    pub fn bytes(&mut self, max: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let n = self.var(what)?;
        if n > max as u64 {
            return Err(DecodeError {
                offset: at,
                problem: format!("{what} is {n} bytes long, over the limit of {max}"),
            });
        }
        self.raw(n as usize, what)
    }

    /// A UTF-8 string with a varint length of at most `max` bytes.
    pub fn str(&mut self, max: usize, what: &str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.bytes(max, what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: at,
            problem: format!("{what} is not UTF-8"),
        })
    }

    /// Fails unless every byte was read.
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!(
                "{} unexpected bytes after {what}",
                self.remaining()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        let values = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX];
        let mut e = Encoder::new();
        for v in values {
            e.var(v);
        }
        let mut d = Decoder::new(&e.buf);
        for v in values {
            assert_eq!(d.var("v").unwrap(), v);
        }
        d.finish("values").unwrap();
        // 2^64 does not fit.
        let big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Decoder::new(&big).var("v").is_err());
        let endless = [0x80u8; 12];
        assert!(Decoder::new(&endless).var("v").is_err());
        assert!(Decoder::new(&[0x80]).var("v").is_err());
    }

    #[test]
    fn lengths_are_bounded_before_reading() {
        let mut e = Encoder::new();
        e.bytes(&[1, 2, 3]);
        assert!(Decoder::new(&e.buf).bytes(2, "b").is_err());
        assert_eq!(Decoder::new(&e.buf).bytes(3, "b").unwrap(), &[1, 2, 3]);
        let mut e = Encoder::new();
        e.var(1 << 40);
        let err = Decoder::new(&e.buf).bytes(usize::MAX, "b").unwrap_err();
        assert_eq!(err.offset, e.buf.len());
    }
}
