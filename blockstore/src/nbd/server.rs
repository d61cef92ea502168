//! [`NbdServer`]: listeners, the accept thread, one thread per connection, shutdown.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::connection::serve;
use super::error::{ConnError, NbdError};
use super::export::SharedExport;
use super::exports::{check_name, ExportTable};
use super::listener::{wait_readable, DeadlineReader, Listener, SocketFile, Stream};

/// Default limit on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Default time a client has to complete the handshake (pick an export or abort).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`NbdServer::shutdown`] lets connections finish the request they are on.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Socket buffer sizes of a connection.
const IO_BUFFER: usize = 128 * 1024;

/// Configures and starts an [`NbdServer`].
pub struct NbdServerBuilder {
    exports: Vec<(String, SharedExport)>,
    default_export: Option<String>,
    unix: Vec<PathBuf>,
    tcp: Vec<SocketAddr>,
    allow_remote: bool,
    max_connections: usize,
    handshake_timeout: Option<Duration>,
}

impl std::fmt::Debug for NbdServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.exports.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("NbdServerBuilder")
            .field("exports", &names)
            .field("default_export", &self.default_export)
            .field("unix", &self.unix)
            .field("tcp", &self.tcp)
            .field("allow_remote", &self.allow_remote)
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl NbdServerBuilder {
    /// Offers `export` under `name`.
    pub fn export(mut self, name: impl Into<String>, export: SharedExport) -> Self {
        self.exports.push((name.into(), export));
        self
    }

    /// The export a client gets when it asks for the empty name (unless an export is
    /// itself called ""). Without this, the empty name is an unknown export.
    pub fn default_export(mut self, name: impl Into<String>) -> Self {
        self.default_export = Some(name.into());
        self
    }

    /// Listens on a Unix socket at `path` (created on start, removed on shutdown).
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix.push(path.into());
        self
    }

    /// Listens on a TCP address; port 0 picks a free port (see [`NbdServer::tcp_addrs`]).
    /// Only loopback addresses are accepted unless [`allow_remote`](Self::allow_remote).
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp.push(addr);
        self
    }

    /// Allows TCP addresses other than loopback. NBD has no authentication: anyone who
    /// can reach the port can read and write every export.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// Most connections served at once; further clients are disconnected at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a client may take over the whole handshake, from connecting to picking
    /// an export (`None`: forever). There is no limit once it has an export.
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Binds every listener and starts serving.
    pub fn start(self) -> Result<NbdServer, NbdError> {
        if self.unix.is_empty() && self.tcp.is_empty() {
            return Err(NbdError::NoListeners);
        }
        let exports = ExportTable::default();
        for (name, export) in self.exports {
            check_name(&name)?;
            if exports.contains(&name) {
                return Err(NbdError::DuplicateExport(name));
            }
            exports.insert(name, export)?;
        }
        if let Some(d) = &self.default_export {
            if !exports.contains(d) {
                return Err(NbdError::UnknownDefaultExport(d.clone()));
            }
        }
        exports.set_default(self.default_export);

        let mut listeners = Vec::new();
        for addr in &self.tcp {
            listeners.push(Listener::bind_tcp(*addr, self.allow_remote)?);
        }
        let mut socket_files = Vec::new();
        // On failure, the Unix sockets bound so far are removed again.
        let cleanup = |files: &[SocketFile]| files.iter().for_each(SocketFile::remove);
        for path in &self.unix {
            match Listener::bind_unix(path) {
                Ok(l) => {
                    socket_files.extend(l.socket_file());
                    listeners.push(l);
                }
                Err(e) => {
                    cleanup(&socket_files);
                    return Err(e);
                }
            }
        }
        let (wake_rx, wake_tx) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                cleanup(&socket_files);
                return Err(NbdError::Setup(e));
            }
        };

        let tcp_addrs = listeners
            .iter()
            .filter_map(|l| match l {
                Listener::Tcp { addr, .. } => Some(*addr),
                Listener::Unix { .. } => None,
            })
            .collect();

        let shared = Arc::new(Shared {
            exports,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            handles: Mutex::new(Vec::new()),
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
        });
        let acceptor_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("nbd-accept".into())
            .spawn(move || accept_loop(acceptor_shared, listeners, wake_rx));
        let acceptor = match acceptor {
            Ok(h) => h,
            Err(e) => {
                cleanup(&socket_files);
                return Err(NbdError::Spawn(e));
            }
        };
        let unix_paths = socket_files.iter().map(|f| f.path.clone()).collect();
        let server = NbdServer {
            shared,
            unix_paths,
            socket_files,
            tcp_addrs,
            waker: Some(wake_tx),
            acceptor: Some(acceptor),
        };
        for p in &server.unix_paths {
            log::info!("NBD server listening on {}", p.display());
        }
        for a in &server.tcp_addrs {
            log::info!("NBD server listening on {a}");
        }
        Ok(server)
    }
}

