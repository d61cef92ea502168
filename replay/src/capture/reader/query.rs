//! Which part of a capture to read.

use crate::event::Event;
use crate::filter::Filter;

/// A selection of a buffer's events: a range (by seq, VM time or starting snapshot) and a
/// [`Filter`]. The default reads everything.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Which events.
    pub filter: Filter,
    /// Start at this seq.
    pub from_seq: Option<u64>,
    /// Stop after this seq (inclusive).
    pub to_seq: Option<u64>,
    /// Only events at or after this VM time.
    pub from_vm_ns: Option<u64>,
    /// Only events before this VM time.
    pub to_vm_ns: Option<u64>,
    /// Start at the (last) segment that starts at this snapshot.
    pub from_snapshot: Option<String>,
}

impl Query {
    /// Whether `e` is inside the range and passes the filter.
    pub fn matches(&self, e: &Event) -> bool {
        self.from_seq.is_none_or(|s| e.seq >= s)
            && self.to_seq.is_none_or(|s| e.seq <= s)
            && self.from_vm_ns.is_none_or(|t| e.vm_time_ns >= t)
            && self.to_vm_ns.is_none_or(|t| e.vm_time_ns < t)
            && self.filter.matches(e)
    }
}
