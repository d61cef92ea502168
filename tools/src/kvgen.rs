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

pub mod model;
pub mod plan;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use model::{Check, Model, State};
use plan::{PlanSpec, Planned, Sender};
use wire::{parse_reply, Reply};

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

/// A reply that disagreed with the model.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Position in the plan.
    pub seq: u64,
    /// Request id.
    pub id: u32,
    /// Client address.
    pub client: String,
    /// The request, as sent.
    pub request: String,
    /// What the model expected.
    pub expected: String,
    /// What came back.
    pub got: String,
}

/// What happened to the trigger sequence.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerOutcome {
    /// The trigger client's address.
    pub client: String,
    /// Whether the whole sequence was sent.
    pub sent: bool,
    /// The 256-byte PUT was answered OK.
    pub blob_stored: bool,
    /// The second PUT was answered OK.
    pub note_stored: bool,
    /// The final GET got no reply: the service crashed, as it should.
    pub crashed: bool,
}

/// Latency figures, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests planned.
    pub planned: u64,
    /// Requests sent.
    pub sent: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Requests that got no reply in time.
    pub lost: u64,
    /// Datagrams that matched no request awaiting a reply (late, duplicate, garbled).
    pub unexpected: u64,
    /// Replies exactly as the model expected.
    pub verified: u64,
    /// Replies accepted without an exact expectation.
    pub unverified: u64,
    /// Replies that disagreed with the model (or came to the wrong client).
    pub mismatches: Vec<Mismatch>,
    /// Replies per status word (`OK`, `NOT_FOUND`, `ERR`).
    pub statuses: HashMap<String, u64>,
    /// Seconds from the first send to the end of the run.
    pub elapsed_s: f64,
    /// Requests sent per second.
    pub sent_per_s: f64,
    /// Reply latency.
    pub latency: Latency,
    /// The trigger sequence's outcome, in trigger mode.
    pub trigger: Option<TriggerOutcome>,
    /// The model at the end (for `--state-out`).
    #[serde(skip)]
    pub state: State,
}

impl Summary {
    /// True if every reply was right, none went missing and, in trigger mode, the
    /// sequence crashed the service (its final GET, and only that, unanswered).
    pub fn passed(&self) -> bool {
        let lost_ok = match &self.trigger {
            Some(t) => t.sent && t.blob_stored && t.note_stored && t.crashed && self.lost == 1,
            None => self.lost == 0,
        };
        self.mismatches.is_empty() && self.unexpected == 0 && lost_ok
    }
}

/// One request of the run and what came of it.
struct Exchange {
    planned: Planned,
    socket: usize,
    sent: Option<Instant>,
    reply: Option<(Reply, Instant)>,
    /// Set when the reply arrived at another client or from another address.
    misrouted: Option<String>,
}

/// A datagram received by a client socket.
struct Arrival {
    socket: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
    at: Instant,
}

/// The JSON-lines journal.
struct Journal {
    out: Option<(PathBuf, BufWriter<File>)>,
    start: Instant,
}

impl Journal {
    fn open(path: Option<&Path>, start: Instant) -> Result<Self, KvgenError> {
        let out = match path {
            None => None,
            Some(p) => {
                let f = File::create(p).map_err(|e| KvgenError::File {
                    path: p.to_path_buf(),
                    detail: format!("cannot create the journal: {e}"),
                })?;
                Some((p.to_path_buf(), BufWriter::new(f)))
            }
        };
        Ok(Journal { out, start })
    }

    fn t_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    fn write(&mut self, event: serde_json::Value) -> Result<(), KvgenError> {
        if let Some((path, w)) = &mut self.out {
            serde_json::to_writer(&mut *w, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| KvgenError::File {
                    path: path.clone(),
                    detail: format!("cannot write the journal: {e}"),
                })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), KvgenError> {
        if let Some((path, w)) = &mut self.out {
            w.flush().map_err(|e| KvgenError::File {
                path: path.clone(),
                detail: format!("cannot write the journal: {e}"),
            })?;
        }
        Ok(())
    }
}

/// The request as a JSON object for the journal.
fn request_json(p: &Planned, client: SocketAddrV4) -> serde_json::Value {
    let mut v = json!({
        "seq": p.seq,
        "id": p.id,
        "client": client.to_string(),
        "trigger": p.sender == Sender::Trigger,
        "op": p.op.verb(),
    });
    if let Some(k) = p.op.key() {
        v["key"] = json!(k);
    }
    if let wire::Op::Put { value, .. } = &p.op {
        v["value"] = json!(value);
    }
    v
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

    let mut runner = Runner {
        cfg,
        planned: plan.len() as u64,
        target: SocketAddr::V4(cfg.target),
        exchanges: Vec::with_capacity(plan.len()),
        inflight: HashMap::new(),
        order: VecDeque::new(),
        unexpected: 0,
        journal,
    };
    let result = runner.drive(plan, &sockets, &rx, start);
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.join();
    }
    result?;
    let end = Instant::now();
    runner.summarize(start, end)
}