/// State shared by the server handle, the accept thread and the connection threads.
struct Shared {
    exports: ExportTable,
    stopping: AtomicBool,
    /// A handle on every open connection, to end them at shutdown.
    conns: Mutex<HashMap<u64, Stream>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    max_connections: usize,
    handshake_timeout: Option<Duration>,
}

/// A running NBD server. Dropping it shuts it down like [`NbdServer::shutdown`].
///
/// ```no_run
/// use std::sync::{Arc, Mutex};
/// use blockstore::nbd::{MemExport, NbdServer};
///
/// let disk = Arc::new(Mutex::new(MemExport::new(64 << 20)));
/// let server = NbdServer::builder()
///     .export("disk", disk)
///     .unix_socket("/run/reprise/nbd.sock")
///     .tcp("127.0.0.1:0".parse().unwrap())
///     .start()?;
/// println!("nbd://{}/disk", server.tcp_addrs()[0]);
/// server.shutdown();
/// # Ok::<(), blockstore::nbd::NbdError>(())
/// ```
pub struct NbdServer {
    shared: Arc<Shared>,
    unix_paths: Vec<PathBuf>,
    socket_files: Vec<SocketFile>,
    tcp_addrs: Vec<SocketAddr>,
    waker: Option<UnixStream>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NbdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NbdServer")
            .field("unix", &self.unix_paths)
            .field("tcp", &self.tcp_addrs)
            .field("exports", &self.shared.exports.names())
            .finish()
    }
}

