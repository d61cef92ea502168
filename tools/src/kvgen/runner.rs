//! A run in progress: sending, receiving, giving up on lost requests, checking replies.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::journal::{request_json, Journal};
use super::model::{self, Check, Model, State};
use super::plan::{Planned, Sender};
use super::summary::{Latency, Mismatch, Summary, TriggerOutcome};
use super::wire::{parse_reply, Reply};
use super::{Config, Initial, KvgenError};

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
pub(super) struct Arrival {
    pub(super) socket: usize,
    pub(super) from: SocketAddr,
    pub(super) bytes: Vec<u8>,
    pub(super) at: Instant,
}

/// State of a run in progress.
pub(super) struct Runner<'a> {
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

impl<'a> Runner<'a> {
    /// A run of `planned` requests, journaled to `journal`.
    pub(super) fn new(cfg: &'a Config, planned: usize, journal: Journal) -> Self {
        Runner {
            cfg,
            planned: planned as u64,
            target: SocketAddr::V4(cfg.target),
            exchanges: Vec::with_capacity(planned),
            inflight: HashMap::new(),
            order: VecDeque::new(),
            unexpected: 0,
            journal,
        }
    }
}

impl Runner<'_> {
    pub(super) fn drive(
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

    pub(super) fn summarize(
        &mut self,
        start: Instant,
        end: Instant,
    ) -> Result<Summary, KvgenError> {
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
