//! How fast a replay plays: recorded relative times scaled by a factor, or as fast as the
//! guest takes its inputs.

use std::fmt;
use std::str::FromStr;

/// Slowest and fastest factors.
pub const MIN_FACTOR: f64 = 0.1;
/// Fastest factor (beyond it, `max` is what is meant).
pub const MAX_FACTOR: f64 = 100.0;

/// Replay pacing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Recorded relative VM times divided by the factor (2 = twice as fast).
    Factor(f64),
    /// Each input as soon as the guest has done what it did before it in the recording
    /// (idle gaps skipped).
    Max,
    /// One input per step request (paced like `Max` within a step).
    Step,
}

impl FromStr for Speed {
    type Err = String;

    /// `max`, `step`, or a factor `0.1`..`100` (optionally with `x`: `2x`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "max" | "fast" | "asap" => Ok(Speed::Max),
            "step" => Ok(Speed::Step),
            other => {
                let n = other.strip_suffix('x').unwrap_or(other);
                let k: f64 = n.parse().map_err(|_| {
                    format!("speed {s:?}: expected max, step or a factor from 0.1 to 100 (e.g. 1, 2x, 0.5)")
                })?;
                if !(MIN_FACTOR..=MAX_FACTOR).contains(&k) {
                    return Err(format!(
                        "speed {s:?}: the factor must be from {MIN_FACTOR} to {MAX_FACTOR}"
                    ));
                }
                Ok(Speed::Factor(k))
            }
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(k) => write!(f, "{k}x"),
            Speed::Max => f.write_str("max"),
            Speed::Step => f.write_str("step"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("max".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("step".parse::<Speed>().unwrap(), Speed::Step);
        assert_eq!("2x".parse::<Speed>().unwrap(), Speed::Factor(2.0));
        assert_eq!("0.1".parse::<Speed>().unwrap(), Speed::Factor(0.1));
        assert_eq!(Speed::Factor(1.0).to_string(), "1x");
        assert!("1000".parse::<Speed>().unwrap_err().contains("0.1 to 100"));
        assert!("fast-ish"
            .parse::<Speed>()
            .unwrap_err()
            .contains("expected max"));
    }
}
