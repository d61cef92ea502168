//! Which snapshots periodic snapshotting may delete.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::error::Result;
use crate::manifest::{Manifest, SnapshotKind};
use crate::store::SnapshotStore;

/// The outcome of a retention policy over a set of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Snapshots the policy keeps, newest first.
    pub keep: Vec<String>,
    /// Snapshots the policy would drop but that must stay because a kept diff's chain
    /// needs them (consolidating their oldest kept descendant frees them), newest first.
    pub pinned: Vec<String>,
    /// Snapshots to delete, in an order that [`SnapshotStore::delete`] accepts (a diff
    /// before its parent).
    pub delete: Vec<String>,
}

/// Applies a retention policy: keep the newest `keep_count` snapshots (all if `None`) that
/// are at most `max_age` old at `now_ms` (any age if `None`), plus every snapshot their
/// chains need.
pub fn plan_retention(
    snapshots: &[Manifest],
    now_ms: u64,
    keep_count: Option<usize>,
    max_age: Option<Duration>,
) -> RetentionPlan {
    let mut newest_first: Vec<&Manifest> = snapshots.iter().collect();
    newest_first.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    let by_id: HashMap<&str, &Manifest> = snapshots.iter().map(|m| (m.id.as_str(), m)).collect();
    let max_age_ms = max_age.map(|d| d.as_millis().min(u64::MAX as u128) as u64);
    let wanted: Vec<&str> = newest_first
        .iter()
        .enumerate()
        .filter(|(rank, m)| {
            keep_count.is_none_or(|k| *rank < k)
                && max_age_ms.is_none_or(|a| now_ms.saturating_sub(m.created) <= a)
        })
        .map(|(_, m)| m.id.as_str())
        .collect();
    let mut needed: HashSet<&str> = HashSet::new();
    for id in &wanted {
        let mut cur = by_id.get(id).copied();
        while let Some(m) = cur {
            if !needed.insert(m.id.as_str()) {
                break;
            }
            cur = match (m.kind, m.parent.as_deref()) {
                (SnapshotKind::Diff, Some(p)) => by_id.get(p).copied(),
                _ => None,
            };
        }
    }
    let wanted_set: HashSet<&str> = wanted.iter().copied().collect();
    let mut plan = RetentionPlan::default();
    let mut doomed: Vec<&Manifest> = Vec::new();
    for m in &newest_first {
        if wanted_set.contains(m.id.as_str()) {
            plan.keep.push(m.id.clone());
        } else if needed.contains(m.id.as_str()) {
            plan.pinned.push(m.id.clone());
        } else {
            doomed.push(m);
        }
    }
    // Children before parents, whatever the clocks said.
    let mut left: HashSet<&str> = doomed.iter().map(|m| m.id.as_str()).collect();
    while !left.is_empty() {
        let before = left.len();
        for m in &doomed {
            let id = m.id.as_str();
            let has_child_left = doomed.iter().any(|c| {
                c.kind == SnapshotKind::Diff
                    && c.parent.as_deref() == Some(id)
                    && left.contains(c.id.as_str())
            });
            if left.contains(id) && !has_child_left {
                left.remove(id);
                plan.delete.push(m.id.clone());
            }
        }
        if left.len() == before {
            // A loop of parents (a damaged store): leave those alone.
            break;
        }
    }
    plan
}

impl SnapshotStore {
    /// The retention plan for the snapshots in the store (see [`plan_retention`]); nothing
    /// is deleted. Snapshots needed by a kept snapshot's chain are never in `delete`.
    pub fn select_expired(
        &self,
        now_ms: u64,
        keep_count: Option<usize>,
        max_age: Option<Duration>,
    ) -> Result<RetentionPlan> {
        Ok(plan_retention(
            &self.list()?.snapshots,
            now_ms,
            keep_count,
            max_age,
        ))
    }
}
