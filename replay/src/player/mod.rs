//! What a replay delivers to a clone: the part of a capture ([`selection`]), the recorded
//! events chosen by include/exclude rules ([`rules`]) and seeded fault injection
//! ([`entropy`]). Pure logic: no threads, no I/O.

pub mod entropy;
pub mod rules;
pub mod selection;

use std::ops::RangeInclusive;

pub use entropy::{
    BlkAction, EntropyError, EntropyPlan, EntropySpec, ExtraKind, Injection, NetAction,
};
pub use rules::{Rule, RuleError, RuleKind, RuleSet};
pub use selection::{
    duration_text, format_ns, parse_duration_ns, Selection, SelectionError, Span, Third, Window,
};

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
