//! The transmission phase: requests in, simple replies out, one at a time.

use std::io::{self, Read, Write};

use super::error::ConnError;
use super::export::NbdExport;
use super::handshake::{lock, min_block_size, Negotiated, MAX_PAYLOAD};
use super::proto::*;

/// A request buffer larger than this is released after use rather than kept.
const KEEP_BUFFER: usize = 1 << 20;

/// Serves requests until the client disconnects. Returns `Ok` on `NBD_CMD_DISC` or when
/// the client closes the connection between requests.
pub(crate) fn transmit<R: Read, W: Write>(
    r: &mut R,
    w: &mut W,
    neg: &Negotiated,
) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(r)? else {
            return Ok(());
        };
        let error = match req.kind {
            CMD_DISC => return Ok(()),
            CMD_READ => match read(neg, &req, &mut buf) {
                Ok(()) => {
                    write_simple_reply(w, 0, req.cookie)?;
                    w.write_all(&buf)?;
                    w.flush()?;
                    release(&mut buf);
                    continue;
                }
                Err(e) => e,
            },
            CMD_WRITE => write(r, neg, &req, &mut buf)?,
            CMD_FLUSH => flush(neg, &req),
            CMD_TRIM => trim(neg, &req),
            CMD_WRITE_ZEROES => write_zeroes(neg, &req),
            CMD_CACHE => cache(neg, &req),
            other => {
                log::debug!("NBD export {:?}: unknown command {other}", neg.name);
                EINVAL
            }
        };
        release(&mut buf);
        if error != 0 {
            log::debug!(
                "NBD export {:?}: command {} at {}+{} failed with error {error}",
                neg.name,
                req.kind,
                req.offset,
                req.length
            );
        }
        write_simple_reply(w, error, req.cookie)?;
        w.flush()?;
    }
}

/// Reads the next request header; `None` if the connection closed cleanly before it.
fn read_request<R: Read>(r: &mut R) -> Result<Option<Request>, ConnError> {
    let mut head = [0u8; REQUEST_LEN];
    let mut got = 0;
    while got < REQUEST_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a request header",
                )
                .into())
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    match Request::parse(&head) {
        Some(req) => Ok(Some(req)),
        None => Err(ConnError::BadRequestMagic(u32::from_be_bytes([
            head[0], head[1], head[2], head[3],
        ]))),
    }
}

fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_BUFFER {
        *buf = Vec::new();
    }
}

/// Maps a backend error to an NBD error value.
fn errno_of(e: &io::Error) -> u32 {
    use io::ErrorKind::*;
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem => EPERM,
        StorageFull | QuotaExceeded | FileTooLarge => ENOSPC,
        InvalidInput => EINVAL,
        _ => EIO,
    }
}

fn result(neg: &Negotiated, what: &str, r: io::Result<()>) -> u32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("NBD export {:?}: {what} failed: {e}", neg.name);
            errno_of(&e)
        }
    }
}

/// Checks flags, bounds and alignment. `past_end` is the error for a range beyond the
/// end of the export.
fn check(e: &dyn NbdExport, req: &Request, allowed_flags: u16, past_end: u32) -> Result<(), u32> {
    if req.flags & !allowed_flags != 0 {
        return Err(EINVAL);
    }
    let size = e.size();
    let len = u64::from(req.length);
    let end = req.offset.checked_add(len).ok_or(past_end)?;
    if end > size {
        return Err(past_end);
    }
    let block = u64::from(min_block_size(e));
    if !req.offset.is_multiple_of(block) || (!len.is_multiple_of(block) && end != size) {
        return Err(EINVAL);
    }
    Ok(())
}

fn read(neg: &Negotiated, req: &Request, buf: &mut Vec<u8>) -> Result<(), u32> {
    if req.length > MAX_PAYLOAD {
        return Err(EINVAL);
    }
    let mut e = lock(&neg.export).ok_or(EIO)?;
    check(&*e, req, CMD_FLAG_FUA, EINVAL)?;
    buf.clear();
    buf.resize(req.length as usize, 0);
    match result(neg, "read", e.read_at(req.offset, buf)) {
        0 => Ok(()),
        err => Err(err),
    }
}

