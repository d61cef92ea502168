//! The handshake phase: the fixed newstyle greeting and option haggling, up to the
//! transmission phase.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;

use super::error::ConnError;
use super::export::{NbdExport, SharedExport};
use super::exports::{ExportTable, MAX_NAME_LEN};
use super::proto::*;

/// Longest option data the server reads into memory.
pub const MAX_OPTION_LEN: u32 = 64 * 1024;
/// Longest option data the server skips (answering `NBD_REP_ERR_TOO_BIG`) rather than
/// hanging up.
pub const MAX_OPTION_SKIP: u32 = 16 << 20;
/// Most options one connection may send before it must pick an export.
pub const MAX_OPTIONS: usize = 10_000;
/// Largest read or write payload, advertised as the maximum payload size.
pub const MAX_PAYLOAD: u32 = 32 << 20;
/// Preferred block size advertised (raised to the minimum block size if that is larger).
pub const PREFERRED_BLOCK_SIZE: u32 = 4096;

/// The export a client picked.
pub(crate) struct Negotiated {
    /// Its canonical name.
    pub name: String,
    /// The export.
    pub export: SharedExport,
}

/// How the handshake ended without error.
pub(crate) enum Outcome {
    /// The client picked an export and the transmission phase begins.
    Transmission(Negotiated),
    /// The client sent `NBD_OPT_ABORT`.
    Aborted,
}

/// The minimum block size to enforce for `export`.
pub(crate) fn min_block_size(export: &dyn NbdExport) -> u32 {
    let bs = export.block_size();
    if bs.is_power_of_two() && bs <= 65536 {
        bs
    } else {
        1
    }
}

/// Transmission flags for an export.
///
/// `NBD_FLAG_CAN_MULTI_CONN` is always set: every connection to an export locks one
/// shared object, a write has reached it before its reply is sent, and a flush flushes
/// that object, so a flush on any connection covers writes completed on all of them.
pub(crate) fn transmission_flags(export: &dyn NbdExport) -> u16 {
    let mut flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_CAN_MULTI_CONN;
    if export.read_only() {
        flags |= TFLAG_READ_ONLY;
    } else {
        flags |= TFLAG_SEND_FUA | TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
    }
    flags
}

/// Locks an export, or `None` if a panic while it was locked left it unusable.
pub(crate) fn lock(export: &SharedExport) -> Option<MutexGuard<'_, dyn NbdExport + 'static>> {
    export.lock().ok()
}

/// Runs the handshake on a fresh connection. `stopping` makes every option but
/// `NBD_OPT_ABORT` fail with `NBD_REP_ERR_SHUTDOWN`.
pub(crate) fn negotiate<R: Read, W: Write>(
    r: &mut R,
    w: &mut W,
    exports: &ExportTable,
    stopping: &AtomicBool,
) -> Result<Outcome, ConnError> {
    let mut hello = [0u8; 18];
    hello[0..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    hello[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    hello[16..18].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    w.write_all(&hello)?;
    w.flush()?;

    let client_flags = read_u32(r)?;
    if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(ConnError::BadClientFlags(client_flags));
    }
    let no_zeroes = client_flags & FLAG_C_NO_ZEROES != 0;

    for _ in 0..MAX_OPTIONS {
        let magic = read_u64(r)?;
        if magic != IHAVEOPT {
            return Err(ConnError::BadOptionMagic(magic));
        }
        let option = read_u32(r)?;
        let len = read_u32(r)?;
        if len > MAX_OPTION_LEN {
            if option == OPT_EXPORT_NAME || len > MAX_OPTION_SKIP {
                return Err(ConnError::OptionTooLong { option, len });
            }
            discard(r, u64::from(len))?;
            write_option_reply(w, option, REP_ERR_TOO_BIG, b"option data too long")?;
            w.flush()?;
            continue;
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data)?;

        if stopping.load(Ordering::Relaxed) && option != OPT_ABORT {
            if option == OPT_EXPORT_NAME {
                return Err(ConnError::ExportNameRefused(lossy_name(&data)));
            }
            write_option_reply(w, option, REP_ERR_SHUTDOWN, b"server is shutting down")?;
            w.flush()?;
            continue;
        }

        match option {
            OPT_EXPORT_NAME => {
                let negotiated = export_name(w, &data, exports, no_zeroes)?;
                w.flush()?;
                return Ok(Outcome::Transmission(negotiated));
            }
            OPT_ABORT => {
                // The client may already have gone; a failed reply does not matter.
                let _ = write_option_reply(w, option, REP_ACK, &[]).and_then(|()| w.flush());
                return Ok(Outcome::Aborted);
            }
            OPT_LIST => list(w, &data, exports)?,
            OPT_INFO | OPT_GO => {
                let chosen = info(w, option, &data, exports)?;
                w.flush()?;
                if let (OPT_GO, Some(negotiated)) = (option, chosen) {
                    return Ok(Outcome::Transmission(negotiated));
                }
                continue;
            }
            OPT_STRUCTURED_REPLY => write_option_reply(
                w,
                option,
                REP_ERR_UNSUP,
                b"structured replies are not supported",
            )?,
            OPT_STARTTLS => write_option_reply(w, option, REP_ERR_UNSUP, b"TLS is not supported")?,
            _ => write_option_reply(w, option, REP_ERR_UNSUP, b"unsupported option")?,
        }
        w.flush()?;
    }
    Err(ConnError::TooManyOptions(MAX_OPTIONS))
}

fn lossy_name(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(256)]).into_owned()
}