impl NbdServer {
    /// Starts configuring a server.
    pub fn builder() -> NbdServerBuilder {
        NbdServerBuilder {
            exports: Vec::new(),
            default_export: None,
            unix: Vec::new(),
            tcp: Vec::new(),
            allow_remote: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// The Unix sockets the server listens on.
    pub fn unix_sockets(&self) -> &[PathBuf] {
        &self.unix_paths
    }

    /// The TCP addresses the server listens on, with the ports actually bound.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// Adds an export, or replaces the one of the same name (connections using the old
    /// one keep it). Returns the replaced export.
    pub fn add_export(
        &self,
        name: impl Into<String>,
        export: SharedExport,
    ) -> Result<Option<SharedExport>, NbdError> {
        self.shared.exports.insert(name.into(), export)
    }

    /// Stops offering an export. Connections already using it keep it until they end.
    pub fn remove_export(&self, name: &str) -> Option<SharedExport> {
        self.shared.exports.remove(name)
    }

    /// The names of the exports offered, sorted.
    pub fn export_names(&self) -> Vec<String> {
        self.shared.exports.names()
    }

    /// How many clients are connected.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Stops accepting, lets each connection finish the request it is serving (for up to
    /// two seconds), disconnects every client, joins all threads and removes the Unix
    /// socket files the server created.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(mut waker) = self.waker.take() {
            let _ = waker.write_all(&[1]);
        }
        if acceptor.join().is_err() {
            log::error!("NBD accept thread panicked");
        }

        // No new connections from here on. Stop reading requests: each connection
        // finishes and answers the one it is on, then sees end-of-file.
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Read);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline
            && !lock(&self.shared.handles).iter().all(|h| h.is_finished())
        {
            thread::sleep(Duration::from_millis(5));
        }
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let handles = std::mem::take(&mut *lock(&self.shared.handles));
        for h in handles {
            if h.join().is_err() {
                log::error!("NBD connection thread panicked");
            }
        }
        self.socket_files.iter().for_each(SocketFile::remove);
        log::info!("NBD server stopped");
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits for connections on every listener until woken through `wake`.
fn accept_loop(shared: Arc<Shared>, listeners: Vec<Listener>, wake: UnixStream) {
    let mut fds: Vec<_> = listeners.iter().map(|l| l.as_raw_fd()).collect();
    fds.push(wake.as_raw_fd());
    let mut next_id = 0u64;
    while !shared.stopping.load(Ordering::SeqCst) {
        let ready = match wait_readable(&fds) {
            Ok(ready) => ready,
            Err(e) => {
                log::error!("NBD: waiting for connections failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if ready[listeners.len()] {
            break;
        }
        for (l, _) in listeners.iter().zip(&ready).filter(|(_, &r)| r) {
            loop {
                match l.accept() {
                    Ok(Some((stream, peer))) => {
                        next_id += 1;
                        start_connection(&shared, stream, peer, next_id);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Typically out of file descriptors: back off rather than spin.
                        log::warn!("NBD: accepting a connection failed: {e}");
                        thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
}

fn start_connection(shared: &Arc<Shared>, stream: Stream, peer: String, id: u64) {
    let mut handles = lock(&shared.handles);
    // Join the threads of connections that have ended.
    let (done, running): (Vec<_>, Vec<_>) = handles.drain(..).partition(|h| h.is_finished());
    *handles = running;
    for h in done {
        if h.join().is_err() {
            log::error!("NBD connection thread panicked");
        }
    }

    let ctl = match stream.try_clone() {
        Ok(ctl) => ctl,
        Err(e) => {
            log::warn!("NBD: dropping connection from {peer}: {e}");
            return;
        }
    };
    {
        let mut conns = lock(&shared.conns);
        if conns.len() >= shared.max_connections {
            log::warn!(
                "NBD: refusing connection from {peer}: {} connections already",
                conns.len()
            );
            return;
        }
        conns.insert(id, ctl);
    }
    let conn_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("nbd-conn-{id}"))
        .spawn(move || run_connection(conn_shared, stream, peer, id));
    match spawned {
        Ok(h) => handles.push(h),
        Err(e) => {
            log::error!("NBD: cannot start a connection thread: {e}");
            lock(&shared.conns).remove(&id);
        }
    }
}

fn run_connection(shared: Arc<Shared>, stream: Stream, peer: String, id: u64) {
    log::debug!("NBD: connection {id} from {peer}");
    let result = (|| -> Result<(), ConnError> {
        let deadline = Rc::new(Cell::new(
            shared.handshake_timeout.map(|t| Instant::now() + t),
        ));
        let reader = DeadlineReader::new(stream.try_clone()?, deadline.clone());
        let mut r = BufReader::with_capacity(IO_BUFFER, reader);
        let mut w = BufWriter::with_capacity(IO_BUFFER, stream.try_clone()?);
        serve(&mut r, &mut w, &shared.exports, &shared.stopping, || {
            deadline.set(None);
            stream.set_read_timeout(None)
        })
    })();
    match result {
        Ok(()) => log::debug!("NBD: connection {id} from {peer} closed"),
        Err(ConnError::Io(e)) => log::info!("NBD: connection {id} from {peer} ended: {e}"),
        Err(e) => log::warn!("NBD: closing connection {id} from {peer}: {e}"),
    }
    let _ = stream.shutdown(Shutdown::Both);
    lock(&shared.conns).remove(&id);
}
