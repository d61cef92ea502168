//! Which old segments a buffer deletes.
//!
//! Segments are deleted whole, oldest first, and only up to a *cut point*: by default a
//! segment that starts at a snapshot which still exists, so that the oldest segment kept
//! starts a replayable unit ("snapshot S + the events after S"). The limits pick the
//! newest cut point that still keeps the whole time window (the last cut point starting at
//! or before `newest - window`), or the oldest one leaving at most `max_bytes` after it;
//! the later of the two wins. Then:
//!
//! - if a segment at or after that point starts at an existing snapshot, the first such
//!   is the cut (segments before it cannot be replayed: their snapshot is gone);
//! - otherwise the latest existing snapshot before it is the cut (deleting more would
//!   leave nothing to replay the newest events from), so limits can be exceeded until the
//!   next snapshot;
//! - if no snapshot exists at all, the limits alone decide, at session or snapshot starts.
//!
//! Nothing is deleted while the data is within both limits. VM time restarts with each
//! recording session; for the window, sessions are laid end to end (each starting where
//! the previous one's last record was).

use super::config::Retention;
use super::format::header::SegmentStart;

/// What retention knows about a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Why it starts.
    pub start: SegmentStart,
    /// Its recording session (any value identifying it; consecutive segments of one
    /// session share it). A segment starting with `RecordingStarted` always starts a new
    /// session.
    pub session: u64,
    /// VM time of its first record (`None` if it has none).
    pub first_vm_ns: Option<u64>,
    /// VM time of its last record.
    pub last_vm_ns: Option<u64>,
    /// Its size in bytes.
    pub bytes: u64,
}

