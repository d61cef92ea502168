//! The outcome of a run: counts, mismatches, latency and the trigger sequence's fate.

use std::collections::HashMap;

use serde::Serialize;

use super::model::State;

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
