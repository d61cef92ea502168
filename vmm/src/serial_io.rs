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
use vmm_sys_util::eventfd::EventFd;

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

/// A listening console socket and the client slot its accepted connection fills.
pub struct ConsoleListener {
    /// The bound socket.
    pub socket: UnixListener,
    /// Where the accepted client goes (shared with the output sink for `socket:` output).
    pub client: ConsoleClient,
}

/// The host side of the serial console, as `serial` in the configuration describes it.
pub struct Console {
    /// Sink for guest output.
    pub output: Box<dyn Write + Send>,
    /// Sockets to accept console clients on.
    pub listeners: Vec<ConsoleListener>,
}

impl Console {
    /// Opens the output sink and binds the console sockets. When output and input name the
    /// same socket, one client both reads the output and types the input.
    pub fn open(config: &crate::config::SerialConfig) -> Result<Self, SerialIoError> {
        let out_spec = parse_output(config.output.as_deref())?;
        let input = parse_input(config.input.as_deref())?;
        let client: ConsoleClient = Arc::new(Mutex::new(None));
        let mut listeners = Vec::new();
        let output: Box<dyn Write + Send> = match &out_spec {
            OutputSpec::Stdout => Box::new(io::stdout()),
            OutputSpec::Null => Box::new(io::sink()),
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
                Box::new(f)
            }
            OutputSpec::Socket(p) => {
                listeners.push(ConsoleListener {
                    socket: bind_socket(p)?,
                    client: client.clone(),
                });
                Box::new(ClientSink(client))
            }
        };
        if let Some(path) = input {
            if out_spec != OutputSpec::Socket(path.clone()) {
                let own_client: ConsoleClient = Arc::new(Mutex::new(None));
                listeners.push(ConsoleListener {
                    socket: bind_socket(&path)?,
                    client: own_client,
                });
            }
        }
        Ok(Console { output, listeners })
    }
}

/// Event-loop subscriber: accepts console clients and feeds their bytes to the UART.
///
/// Input is never dropped: bytes that do not fit in the UART's receive FIFO wait in
/// `pending`, and the client socket is not read again until the guest has drained the
/// FIFO (the UART signals `room`).
pub struct ConsoleInput {
    listener: UnixListener,
    client: ConsoleClient,
    serial: Arc<Mutex<SerialDevice>>,
    room: EventFd,
    reader: Option<UnixStream>,
    reading: bool,
    pending: Vec<u8>,
    taps: Arc<crate::recording::Taps>,
}

impl ConsoleInput {
    /// Serves `listener`; accepted clients become the console client.
    pub fn new(
        listener: UnixListener,
        client: ConsoleClient,
        serial: Arc<Mutex<SerialDevice>>,
        taps: Arc<crate::recording::Taps>,
    ) -> io::Result<Self> {
        let room = lock(&serial).input_room_event().try_clone()?;
        Ok(ConsoleInput {
            listener,
            client,
            serial,
            taps,
            room,
            reader: None,
            reading: false,
            pending: Vec::new(),
        })
    }

    fn drop_reader(&mut self, ops: &mut EventOps) {
        if let Some(old) = self.reader.take() {
            let _ = ops.remove(Events::new(&old, EventSet::IN));
        }
        self.reading = false;
        self.pending.clear();
    }

    fn accept(&mut self, ops: &mut EventOps) {
        let Ok((stream, _)) = self.listener.accept() else {
            return;
        };
        self.drop_reader(ops);
        match stream.try_clone() {
            Ok(writer) => *lock(&self.client) = Some(writer),
            Err(e) => log::warn!("serial console: {e}"),
        }
        match ops.add(Events::new(&stream, EventSet::IN)) {
            Ok(()) => self.reading = true,
            Err(e) => log::warn!("serial console: cannot watch the client: {e}"),
        }
        self.reader = Some(stream);
    }

    fn read_input(&mut self, ops: &mut EventOps) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        let mut buf = [0u8; 1024];
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => {
                self.drop_reader(ops);
                *lock(&self.client) = None;
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.feed(ops);
            }
        }
    }

    /// Moves pending bytes into the UART and reads the client only while none wait.
    fn feed(&mut self, ops: &mut EventOps) {
        if !self.pending.is_empty() {
            let mut serial = lock(&self.serial);
            let room = serial.input_capacity().min(self.pending.len());
            if room > 0 {
                match serial.enqueue_input(&self.pending[..room]) {
                    Ok(n) => {
                        crate::recording::serial::record_input(&self.taps, &self.pending[..n]);
                        self.pending.drain(..n);
                    }
                    Err(e) => log::debug!("serial input: {e}"),
                }
            }
        }
        let want = self.pending.is_empty();
        if let Some(reader) = &self.reader {
            if want != self.reading {
                let set = if want {
                    EventSet::IN
                } else {
                    EventSet::empty()
                };
                match ops.modify(Events::new(reader, set)) {
                    Ok(()) => self.reading = want,
                    Err(e) => log::warn!("serial console: {e}"),
                }
            }
        }
    }
}

impl MutEventSubscriber for ConsoleInput {
    fn init(&mut self, ops: &mut EventOps) {
        for fd in [self.listener.as_raw_fd(), self.room.as_raw_fd()] {
            if let Err(e) = ops.add(Events::with_data_raw(fd, 0, EventSet::IN)) {
                log::error!("serial console: cannot watch the socket: {e}");
            }
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.listener.as_raw_fd() {
            self.accept(ops);
        } else if fd == self.room.as_raw_fd() {
            let _ = self.room.read();
            self.feed(ops);
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
