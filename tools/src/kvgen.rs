//! `reprise-kvgen`: traffic for the test guest's `kv` workload, a key-value service
//! over UDP. Several clients — UDP sockets on distinct source ports, spread over one or
//! more source addresses — send a seeded sequence of PUT/GET/DEL requests at a chosen
//! rate; every request and reply is written to a JSON-lines journal with its time, and
//! every reply is checked against a model of the store. In trigger mode one further
//! client, on an address and port of its own, sends the sequence that crashes the
//! service (see [`plan::trigger_sequence`]) and the run ends there.
//!
//! The same seed and options always give the same requests in the same order from the
//! same clients ([`plan`]); timing, replies and losses do not change the sequence.

mod journal;
pub mod model;
pub mod plan;
mod runner;
mod state;
mod summary;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::json;

use journal::Journal;
use model::State;
use plan::{PlanSpec, Sender};
use runner::{Arrival, Runner};

pub use state::{read_state, write_state};
pub use summary::{Latency, Mismatch, Summary, TriggerOutcome};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KvgenError {
    /// The options do not make a valid run.
    #[error("invalid options: {0}")]
    Config(String),
    /// A client socket could not be bound.
    #[error("cannot bind a client socket to {addr}: {source}{}", bind_hint(source))]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A request could not be sent.
    #[error("cannot send request {id} from {from} to {to}: {source}")]
    Send {
        /// Request id.
        id: u32,
        /// Client address.
        from: SocketAddrV4,
        /// Service address.
        to: SocketAddrV4,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The journal or the state file could not be written or read.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => {
            " (the address must be configured on an interface, e.g. `ip addr add` on the TAP)"
        }
        Some(libc::EADDRINUSE) => " (another process uses this address and port)",
        _ => "",
    }
}

/// What the store holds when the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initial {
    /// Nothing (a fresh disk).
    Empty,
    /// Nothing is known: the first replies are learned, not checked.
    Unknown,
    /// What a previous run left (its `--state-out`).
    State(State),
}

/// A run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service.
    pub target: SocketAddrV4,
    /// Source addresses of the random clients (client i uses `sources[i % len]`).
    pub sources: Vec<Ipv4Addr>,
    /// Source port of random client 0; client i uses `port_base + i`.
    pub port_base: u16,
    /// Address of the trigger client; default: the first source, port `port_base + 1000`.
    pub trigger_source: Option<SocketAddrV4>,
    /// The requests.
    pub plan: PlanSpec,
    /// Requests per second (0: each request waits for the previous one's reply).
    pub rate: u32,
    /// Most requests awaiting a reply at once.
    pub window: usize,
    /// How long to wait for a reply before counting the request as lost.
    pub timeout: Duration,
    /// JSON-lines journal of requests, replies, losses, mismatches and the summary.
    pub journal: Option<PathBuf>,
    /// The store's content at the start.
    pub initial: Initial,
}

