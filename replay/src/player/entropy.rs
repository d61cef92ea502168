//! Seeded, reproducible fault injection: which frames a replay drops, duplicates,
//! corrupts, delays or reorders, which extra frames it injects, and which block requests
//! fail or are slowed.
//!
//! Every decision is a pure function of the seed, the replay position and the kind of
//! decision (a counter-based SplitMix64 mix), never of timing or call order: the same seed
//! injects the same faults at the same positions.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::parse_range;
use super::selection::{duration_text, format_ns, parse_duration_ns};

const KEYS: &str =
    "seed, drop, dup, corrupt, delay, reorder, extra, blk-error, blk-error-sectors, blk-latency";
const ETH_HEADER: usize = 14;

/// Why an entropy specification cannot be parsed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct EntropyError(pub String);

/// What an injected extra frame looks like.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ExtraKind {
    /// Random bytes, 60 to 1514 of them.
    #[default]
    Random,
    /// The recorded frame with a few bytes after the Ethernet header changed.
    Variant,
}

/// Fault probabilities (0 to 1) and parameters; the default injects nothing.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EntropySpec {
    /// The seed every decision derives from.
    pub seed: u64,
    /// Probability of dropping a frame.
    pub drop: f64,
    /// Probability of delivering a frame twice.
    pub dup: f64,
    /// Probability of flipping one byte of a frame.
    pub corrupt: f64,
    /// Probability of delaying a frame by `delay_ns`.
    pub delay: f64,
    /// The delay.
    pub delay_ns: u64,
    /// Probability of swapping a frame with the next.
    pub reorder: f64,
    /// Probability of injecting an extra frame after a position.
    pub extra: f64,
    /// What extra frames look like.
    pub extra_kind: ExtraKind,
    /// Probability of failing a block request with an I/O error.
    pub blk_error: f64,
    /// Sectors whose requests always fail (inclusive ranges).
    pub blk_error_sectors: Vec<RangeInclusive<u64>>,
    /// Probability of slowing a block request by `blk_latency_ns`.
    pub blk_latency: f64,
    /// The added latency.
    pub blk_latency_ns: u64,
}

fn probability(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{v:?} is not a probability (0 to 1)")),
    }
}

fn probability_and_duration(v: &str) -> Result<(f64, u64), String> {
    let (p, d) = v
        .split_once(':')
        .ok_or_else(|| format!("{v:?} is not P:DURATION (e.g. 0.05:10ms)"))?;
    let d = parse_duration_ns(d)?;
    if d == 0 {
        return Err("the duration is 0".to_string());
    }
    Ok((probability(p)?, d))
}

impl FromStr for EntropySpec {
    type Err = EntropyError;

