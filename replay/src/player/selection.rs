//! Which part of a capture to replay, counted from the snapshot the clone starts at.
//!
//! A [`Selection`] is parsed from text (`all`, `seq:100-200`, `time:2s-1m`, `duration:5m`,
//! `percent:25-50`, `middle-third`) and becomes a [`Window`] of VM time and sequence
//! numbers once the [`Span`] of the capture after the snapshot is known.

use std::fmt;
use std::str::FromStr;

use crate::event::Event;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SEC;
const HOUR: u64 = 60 * MINUTE;
const UNITS: [(&str, u64); 7] = [
    ("ns", 1),
    ("us", US),
    ("µs", US),
    ("ms", MS),
    ("s", SEC),
    ("m", MINUTE),
    ("h", HOUR),
];

/// Parses a duration into nanoseconds: a number with a unit (`ns`, `us`, `ms`, `s`, `m`,
/// `h`), decimals allowed (`1.5s`), components may follow each other (`1m30s`). Parts of a
/// nanosecond are dropped.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration (use e.g. 500ms, 2s, 1.5m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let is_num = |c: char| c.is_ascii_digit() || c == '.';
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (num, after) = rest.split_at(rest.find(|c| !is_num(c)).unwrap_or(rest.len()));
        let (unit, after) = after.split_at(after.find(is_num).unwrap_or(after.len()));
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(bad)?;
        total = total.saturating_add(component(num, scale).ok_or_else(bad)?);
        rest = after;
    }
    u64::try_from(total).map_err(|_| format!("{s:?} is too long a duration"))
}

/// `num` (decimal digits, at most one `.`) times `scale` nanoseconds.
fn component(num: &str, scale: u64) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    // All digits: a parse failure can only be an overflow.
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().unwrap_or(u128::MAX)
    };
    let mut value = int.saturating_mul(u128::from(scale));
    let frac = &frac[..frac.len().min(18)];
    if !frac.is_empty() {
        let f: u128 = frac.parse().ok()?;
        value = value.saturating_add(f * u128::from(scale) / 10u128.pow(frac.len() as u32));
    }
    Some(value)
}

/// `ns / scale` as a decimal with at most `keep` of the `digits` fraction digits, trailing
/// zeros dropped.
fn decimal(ns: u64, scale: u64, digits: usize, keep: usize) -> String {
    let frac = format!("{:0digits$}", ns % scale);
    let frac = frac[..keep.min(frac.len())].trim_end_matches('0');
    if frac.is_empty() {
        (ns / scale).to_string()
    } else {
        format!("{}.{frac}", ns / scale)
    }
}

/// A duration as exact text that [`parse_duration_ns`] reads back (`1.5s`, `5m`, `250ns`).
pub fn duration_text(ns: u64) -> String {
    match ns {
        0 => "0s".to_string(),
        _ if ns.is_multiple_of(HOUR) => format!("{}h", ns / HOUR),
        _ if ns.is_multiple_of(MINUTE) => format!("{}m", ns / MINUTE),
        _ if ns >= SEC => decimal(ns, SEC, 9, 9) + "s",
        _ if ns >= MS => decimal(ns, MS, 6, 6) + "ms",
        _ if ns >= US => decimal(ns, US, 3, 3) + "us",
        _ => format!("{ns}ns"),
    }
}

/// A duration as short human text, rounded down (`42.1s`, `350ms`, `1h2m5s`).
pub fn format_ns(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < US {
        return format!("{ns}ns");
    }
    if ns < MS {
        return decimal(ns, US, 3, 1) + "us";
    }
    if ns < SEC {
        return decimal(ns, MS, 6, 1) + "ms";
    }
    if ns < MINUTE {
        return decimal(ns, SEC, 9, 1) + "s";
    }
    let mut out = String::new();
    if ns >= HOUR {
        out += &format!("{}h", ns / HOUR);
    }
    if ns % HOUR >= MINUTE {
        out += &format!("{}m", ns % HOUR / MINUTE);
    }
    let secs = decimal(ns % MINUTE, SEC, 9, 1);
    if secs != "0" {
        out += &format!("{secs}s");
    }
    out
}

/// Why a selection cannot be parsed or applied.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectionError(pub String);

/// A third of the capture after the snapshot, by VM time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Third {
    /// The first.
    First,
    /// The second.
    Middle,
    /// The last (up to and including the last event).
    Last,
}