impl Config {
    /// Check the options.
    pub fn validate(&self) -> Result<(), KvgenError> {
        let bad = |m: String| Err(KvgenError::Config(m));
        let p = &self.plan;
        if p.clients == 0 || p.clients > 1000 {
            return bad(format!("clients must be 1-1000, not {}", p.clients));
        }
        if usize::from(self.port_base) + p.clients > 65536 || self.port_base == 0 {
            return bad(format!(
                "ports {}..{} do not fit",
                self.port_base,
                usize::from(self.port_base) + p.clients
            ));
        }
        if self.sources.is_empty() {
            return bad("at least one source address is needed".into());
        }
        if p.keys == 0 {
            return bad("the key space must hold at least one key".into());
        }
        let longest = p.key(u64::from(p.keys - 1));
        if longest.len() > wire::MAX_KEY
            || !p.key_prefix.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return bad(format!(
                "keys such as {longest:?} must be 1-{} printable characters without spaces",
                wire::MAX_KEY
            ));
        }
        let (lo, hi) = p.value_len;
        if lo > hi || hi > wire::MAX_VALUE {
            return bad(format!(
                "value lengths {lo}-{hi}: need min <= max <= {}",
                wire::MAX_VALUE
            ));
        }
        if p.mix.put == 0 && p.mix.get == 0 && p.mix.del == 0 {
            return bad("the operation mix is all zero".into());
        }
        if self.window == 0 {
            return bad("the window must be at least 1".into());
        }
        let total = p.plan_len_bound();
        if total > u64::from(u32::MAX) {
            return bad(format!("{total} requests do not fit 32-bit ids"));
        }
        if let Some(after) = p.trigger_after {
            if after > p.requests {
                return bad(format!(
                    "the trigger comes after {after} random requests, but only {} are sent",
                    p.requests
                ));
            }
            let t = self.trigger_addr();
            if (0..p.clients).any(|i| self.client_addr(i) == t) {
                return bad(format!("the trigger client {t} is also a random client"));
            }
        }
        Ok(())
    }

    /// Address of random client `i`.
    pub fn client_addr(&self, i: usize) -> SocketAddrV4 {
        SocketAddrV4::new(
            self.sources[i % self.sources.len()],
            self.port_base + i as u16,
        )
    }

    /// Address of the trigger client.
    pub fn trigger_addr(&self) -> SocketAddrV4 {
        self.trigger_source.unwrap_or_else(|| {
            SocketAddrV4::new(self.sources[0], self.port_base.wrapping_add(1000))
        })
    }

    fn sender_addr(&self, s: Sender) -> SocketAddrV4 {
        match s {
            Sender::Client(i) => self.client_addr(i),
            Sender::Trigger => self.trigger_addr(),
        }
    }
}

impl PlanSpec {
    /// An upper bound of the plan's length.
    fn plan_len_bound(&self) -> u64 {
        let sweep = if self.sweep { u64::from(self.keys) } else { 0 };
        sweep + self.requests + 4
    }
}

/// Run the traffic described by `cfg` and check every reply.
pub fn run(cfg: &Config) -> Result<Summary, KvgenError> {
    cfg.validate()?;
    let plan = cfg.plan.plan();
    let trigger_mode = cfg.plan.trigger_after.is_some();
    let mut addrs: Vec<SocketAddrV4> = (0..cfg.plan.clients).map(|i| cfg.client_addr(i)).collect();
    if trigger_mode {
        addrs.push(cfg.trigger_addr());
    }
    let sockets = addrs
        .iter()
        .map(|&addr| UdpSocket::bind(addr).map_err(|source| KvgenError::Bind { addr, source }))
        .collect::<Result<Vec<_>, _>>()?;

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Arrival>();
    let mut receivers = Vec::new();
    for (socket, sock) in sockets.iter().enumerate() {
        let sock = sock.try_clone().map_err(|source| KvgenError::Bind {
            addr: addrs[socket],
            source,
        })?;
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let (stop, tx) = (stop.clone(), tx.clone());
        receivers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let at = Instant::now();
                        let bytes = buf[..n].to_vec();
                        if tx
                            .send(Arrival {
                                socket,
                                from,
                                bytes,
                                at,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                                // An ICMP error for an earlier datagram.
                                | std::io::ErrorKind::ConnectionRefused
                                | std::io::ErrorKind::ConnectionReset
                        ) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);

    let start = Instant::now();
    let mut journal = Journal::open(cfg.journal.as_deref(), start)?;
    journal.write(json!({
        "event": "start",
        "target": cfg.target.to_string(),
        "seed": cfg.plan.seed,
        "rate": cfg.rate,
        "planned": plan.len(),
        "clients": addrs[..cfg.plan.clients].iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "trigger_client": trigger_mode.then(|| cfg.trigger_addr().to_string()),
        "trigger_after": cfg.plan.trigger_after,
    }))?;

    let mut runner = Runner::new(cfg, plan.len(), journal);
    let result = runner.drive(plan, &sockets, &rx, start);
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.join();
    }
    result?;
    let end = Instant::now();
    runner.summarize(start, end)
}
