//! Protocol tests: the handshake and the commands, driven by the test client over a
//! socket pair, including input no correct client sends.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use super::error::ConnError;
use super::export::{NbdExport, SharedExport};
use super::exports::ExportTable;
use super::handshake::{MAX_OPTION_LEN, MAX_PAYLOAD};
use super::proto::*;
use super::test_client::{spawn_server, Client};
use super::MemExport;

const SIZE: usize = 1 << 20;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Setup {
    exports: Arc<ExportTable>,
    disk: Arc<Mutex<MemExport>>,
}

fn setup() -> Setup {
    let exports = Arc::new(ExportTable::default());
    let disk = Arc::new(Mutex::new(MemExport::from_bytes(pattern(SIZE, 1))));
    exports.insert("disk".into(), disk.clone()).unwrap();
    let ro: SharedExport = Arc::new(Mutex::new(
        MemExport::from_bytes(pattern(64 * 1024, 2)).with_read_only(true),
    ));
    exports.insert("ro".into(), ro).unwrap();
    Setup { exports, disk }
}

fn connect(s: &Setup) -> (Client, std::thread::JoinHandle<Result<(), ConnError>>) {
    let (stream, h) = spawn_server(s.exports.clone());
    (Client::new(stream), h)
}

#[test]
fn greeting_and_go() {
    let s = setup();
    let (stream, h) = spawn_server(s.exports.clone());
    let (mut c, flags) = Client::greet(stream, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).unwrap();
    assert_eq!(flags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    let info = c
        .info(OPT_GO, "disk", &[INFO_BLOCK_SIZE, INFO_NAME, 77])
        .unwrap();
    assert_eq!(info.size, SIZE as u64);
    assert_eq!(
        info.flags,
        TFLAG_HAS_FLAGS
            | TFLAG_SEND_FLUSH
            | TFLAG_SEND_FUA
            | TFLAG_SEND_TRIM
            | TFLAG_SEND_WRITE_ZEROES
            | TFLAG_CAN_MULTI_CONN
    );
    assert_eq!(info.block, Some((512, 4096, MAX_PAYLOAD)));
    assert_eq!(info.name.as_deref(), Some("disk"));
    assert_eq!(c.read(0, 4096).unwrap(), pattern(SIZE, 1)[..4096]);
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn info_then_go_and_errors_keep_negotiating() {
    let s = setup();
    let (mut c, h) = connect(&s);
    let info = c.info(OPT_INFO, "ro", &[]).unwrap();
    assert_eq!(info.size, 64 * 1024);
    assert_ne!(info.flags & TFLAG_READ_ONLY, 0);
    assert!(info.name.is_none());
    assert_eq!(c.info(OPT_GO, "nope", &[]).unwrap_err(), REP_ERR_UNKNOWN);
    assert_eq!(c.info(OPT_GO, "", &[]).unwrap_err(), REP_ERR_UNKNOWN);

    // Structured replies, TLS and made-up options are unsupported, not fatal.
    for opt in [
        OPT_STRUCTURED_REPLY,
        OPT_STARTTLS,
        9,
        10,
        11,
        0,
        4,
        0xdead_beef,
    ] {
        c.send_option(opt, &[]).unwrap();
        let rep = c.read_opt_reply().unwrap();
        assert_eq!((rep.option, rep.kind), (opt, REP_ERR_UNSUP));
    }
    // Malformed INFO data: name length larger than the data.
    let mut bad = Client::info_data("disk", &[]);
    bad[3] = 100;
    c.send_option(OPT_GO, &bad).unwrap();
    assert_eq!(c.read_opt_reply().unwrap().kind, REP_ERR_INVALID);
    // Too short, and a request count that does not match.
    c.send_option(OPT_INFO, &[0, 0]).unwrap();
    assert_eq!(c.read_opt_reply().unwrap().kind, REP_ERR_INVALID);
    let mut bad = Client::info_data("disk", &[INFO_NAME]);
    bad.pop();
    c.send_option(OPT_INFO, &bad).unwrap();
    assert_eq!(c.read_opt_reply().unwrap().kind, REP_ERR_INVALID);
    // Too long to read: skipped and refused.
    c.send_option(OPT_INFO, &vec![0u8; MAX_OPTION_LEN as usize + 1])
        .unwrap();
    assert_eq!(c.read_opt_reply().unwrap().kind, REP_ERR_TOO_BIG);

    let info = c.go("disk");
    assert_eq!(info.size, SIZE as u64);
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn list_exports() {
    let s = setup();
    let (mut c, h) = connect(&s);
    c.send_option(OPT_LIST, &[]).unwrap();
    let mut names = Vec::new();
    loop {
        let rep = c.read_opt_reply().unwrap();
        assert_eq!(rep.option, OPT_LIST);
        if rep.kind == REP_ACK {
            break;
        }
        assert_eq!(rep.kind, REP_SERVER);
        let len = u32::from_be_bytes(rep.data[0..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, rep.data.len());
        names.push(String::from_utf8(rep.data[4..].to_vec()).unwrap());
    }
    assert_eq!(names, ["disk", "ro"]);
    c.send_option(OPT_LIST, b"x").unwrap();
    assert_eq!(c.read_opt_reply().unwrap().kind, REP_ERR_INVALID);
    c.send_option(OPT_ABORT, &[]).unwrap();
    let rep = c.read_opt_reply().unwrap();
    assert_eq!((rep.option, rep.kind), (OPT_ABORT, REP_ACK));
    h.join().unwrap().unwrap();
    assert!(c.closed());
}

#[test]
fn default_export_for_empty_name() {
    let s = setup();
    s.exports.set_default(Some("ro".into()));
    let (mut c, h) = connect(&s);
    let info = c.info(OPT_GO, "", &[INFO_NAME]).unwrap();
    assert_eq!(info.size, 64 * 1024);
    assert_eq!(info.name.as_deref(), Some("ro"));
    c.disconnect();
    h.join().unwrap().unwrap();
}

fn export_name_reply(client_flags: u32, name: &str) -> (Vec<u8>, Result<(), ConnError>) {
    let s = setup();
    let (stream, h) = spawn_server(s.exports.clone());
    let (mut c, _) = Client::greet(stream, client_flags).unwrap();
    c.send_option(OPT_EXPORT_NAME, name.as_bytes()).unwrap();
    let mut out = Vec::new();
    // Ends either with the server closing (unknown name) or after DISC.
    let mut buf = [0u8; 256];
    c.s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    loop {
        match c.s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.disconnect();
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    (out, h.join().unwrap())
}

#[test]
fn export_name_with_and_without_zeroes() {
    let (out, res) = export_name_reply(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES, "disk");
    res.unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(
        u64::from_be_bytes(out[0..8].try_into().unwrap()),
        SIZE as u64
    );
    assert_ne!(u16::from_be_bytes([out[8], out[9]]) & TFLAG_HAS_FLAGS, 0);

    let (out, res) = export_name_reply(FLAG_C_FIXED_NEWSTYLE, "ro");
    res.unwrap();
    assert_eq!(out.len(), 10 + 124);
    assert!(out[10..].iter().all(|&b| b == 0));
    assert_ne!(u16::from_be_bytes([out[8], out[9]]) & TFLAG_READ_ONLY, 0);

    // A client that does not claim fixed newstyle still works.
    let (out, res) = export_name_reply(0, "disk");
    res.unwrap();
    assert_eq!(out.len(), 134);

    // An unknown name cannot be reported: the server hangs up.
    let (out, res) = export_name_reply(FLAG_C_FIXED_NEWSTYLE, "missing");
    assert!(out.is_empty());
    assert!(matches!(res, Err(ConnError::ExportNameRefused(n)) if n == "missing"));
}

#[test]
fn bad_client_flags_and_option_magic_close() {
    let s = setup();
    let (stream, h) = spawn_server(s.exports.clone());
    let (mut c, _) = Client::greet(stream, 1 << 5).unwrap();
    assert!(matches!(
        h.join().unwrap(),
        Err(ConnError::BadClientFlags(0x20))
    ));
    assert!(c.closed());

    let (stream, h) = spawn_server(s.exports.clone());
    let mut c = Client::new(stream);
    c.s.write_all(b"GARBAGE!\0\0\0\x07\0\0\0\0").unwrap();
    assert!(matches!(
        h.join().unwrap(),
        Err(ConnError::BadOptionMagic(_))
    ));
    assert!(c.closed());
}

#[test]
fn huge_option_length_closes() {
    let s = setup();
    let (mut c, h) = connect(&s);
    let mut m = Vec::new();
    m.extend_from_slice(&IHAVEOPT.to_be_bytes());
    m.extend_from_slice(&OPT_GO.to_be_bytes());
    m.extend_from_slice(&u32::MAX.to_be_bytes());
    c.s.write_all(&m).unwrap();
    assert!(matches!(
        h.join().unwrap(),
        Err(ConnError::OptionTooLong { .. })
    ));
}

#[test]
fn truncated_handshake_ends_quietly() {
    let s = setup();
    let (stream, h) = spawn_server(s.exports.clone());
    let mut hello = [0u8; 18];
    let mut st = stream;
    st.read_exact(&mut hello).unwrap();
    st.write_all(&[0, 0]).unwrap();
    drop(st);
    assert!(matches!(h.join().unwrap(), Err(ConnError::Io(_))));
}

#[test]
fn read_write_flush_trim_zeroes() {
    let s = setup();
    let (mut c, h) = connect(&s);
    c.go("disk");
    let data = pattern(64 * 1024, 9);
    assert_eq!(c.write(8192, &data, 0), 0);
    assert_eq!(c.read(8192, data.len() as u32).unwrap(), data);
    assert_eq!(s.disk.lock().unwrap().data()[8192..8192 + data.len()], data);

    let flushes = s.disk.lock().unwrap().flushes();
    assert_eq!(c.write(0, &data[..512], CMD_FLAG_FUA), 0);
    assert_eq!(s.disk.lock().unwrap().flushes(), flushes + 1);
    assert_eq!(c.command(CMD_FLUSH, 0, 0, 0), 0);
    assert_eq!(s.disk.lock().unwrap().flushes(), flushes + 2);

    assert_eq!(c.command(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 8192, 4096), 0);
    assert!(c.read(8192, 4096).unwrap().iter().all(|&b| b == 0));
    assert_eq!(c.read(12288, 512).unwrap(), data[4096..4608]);
    assert_eq!(c.command(CMD_TRIM, 0, 16384, 1024), 0);
    assert!(c.read(16384, 1024).unwrap().iter().all(|&b| b == 0));
    assert_eq!(c.command(CMD_CACHE, 0, 0, 4096), 0);
    // Zero-length requests are harmless.
    assert_eq!(c.read(0, 0).unwrap(), Vec::<u8>::new());
    assert_eq!(c.write(512, &[], 0), 0);
    // Whole-export zeroing larger than the maximum payload is fine (no payload).
    let big = Arc::new(Mutex::new(MemExport::from_bytes(vec![1; 40 << 20])));
    s.exports.insert("big".into(), big.clone()).unwrap();
    c.disconnect();
    h.join().unwrap().unwrap();

    let (mut c, h) = connect(&s);
    c.go("big");
    assert_eq!(c.command(CMD_WRITE_ZEROES, 0, 0, 40 << 20), 0);
    assert!(big.lock().unwrap().data().iter().all(|&b| b == 0));
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn invalid_requests_get_errors_and_connection_stays() {
    let s = setup();
    let (mut c, h) = connect(&s);
    c.go("disk");
    let size = SIZE as u64;
    // Out of range.
    assert_eq!(c.read(size, 512), Err(EINVAL));
    assert_eq!(c.read(size - 512, 1024), Err(EINVAL));
    assert_eq!(c.read(u64::MAX - 511, 512), Err(EINVAL));
    assert_eq!(c.write(size, &[0; 512], 0), ENOSPC);
    assert_eq!(c.command(CMD_WRITE_ZEROES, 0, size - 512, 1024), ENOSPC);
    assert_eq!(c.command(CMD_TRIM, 0, size, 512), EINVAL);
    // Misaligned.
    assert_eq!(c.read(1, 512), Err(EINVAL));
    assert_eq!(c.read(0, 100), Err(EINVAL));
    assert_eq!(c.write(100, &[1; 512], 0), EINVAL);
    assert_eq!(c.command(CMD_TRIM, 0, 0, 1), EINVAL);
    // Unknown command and flags not valid for the command.
    assert_eq!(c.command(99, 0, 0, 512), EINVAL);
    assert_eq!(c.command(7, 0, 0, 512), EINVAL); // block status: not negotiated
    assert_eq!(c.command(CMD_READ, CMD_FLAG_NO_HOLE, 0, 512), EINVAL);
    assert_eq!(c.command(CMD_WRITE_ZEROES, 1 << 4, 0, 512), EINVAL); // fast zero
    assert_eq!(c.command(CMD_FLUSH, 1 << 3, 0, 0), EINVAL);
    let bad_flag_write = c.write(0, &[5; 512], 1 << 9);
    assert_eq!(bad_flag_write, EINVAL);
    // Oversized read, and an oversized write whose payload is skipped.
    assert_eq!(c.read(0, MAX_PAYLOAD + 512), Err(EINVAL));
    let huge = vec![7u8; MAX_PAYLOAD as usize + 512];
    assert_eq!(c.write(0, &huge, 0), EINVAL);
    // Nothing was written by any of the above.
    assert_eq!(s.disk.lock().unwrap().data(), pattern(SIZE, 1));
    // Still in step.
    assert_eq!(c.read(0, 512).unwrap(), pattern(SIZE, 1)[..512]);
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn read_only_export_refuses_changes() {
    let s = setup();
    let (mut c, h) = connect(&s);
    let info = c.go("ro");
    assert_ne!(info.flags & TFLAG_READ_ONLY, 0);
    assert_eq!(c.write(0, &[1; 512], 0), EPERM);
    assert_eq!(c.command(CMD_TRIM, 0, 0, 512), EPERM);
    assert_eq!(c.command(CMD_WRITE_ZEROES, 0, 0, 512), EPERM);
    assert_eq!(c.command(CMD_FLUSH, 0, 0, 0), 0);
    assert_eq!(c.read(0, 512).unwrap(), pattern(64 * 1024, 2)[..512]);
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn block_size_and_unaligned_tail() {
    let s = setup();
    let odd: SharedExport = Arc::new(Mutex::new(
        MemExport::from_bytes(pattern(8192 + 100, 3)).with_block_size(4096),
    ));
    s.exports.insert("odd".into(), odd).unwrap();
    let (mut c, h) = connect(&s);
    let info = c.go("odd");
    assert_eq!(info.block, Some((4096, 4096, MAX_PAYLOAD)));
    assert_eq!(c.read(512, 512), Err(EINVAL));
    assert_eq!(c.read(8192, 100).unwrap(), pattern(8192 + 100, 3)[8192..]);
    assert_eq!(c.read(4096, 4196).unwrap(), pattern(8192 + 100, 3)[4096..]);
    c.disconnect();
    h.join().unwrap().unwrap();
}

/// An export whose every operation fails.
struct Broken;

impl NbdExport for Broken {
    fn size(&self) -> u64 {
        1 << 20
    }
    fn read_at(&mut self, _: u64, _: &mut [u8]) -> io::Result<()> {
        Err(io::Error::other("medium error"))
    }
    fn write_at(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::StorageFull))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("flush failed"))
    }
    fn trim(&mut self, _: u64, _: u64) -> io::Result<()> {
        Err(io::Error::other("trim failed"))
    }
}

#[test]
fn backend_errors_become_nbd_errors() {
    let s = setup();
    s.exports
        .insert("broken".into(), Arc::new(Mutex::new(Broken)))
        .unwrap();
    let (mut c, h) = connect(&s);
    c.go("broken");
    assert_eq!(c.read(0, 4096), Err(EIO));
    assert_eq!(c.write(0, &[0; 512], 0), ENOSPC);
    assert_eq!(c.command(CMD_FLUSH, 0, 0, 0), EIO);
    assert_eq!(c.command(CMD_TRIM, 0, 0, 512), EIO);
    // The default write_zeroes goes through write_at.
    assert_eq!(c.command(CMD_WRITE_ZEROES, 0, 0, 512), ENOSPC);
    c.disconnect();
    h.join().unwrap().unwrap();
}

#[test]
fn poisoned_export_answers_eio() {
    let s = setup();
    let victim = Arc::new(Mutex::new(MemExport::new(4096)));
    s.exports.insert("victim".into(), victim.clone()).unwrap();
    let (mut c, h) = connect(&s);
    c.go("victim");
    let v = victim.clone();
    let _ = std::thread::spawn(move || {
        let _g = v.lock().unwrap();
        panic!("poison the export");
    })
    .join();
    assert_eq!(c.read(0, 512), Err(EIO));
    assert_eq!(c.write(0, &[1; 512], 0), EIO);
    c.disconnect();
    h.join().unwrap().unwrap();
    // New clients are refused the export rather than served from a broken one.
    let (mut c, h) = connect(&s);
    assert_eq!(c.info(OPT_GO, "victim", &[]).unwrap_err(), REP_ERR_UNKNOWN);
    c.send_option(OPT_ABORT, &[]).unwrap();
    let _ = c.read_opt_reply();
    h.join().unwrap().unwrap();
}

#[test]
fn bad_request_magic_closes() {
    let s = setup();
    let (mut c, h) = connect(&s);
    c.go("disk");
    c.s.write_all(&[0x55; REQUEST_LEN]).unwrap();
    assert!(matches!(
        h.join().unwrap(),
        Err(ConnError::BadRequestMagic(0x5555_5555))
    ));
    assert!(c.closed());
}

#[test]
fn client_hangs_up_mid_write() {
    let s = setup();
    let (mut c, h) = connect(&s);
    c.go("disk");
    c.send_request(CMD_WRITE, 0, 0, 4096);
    c.s.write_all(&[9; 100]).unwrap();
    drop(c);
    assert!(matches!(h.join().unwrap(), Err(ConnError::Io(_))));
    // The partial write never reached the export.
    assert_eq!(s.disk.lock().unwrap().data(), pattern(SIZE, 1));
}

#[test]
fn garbage_never_panics() {
    let s = setup();
    for seed in 0..300u64 {
        let (stream, h) = spawn_server(s.exports.clone());
        let mut st = stream;
        let mut hello = [0u8; 18];
        st.read_exact(&mut hello).unwrap();
        let junk = pattern(64 + (seed as usize * 37) % 2000, seed + 100);
        let mut msg = Vec::new();
        match seed % 3 {
            // Pure garbage from the start.
            0 => msg.extend_from_slice(&junk),
            // Valid flags, then garbage options.
            1 => {
                msg.extend_from_slice(&3u32.to_be_bytes());
                msg.extend_from_slice(&IHAVEOPT.to_be_bytes());
                msg.extend_from_slice(&junk);
            }
            // A valid GO, then garbage requests.
            _ => {
                msg.extend_from_slice(&3u32.to_be_bytes());
                msg.extend_from_slice(&IHAVEOPT.to_be_bytes());
                let d = Client::info_data("disk", &[]);
                msg.extend_from_slice(&OPT_GO.to_be_bytes());
                msg.extend_from_slice(&(d.len() as u32).to_be_bytes());
                msg.extend_from_slice(&d);
                msg.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
                msg.extend_from_slice(&junk);
            }
        }
        // The server may hang up before reading it all.
        let _ = st.write_all(&msg);
        let _ = st.shutdown(std::net::Shutdown::Write);
        // Drain whatever the server answers until it gives up.
        let mut sink = Vec::new();
        let _ = st.read_to_end(&mut sink);
        // A result, not a panic (join would fail on panic).
        let _ = h.join().expect("server thread panicked");
    }
}

#[test]
fn two_clients_share_one_export() {
    let s = setup();
    let (mut a, ha) = connect(&s);
    let (mut b, hb) = connect(&s);
    a.go("disk");
    b.go("disk");
    let data = pattern(4096, 77);
    assert_eq!(a.write(0, &data, 0), 0);
    assert_eq!(a.command(CMD_FLUSH, 0, 0, 0), 0);
    assert_eq!(b.read(0, 4096).unwrap(), data);
    a.disconnect();
    b.disconnect();
    ha.join().unwrap().unwrap();
    hb.join().unwrap().unwrap();
}

#[test]
fn option_reply_to_oversized_export_name_closes() {
    let s = setup();
    let (mut c, h) = connect(&s);
    // The server may hang up before taking it all.
    let _ = c.send_option(OPT_EXPORT_NAME, &vec![b'a'; MAX_OPTION_LEN as usize + 1]);
    assert!(matches!(
        h.join().unwrap(),
        Err(ConnError::OptionTooLong { .. })
    ));
}
