//! Wire constants and message layouts of the NBD protocol (newstyle, simple replies).
//!
//! Everything on the wire is big-endian. Only the values this server sends or understands
//! are listed.

use std::io::{self, Read, Write};

/// `NBDMAGIC`: the first eight bytes the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: sent by the server after [`NBD_MAGIC`], and by the client before every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic at the start of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic at the start of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic at the start of every simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

// Handshake flags (server, 16 bits).
/// The server speaks fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// The server can leave out the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;

// Client flags (32 bits).
/// The client speaks fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// The client does not want the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

// Transmission flags (16 bits).
/// Always set.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
/// The export is read-only.
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
/// `NBD_CMD_FLUSH` is understood.
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
/// `NBD_CMD_FLAG_FUA` is understood.
pub const TFLAG_SEND_FUA: u16 = 1 << 3;
/// `NBD_CMD_TRIM` is understood.
pub const TFLAG_SEND_TRIM: u16 = 1 << 5;
/// `NBD_CMD_WRITE_ZEROES` (and `NBD_CMD_FLAG_NO_HOLE`) are understood.
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// Flush and FUA take effect across every connection to the export.
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;

// Options.
/// Pick an export and go to transmission; cannot report errors.
pub const OPT_EXPORT_NAME: u32 = 1;
/// End the negotiation.
pub const OPT_ABORT: u32 = 2;
/// List the exports.
pub const OPT_LIST: u32 = 3;
/// Upgrade to TLS (not supported).
pub const OPT_STARTTLS: u32 = 5;
/// Describe one export.
pub const OPT_INFO: u32 = 6;
/// Describe one export and go to transmission.
pub const OPT_GO: u32 = 7;
/// Ask for structured replies (not supported).
pub const OPT_STRUCTURED_REPLY: u32 = 8;

// Option reply types.
/// Success; ends the reply to an option.
pub const REP_ACK: u32 = 1;
/// One export, in reply to `NBD_OPT_LIST`.
pub const REP_SERVER: u32 = 2;
/// One item of information, in reply to `NBD_OPT_INFO` / `NBD_OPT_GO`.
pub const REP_INFO: u32 = 3;
/// Bit 31 marks error replies.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// The option is not supported.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// The option is syntactically or semantically invalid.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// The requested export does not exist.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// The server is shutting down.
pub const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
/// The request or the reply is too large.
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;

// Information types for `NBD_OPT_INFO` / `NBD_OPT_GO`.
/// Size and transmission flags (always sent).
pub const INFO_EXPORT: u16 = 0;
/// Canonical export name.
pub const INFO_NAME: u16 = 1;
/// Block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

// Commands.
/// Read.
pub const CMD_READ: u16 = 0;
/// Write (payload follows the request).
pub const CMD_WRITE: u16 = 1;
/// Disconnect; no reply.
pub const CMD_DISC: u16 = 2;
/// Flush.
pub const CMD_FLUSH: u16 = 3;
/// Discard (a hint).
pub const CMD_TRIM: u16 = 4;
/// Prefetch hint; accepted and ignored.
pub const CMD_CACHE: u16 = 5;
/// Write zeroes without a payload.
pub const CMD_WRITE_ZEROES: u16 = 6;

// Command flags.
/// Force unit access: persist before replying.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// `NBD_CMD_WRITE_ZEROES` must leave the range allocated.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

// Error values of simple replies.
/// Operation not permitted.
pub const EPERM: u32 = 1;
/// Input/output error.
pub const EIO: u32 = 5;
/// Invalid argument.
pub const EINVAL: u32 = 22;
/// No space left (writes past the end).
pub const ENOSPC: u32 = 28;

/// Length of a transmission request header.
pub const REQUEST_LEN: usize = 28;
/// Length of the zero padding after an `NBD_OPT_EXPORT_NAME` reply.
pub const EXPORT_NAME_PADDING: usize = 124;

/// One transmission request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags (`CMD_FLAG_*`).
    pub flags: u16,
    /// Command (`CMD_*`).
    pub kind: u16,
    /// Opaque cookie echoed in the reply.
    pub cookie: u64,
    /// Byte offset into the export.
    pub offset: u64,
    /// Length in bytes.
    pub length: u32,
}

impl Request {
    /// Decodes a request header, or returns `None` if the magic is wrong.
    pub fn parse(bytes: &[u8; REQUEST_LEN]) -> Option<Request> {
        if be_u32(&bytes[0..4]) != REQUEST_MAGIC {
            return None;
        }
        Some(Request {
            flags: be_u16(&bytes[4..6]),
            kind: be_u16(&bytes[6..8]),
            cookie: be_u64(&bytes[8..16]),
            offset: be_u64(&bytes[16..24]),
            length: be_u32(&bytes[24..28]),
        })
    }

    /// Encodes the request header (used by tests and clients).
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.kind.to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// Writes a simple reply header (the caller sends any read payload after it).
pub fn write_simple_reply<W: Write>(w: &mut W, error: u32, cookie: u64) -> io::Result<()> {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&error.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    w.write_all(&out)
}

/// Writes one option reply: header and `data`.
pub fn write_option_reply<W: Write>(
    w: &mut W,
    option: u32,
    reply: u32,
    data: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option reply too long"))?;
    let mut head = [0u8; 20];
    head[0..8].copy_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    head[8..12].copy_from_slice(&option.to_be_bytes());
    head[12..16].copy_from_slice(&reply.to_be_bytes());
    head[16..20].copy_from_slice(&len.to_be_bytes());
    w.write_all(&head)?;
    w.write_all(data)
}

/// Reads a big-endian `u32`.
pub fn read_u32<R: Read>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Reads a big-endian `u64`.
pub fn read_u64<R: Read>(r: &mut R) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

/// Reads and throws away exactly `len` bytes.
pub fn discard<R: Read>(r: &mut R, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(len), &mut io::sink())?;
    if copied < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside a payload",
        ));
    }
    Ok(())
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_spell_their_names() {
        assert_eq!(&NBD_MAGIC.to_be_bytes(), b"NBDMAGIC");
        assert_eq!(&IHAVEOPT.to_be_bytes(), b"IHAVEOPT");
    }

    #[test]
    fn request_round_trip_and_bad_magic() {
        let req = Request {
            flags: CMD_FLAG_FUA,
            kind: CMD_WRITE,
            cookie: 0x0102_0304_0506_0708,
            offset: 0x1_0000_0200,
            length: 4096,
        };
        let bytes = req.encode();
        assert_eq!(Request::parse(&bytes), Some(req));
        let mut bad = bytes;
        bad[0] ^= 1;
        assert_eq!(Request::parse(&bad), None);
    }

    #[test]
    fn option_reply_layout() {
        let mut out = Vec::new();
        write_option_reply(&mut out, OPT_LIST, REP_SERVER, b"abc").unwrap();
        assert_eq!(out.len(), 23);
        assert_eq!(&out[0..8], &OPTION_REPLY_MAGIC.to_be_bytes());
        assert_eq!(&out[8..12], &OPT_LIST.to_be_bytes());
        assert_eq!(&out[12..16], &REP_SERVER.to_be_bytes());
        assert_eq!(&out[16..20], &3u32.to_be_bytes());
        assert_eq!(&out[20..], b"abc");
    }

    #[test]
    fn discard_reports_short_input() {
        let mut r: &[u8] = &[1, 2, 3];
        assert!(discard(&mut r, 2).is_ok());
        assert_eq!(r, &[3]);
        let mut r: &[u8] = &[1, 2, 3];
        assert_eq!(
            discard(&mut r, 4).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
