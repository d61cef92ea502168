//! Replay into clones. What to play: the part of a capture ([`selection`]), the recorded
//! inputs chosen by include/exclude rules ([`rules`]), planned from a snapshot's marker
//! ([`plan`]). How: [`speed`], seeded fault injection ([`entropy`]), the [`scheduler`]
//! thread that delivers inputs, the [`checker`] comparing outputs, [`blocks`] for block
//! requests, and the [`status`] it reports.

pub mod blocks;
pub mod checker;
pub mod entropy;
pub mod plan;
pub mod rules;
pub mod scheduler;
pub mod selection;
pub mod speed;
pub mod status;

use std::ops::RangeInclusive;

pub use checker::{CheckSummary, Checker, Divergence};
pub use entropy::{
    BlkAction, EntropyError, EntropyPlan, EntropySpec, ExtraKind, Injection, NetAction,
};
pub use plan::{Plan, PlanError, PlanRequest, SnapshotChoice};
pub use rules::{Rule, RuleError, RuleKind, RuleSet};
pub use scheduler::{ReplayOptions, Replayer, Target, Until};
pub use selection::{
    duration_text, format_ns, parse_duration_ns, Selection, SelectionError, Span, Third, Window,
};
pub use speed::Speed;
pub use status::{ReplayState, ReplayStatus};

/// Parses an inclusive range of `what` (e.g. `sector`): `A-B` with A ≤ B, or a single `A`.
fn parse_range(s: &str, what: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |n: &str| {
        n.trim()
            .parse::<u64>()
            .map_err(|_| format!("{what} range {s:?}: {n:?} is not a {what} number"))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let a = number(s)?;
            (a, a)
        }
    };
    if a > b {
        return Err(format!("{what} range {s:?}: {a} is after {b}"));
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("2048-4095", "sector"), Ok(2048..=4095));
        assert_eq!(parse_range("7", "sector"), Ok(7..=7));
        let e = parse_range("9-3", "sector").unwrap_err();
        assert!(e.contains("9 is after 3"), "{e}");
        let e = parse_range("1-x", "sector").unwrap_err();
        assert!(e.contains("\"x\" is not a sector number"), "{e}");
        assert!(parse_range("", "sector").is_err());
        assert!(parse_range("-5", "sector").is_err());
    }
}