/// How many of `segments` (oldest first; the last is the newest) to delete from the front.
pub fn plan_retention(
    segments: &[SegmentSpan],
    retention: &Retention,
    snapshot_exists: &dyn Fn(&str) -> bool,
) -> usize {
    let n = segments.len();
    if n <= 1 || retention.is_unlimited() {
        return 0;
    }
    // One timeline across sessions: each session's VM time is shifted to start where the
    // previous session ended.
    let mut keys: Vec<i128> = Vec::with_capacity(n);
    let mut shift: i128 = 0;
    let mut last_local: u64 = 0;
    let mut end: i128 = 0;
    for (i, s) in segments.iter().enumerate() {
        let first = s.first_vm_ns.unwrap_or(last_local);
        if i > 0
            && (s.session != segments[i - 1].session || s.start == SegmentStart::RecordingStarted)
        {
            shift = end - i128::from(first);
        }
        keys.push(shift + i128::from(first));
        last_local = s.last_vm_ns.unwrap_or(first);
        end = end.max(shift + i128::from(last_local));
    }
    let newest = end;
    let cands: Vec<usize> = (0..n)
        .filter(|&i| {
            !retention.require_snapshot || i == 0 || segments[i].start != SegmentStart::Continuation
        })
        .collect();
    let last_cand = cands.last().copied().unwrap_or(0);
    let k_time = retention.window_ns.map_or(0, |w| {
        let threshold = newest - i128::from(w);
        cands
            .iter()
            .rev()
            .find(|&&c| keys[c] <= threshold)
            .copied()
            .unwrap_or(0)
    });
    let k_bytes = retention.max_bytes.map_or(0, |max| {
        let mut suffix = vec![0u64; n + 1];
        for i in (0..n).rev() {
            suffix[i] = suffix[i + 1].saturating_add(segments[i].bytes);
        }
        cands
            .iter()
            .find(|&&c| suffix[c] <= max)
            .copied()
            .unwrap_or(last_cand)
    });
    let k = k_time.max(k_bytes);
    if k == 0 || !retention.require_snapshot {
        return k;
    }
    let valid = |c: usize| segments[c].start.snapshot().is_some_and(snapshot_exists);
    if let Some(&j) = cands.iter().find(|&&c| c >= k && valid(c)) {
        return j;
    }
    if let Some(&j) = cands.iter().rev().find(|&&c| c < k && valid(c)) {
        return j;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: SegmentStart, t0: u64, t1: u64) -> SegmentSpan {
        SegmentSpan {
            start,
            session: 1,
            first_vm_ns: Some(t0),
            last_vm_ns: Some(t1),
            bytes: 100,
        }
    }

    fn snap(i: u64) -> SegmentStart {
        SegmentStart::Snapshot(format!("s{i}"))
    }

    /// Recording from 0, a snapshot every 10 s up to 110, a continuation inside each.
    fn run() -> Vec<SegmentSpan> {
        let mut v = vec![seg(SegmentStart::RecordingStarted, 0, 9)];
        for i in 1..12 {
            v.push(seg(snap(i * 10), i * 10, i * 10 + 4));
            v.push(seg(SegmentStart::Continuation, i * 10 + 5, i * 10 + 9));
        }
        v
    }

    #[test]
    fn window_cuts_at_the_snapshot_before_it() {
        let r = Retention {
            window_ns: Some(30),
            ..Retention::default()
        };
        let segs = run();
        // Newest 119, threshold 89: the snapshot at 80 is the last cut point not after it.
        let k = plan_retention(&segs, &r, &|_| true);
        assert_eq!(segs[k].start, snap(80));
        // Snapshot 80 is gone: the next existing one.
        let k = plan_retention(&segs, &r, &|id| id != "s80");
        assert_eq!(segs[k].start, snap(90));
        // No snapshot after the point exists: the latest existing before it.
        let k = plan_retention(&segs, &r, &|id| id == "s50" || id == "s60");
        assert_eq!(segs[k].start, snap(60));
        // None at all: the limits alone, at a chain start.
        let k = plan_retention(&segs, &r, &|_| false);
        assert_eq!(segs[k].start, snap(80));
    }

    #[test]
    fn nothing_within_limits_is_deleted() {
        let segs = run();
        let r = Retention {
            window_ns: Some(1000),
            max_bytes: Some(1 << 20),
            ..Retention::default()
        };
        assert_eq!(plan_retention(&segs, &r, &|_| false), 0);
        assert_eq!(plan_retention(&segs, &Retention::default(), &|_| true), 0);
    }

    #[test]
    fn bytes_limit_and_any_boundary() {
        let segs = run();
        let r = Retention {
            max_bytes: Some(450),
            ..Retention::default()
        };
        // 450 bytes hold 4 segments; the chain starting at snapshot 100 has 4.
        let k = plan_retention(&segs, &r, &|_| true);
        assert_eq!(segs[k].start, snap(100));
        let r = Retention {
            max_bytes: Some(450),
            require_snapshot: false,
            ..Retention::default()
        };
        assert_eq!(plan_retention(&segs, &r, &|_| true), segs.len() - 4);
    }

    #[test]
    fn earlier_sessions_are_older() {
        let mut segs = run();
        for s in &mut segs[..7] {
            s.session = 0;
        }
        // A new session restarts VM time at 0.
        let mut t = 0;
        for s in &mut segs[7..] {
            s.first_vm_ns = Some(t);
            s.last_vm_ns = Some(t + 4);
            t += 5;
        }
        let r = Retention {
            window_ns: Some(1000),
            ..Retention::default()
        };
        assert_eq!(plan_retention(&segs, &r, &|_| true), 0);
        // The old session ends at 39 and the new one spans 79 ns after it: a 100 ns
        // window reaches back to 18 in the old one, inside the chain of snapshot 10.
        let r = Retention {
            window_ns: Some(100),
            ..Retention::default()
        };
        let k = plan_retention(&segs, &r, &|_| true);
        assert_eq!(segs[k].start, snap(10));
        let r = Retention {
            window_ns: Some(10),
            ..Retention::default()
        };
        let k = plan_retention(&segs, &r, &|_| true);
        assert!(k >= 7, "the older session goes first (cut at {k})");
    }
}