    /// `seed=N,drop=P,dup=P,corrupt=P,delay=P:D,reorder=P,extra=P[:random|:variant],
    /// blk-error=P,blk-error-sectors=A-B[;C-D],blk-latency=P:D`, every key optional.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |p: String| EntropyError(format!("entropy {s:?}: {p}"));
        if s.trim().is_empty() {
            return Err(err("empty (give e.g. seed=1,drop=0.01)".into()));
        }
        let mut spec = EntropySpec::default();
        let mut seen: Vec<&str> = Vec::new();
        for item in s.split(',').map(str::trim) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err(format!("{item:?} is not key=value")))?;
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(err(format!("{key} is given twice")));
            }
            seen.push(key);
            let at_key = |p: String| err(format!("{key}: {p}"));
            match key {
                "seed" => {
                    spec.seed = value
                        .parse()
                        .map_err(|_| at_key(format!("{value:?} is not a number (0 to 2^64-1)")))?
                }
                "drop" => spec.drop = probability(value).map_err(at_key)?,
                "dup" => spec.dup = probability(value).map_err(at_key)?,
                "corrupt" => spec.corrupt = probability(value).map_err(at_key)?,
                "reorder" => spec.reorder = probability(value).map_err(at_key)?,
                "blk-error" => spec.blk_error = probability(value).map_err(at_key)?,
                "delay" => {
                    (spec.delay, spec.delay_ns) = probability_and_duration(value).map_err(at_key)?
                }
                "blk-latency" => {
                    (spec.blk_latency, spec.blk_latency_ns) =
                        probability_and_duration(value).map_err(at_key)?
                }
                "extra" => {
                    let (p, kind) = value.split_once(':').unwrap_or((value, "random"));
                    spec.extra = probability(p).map_err(at_key)?;
                    spec.extra_kind = match kind {
                        "random" => ExtraKind::Random,
                        "variant" => ExtraKind::Variant,
                        _ => return Err(at_key(format!("{kind:?} is not random or variant"))),
                    };
                }
                "blk-error-sectors" => {
                    spec.blk_error_sectors = value
                        .split(';')
                        .map(|r| parse_range(r, "sector"))
                        .collect::<Result<_, _>>()
                        .map_err(at_key)?
                }
                _ => return Err(err(format!("unknown key {key:?} (use {KEYS})"))),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for EntropySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={}", self.seed)?;
        for (key, p) in [
            ("drop", self.drop),
            ("dup", self.dup),
            ("corrupt", self.corrupt),
        ] {
            if p > 0.0 {
                write!(f, ",{key}={p}")?;
            }
        }
        if self.delay > 0.0 || self.delay_ns > 0 {
            write!(f, ",delay={}:{}", self.delay, duration_text(self.delay_ns))?;
        }
        if self.reorder > 0.0 {
            write!(f, ",reorder={}", self.reorder)?;
        }
        if self.extra > 0.0 || self.extra_kind != ExtraKind::Random {
            let kind = match self.extra_kind {
                ExtraKind::Random => "random",
                ExtraKind::Variant => "variant",
            };
            write!(f, ",extra={}:{kind}", self.extra)?;
        }
        if self.blk_error > 0.0 {
            write!(f, ",blk-error={}", self.blk_error)?;
        }
        if !self.blk_error_sectors.is_empty() {
            let ranges: Vec<String> = (self.blk_error_sectors.iter())
                .map(|r| format!("{}-{}", r.start(), r.end()))
                .collect();
            write!(f, ",blk-error-sectors={}", ranges.join(";"))?;
        }
        if self.blk_latency > 0.0 || self.blk_latency_ns > 0 {
            let d = duration_text(self.blk_latency_ns);
            write!(f, ",blk-latency={}:{d}", self.blk_latency)?;
        }
        Ok(())
    }
}

/// The kinds of decision, each drawing its own numbers.
#[derive(Clone, Copy)]
enum Decision {
    Drop = 1,
    Dup,
    Corrupt,
    Delay,
    Reorder,
    Extra,
    BlkError,
    BlkLatency,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The numbers of one decision at one position: `u64(i)` for i = 0, 1, ...
struct Draws(u64);

impl Draws {
    fn new(seed: u64, decision: Decision, position: u64) -> Draws {
        let salt = (decision as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        Draws(mix(
            mix(seed ^ salt).wrapping_add(position.wrapping_mul(GOLDEN))
        ))
    }

    fn u64(&self, i: u64) -> u64 {
        mix(self.0 ^ i.wrapping_mul(0xA24B_AED4_963E_E407))
    }

    /// A number in [0, 1).
    fn unit(&self, i: u64) -> f64 {
        (self.u64(i) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in [0, n), n > 0.
    fn below(&self, i: u64, n: u64) -> u64 {
        ((u128::from(self.u64(i)) * u128::from(n)) >> 64) as u64
    }

    /// Whether an event of probability `p` happens (draw 0).
    fn hit(&self, p: f64) -> bool {
        p > 0.0 && self.unit(0) < p
    }
}

/// What to do with one recorded frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NetAction {
    /// Deliver it unchanged.
    Deliver,
    /// Do not deliver it.
    Drop,
    /// Deliver it twice.
    Duplicate,
    /// Deliver it with byte `offset` xored with `xor` (never 0).
    Corrupt {
        /// The byte.
        offset: usize,
        /// The mask.
        xor: u8,
    },
    /// Deliver it `ns` later.
    Delay {
        /// The delay.
        ns: u64,
    },
    /// Deliver it after the next frame.
    SwapWithNext,
}

impl fmt::Display for NetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetAction::Deliver => f.write_str("deliver"),
            NetAction::Drop => f.write_str("drop"),
            NetAction::Duplicate => f.write_str("duplicate"),
            NetAction::Corrupt { offset, xor } => write!(f, "corrupt byte {offset} ^{xor:#04x}"),
            NetAction::Delay { ns } => write!(f, "delay {}", format_ns(*ns)),
            NetAction::SwapWithNext => f.write_str("swap with next"),
        }
    }
}

/// What to do with one block request.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BlkAction {
    /// Complete it with an I/O error.
    pub error: bool,
    /// Complete it this much later.
    pub latency_ns: u64,
}

