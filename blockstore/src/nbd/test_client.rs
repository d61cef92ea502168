//! A minimal NBD client for the unit tests: raw access to every message so tests can
//! also send what a correct client never would.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::connection::serve;
use super::error::ConnError;
use super::exports::ExportTable;
use super::proto::*;

/// One option reply.
#[derive(Debug)]
pub struct OptReply {
    pub option: u32,
    pub kind: u32,
    pub data: Vec<u8>,
}

/// What `NBD_OPT_GO` / `NBD_OPT_INFO` reported.
#[derive(Debug, Default)]
pub struct ExportInfo {
    pub size: u64,
    pub flags: u16,
    pub block: Option<(u32, u32, u32)>,
    pub name: Option<String>,
}

pub struct Client {
    pub s: UnixStream,
    cookie: u64,
}

/// Serves one connection in a thread over a socket pair; returns the client end and the
/// server's result.
pub fn spawn_server(exports: Arc<ExportTable>) -> (UnixStream, JoinHandle<Result<(), ConnError>>) {
    let (client, server) = UnixStream::pair().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let h = thread::spawn(move || {
        let mut r = io::BufReader::new(server.try_clone().unwrap());
        let mut w = io::BufWriter::new(server);
        let stopping = AtomicBool::new(false);
        serve(&mut r, &mut w, &exports, &stopping, || Ok(()))
    });
    (client, h)
}

impl Client {
    /// Reads the greeting and answers with `client_flags`.
    pub fn greet(mut s: UnixStream, client_flags: u32) -> io::Result<(Client, u16)> {
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello)?;
        assert_eq!(&hello[0..8], b"NBDMAGIC");
        assert_eq!(&hello[8..16], b"IHAVEOPT");
        let flags = u16::from_be_bytes([hello[16], hello[17]]);
        s.write_all(&client_flags.to_be_bytes())?;
        Ok((Client { s, cookie: 0 }, flags))
    }

    /// Greets as a fixed-newstyle client that wants no zeroes.
    pub fn new(s: UnixStream) -> Client {
        Client::greet(s, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)
            .unwrap()
            .0
    }

    pub fn send_option(&mut self, option: u32, data: &[u8]) -> io::Result<()> {
        let mut m = Vec::with_capacity(16 + data.len());
        m.extend_from_slice(&IHAVEOPT.to_be_bytes());
        m.extend_from_slice(&option.to_be_bytes());
        m.extend_from_slice(&(data.len() as u32).to_be_bytes());
        m.extend_from_slice(data);
        self.s.write_all(&m)
    }

    pub fn read_opt_reply(&mut self) -> io::Result<OptReply> {
        let magic = read_u64(&mut self.s)?;
        assert_eq!(magic, OPTION_REPLY_MAGIC);
        let option = read_u32(&mut self.s)?;
        let kind = read_u32(&mut self.s)?;
        let len = read_u32(&mut self.s)?;
        let mut data = vec![0; len as usize];
        self.s.read_exact(&mut data)?;
        Ok(OptReply { option, kind, data })
    }

    /// `NBD_OPT_INFO` / `NBD_OPT_GO` data for `name` and the given information requests.
    pub fn info_data(name: &str, infos: &[u16]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    /// Sends `NBD_OPT_INFO` or `NBD_OPT_GO`; `Err` holds the final error reply type.
    pub fn info(&mut self, option: u32, name: &str, infos: &[u16]) -> Result<ExportInfo, u32> {
        self.send_option(option, &Client::info_data(name, infos))
            .unwrap();
        let mut info = ExportInfo::default();
        let mut saw_export = false;
        loop {
            let rep = self.read_opt_reply().unwrap();
            assert_eq!(rep.option, option);
            match rep.kind {
                REP_INFO => {
                    let d = &rep.data;
                    match u16::from_be_bytes([d[0], d[1]]) {
                        INFO_EXPORT => {
                            assert_eq!(d.len(), 12);
                            info.size = u64::from_be_bytes(d[2..10].try_into().unwrap());
                            info.flags = u16::from_be_bytes([d[10], d[11]]);
                            saw_export = true;
                        }
                        INFO_BLOCK_SIZE => {
                            assert_eq!(d.len(), 14);
                            let v = |i: usize| u32::from_be_bytes(d[i..i + 4].try_into().unwrap());
                            info.block = Some((v(2), v(6), v(10)));
                        }
                        INFO_NAME => {
                            info.name = Some(String::from_utf8(d[2..].to_vec()).unwrap());
                        }
                        other => panic!("unexpected info type {other}"),
                    }
                }
                REP_ACK => {
                    assert!(saw_export, "ACK without NBD_INFO_EXPORT");
                    return Ok(info);
                }
                err => {
                    assert_ne!(err & REP_FLAG_ERROR, 0, "unexpected reply {err}");
                    return Err(err);
                }
            }
        }
    }

    /// Connects to `name` with `NBD_OPT_GO`, panicking on failure.
    pub fn go(&mut self, name: &str) -> ExportInfo {
        self.info(OPT_GO, name, &[INFO_BLOCK_SIZE])
            .unwrap_or_else(|e| panic!("NBD_OPT_GO {name:?} failed: {e:#x}"))
    }

    pub fn send_request(&mut self, kind: u16, flags: u16, offset: u64, length: u32) -> u64 {
        self.cookie += 1;
        let req = Request {
            flags,
            kind,
            cookie: self.cookie,
            offset,
            length,
        };
        self.s.write_all(&req.encode()).unwrap();
        self.cookie
    }

    /// Reads a simple reply; `payload` bytes follow it if the error is zero.
    pub fn read_reply(&mut self, cookie: u64, payload: usize) -> io::Result<(u32, Vec<u8>)> {
        let magic = read_u32(&mut self.s)?;
        assert_eq!(magic, SIMPLE_REPLY_MAGIC);
        let error = read_u32(&mut self.s)?;
        let got = read_u64(&mut self.s)?;
        assert_eq!(got, cookie);
        let mut data = Vec::new();
        if error == 0 {
            data.resize(payload, 0);
            self.s.read_exact(&mut data)?;
        }
        Ok((error, data))
    }

    pub fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        let c = self.send_request(CMD_READ, 0, offset, len);
        let (err, data) = self.read_reply(c, len as usize).unwrap();
        if err == 0 {
            Ok(data)
        } else {
            Err(err)
        }
    }

    pub fn write(&mut self, offset: u64, data: &[u8], flags: u16) -> u32 {
        let c = self.send_request(CMD_WRITE, flags, offset, data.len() as u32);
        self.s.write_all(data).unwrap();
        self.read_reply(c, 0).unwrap().0
    }

    /// A command without payload in either direction.
    pub fn command(&mut self, kind: u16, flags: u16, offset: u64, len: u32) -> u32 {
        let c = self.send_request(kind, flags, offset, len);
        self.read_reply(c, 0).unwrap().0
    }

    pub fn disconnect(mut self) {
        self.send_request(CMD_DISC, 0, 0, 0);
    }

    /// True if the server has closed the connection (reads end-of-file).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}