/// Validates an export name received from the client.
fn parse_name(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_NAME_LEN || data.contains(&0) {
        return None;
    }
    std::str::from_utf8(data).ok()
}

/// `NBD_OPT_EXPORT_NAME`: enters transmission or, as this option cannot report errors,
/// ends the connection.
fn export_name<W: Write>(
    w: &mut W,
    data: &[u8],
    exports: &ExportTable,
    no_zeroes: bool,
) -> Result<Negotiated, ConnError> {
    let refused = || ConnError::ExportNameRefused(lossy_name(data));
    let name = parse_name(data).ok_or_else(refused)?;
    let (name, export) = exports.find(name).ok_or_else(refused)?;
    let (size, flags) = {
        let e = lock(&export).ok_or_else(refused)?;
        (e.size(), transmission_flags(&*e))
    };
    let mut out = Vec::with_capacity(10 + EXPORT_NAME_PADDING);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        out.resize(out.len() + EXPORT_NAME_PADDING, 0);
    }
    w.write_all(&out)?;
    Ok(Negotiated { name, export })
}

/// `NBD_OPT_LIST`: one `NBD_REP_SERVER` per export, then `NBD_REP_ACK`.
fn list<W: Write>(w: &mut W, data: &[u8], exports: &ExportTable) -> Result<(), ConnError> {
    if !data.is_empty() {
        write_option_reply(w, OPT_LIST, REP_ERR_INVALID, b"NBD_OPT_LIST takes no data")?;
        return Ok(());
    }
    for name in exports.names() {
        let mut payload = Vec::with_capacity(4 + name.len());
        payload.extend_from_slice(&(name.len() as u32).to_be_bytes());
        payload.extend_from_slice(name.as_bytes());
        write_option_reply(w, OPT_LIST, REP_SERVER, &payload)?;
    }
    write_option_reply(w, OPT_LIST, REP_ACK, &[])?;
    Ok(())
}

/// A parsed `NBD_OPT_INFO` / `NBD_OPT_GO` request.
struct InfoRequest<'a> {
    name: &'a str,
    wants_name: bool,
}

fn parse_info(data: &[u8]) -> Result<InfoRequest<'_>, &'static str> {
    if data.len() < 6 {
        return Err("option data shorter than 6 bytes");
    }
    let name_len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if name_len > data.len() - 6 {
        return Err("export name length exceeds the option data");
    }
    let name = parse_name(&data[4..4 + name_len]).ok_or("export name is not a valid string")?;
    let rest = &data[4 + name_len..];
    let count = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let requests = &rest[2..];
    if requests.len() != 2 * count {
        return Err("information request count does not match the option length");
    }
    let wants_name = requests
        .chunks_exact(2)
        .any(|c| u16::from_be_bytes([c[0], c[1]]) == INFO_NAME);
    Ok(InfoRequest { name, wants_name })
}

