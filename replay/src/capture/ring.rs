//! The bounded in-memory queue between `record()` (device threads) and a buffer's writer
//! thread. It stamps each buffer's sequence numbers, applies the overflow policy, and
//! carries the writer's commands (rotate, flush, stop) in order with the events.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::config::OverflowPolicy;
use crate::error::Result;
use crate::event::{Event, EventKind, GapReason, SourceId};

/// Something for the writer, in order.
pub(crate) enum Item {
    /// An event to write with this seq; `cost` bytes of the ring are released once written.
    Event {
        seq: u64,
        event: Arc<Event>,
        cost: usize,
    },
    /// Close the current segment; the next starts at this snapshot.
    Rotate(String),
    /// Write everything before, fsync, rewrite the index, then answer.
    Flush(SyncSender<Result<()>>),
    /// Like `Flush`, then close the segment and end the writer.
    Stop(SyncSender<Result<()>>),
}

/// Events dropped since the last one that fit.
struct Lost {
    first_seq: u64,
    count: u64,
    bytes: u64,
    vm_time_ns: u64,
    progress: u64,
}

struct State {
    items: VecDeque<Item>,
    used: usize,
    next_seq: u64,
    lost: Option<Lost>,
    dropped_events: u64,
    dropped_bytes: u64,
    closed: bool,
    writer_gone: bool,
    /// The writer sleeps on `has_items` (only then does a push wake it).
    writer_waiting: bool,
}

/// How long the writer lets events gather after it is woken, so that it wakes, encodes and
/// writes per batch rather than per event (recording time is stamped at `record()`, so the
/// delay changes no timestamp).
const GATHER: Duration = Duration::from_micros(500);

/// The queue of one buffer.
pub(crate) struct Ring {
    state: Mutex<State>,
    has_items: Condvar,
    has_room: Condvar,
    capacity: usize,
    policy: OverflowPolicy,
}

