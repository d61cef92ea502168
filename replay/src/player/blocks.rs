//! Block requests in a clone: the clone reads its own copy of the volume, so replay does
//! not deliver block data; it checks it (strict mode: each completion against the
//! recorded one, in order, per device), repeats recorded failures, and injects seeded
//! faults.

use std::collections::{BTreeMap, VecDeque};

use crate::event::{BlkData, BlkRequestType, Event, EventKind, SourceId};
use crate::hash::Hash128;
use crate::player::entropy::{BlkAction, EntropyPlan, Injection};

/// A completed request as the clone's device saw it.
#[derive(Clone, Debug)]
pub struct Completion {
    /// Request type.
    pub request: BlkRequestType,
    /// First sector.
    pub sector: u64,
    /// Bytes.
    pub len: u32,
    /// virtio status.
    pub status: u8,
    /// Hash of the data returned (reads).
    pub hash: Option<Hash128>,
}

/// Per-device state of block replay.
pub struct BlockReplay {
    recorded: BTreeMap<SourceId, VecDeque<Event>>,
    requests: BTreeMap<SourceId, u64>,
    strict: bool,
}

/// What to do with a request about to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// Fail it with IOERR.
    pub error: bool,
    /// Hold its completion this long.
    pub latency_ns: u64,
    /// The request's index among its device's requests in the clone.
    pub index: u64,
    /// What was done to it, for the injection log (empty when nothing).
    pub what: Vec<String>,
}

impl BlockReplay {
    /// Block replay over the recorded completions (in seq order).
    pub fn new(completions: &[Event], strict: bool) -> Self {
        let mut recorded: BTreeMap<SourceId, VecDeque<Event>> = BTreeMap::new();
        for e in completions {
            recorded.entry(e.source).or_default().push_back(e.clone());
        }
        BlockReplay {
            recorded,
            requests: BTreeMap::new(),
            strict,
        }
    }

    /// Decides the fate of the next request of `source` (covering `sectors` from
    /// `sector`): a recorded failure is repeated, and entropy may add an error or latency.
    pub fn before_request(
        &mut self,
        source: SourceId,
        sector: u64,
        sectors: u64,
        entropy: &EntropyPlan,
    ) -> Fault {
        let index = self.requests.entry(source).or_default();
        let n = *index;
        *index += 1;
        let recorded_error = self
            .recorded
            .get(&source)
            .and_then(|q| q.front())
            .is_some_and(
                |e| matches!(e.kind, EventKind::BlkCompletion { status, .. } if status != 0),
            );
        let action = entropy.blk(n, sector, sectors);
        let mut what = Vec::new();
        if recorded_error {
            what.push(format!("recorded io-error repeated at sector {sector}"));
        }
        let injected = BlkAction {
            error: action.error && !recorded_error,
            ..action
        };
        what.extend(
            Injection::blk(n, &injected, sector)
                .into_iter()
                .map(|i| i.what),
        );
        Fault {
            error: action.error || recorded_error,
            latency_ns: action.latency_ns,
            index: n,
            what,
        }
    }

    /// Checks a completed request against the next recorded one (strict mode); returns a
    /// description of the mismatch.
    pub fn completed(&mut self, source: SourceId, done: &Completion) -> Option<String> {
        let want = self.recorded.get_mut(&source).and_then(|q| q.pop_front());
        if !self.strict {
            return None;
        }
        let Some(want) = want else {
            return Some(format!(
                "{} of sector {} has no recorded completion left",
                done.request.name(),
                done.sector
            ));
        };
        let EventKind::BlkCompletion {
            request,
            sector,
            len,
            status,
            data,
        } = &want.kind
        else {
            return None;
        };
        let recorded_hash = data.hash();
        let same = *request == done.request
            && *sector == done.sector
            && *len == done.len
            && *status == done.status
            && (recorded_hash.is_none() || *data == BlkData::None || recorded_hash == done.hash);
        (!same).then(|| {
            format!(
                "seq {}: recorded {} sector {sector} len {len} status {status} hash {}, the \
                 clone got {} sector {} len {} status {} hash {}",
                want.seq,
                request.name(),
                recorded_hash.map_or("-".into(), |h| h.to_string()),
                done.request.name(),
                done.sector,
                done.len,
                done.status,
                done.hash.map_or("-".into(), |h| h.to_string()),
            )
        })
    }
}