/// Which part of a capture to replay, relative to the snapshot the clone starts at.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub enum Selection {
    /// Everything after the snapshot.
    #[default]
    All,
    /// Events with these sequence numbers (inclusive; an open side is unbounded).
    Seq {
        /// The first.
        from: Option<u64>,
        /// The last.
        to: Option<u64>,
    },
    /// Events in `[from_ns, to_ns)` of VM time after the snapshot.
    Time {
        /// The start (none: the snapshot).
        from_ns: Option<u64>,
        /// The end, exclusive (none: the end of the capture).
        to_ns: Option<u64>,
    },
    /// The first nanoseconds after the snapshot.
    Duration(u64),
    /// A share of the time after the snapshot, in percent (0 to 100).
    Percent {
        /// The start.
        from: f64,
        /// The end.
        to: f64,
    },
    /// A third of the time after the snapshot.
    Third(Third),
}

const SELECTIONS: &str =
    "all, seq:A-B, time:A-B, duration:D, percent:A-B, first-third, middle-third or last-third";

/// Splits `A-B` (either side may be empty, not both) and parses the sides.
fn bounds<T>(
    arg: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<(Option<T>, Option<T>), String> {
    let (a, b) = arg
        .split_once('-')
        .ok_or_else(|| format!("{arg:?} is not a range A-B (either side may be empty)"))?;
    let side = |t: &str| {
        let t = t.trim();
        (!t.is_empty()).then(|| parse(t)).transpose()
    };
    match (side(a)?, side(b)?) {
        (None, None) => Err("the range has neither start nor end".to_string()),
        pair => Ok(pair),
    }
}

impl Selection {
    /// Checks the invariants parsing guarantees (for values built in code).
    fn check(&self) -> Result<(), String> {
        match *self {
            Selection::Seq {
                from: Some(a),
                to: Some(b),
            } if a > b => Err(format!("start {a} is after end {b}")),
            Selection::Time {
                from_ns: Some(a),
                to_ns: Some(b),
            } if a >= b => Err(format!(
                "start {} is not before end {}",
                duration_text(a),
                duration_text(b)
            )),
            Selection::Time { to_ns: Some(0), .. } => {
                Err("the end is at 0s, selecting nothing".to_string())
            }
            Selection::Duration(0) => Err("the duration is 0".to_string()),
            Selection::Percent { from, to } => {
                for p in [from, to] {
                    if !(0.0..=100.0).contains(&p) {
                        return Err(format!("{p} is not a percentage (0 to 100)"));
                    }
                }
                if from >= to {
                    return Err(format!("start {from} is not before end {to}"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The window of `span` this selection covers; an error when it covers none of it.
    pub fn window(&self, span: &Span) -> Result<Window, SelectionError> {
        let name = self.to_string();
        self.check()
            .map_err(|p| SelectionError(format!("selection {name:?}: {p}")))?;
        let err = |p: String| SelectionError(format!("selection {name:?} {p}"));
        if span.end_ns < span.start_ns {
            return Err(err(format!(
                "cannot apply: the capture ends (VM time {}ns) before the snapshot ({}ns)",
                span.end_ns, span.start_ns
            )));
        }
        if span.first_seq > span.last_seq {
            return Err(err(
                "cannot apply: the capture has no events after the snapshot".to_string(),
            ));
        }
        let len = span.end_ns - span.start_ns;
        let covers = format!("(it covers 0s to {} after the snapshot)", format_ns(len));
        let end_excl = span.end_ns.saturating_add(1);
        let whole = Window {
            from_ns: span.start_ns,
            to_ns: end_excl,
            from_seq: span.first_seq,
            to_seq: span.last_seq,
        };
        let relative = |from: u64, to: Option<u64>| {
            let from_ns = span.start_ns.saturating_add(from);
            if from_ns > span.end_ns {
                return Err(err(format!("starts after the capture ends {covers}")));
            }
            let to_ns = to.map_or(end_excl, |t| span.start_ns.saturating_add(t));
            let to_ns = to_ns.min(end_excl);
            Ok(Window {
                from_ns,
                to_ns,
                ..whole
            })
        };
        let by_time = |from_ns: u64, to_ns: u64| {
            if from_ns >= to_ns {
                return Err(err(format!("selects no time {covers}")));
            }
            Ok(Window {
                from_ns,
                to_ns,
                ..whole
            })
        };
        let at = |p: f64| span.start_ns + ((len as f64 * p / 100.0) as u64).min(len);
        let third = |n: u128| span.start_ns + (u128::from(len) * n / 3) as u64;
        match *self {
            Selection::All => Ok(whole),
            Selection::Seq { from, to } => {
                let (first, last) = (span.first_seq, span.last_seq);
                let seqs = format!("(it covers seq {first} to {last} after the snapshot)");
                let from = from.unwrap_or(first);
                let to = to.unwrap_or(last);
                if from > last {
                    return Err(err(format!("starts after the capture ends {seqs}")));
                }
                if to < first {
                    return Err(err(format!("ends before the capture starts {seqs}")));
                }
                Ok(Window {
                    from_seq: from.max(first),
                    to_seq: to.min(last),
                    ..whole
                })
            }
            Selection::Time { from_ns, to_ns } => relative(from_ns.unwrap_or(0), to_ns),
            Selection::Duration(d) => relative(0, Some(d)),
            Selection::Percent { from, to } => {
                by_time(at(from), if to >= 100.0 { end_excl } else { at(to) })
            }
            Selection::Third(Third::First) => by_time(span.start_ns, third(1)),
            Selection::Third(Third::Middle) => by_time(third(1), third(2)),
            Selection::Third(Third::Last) => by_time(third(2), end_excl),
        }
    }
}

impl FromStr for Selection {
    type Err = SelectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |p: String| SelectionError(format!("selection {s:?}: {p}"));
        let text = s.trim();
        let (head, arg) = match text.split_once(':') {
            Some((h, a)) => (h.to_ascii_lowercase(), Some(a)),
            None => (text.to_ascii_lowercase(), None),
        };
        let percent = |t: &str| {
            t.parse::<f64>()
                .map_err(|_| format!("{t:?} is not a percentage (0 to 100)"))
        };
        let seq = |t: &str| {
            t.parse::<u64>()
                .map_err(|_| format!("{t:?} is not a sequence number"))
        };
        let sel = match (head.as_str(), arg) {
            ("all", None) => Selection::All,
            ("first-third", None) => Selection::Third(Third::First),
            ("middle-third", None) => Selection::Third(Third::Middle),
            ("last-third", None) => Selection::Third(Third::Last),
            ("seq", Some(a)) => {
                let (from, to) = bounds(a, seq).map_err(err)?;
                Selection::Seq { from, to }
            }
            ("time", Some(a)) => {
                let (from_ns, to_ns) = bounds(a, parse_duration_ns).map_err(err)?;
                Selection::Time { from_ns, to_ns }
            }
            ("duration" | "first", Some(a)) => {
                Selection::Duration(parse_duration_ns(a).map_err(err)?)
            }
            ("percent", Some(a)) => {
                let (from, to) = bounds(a, percent).map_err(err)?;
                Selection::Percent {
                    from: from.unwrap_or(0.0),
                    to: to.unwrap_or(100.0),
                }
            }
            ("seq" | "time" | "duration" | "first" | "percent", None) => {
                return Err(err(format!("{head} needs a value after ':'")));
            }
            ("all" | "first-third" | "middle-third" | "last-third", Some(_)) => {
                return Err(err(format!("{head} takes no value")));
            }
            _ => return Err(err(format!("unknown selection (use {SELECTIONS})"))),
        };
        sel.check().map_err(err)?;
        Ok(sel)
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: Option<String>| v.unwrap_or_default();
        match self {
            Selection::All => f.write_str("all"),
            Selection::Seq { from, to } => write!(
                f,
                "seq:{}-{}",
                side(from.map(|v| v.to_string())),
                side(to.map(|v| v.to_string()))
            ),
            Selection::Time { from_ns, to_ns } => write!(
                f,
                "time:{}-{}",
                side(from_ns.map(duration_text)),
                side(to_ns.map(duration_text))
            ),
            Selection::Duration(d) => write!(f, "duration:{}", duration_text(*d)),
            Selection::Percent { from, to } => write!(f, "percent:{from}-{to}"),
            Selection::Third(Third::First) => f.write_str("first-third"),
            Selection::Third(Third::Middle) => f.write_str("middle-third"),
            Selection::Third(Third::Last) => f.write_str("last-third"),
        }
    }
}

/// The capture after a snapshot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Span {
    /// VM time of the snapshot marker.
    pub start_ns: u64,
    /// VM time of the last event in the capture.
    pub end_ns: u64,
    /// Sequence number of the first event after the marker.
    pub first_seq: u64,
    /// Sequence number of the last event.
    pub last_seq: u64,
}

/// The events to replay: both the VM time and the sequence number must be inside.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Window {
    /// Absolute VM time, inclusive.
    pub from_ns: u64,
    /// Absolute VM time, exclusive.
    pub to_ns: u64,
    /// The first sequence number.
    pub from_seq: u64,
    /// The last sequence number (inclusive).
    pub to_seq: u64,
}

impl Window {
    /// Whether `e` is inside the window.
    pub fn contains(&self, e: &Event) -> bool {
        (self.from_ns..self.to_ns).contains(&e.vm_time_ns)
            && (self.from_seq..=self.to_seq).contains(&e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, SourceId};

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration_ns(s).unwrap();
        assert_eq!(ok("250ns"), 250);
        assert_eq!(ok("90us"), 90_000);
        assert_eq!(ok("1500ms"), 1_500_000_000);
        assert_eq!(ok("2s"), 2 * SEC);
        assert_eq!(ok("1.5s"), 1_500_000_000);
        assert_eq!(ok(".5s"), SEC / 2);
        assert_eq!(ok("5m"), 5 * MINUTE);
        assert_eq!(ok("1h"), HOUR);
        assert_eq!(ok("1m30s"), 90 * SEC);
        assert_eq!(ok("0.000000001s"), 1);
        for bad in ["", "5", "5x", "s", "1.2.3s", "-5s", "1 s", ".s", "5sm"] {
            let e = parse_duration_ns(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        let e = parse_duration_ns("99999999999h").unwrap_err();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn duration_texts() {
        for (ns, exact, human) in [
            (0, "0s", "0s"),
            (250, "250ns", "250ns"),
            (1_500, "1.5us", "1.5us"),
            (350 * MS, "350ms", "350ms"),
            (42_100 * MS, "42.1s", "42.1s"),
            (42_123_456_789, "42.123456789s", "42.1s"),
            (90 * SEC, "90s", "1m30s"),
            (5 * MINUTE, "5m", "5m"),
            (2 * HOUR, "2h", "2h"),
            (HOUR + 125 * SEC, "3725s", "1h2m5s"),
        ] {
            assert_eq!(duration_text(ns), exact);
            assert_eq!(format_ns(ns), human);
            assert_eq!(parse_duration_ns(exact), Ok(ns));
        }
    }

    #[test]
    fn parse_and_display() {
        for (text, canonical) in [
            ("all", "all"),
            ("seq:100-200", "seq:100-200"),
            ("seq:100-", "seq:100-"),
            ("seq:-200", "seq:-200"),
            ("time:1500ms-2m", "time:1.5s-2m"),
            ("time:-90us", "time:-90us"),
            ("duration:5m", "duration:5m"),
            ("first:300s", "duration:5m"),
            ("percent:25-50", "percent:25-50"),
            ("percent:12.5-", "percent:12.5-100"),
            ("First-Third", "first-third"),
            ("middle-third", "middle-third"),
            ("last-third", "last-third"),
        ] {
            let sel: Selection = text.parse().unwrap();
            assert_eq!(sel.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<Selection>().unwrap(), sel);
        }
        let e = "time:5x-".parse::<Selection>().unwrap_err().to_string();
        assert_eq!(
            e,
            "selection \"time:5x-\": \"5x\" is not a duration (use e.g. 500ms, 2s, 1.5m)"
        );
        for (bad, why) in [
            ("seq:5-3", "start 5 is after end 3"),
            ("time:2s-1s", "not before end"),
            ("time:0s-0s", "not before end"),
            ("percent:50-101", "101 is not a percentage"),
            ("percent:60-40", "not before end"),
            ("percent:x-40", "\"x\" is not a percentage"),
            ("seq:a-", "\"a\" is not a sequence number"),
            ("seq:-", "neither start nor end"),
            ("seq:5", "not a range"),
            ("duration:0s", "the duration is 0"),
            ("time", "needs a value"),
            ("all:1", "takes no value"),
            ("everything", "unknown selection"),
        ] {
            let e = bad.parse::<Selection>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    fn ev(seq: u64, t: u64) -> Event {
        Event {
            seq,
            vm_time_ns: t,
            progress: 0,
            source: SourceId(0),
            kind: EventKind::SerialIn { bytes: vec![] },
        }
    }

    const SPAN: Span = Span {
        start_ns: 10 * SEC,
        end_ns: 10 * SEC + 42_100 * MS,
        first_seq: 1000,
        last_seq: 1999,
    };

    fn win(text: &str) -> Result<Window, SelectionError> {
        text.parse::<Selection>().unwrap().window(&SPAN)
    }

    #[test]
    fn windows() {
        let (s, e) = (SPAN.start_ns, SPAN.end_ns);
        let all = win("all").unwrap();
        assert_eq!((all.from_ns, all.to_ns), (s, e + 1));
        assert_eq!((all.from_seq, all.to_seq), (1000, 1999));
        assert!(all.contains(&ev(1000, s)) && all.contains(&ev(1999, e)));
        assert!(!all.contains(&ev(999, s)) && !all.contains(&ev(1500, e + 1)));

        let w = win("seq:1500-").unwrap();
        assert_eq!((w.from_seq, w.to_seq, w.to_ns), (1500, 1999, e + 1));
        assert_eq!(win("seq:-5000").unwrap().to_seq, 1999);
        let w = win("time:2s-3s").unwrap();
        assert_eq!((w.from_ns, w.to_ns), (s + 2 * SEC, s + 3 * SEC));
        assert!(w.contains(&ev(1500, s + 2 * SEC)) && !w.contains(&ev(1500, s + 3 * SEC)));
        assert_eq!(win("time:40s-1h").unwrap().to_ns, e + 1);
        let w = win("duration:5s").unwrap();
        assert_eq!((w.from_ns, w.to_ns), (s, s + 5 * SEC));
        let w = win("percent:25-50").unwrap();
        assert_eq!((w.from_ns, w.to_ns), (s + 10_525 * MS, s + 21_050 * MS));
        assert_eq!(win("percent:50-100").unwrap().to_ns, e + 1);

        let len = 42_100 * MS;
        let thirds: Vec<Window> = ["first-third", "middle-third", "last-third"]
            .iter()
            .map(|t| win(t).unwrap())
            .collect();
        assert_eq!(thirds[0].from_ns, s);
        assert_eq!(thirds[0].to_ns, s + len / 3);
        assert_eq!(thirds[1].from_ns, thirds[0].to_ns);
        assert_eq!(thirds[1].to_ns, s + 2 * len / 3);
        assert_eq!(thirds[2].from_ns, thirds[1].to_ns);
        assert_eq!(thirds[2].to_ns, e + 1);
    }

    #[test]
    fn windows_outside_the_span() {
        let e = win("time:10m-").unwrap_err().to_string();
        assert_eq!(
            e,
            "selection \"time:10m-\" starts after the capture ends \
             (it covers 0s to 42.1s after the snapshot)"
        );
        let e = win("seq:5000-").unwrap_err().to_string();
        assert!(e.contains("seq 1000 to 1999"), "{e}");
        let e = win("seq:-10").unwrap_err().to_string();
        assert!(e.contains("ends before the capture starts"), "{e}");

        let point = Span {
            end_ns: SPAN.start_ns,
            ..SPAN
        };
        let e = Selection::Third(Third::First).window(&point).unwrap_err();
        assert!(e.0.contains("selects no time"), "{e}");
        assert!(Selection::Third(Third::Last).window(&point).is_ok());
        let backwards = Span { end_ns: 1, ..SPAN };
        assert!(Selection::All.window(&backwards).is_err());
        let empty = Span {
            first_seq: 5,
            last_seq: 4,
            ..SPAN
        };
        assert!(Selection::All
            .window(&empty)
            .unwrap_err()
            .0
            .contains("no events"));
        // Values built in code are checked too.
        let bad = Selection::Percent {
            from: f64::NAN,
            to: 50.0,
        };
        assert!(bad.window(&SPAN).is_err());
        assert!(Selection::Seq {
            from: Some(9),
            to: Some(3)
        }
        .window(&SPAN)
        .is_err());
    }
}