/// One injected fault, for reports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Injection {
    /// The replay position.
    pub position: u64,
    /// What was done (`drop`, `corrupt byte 37 ^0x5a`, `blk latency 5ms`).
    pub what: String,
}

impl Injection {
    /// The fault `action` at `position`; none for [`NetAction::Deliver`].
    pub fn net(position: u64, action: &NetAction) -> Option<Injection> {
        (*action != NetAction::Deliver).then(|| Injection {
            position,
            what: action.to_string(),
        })
    }

    /// An extra frame injected after `position`.
    pub fn extra(position: u64, frame: &[u8]) -> Injection {
        Injection {
            position,
            what: format!("extra frame {} bytes", frame.len()),
        }
    }

    /// The faults of `action` on the request at `sector`.
    pub fn blk(position: u64, action: &BlkAction, sector: u64) -> Vec<Injection> {
        let error = action
            .error
            .then(|| format!("blk io-error sector {sector}"));
        let latency = (action.latency_ns > 0)
            .then(|| format!("blk latency {}", format_ns(action.latency_ns)));
        (error.into_iter().chain(latency))
            .map(|what| Injection { position, what })
            .collect()
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.what)
    }
}

/// The decisions of one [`EntropySpec`].
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EntropyPlan {
    spec: EntropySpec,
}

impl EntropyPlan {
    /// The plan of `spec`.
    pub fn new(spec: EntropySpec) -> EntropyPlan {
        EntropyPlan { spec }
    }

    /// The specification.
    pub fn spec(&self) -> &EntropySpec {
        &self.spec
    }

    /// Whether anything can be injected at all.
    pub fn is_active(&self) -> bool {
        let s = &self.spec;
        [
            s.drop,
            s.dup,
            s.corrupt,
            s.delay,
            s.reorder,
            s.extra,
            s.blk_error,
            s.blk_latency,
        ]
        .iter()
        .any(|p| *p > 0.0)
            || !s.blk_error_sectors.is_empty()
    }

    fn draws(&self, decision: Decision, position: u64) -> Draws {
        Draws::new(self.spec.seed, decision, position)
    }

    /// What to do with the frame at `position` (at most one action; drop, duplicate,
    /// corrupt, delay and reorder are tried in that order).
    pub fn net(&self, position: u64, frame_len: usize) -> NetAction {
        let s = &self.spec;
        if self.draws(Decision::Drop, position).hit(s.drop) {
            return NetAction::Drop;
        }
        if self.draws(Decision::Dup, position).hit(s.dup) {
            return NetAction::Duplicate;
        }
        let d = self.draws(Decision::Corrupt, position);
        if frame_len > 0 && d.hit(s.corrupt) {
            let skip = if frame_len > ETH_HEADER {
                ETH_HEADER
            } else {
                0
            };
            let offset = skip + d.below(1, (frame_len - skip) as u64) as usize;
            let xor = 1 + d.below(2, 255) as u8;
            return NetAction::Corrupt { offset, xor };
        }
        if self.draws(Decision::Delay, position).hit(s.delay) {
            return NetAction::Delay { ns: s.delay_ns };
        }
        if self.draws(Decision::Reorder, position).hit(s.reorder) {
            return NetAction::SwapWithNext;
        }
        NetAction::Deliver
    }

    /// The frame to inject after `position`, if any; a variant of an empty `recorded`
    /// frame is a random one.
    pub fn extra_frame(&self, position: u64, recorded: &[u8]) -> Option<Vec<u8>> {
        let d = self.draws(Decision::Extra, position);
        if !d.hit(self.spec.extra) {
            return None;
        }
        if self.spec.extra_kind == ExtraKind::Variant && !recorded.is_empty() {
            let mut frame = recorded.to_vec();
            let skip = if frame.len() > ETH_HEADER {
                ETH_HEADER
            } else {
                0
            };
            let room = (frame.len() - skip) as u64;
            let changes = (1 + d.below(1, 4)).min(room);
            let start = d.below(2, room);
            for k in 0..changes {
                let at = skip + ((start + k) % room) as usize;
                frame[at] ^= 1 + d.below(3 + k, 255) as u8;
            }
            return Some(frame);
        }
        let len = 60 + d.below(1, 1514 - 60 + 1) as usize;
        let mut frame: Vec<u8> = (0..len.div_ceil(8) as u64)
            .flat_map(|i| d.u64(2 + i).to_le_bytes())
            .collect();
        frame.truncate(len);
        Some(frame)
    }

