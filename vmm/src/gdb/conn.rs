//! A debugger's connection: a Unix or TCP stream, read one byte at a time with an
//! optional timeout (the stub polls the VM between bytes while the guest runs), written
//! a packet at a time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The socket under a connection.
pub enum Stream {
    /// `--gdb-socket`.
    Unix(UnixStream),
    /// `--gdb-tcp`.
    Tcp(TcpStream),
}

/// One debugger connection.
pub struct GdbConn {
    stream: Stream,
    /// Bytes of the packet being written, sent on `flush`.
    out: Vec<u8>,
}

impl GdbConn {
    /// A connection over `stream`.
    pub fn new(stream: Stream) -> Self {
        GdbConn {
            stream,
            out: Vec::with_capacity(4096),
        }
    }

    /// Sets how long [`GdbConn::read_byte`] waits (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        match &self.stream {
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    /// The next byte; `None` if the timeout passed first. The debugger closing the
    /// connection is an error.
    pub fn read_byte(&mut self) -> std::io::Result<Option<u8>> {
        let mut b = [0u8];
        let read = match &mut self.stream {
            Stream::Unix(s) => s.read(&mut b),
            Stream::Tcp(s) => s.read(&mut b),
        };
        match read {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the debugger closed the connection",
            )),
            Ok(_) => Ok(Some(b[0])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends console text to gdb (an `O` packet); only valid while the target runs.
    pub fn console(&mut self, text: &str) -> std::io::Result<()> {
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        let body = format!("O{hex}");
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        self.out
            .extend_from_slice(format!("${body}#{sum:02x}").as_bytes());
        self.send()
    }

    fn send(&mut self) -> std::io::Result<()> {
        let result = match &mut self.stream {
            Stream::Unix(s) => s.write_all(&self.out),
            Stream::Tcp(s) => s.write_all(&self.out),
        };
        self.out.clear();
        result
    }
}

impl gdbstub::conn::Connection for GdbConn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.out.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.send()
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        if let Stream::Tcp(s) = &self.stream {
            s.set_nodelay(true)?;
        }
        Ok(())
    }
}