/// Handles a write, always consuming its payload so the stream stays in step. Only socket
/// errors are returned as `Err`; the `Ok` value is the NBD error for the reply.
fn write<R: Read>(
    r: &mut R,
    neg: &Negotiated,
    req: &Request,
    buf: &mut Vec<u8>,
) -> Result<u32, ConnError> {
    if req.length > MAX_PAYLOAD {
        discard(r, u64::from(req.length))?;
        return Ok(EINVAL);
    }
    buf.clear();
    buf.resize(req.length as usize, 0);
    r.read_exact(buf)?;

    let Some(mut e) = lock(&neg.export) else {
        return Ok(EIO);
    };
    if e.read_only() {
        return Ok(EPERM);
    }
    if let Err(err) = check(&*e, req, CMD_FLAG_FUA, ENOSPC) {
        return Ok(err);
    }
    let mut rc = result(neg, "write", e.write_at(req.offset, buf));
    if rc == 0 && req.flags & CMD_FLAG_FUA != 0 {
        rc = result(neg, "flush after write", e.flush());
    }
    Ok(rc)
}

fn flush(neg: &Negotiated, req: &Request) -> u32 {
    if req.flags & !CMD_FLAG_FUA != 0 {
        return EINVAL;
    }
    let Some(mut e) = lock(&neg.export) else {
        return EIO;
    };
    result(neg, "flush", e.flush())
}

fn trim(neg: &Negotiated, req: &Request) -> u32 {
    let Some(mut e) = lock(&neg.export) else {
        return EIO;
    };
    if e.read_only() {
        return EPERM;
    }
    if let Err(err) = check(&*e, req, CMD_FLAG_FUA, EINVAL) {
        return err;
    }
    let mut rc = result(neg, "trim", e.trim(req.offset, u64::from(req.length)));
    if rc == 0 && req.flags & CMD_FLAG_FUA != 0 {
        rc = result(neg, "flush after trim", e.flush());
    }
    rc
}

fn write_zeroes(neg: &Negotiated, req: &Request) -> u32 {
    let Some(mut e) = lock(&neg.export) else {
        return EIO;
    };
    if e.read_only() {
        return EPERM;
    }
    if let Err(err) = check(&*e, req, CMD_FLAG_FUA | CMD_FLAG_NO_HOLE, ENOSPC) {
        return err;
    }
    let no_hole = req.flags & CMD_FLAG_NO_HOLE != 0;
    let mut rc = result(
        neg,
        "write zeroes",
        e.write_zeroes(req.offset, u64::from(req.length), no_hole),
    );
    if rc == 0 && req.flags & CMD_FLAG_FUA != 0 {
        rc = result(neg, "flush after write zeroes", e.flush());
    }
    rc
}

/// `NBD_CMD_CACHE` is a prefetch hint: checked like a read, then ignored.
fn cache(neg: &Negotiated, req: &Request) -> u32 {
    let Some(e) = lock(&neg.export) else {
        return EIO;
    };
    match check(&*e, req, CMD_FLAG_FUA, EINVAL) {
        Ok(()) => 0,
        Err(err) => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nbd::MemExport;

    fn req(kind: u16, flags: u16, offset: u64, length: u32) -> Request {
        Request {
            flags,
            kind,
            cookie: 1,
            offset,
            length,
        }
    }

    #[test]
    fn range_and_alignment_checks() {
        let e = MemExport::new(4096 + 100);
        let ok = |r: &Request, past| check(&e, r, CMD_FLAG_FUA, past);
        assert_eq!(ok(&req(CMD_READ, 0, 0, 512), EINVAL), Ok(()));
        assert_eq!(ok(&req(CMD_READ, 0, 0, 0), EINVAL), Ok(()));
        assert_eq!(ok(&req(CMD_READ, 0, 1, 512), EINVAL), Err(EINVAL));
        assert_eq!(ok(&req(CMD_READ, 0, 0, 100), EINVAL), Err(EINVAL));
        // The unaligned tail can be reached exactly.
        assert_eq!(ok(&req(CMD_READ, 0, 4096, 100), EINVAL), Ok(()));
        assert_eq!(ok(&req(CMD_READ, 0, 4096, 512), ENOSPC), Err(ENOSPC));
        assert_eq!(
            ok(&req(CMD_READ, 0, u64::MAX - 10, 512), ENOSPC),
            Err(ENOSPC)
        );
        assert_eq!(ok(&req(CMD_READ, 0, 8192, 0), EINVAL), Err(EINVAL));
        assert_eq!(
            ok(&req(CMD_READ, CMD_FLAG_NO_HOLE, 0, 512), ENOSPC),
            Err(EINVAL)
        );
    }

    #[test]
    fn error_mapping() {
        use io::ErrorKind::*;
        assert_eq!(errno_of(&io::Error::from(PermissionDenied)), EPERM);
        assert_eq!(errno_of(&io::Error::from(StorageFull)), ENOSPC);
        assert_eq!(errno_of(&io::Error::from(InvalidInput)), EINVAL);
        assert_eq!(errno_of(&io::Error::other("disk on fire")), EIO);
        assert_eq!(errno_of(&io::Error::from(UnexpectedEof)), EIO);
    }
}