    /// What to do with block request number `request_index`, addressing `sectors`
    /// sectors from `sector`.
    pub fn blk(&self, request_index: u64, sector: u64, sectors: u64) -> BlkAction {
        let s = &self.spec;
        let end = sector.saturating_add(sectors);
        let listed = sectors > 0
            && (s.blk_error_sectors.iter()).any(|r| sector <= *r.end() && end > *r.start());
        let error = listed
            || self
                .draws(Decision::BlkError, request_index)
                .hit(s.blk_error);
        let slow = self
            .draws(Decision::BlkLatency, request_index)
            .hit(s.blk_latency);
        BlkAction {
            error,
            latency_ns: if slow { s.blk_latency_ns } else { 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> EntropyPlan {
        EntropyPlan::new(text.parse().unwrap())
    }

    const ALL: &str = "seed=7,drop=0.05,dup=0.05,corrupt=0.05,delay=0.05:10ms,reorder=0.05,\
                       extra=0.05:variant,blk-error=0.05,blk-latency=0.05:5ms";

    fn decisions(p: &EntropyPlan) -> Vec<(NetAction, Option<Vec<u8>>, BlkAction)> {
        let recorded = vec![0xab; 100];
        (0..10_000)
            .map(|i| {
                (
                    p.net(i, 100),
                    p.extra_frame(i, &recorded),
                    p.blk(i, i * 8, 8),
                )
            })
            .collect()
    }

    #[test]
    fn same_seed_same_decisions_in_any_order() {
        let a = decisions(&plan(ALL));
        assert_eq!(a, decisions(&plan(ALL)));
        // Asking in reverse order gives the same answers.
        let p = plan(ALL);
        let recorded = vec![0xab; 100];
        for i in (0..10_000u64).rev() {
            let (net, extra, blk) = &a[i as usize];
            assert_eq!(p.net(i, 100), *net);
            assert_eq!(p.extra_frame(i, &recorded), *extra);
            assert_eq!(p.blk(i, i * 8, 8), *blk);
        }
        assert_ne!(a, decisions(&plan(&ALL.replace("seed=7", "seed=8"))));
    }

    #[test]
    fn probabilities_are_roughly_honoured() {
        let count = |text: &str, want: NetAction| {
            let p = plan(text);
            (0..10_000).filter(|i| p.net(*i, 100) == want).count()
        };
        let drops = count("seed=1,drop=0.1", NetAction::Drop);
        assert!((800..=1200).contains(&drops), "{drops}");
        let dups = count("seed=2,dup=0.1", NetAction::Duplicate);
        assert!((800..=1200).contains(&dups), "{dups}");
        let swaps = count("seed=3,reorder=0.5", NetAction::SwapWithNext);
        assert!((4700..=5300).contains(&swaps), "{swaps}");
        assert_eq!(count("seed=4,drop=1", NetAction::Drop), 10_000);
        assert_eq!(count("seed=4", NetAction::Deliver), 10_000);
        let p = plan("seed=5,extra=0.2,blk-error=0.1,blk-latency=0.3:5ms");
        let extras = (0..10_000)
            .filter(|i| p.extra_frame(*i, &[]).is_some())
            .count();
        assert!((1800..=2200).contains(&extras), "{extras}");
        let errors = (0..10_000).filter(|i| p.blk(*i, 0, 8).error).count();
        assert!((800..=1200).contains(&errors), "{errors}");
        let slow = (0..10_000)
            .filter(|i| p.blk(*i, 0, 8).latency_ns == 5_000_000)
            .count();
        assert!((2700..=3300).contains(&slow), "{slow}");
    }

    #[test]
    fn corruption_stays_in_the_frame_past_the_header() {
        let p = plan("seed=9,corrupt=1");
        for i in 0..2000 {
            for len in [1usize, 14, 15, 60, 1514] {
                let NetAction::Corrupt { offset, xor } = p.net(i, len) else {
                    panic!("no corruption at {i}");
                };
                assert!(offset < len && xor != 0);
                assert!(len <= 14 || offset >= 14, "{len}: {offset}");
            }
            assert_eq!(p.net(i, 0), NetAction::Deliver);
        }
    }

    #[test]
    fn extra_frames() {
        let p = plan("seed=3,extra=1");
        for i in 0..1000 {
            let f = p.extra_frame(i, b"ignored").unwrap();
            assert!((60..=1514).contains(&f.len()));
        }
        let p = plan("seed=3,extra=1:variant");
        let recorded: Vec<u8> = (0..80).collect();
        for i in 0..1000 {
            let f = p.extra_frame(i, &recorded).unwrap();
            assert_eq!(f.len(), recorded.len());
            assert_eq!(f[..14], recorded[..14]);
            let changed = f.iter().zip(&recorded).filter(|(a, b)| a != b).count();
            assert!((1..=4).contains(&changed), "{changed}");
            let short = p.extra_frame(i, &[1, 2]).unwrap();
            assert_ne!(short, [1, 2]);
        }
        assert!(plan("seed=3").extra_frame(0, &recorded).is_none());
    }

    #[test]
    fn listed_sectors_always_fail() {
        let p = plan("seed=1,blk-error-sectors=2048-2055;4096");
        assert!(p.is_active());
        for i in 0..1000 {
            assert!(p.blk(i, 2048, 8).error);
            assert!(p.blk(i, 2040, 9).error);
            assert!(p.blk(i, 4096, 1).error);
            assert!(!p.blk(i, 2040, 8).error);
            assert!(!p.blk(i, 2056, 8).error);
            assert!(!p.blk(i, 2048, 0).error);
            assert_eq!(p.blk(i, 0, 8), BlkAction::default());
        }
        assert!(!plan("seed=1").is_active());
    }

    #[test]
    fn canonical_text() {
        for (text, canonical) in [
            ("seed=3", "seed=3"),
            ("drop=0.1", "seed=0,drop=0.1"),
            (
                " extra=0.5 , seed=1,delay=0.25:1500ms,blk-latency=1:5m",
                "seed=1,delay=0.25:1.5s,extra=0.5:random,blk-latency=1:5m",
            ),
            (
                "seed=2,blk-error-sectors=7;10-20,blk-error=0.01,extra=0.1:variant,dup=0.2",
                "seed=2,dup=0.2,extra=0.1:variant,blk-error=0.01,blk-error-sectors=7-7;10-20",
            ),
        ] {
            let spec: EntropySpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), canonical);
            assert_eq!(canonical.parse::<EntropySpec>().unwrap(), spec);
        }
        let spec: EntropySpec = ALL.parse().unwrap();
        assert_eq!(spec.to_string().parse::<EntropySpec>().unwrap(), spec);
    }

    #[test]
    fn parse_errors_name_the_key() {
        for (text, why) in [
            ("", "empty"),
            ("seed=x", "seed: \"x\" is not a number"),
            ("seed=-1", "seed:"),
            ("drop=1.5", "drop: \"1.5\" is not a probability"),
            ("dup=-0.1", "dup:"),
            ("corrupt=NaN", "corrupt:"),
            ("delay=0.1", "delay: \"0.1\" is not P:DURATION"),
            ("delay=0.1:5x", "delay: \"5x\" is not a duration"),
            ("blk-latency=0.1:0s", "blk-latency: the duration is 0"),
            (
                "extra=0.1:weird",
                "extra: \"weird\" is not random or variant",
            ),
            ("blk-error-sectors=9-3", "blk-error-sectors: sector range"),
            ("blk-error-sectors=1-2;", "blk-error-sectors:"),
            ("loss=0.1", "unknown key \"loss\""),
            ("drop=0.1,drop=0.2", "drop is given twice"),
            ("seed=1,,drop=0.1", "\"\" is not key=value"),
            ("drop", "\"drop\" is not key=value"),
        ] {
            let e = text.parse::<EntropySpec>().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("entropy {text:?}: ")) && e.contains(why),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn descriptions() {
        let texts: Vec<String> = [
            NetAction::Drop,
            NetAction::Duplicate,
            NetAction::Corrupt {
                offset: 37,
                xor: 0x5a,
            },
            NetAction::Delay { ns: 10_000_000 },
            NetAction::SwapWithNext,
        ]
        .iter()
        .map(|a| Injection::net(5, a).unwrap().what)
        .collect();
        assert_eq!(
            texts,
            [
                "drop",
                "duplicate",
                "corrupt byte 37 ^0x5a",
                "delay 10ms",
                "swap with next"
            ]
        );
        assert!(Injection::net(5, &NetAction::Deliver).is_none());
        assert_eq!(
            Injection::extra(9, &[0; 60]).to_string(),
            "9: extra frame 60 bytes"
        );
        let both = BlkAction {
            error: true,
            latency_ns: 5_000_000,
        };
        let what: Vec<String> = Injection::blk(3, &both, 2048)
            .into_iter()
            .map(|i| i.what)
            .collect();
        assert_eq!(what, ["blk io-error sector 2048", "blk latency 5ms"]);
        assert!(Injection::blk(3, &BlkAction::default(), 0).is_empty());
    }
}
