//! The gdb stub: the GDB remote serial protocol over a Unix or TCP socket, one gdb thread
//! per vCPU, with `monitor` commands that drive snapshots and replay.

pub mod arch;
pub mod conn;
pub mod debugregs;
pub mod host_limits;
pub mod monitor;
pub mod regs;
pub mod session;
pub mod target;
pub mod vcpu_ops;
pub mod walk;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};

use crate::controller::Vmm;
use conn::{GdbConn, Stream};

/// Where the gdb server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GdbEndpoint {
    /// A Unix socket at this path (`target remote PATH` in gdb).
    Unix(PathBuf),
    /// A TCP address (`target remote HOST:PORT`); port 0 picks a free one.
    Tcp(SocketAddr),
}

impl fmt::Display for GdbEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GdbEndpoint::Unix(p) => write!(f, "{}", p.display()),
            GdbEndpoint::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// `PUT /debugger`: where to listen (exactly one of the two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebuggerStart {
    /// A Unix socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    /// A TCP address, e.g. `127.0.0.1:1234`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_address: Option<String>,
}

impl DebuggerStart {
    /// The endpoint asked for, or what is wrong with the request.
    pub fn endpoint(&self) -> Result<GdbEndpoint, String> {
        match (&self.socket_path, &self.tcp_address) {
            (Some(p), None) => Ok(GdbEndpoint::Unix(p.clone())),
            (None, Some(a)) => a
                .parse()
                .map(GdbEndpoint::Tcp)
                .map_err(|e| format!("tcp_address {a:?}: {e} (expected e.g. 127.0.0.1:1234)")),
            _ => Err("give exactly one of socket_path and tcp_address".into()),
        }
    }
}

/// `GET /debugger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GdbStatus {
    /// Where the server listens (the TCP port actually bound).
    pub listening: String,
    /// Whether a debugger is connected.
    pub attached: bool,
}

/// The gdb server of a VMM: accepts one debugger at a time.
pub struct GdbServer {
    listening: String,
    attached: Arc<AtomicBool>,
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl GdbServer {
    /// Listens on `endpoint` and serves debuggers on a thread of its own.
    pub fn start(vmm: Weak<Vmm>, endpoint: &GdbEndpoint) -> std::io::Result<GdbServer> {
        let (listener, listening) = match endpoint {
            GdbEndpoint::Unix(path) => {
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    std::fs::remove_file(path)?;
                }
                let l = UnixListener::bind(path)?;
                (Listener::Unix(l), path.display().to_string())
            }
            GdbEndpoint::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    log::warn!(
                        "gdb server on {addr}, not a loopback address: anyone who can reach it \
                         controls the guest"
                    );
                }
                let l = TcpListener::bind(addr)?;
                let bound = l.local_addr()?;
                (Listener::Tcp(l), bound.to_string())
            }
        };
        let attached = Arc::new(AtomicBool::new(false));
        let flag = attached.clone();
        std::thread::Builder::new()
            .name("gdb-server".into())
            .spawn(move || accept_loop(listener, vmm, flag))?;
        Ok(GdbServer {
            listening,
            attached,
        })
    }

    /// Where it listens and whether a debugger is attached.
    pub fn status(&self) -> GdbStatus {
        GdbStatus {
            listening: self.listening.clone(),
            attached: self.attached.load(Ordering::SeqCst),
        }
    }
}

fn accept_loop(listener: Listener, vmm: Weak<Vmm>, attached: Arc<AtomicBool>) {
    loop {
        let (stream, peer) = match &listener {
            Listener::Unix(l) => match l.accept() {
                Ok((s, _)) => (Stream::Unix(s), "the Unix socket".to_string()),
                Err(e) => {
                    log::warn!("gdb: accept: {e}");
                    continue;
                }
            },
            Listener::Tcp(l) => match l.accept() {
                Ok((s, a)) => (Stream::Tcp(s), a.to_string()),
                Err(e) => {
                    log::warn!("gdb: accept: {e}");
                    continue;
                }
            },
        };
        let Some(vmm) = vmm.upgrade() else {
            return;
        };
        if attached.swap(true, Ordering::SeqCst) {
            log::warn!("gdb: refused a second debugger from {peer}: one is already attached");
            drop(stream);
            continue;
        }
        let flag = attached.clone();
        let spawned = std::thread::Builder::new()
            .name("gdb-session".into())
            .spawn(move || {
                session::run(vmm, GdbConn::new(stream), &peer);
                flag.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::error!("gdb: cannot start a session thread: {e}");
            attached.store(false, Ordering::SeqCst);
        }
    }
}