/// `NBD_OPT_INFO` / `NBD_OPT_GO`: describes the export and returns it if the reply ended
/// in `NBD_REP_ACK`. Information types other than `NBD_INFO_NAME` that the client asks for
/// are ignored; `NBD_INFO_EXPORT` and `NBD_INFO_BLOCK_SIZE` are always sent.
fn info<W: Write>(
    w: &mut W,
    option: u32,
    data: &[u8],
    exports: &ExportTable,
) -> Result<Option<Negotiated>, ConnError> {
    let req = match parse_info(data) {
        Ok(req) => req,
        Err(why) => {
            write_option_reply(w, option, REP_ERR_INVALID, why.as_bytes())?;
            return Ok(None);
        }
    };
    let Some((name, export)) = exports.find(req.name) else {
        let msg = format!("no export named {:?}", req.name);
        write_option_reply(w, option, REP_ERR_UNKNOWN, msg.as_bytes())?;
        return Ok(None);
    };
    let Some((size, flags, min_block)) =
        lock(&export).map(|e| (e.size(), transmission_flags(&*e), min_block_size(&*e)))
    else {
        let msg = format!("export {name:?} is unusable after an internal failure");
        write_option_reply(w, option, REP_ERR_UNKNOWN, msg.as_bytes())?;
        return Ok(None);
    };

    let mut export_info = Vec::with_capacity(12);
    export_info.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    export_info.extend_from_slice(&size.to_be_bytes());
    export_info.extend_from_slice(&flags.to_be_bytes());
    write_option_reply(w, option, REP_INFO, &export_info)?;

    let mut block_info = Vec::with_capacity(14);
    block_info.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    block_info.extend_from_slice(&min_block.to_be_bytes());
    block_info.extend_from_slice(&PREFERRED_BLOCK_SIZE.max(min_block).to_be_bytes());
    block_info.extend_from_slice(&MAX_PAYLOAD.to_be_bytes());
    write_option_reply(w, option, REP_INFO, &block_info)?;

    if req.wants_name {
        let mut name_info = Vec::with_capacity(2 + name.len());
        name_info.extend_from_slice(&INFO_NAME.to_be_bytes());
        name_info.extend_from_slice(name.as_bytes());
        write_option_reply(w, option, REP_INFO, &name_info)?;
    }

    write_option_reply(w, option, REP_ACK, &[])?;
    Ok(Some(Negotiated { name, export }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_request_parsing() {
        let mut d = Vec::new();
        d.extend_from_slice(&3u32.to_be_bytes());
        d.extend_from_slice(b"abc");
        d.extend_from_slice(&2u16.to_be_bytes());
        d.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        d.extend_from_slice(&INFO_NAME.to_be_bytes());
        let req = parse_info(&d).unwrap();
        assert_eq!(req.name, "abc");
        assert!(req.wants_name);

        // Count says two requests, only one is there.
        assert!(parse_info(&d[..d.len() - 2]).is_err());
        // Name length runs past the end.
        let mut long = d.clone();
        long[3] = 200;
        assert!(parse_info(&long).is_err());
        long[0] = 0xff;
        assert!(parse_info(&long).is_err());
        assert!(parse_info(&[0, 0, 0, 0, 0]).is_err());
        // Not UTF-8.
        let bad = [0, 0, 0, 1, 0xff, 0, 0];
        assert!(parse_info(&bad).is_err());
        // Empty name, no requests.
        let req = parse_info(&[0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(req.name, "");
        assert!(!req.wants_name);
    }

    #[test]
    fn block_size_sanitised() {
        use crate::nbd::MemExport;
        assert_eq!(min_block_size(&MemExport::new(0)), 512);
        assert_eq!(
            min_block_size(&MemExport::new(0).with_block_size(4096)),
            4096
        );
        assert_eq!(min_block_size(&MemExport::new(0).with_block_size(3)), 1);
        assert_eq!(
            min_block_size(&MemExport::new(0).with_block_size(1 << 17)),
            1
        );
        assert_eq!(min_block_size(&MemExport::new(0).with_block_size(0)), 1);
    }

    #[test]
    fn flags_follow_read_only() {
        use crate::nbd::MemExport;
        let rw = transmission_flags(&MemExport::new(0));
        assert_eq!(rw & TFLAG_READ_ONLY, 0);
        assert_ne!(rw & TFLAG_SEND_WRITE_ZEROES, 0);
        let ro = transmission_flags(&MemExport::new(0).with_read_only(true));
        assert_ne!(ro & TFLAG_READ_ONLY, 0);
        assert_eq!(ro & (TFLAG_SEND_TRIM | TFLAG_SEND_FUA), 0);
        assert_ne!(ro & TFLAG_CAN_MULTI_CONN, 0);
    }
}