/// State of a run in progress.
struct Runner<'a> {
    cfg: &'a Config,
    planned: u64,
    target: SocketAddr,
    exchanges: Vec<Exchange>,
    /// Requests awaiting a reply: id -> exchange index.
    inflight: HashMap<u32, usize>,
    /// Exchange indices in sending order, for timeouts (answered ones skipped).
    order: VecDeque<usize>,
    unexpected: u64,
    journal: Journal,
}

impl Runner<'_> {
    fn drive(
        &mut self,
        plan: Vec<Planned>,
        sockets: &[UdpSocket],
        rx: &mpsc::Receiver<Arrival>,
        start: Instant,
    ) -> Result<(), KvgenError> {
        let rate = self.cfg.rate;
        for (k, planned) in plan.into_iter().enumerate() {
            let due =
                (rate > 0).then(|| start + Duration::from_secs_f64(k as f64 / f64::from(rate)));
            loop {
                let now = Instant::now();
                self.expire(now)?;
                let window_open = if rate == 0 {
                    self.inflight.is_empty()
                } else {
                    self.inflight.len() < self.cfg.window
                };
                let on_time = due.is_none_or(|d| now >= d);
                if window_open && on_time {
                    break;
                }
                let mut wait = self.next_expiry().map_or(self.cfg.timeout, |t| t - now);
                if window_open {
                    if let Some(d) = due {
                        wait = wait.min(d - now);
                    }
                }
                self.receive(rx, wait)?;
            }
            self.send(planned, sockets)?;
        }
        while !self.inflight.is_empty() {
            let now = Instant::now();
            self.expire(now)?;
            if let Some(t) = self.next_expiry() {
                self.receive(rx, t - now)?;
            }
        }
        // Anything still queued arrived after its request was given up.
        while let Ok(a) = rx.try_recv() {
            self.arrival(a)?;
        }
        Ok(())
    }

    fn send(&mut self, planned: Planned, sockets: &[UdpSocket]) -> Result<(), KvgenError> {
        let socket = match planned.sender {
            Sender::Client(i) => i,
            Sender::Trigger => self.cfg.plan.clients,
        };
        let from = self.cfg.sender_addr(planned.sender);
        let datagram = planned.op.encode(planned.id);
        let now = Instant::now();
        sockets[socket]
            .send_to(&datagram, self.cfg.target)
            .map_err(|source| KvgenError::Send {
                id: planned.id,
                from,
                to: self.cfg.target,
                source,
            })?;
        let mut event = request_json(&planned, from);
        event["event"] = json!("request");
        event["t_us"] = json!(self.journal.t_us(now));
        self.journal.write(event)?;
        let index = self.exchanges.len();
        self.inflight.insert(planned.id, index);
        self.order.push_back(index);
        self.exchanges.push(Exchange {
            planned,
            socket,
            sent: Some(now),
            reply: None,
            misrouted: None,
        });
        Ok(())
    }

    /// Wait up to `wait` for one datagram and take every one already queued.
    fn receive(&mut self, rx: &mpsc::Receiver<Arrival>, wait: Duration) -> Result<(), KvgenError> {
        match rx.recv_timeout(wait) {
            Ok(a) => self.arrival(a)?,
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
                return Ok(());
            }
        }
        while let Ok(a) = rx.try_recv() {
            self.arrival(a)?;
        }
        Ok(())
    }

    fn arrival(&mut self, a: Arrival) -> Result<(), KvgenError> {
        let text = String::from_utf8_lossy(&a.bytes).into_owned();
        let t_us = self.journal.t_us(a.at);
        let parsed = parse_reply(&a.bytes);
        let index = parsed.as_ref().and_then(|(id, _)| self.inflight.remove(id));
        let (Some((_, reply)), Some(index)) = (parsed, index) else {
            self.unexpected += 1;
            return self.journal.write(json!({
                "event": "unexpected",
                "client": a.from.to_string(),
                "socket": a.socket,
                "reply": text,
                "t_us": t_us,
            }));
        };
        let ex = &mut self.exchanges[index];
        let client = self.cfg.sender_addr(ex.planned.sender);
        if a.socket != ex.socket || a.from != self.target {
            ex.misrouted = Some(format!(
                "reply from {} arrived at client {}",
                a.from,
                self.cfg.sender_addr(match a.socket {
                    s if s < self.cfg.plan.clients => Sender::Client(s),
                    _ => Sender::Trigger,
                })
            ));
        }
        let latency = ex
            .sent
            .map_or(0, |s| a.at.saturating_duration_since(s).as_micros() as u64);
        ex.reply = Some((reply, a.at));
        let id = ex.planned.id;
        self.journal.write(json!({
            "event": "reply",
            "id": id,
            "client": client.to_string(),
            "reply": text,
            "t_us": t_us,
            "latency_us": latency,
        }))
    }

    /// When the oldest request awaiting a reply times out.
    fn next_expiry(&mut self) -> Option<Instant> {
        while let Some(&i) = self.order.front() {
            if self.exchanges[i].reply.is_none()
                && self.inflight.contains_key(&self.exchanges[i].planned.id)
            {
                return self.exchanges[i].sent.map(|s| s + self.cfg.timeout);
            }
            self.order.pop_front();
        }
        None
    }

    /// Give up on requests older than the timeout.
    fn expire(&mut self, now: Instant) -> Result<(), KvgenError> {
        while let Some(deadline) = self.next_expiry() {
            if deadline > now {
                break;
            }
            let Some(i) = self.order.pop_front() else {
                break;
            };
            let ex = &self.exchanges[i];
            self.inflight.remove(&ex.planned.id);
            let event = json!({
                "event": "lost",
                "id": ex.planned.id,
                "client": self.cfg.sender_addr(ex.planned.sender).to_string(),
                "t_us": self.journal.t_us(now),
            });
            self.journal.write(event)?;
        }
        Ok(())
    }

    fn summarize(&mut self, start: Instant, end: Instant) -> Result<Summary, KvgenError> {
        let mut model = match &self.cfg.initial {
            Initial::Empty => Model::empty(),
            Initial::Unknown => Model::unknown(),
            Initial::State(s) => Model::from_state(s),
        };
        let mut s = Summary {
            planned: self.planned,
            sent: 0,
            replies: 0,
            lost: 0,
            unexpected: self.unexpected,
            verified: 0,
            unverified: 0,
            mismatches: Vec::new(),
            statuses: HashMap::new(),
            elapsed_s: end.duration_since(start).as_secs_f64(),
            sent_per_s: 0.0,
            latency: Latency::default(),
            trigger: None,
            state: State::default(),
        };
        let mut latencies = Vec::new();
        let mut mismatch_events = Vec::new();
        for ex in &self.exchanges {
            s.sent += 1;
            let reply = ex.reply.as_ref().map(|(r, _)| r);
            match (&ex.reply, ex.sent) {
                (Some((r, at)), Some(sent)) => {
                    s.replies += 1;
                    *s.statuses.entry(r.status().to_string()).or_default() += 1;
                    latencies.push(at.saturating_duration_since(sent).as_micros() as u64);
                }
                _ => s.lost += 1,
            }
            let client = self.cfg.sender_addr(ex.planned.sender).to_string();
            let request =
                String::from_utf8_lossy(&ex.planned.op.encode(ex.planned.id)).into_owned();
            let got = reply.map_or_else(|| "(no reply)".to_string(), model::wire_text);
            match model.apply(&ex.planned.op, reply) {
                Check::Verified => s.verified += 1,
                Check::Unverified => s.unverified += 1,
                Check::Mismatch { expected } => s.mismatches.push(Mismatch {
                    seq: ex.planned.seq,
                    id: ex.planned.id,
                    client: client.clone(),
                    request: request.clone(),
                    expected,
                    got: got.clone(),
                }),
            }
            if let Some(why) = &ex.misrouted {
                s.mismatches.push(Mismatch {
                    seq: ex.planned.seq,
                    id: ex.planned.id,
                    client,
                    request,
                    expected: format!("a reply from {} to this client", self.cfg.target),
                    got: why.clone(),
                });
            }
        }
        for m in &s.mismatches {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            v["event"] = json!("mismatch");
            mismatch_events.push(v);
        }
        for v in mismatch_events {
            self.journal.write(v)?;
        }
        latencies.sort_unstable();
        if let Some(&max) = latencies.last() {
            let pick = |q: usize| latencies[(latencies.len() - 1) * q / 100];
            s.latency = Latency {
                p50_us: pick(50),
                p99_us: pick(99),
                max_us: max,
            };
        }
        s.sent_per_s = if s.elapsed_s > 0.0 {
            s.sent as f64 / s.elapsed_s
        } else {
            0.0
        };
        if self.cfg.plan.trigger_after.is_some() {
            let t: Vec<&Exchange> = self
                .exchanges
                .iter()
                .filter(|e| e.planned.sender == Sender::Trigger)
                .collect();
            let ok = |i: usize| {
                t.get(i)
                    .is_some_and(|e| matches!(e.reply, Some((Reply::Ok, _))))
            };
            s.trigger = Some(TriggerOutcome {
                client: self.cfg.trigger_addr().to_string(),
                sent: t.len() == 3,
                blob_stored: ok(0),
                note_stored: ok(1),
                crashed: t.len() == 3 && t[2].reply.is_none(),
            });
        }
        s.state = model.state();
        let mut summary = serde_json::to_value(&s).unwrap_or_default();
        summary["event"] = json!("summary");
        summary["passed"] = json!(s.passed());
        self.journal.write(summary)?;
        self.journal.finish()?;
        Ok(s)
    }
}

/// Read a state file written with [`write_state`].
pub fn read_state(path: &Path) -> Result<State, KvgenError> {
    let text = std::fs::read_to_string(path).map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("cannot read the state: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("not a kvgen state file: {e}"),
    })
}

/// Write the model's content for a later run's [`Initial::State`].
pub fn write_state(path: &Path, state: &State) -> Result<(), KvgenError> {
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("cannot write the state: {e}"),
    })
}