impl Ring {
    /// An empty ring whose first event gets `next_seq`.
    pub(crate) fn new(capacity: usize, policy: OverflowPolicy, next_seq: u64) -> Ring {
        Ring {
            state: Mutex::new(State {
                items: VecDeque::new(),
                used: 0,
                next_seq,
                lost: None,
                dropped_events: 0,
                dropped_bytes: 0,
                closed: false,
                writer_gone: false,
                writer_waiting: false,
            }),
            has_items: Condvar::new(),
            has_room: Condvar::new(),
            capacity,
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (every update is a
        // single assignment), so the poison flag is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event` (whose own `seq` is ignored). Markers (`cost` 0) always fit; other
    /// events wait or are dropped per the policy when the ring is full. Returns false if
    /// the ring is closed.
    pub(crate) fn push_event(&self, event: &Arc<Event>, cost: usize) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        if cost > 0 {
            match self.policy {
                OverflowPolicy::Drop => {
                    if st.used > 0 && st.used + cost > self.capacity {
                        let seq = st.next_seq;
                        st.next_seq += 1;
                        st.dropped_events += 1;
                        st.dropped_bytes += cost as u64;
                        let lost = st.lost.get_or_insert(Lost {
                            first_seq: seq,
                            count: 0,
                            bytes: 0,
                            vm_time_ns: event.vm_time_ns,
                            progress: event.progress,
                        });
                        lost.count += 1;
                        lost.bytes += event.kind.payload_len() as u64;
                        return true;
                    }
                }
                OverflowPolicy::Backpressure => {
                    while st.used > 0
                        && st.used + cost > self.capacity
                        && !st.writer_gone
                        && !st.closed
                    {
                        st = self.has_room.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    if st.closed {
                        return false;
                    }
                }
            }
        }
        Self::push_lost(&mut st);
        let seq = st.next_seq;
        st.next_seq += 1;
        st.used += cost;
        st.items.push_back(Item::Event {
            seq,
            event: Arc::clone(event),
            cost,
        });
        let wake = st.writer_waiting;
        drop(st);
        if wake {
            self.has_items.notify_one();
        }
        true
    }

    /// Queues the `Gap` marker for dropped events, if any.
    fn push_lost(st: &mut State) {
        if let Some(l) = st.lost.take() {
            let gap = Event {
                seq: l.first_seq,
                vm_time_ns: l.vm_time_ns,
                progress: l.progress,
                source: SourceId::RECORDER,
                kind: EventKind::Gap {
                    lost_events: l.count,
                    lost_bytes: l.bytes,
                    reason: GapReason::Overflow,
                },
            };
            st.items.push_back(Item::Event {
                seq: l.first_seq,
                event: Arc::new(gap),
                cost: 0,
            });
        }
    }

    /// Queues a command (after the `Gap` for dropped events, if any). Returns false if the
    /// ring is closed.
    pub(crate) fn push_command(&self, item: Item) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        Self::push_lost(&mut st);
        if matches!(item, Item::Stop(_)) {
            st.closed = true;
        }
        st.items.push_back(item);
        drop(st);
        self.has_items.notify_one();
        self.has_room.notify_all();
        true
    }

    /// Everything queued, waiting up to `timeout` for something to arrive (and, once
    /// woken by an event, [`GATHER`] more for others to join it, unless the ring is filling
    /// or a command waits).
    pub(crate) fn take(&self, timeout: Duration) -> Vec<Item> {
        let mut st = self.lock();
        if st.items.is_empty() {
            st.writer_waiting = true;
            st = self
                .has_items
                .wait_timeout(st, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            st.writer_waiting = false;
            let only_events = st.items.iter().all(|i| matches!(i, Item::Event { .. }));
            if !st.items.is_empty() && only_events && st.used < self.capacity / 4 {
                drop(st);
                std::thread::sleep(GATHER);
                st = self.lock();
            }
        }
        st.items.drain(..).collect()
    }

    /// Gives back ring space once events are written.
    pub(crate) fn release(&self, cost: usize) {
        if cost == 0 {
            return;
        }
        let mut st = self.lock();
        st.used = st.used.saturating_sub(cost);
        drop(st);
        self.has_room.notify_all();
    }

    /// The writer has ended: nothing waits for room any more, and nothing is accepted.
    pub(crate) fn writer_exited(&self) {
        let mut st = self.lock();
        st.writer_gone = true;
        st.closed = true;
        drop(st);
        self.has_room.notify_all();
    }

    /// (events dropped, their bytes, bytes queued, the next seq).
    pub(crate) fn counters(&self) -> (u64, u64, usize, u64) {
        let st = self.lock();
        (st.dropped_events, st.dropped_bytes, st.used, st.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64) -> Arc<Event> {
        Arc::new(Event {
            seq: 0,
            vm_time_ns: t,
            progress: t,
            source: SourceId(0),
            kind: EventKind::SerialOut {
                bytes: vec![0; 100],
            },
        })
    }

    fn seqs(items: &[Item]) -> Vec<(u64, &'static str)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Event { seq, event, .. } => Some((*seq, event.kind.name())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn drop_policy_accounts_with_a_gap() {
        let r = Ring::new(250, OverflowPolicy::Drop, 10);
        for t in 0..5 {
            assert!(r.push_event(&ev(t), 100));
        }
        // Two fit (200 bytes); three were dropped, consuming seqs 12..14.
        assert_eq!(r.counters().0, 3);
        let items = r.take(Duration::ZERO);
        assert_eq!(seqs(&items), [(10, "SerialOut"), (11, "SerialOut")]);
        r.release(200);
        assert!(r.push_event(&ev(9), 100));
        let items = r.take(Duration::ZERO);
        assert_eq!(seqs(&items), [(12, "Gap"), (15, "SerialOut")]);
        match &items[0] {
            Item::Event { event, .. } => assert_eq!(
                event.kind,
                EventKind::Gap {
                    lost_events: 3,
                    lost_bytes: 300,
                    reason: GapReason::Overflow
                }
            ),
            _ => unreachable!(),
        }
    }

    #[test]
    fn backpressure_waits_for_room() {
        let r = Arc::new(Ring::new(250, OverflowPolicy::Backpressure, 0));
        assert!(r.push_event(&ev(0), 100));
        assert!(r.push_event(&ev(1), 100));
        let r2 = Arc::clone(&r);
        let t = std::thread::spawn(move || r2.push_event(&ev(2), 100));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(r.counters().2, 200, "the third event waits");
        assert_eq!(r.take(Duration::ZERO).len(), 2);
        r.release(200);
        assert!(t.join().unwrap());
        assert_eq!(seqs(&r.take(Duration::ZERO)), [(2, "SerialOut")]);
        assert_eq!(r.counters().0, 0);
    }

    #[test]
    fn stop_closes() {
        let r = Ring::new(1000, OverflowPolicy::Backpressure, 0);
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        assert!(r.push_command(Item::Stop(tx)));
        assert!(!r.push_event(&ev(0), 10));
    }
}
