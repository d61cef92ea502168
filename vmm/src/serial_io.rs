//! Where the serial console's bytes go and come from: stdout, a file, nothing, or a Unix
//! stream socket whose connected client sees the output and types the input.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use devices::bus::lock;
use devices::serial::SerialDevice;
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

/// Why the serial console could not be wired.
#[derive(Debug, thiserror::Error)]
pub enum SerialIoError {
    /// The `output`/`input` value is not one of the accepted forms.
    #[error("serial {field} {value:?} is not valid: use {accepted}")]
    BadSpec {
        /// `output` or `input`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        accepted: &'static str,
    },
    /// A file or socket could not be opened.
    #[error("cannot open serial {what} {path}: {source}")]
    Open {
        /// `output file` or `socket`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Where guest output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// The VMM's standard output.
    Stdout,
    /// Discarded.
    Null,
    /// Appended to a file.
    File(PathBuf),
    /// Sent to the client connected to this Unix socket.
    Socket(PathBuf),
}

/// Parses the `serial.output` value.
pub fn parse_output(spec: Option<&str>) -> Result<OutputSpec, SerialIoError> {
    let bad = |v: &str| SerialIoError::BadSpec {
        field: "output",
        value: v.to_string(),
        accepted: "stdout, null, file:PATH or socket:PATH",
    };
    match spec {
        None | Some("stdout") => Ok(OutputSpec::Stdout),
        Some("null") => Ok(OutputSpec::Null),
        Some(s) => match s.split_once(':') {
            Some(("file", p)) if !p.is_empty() => Ok(OutputSpec::File(p.into())),
            Some(("socket", p)) if !p.is_empty() => Ok(OutputSpec::Socket(p.into())),
            _ => Err(bad(s)),
        },
    }
}

/// Parses the `serial.input` value: `None` or a socket path.
pub fn parse_input(spec: Option<&str>) -> Result<Option<PathBuf>, SerialIoError> {
    match spec {
        None => Ok(None),
        Some(s) => match s.split_once(':') {
            Some(("socket", p)) if !p.is_empty() => Ok(Some(p.into())),
            _ => Err(SerialIoError::BadSpec {
                field: "input",
                value: s.to_string(),
                accepted: "socket:PATH",
            }),
        },
    }
}

/// The connected console client, shared by the output sink and the input reader.
pub type ConsoleClient = Arc<Mutex<Option<UnixStream>>>;

/// Output sink writing to the console client, dropping output while none is connected.
struct ClientSink(ConsoleClient);

impl Write for ClientSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut client = lock(&self.0);
        if let Some(stream) = client.as_mut() {
            if stream.write_all(buf).is_err() {
                *client = None;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Binds a listening socket, replacing a stale socket file.
pub fn bind_socket(path: &Path) -> Result<UnixListener, SerialIoError> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    UnixListener::bind(path).map_err(|source| SerialIoError::Open {
        what: "socket",
        path: path.to_owned(),
        source,
    })
}

/// Opens the output sink. For a socket, returns the listener to accept clients on.
pub fn open_output(
    spec: &OutputSpec,
    client: &ConsoleClient,
) -> Result<(Box<dyn Write + Send>, Option<UnixListener>), SerialIoError> {
    Ok(match spec {
        OutputSpec::Stdout => (Box::new(io::stdout()), None),
        OutputSpec::Null => (Box::new(io::sink()), None),
        OutputSpec::File(p) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| SerialIoError::Open {
                    what: "output file",
                    path: p.clone(),
                    source,
                })?;
            (Box::new(f), None)
        }
        OutputSpec::Socket(p) => (Box::new(ClientSink(client.clone())), Some(bind_socket(p)?)),
    })
}

/// Event-loop subscriber: accepts console clients and feeds their bytes to the UART.
pub struct ConsoleInput {
    listener: UnixListener,
    client: ConsoleClient,
    serial: Arc<Mutex<SerialDevice>>,
    reader: Option<UnixStream>,
}

impl ConsoleInput {
    /// Serves `listener`; accepted clients become the console client.
    pub fn new(
        listener: UnixListener,
        client: ConsoleClient,
        serial: Arc<Mutex<SerialDevice>>,
    ) -> Self {
        ConsoleInput {
            listener,
            client,
            serial,
            reader: None,
        }
    }

    fn accept(&mut self, ops: &mut EventOps) {
        let Ok((stream, _)) = self.listener.accept() else {
            return;
        };
        if let Some(old) = self.reader.take() {
            let _ = ops.remove(Events::new(&old, EventSet::IN));
        }
        match stream.try_clone() {
            Ok(writer) => *lock(&self.client) = Some(writer),
            Err(e) => log::warn!("serial console: {e}"),
        }
        if let Err(e) = ops.add(Events::new(&stream, EventSet::IN)) {
            log::warn!("serial console: cannot watch the client: {e}");
        }
        self.reader = Some(stream);
    }

    fn read_input(&mut self, ops: &mut EventOps) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        let room = lock(&self.serial).input_capacity().clamp(1, 64);
        let mut buf = [0u8; 64];
        match reader.read(&mut buf[..room]) {
            Ok(0) | Err(_) => {
                let _ = ops.remove(Events::new(&*reader, EventSet::IN));
                self.reader = None;
                *lock(&self.client) = None;
            }
            Ok(n) => {
                if let Err(e) = lock(&self.serial).enqueue_input(&buf[..n]) {
                    log::debug!("serial input dropped: {e}");
                }
            }
        }
    }
}

impl MutEventSubscriber for ConsoleInput {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.listener, EventSet::IN)) {
            log::error!("serial console: cannot watch the socket: {e}");
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.listener.as_raw_fd() {
            self.accept(ops);
        } else {
            self.read_input(ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(parse_output(None).unwrap(), OutputSpec::Stdout);
        assert_eq!(
            parse_output(Some("file:/tmp/x")).unwrap(),
            OutputSpec::File("/tmp/x".into())
        );
        assert_eq!(
            parse_output(Some("socket:/s")).unwrap(),
            OutputSpec::Socket("/s".into())
        );
        assert!(parse_output(Some("tty")).is_err());
        assert!(parse_output(Some("file:")).is_err());
        assert_eq!(parse_input(Some("socket:/i")).unwrap(), Some("/i".into()));
        assert!(parse_input(Some("stdin")).is_err());
    }
}
