//! Include/exclude rules choosing which recorded events a clone receives.
//!
//! A rule is `include CRITERIA...` (or `only ...`) or `exclude CRITERIA...` (or `!...`);
//! criteria are `key=value`, a value being comma-separated alternatives. A criterion finds
//! an event a match, a mismatch, or not applicable (network criteria on block events,
//! `sectors` on frames; `class`, `source`, `after` and `before` always apply). An include
//! rule keeps an event unless some criterion mismatches; an exclude rule drops it when
//! every criterion matches. An event passes a [`RuleSet`] when every include rule keeps it
//! and no exclude rule drops it. Markers always pass.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::parse_range;
use super::selection::{duration_text, parse_duration_ns};
use crate::error::CaptureError;
use crate::event::{Event, EventKind, KindClass, SourceId};
use crate::filter::{Ipv4Prefix, NetFilter, ProtocolMatch};
use crate::frame::{FrameInfo, MacAddr};
use crate::source::SourceTable;

const KEYS: &str =
    "class, source, mac, ip, src-ip, dst-ip, port, src-port, dst-port, proto, sectors, after, before";

/// Why a rule cannot be parsed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// Whether a rule keeps or drops what it matches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RuleKind {
    /// Keep only matching events (of the classes the criteria apply to).
    Include,
    /// Drop matching events.
    Exclude,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Match,
    NoMatch,
    NotApplicable,
}

/// One `key=value` criterion; `Mac`, `Ip`, `Port` and `Proto` hold a [`NetFilter`] with
/// that one list set.
#[derive(Clone, PartialEq, Debug)]
enum Criterion {
    Class(Vec<KindClass>),
    Source(Vec<(String, SourceId)>),
    Mac(NetFilter),
    Ip(NetFilter),
    SrcIp(Vec<Ipv4Prefix>),
    DstIp(Vec<Ipv4Prefix>),
    Port(NetFilter),
    SrcPort(Vec<u16>),
    DstPort(Vec<u16>),
    Proto(NetFilter),
    Sectors(Vec<RangeInclusive<u64>>),
    After(u64),
    Before(u64),
}

fn all<T>(values: &[&str], f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    values.iter().map(|v| f(v)).collect()
}

/// A value parsed by its `FromStr` in [`crate::filter`].
fn parsed<T: FromStr<Err = CaptureError>>(v: &str) -> Result<T, String> {
    v.parse().map_err(|e: CaptureError| e.to_string())
}

fn port(v: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not a port number (0 to 65535)"))
}

impl Criterion {
    fn parse(key: &str, value: &str, sources: &SourceTable) -> Result<Criterion, String> {
        if value.is_empty() {
            return Err(format!("{key}= has no value"));
        }
        let values: Vec<&str> = value.split(',').collect();
        if values.iter().any(|v| v.is_empty()) {
            return Err(format!("{key}={value} has an empty value in its list"));
        }
        let duration = || {
            if values.len() > 1 {
                return Err(format!("{key} takes one duration, not a list"));
            }
            parse_duration_ns(value)
        };
        Ok(match key {
            "class" => Criterion::Class(all(&values, |v| match parsed(v)? {
                KindClass::Marker => Err("markers always pass; use net, blk or serial".into()),
                c => Ok(c),
            })?),
            "source" => Criterion::Source(all(&values, |v| {
                let ids = sources.ids_of(&[v.to_string()])?;
                let id = ids.first().copied().ok_or(format!("no source {v:?}"))?;
                Ok((v.to_string(), id))
            })?),
            "mac" => Criterion::Mac(NetFilter {
                macs: all(&values, parsed)?,
                ..NetFilter::default()
            }),
            "ip" => Criterion::Ip(NetFilter {
                ipv4: all(&values, parsed)?,
                ..NetFilter::default()
            }),
            "src-ip" => Criterion::SrcIp(all(&values, parsed)?),
            "dst-ip" => Criterion::DstIp(all(&values, parsed)?),
            "port" => Criterion::Port(NetFilter {
                ports: all(&values, port)?,
                ..NetFilter::default()
            }),
            "src-port" => Criterion::SrcPort(all(&values, port)?),
            "dst-port" => Criterion::DstPort(all(&values, port)?),
            "proto" => Criterion::Proto(NetFilter {
                protocols: all(&values, parsed)?,
                ..NetFilter::default()
            }),
            "sectors" => Criterion::Sectors(all(&values, |v| parse_range(v, "sector"))?),
            "after" => Criterion::After(duration()?),
            "before" => Criterion::Before(duration()?),
            _ => return Err(format!("unknown criterion {key:?} (use {KEYS})")),
        })
    }

    fn verdict(&self, e: &Event, frame: Option<&FrameInfo>, snapshot_ns: u64) -> Verdict {
        let yes = |b: bool| if b { Verdict::Match } else { Verdict::NoMatch };
        let on_frame =
            |f: &dyn Fn(&FrameInfo) -> bool| frame.map_or(Verdict::NotApplicable, |i| yes(f(i)));
        let v4_in = |a: Option<IpAddr>, ps: &[Ipv4Prefix]| match a {
            Some(IpAddr::V4(a)) => ps.iter().any(|p| p.contains(a)),
            _ => false,
        };
        match self {
            Criterion::Class(c) => yes(c.contains(&e.kind.class())),
            Criterion::Source(s) => yes(s.iter().any(|(_, id)| *id == e.source)),
            Criterion::Mac(n) | Criterion::Ip(n) | Criterion::Port(n) | Criterion::Proto(n) => {
                on_frame(&|i| n.matches(i))
            }
            Criterion::SrcIp(ps) => on_frame(&|i| v4_in(i.src_ip, ps)),
            Criterion::DstIp(ps) => on_frame(&|i| v4_in(i.dst_ip, ps)),
            Criterion::SrcPort(ps) => on_frame(&|i| i.src_port.is_some_and(|p| ps.contains(&p))),
            Criterion::DstPort(ps) => on_frame(&|i| i.dst_port.is_some_and(|p| ps.contains(&p))),
            Criterion::Sectors(ranges) => match e.kind {
                EventKind::BlkCompletion { sector, len, .. }
                | EventKind::BlkWrite { sector, len, .. }
                    if len > 0 =>
                {
                    let end = sector.saturating_add(u64::from(len).div_ceil(512));
                    yes(ranges
                        .iter()
                        .any(|r| sector <= *r.end() && end > *r.start()))
                }
                _ => Verdict::NotApplicable,
            },
            Criterion::After(d) => yes(e.vm_time_ns >= snapshot_ns.saturating_add(*d)),
            Criterion::Before(d) => yes(e.vm_time_ns < snapshot_ns.saturating_add(*d)),
        }
    }

    fn needs_frame(&self) -> bool {
        !matches!(
            self,
            Criterion::Class(_)
                | Criterion::Source(_)
                | Criterion::Sectors(_)
                | Criterion::After(_)
                | Criterion::Before(_)
        )
    }
}

fn join<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(",")
}

fn prefix_text(p: &Ipv4Prefix) -> String {
    if p.len == 32 {
        p.addr.to_string()
    } else {
        format!("{}/{}", p.addr, p.len)
    }
}

fn proto_text(p: &ProtocolMatch) -> String {
    match p {
        ProtocolMatch::Arp => "arp".into(),
        ProtocolMatch::Ipv4 => "ipv4".into(),
        ProtocolMatch::Ipv6 => "ipv6".into(),
        ProtocolMatch::Icmp => "icmp".into(),
        ProtocolMatch::Tcp => "tcp".into(),
        ProtocolMatch::Udp => "udp".into(),
        ProtocolMatch::IpProto(n) => format!("ip-proto={n}"),
        ProtocolMatch::EtherType(t) => format!("ethertype=0x{t:04x}"),
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, value) = match self {
            Criterion::Class(c) => ("class", join(c, |c| c.name().to_string())),
            Criterion::Source(s) => ("source", join(s, |(n, _)| n.clone())),
            Criterion::Mac(n) => ("mac", join(&n.macs, MacAddr::to_string)),
            Criterion::Ip(n) => ("ip", join(&n.ipv4, prefix_text)),
            Criterion::SrcIp(p) => ("src-ip", join(p, prefix_text)),
            Criterion::DstIp(p) => ("dst-ip", join(p, prefix_text)),
            Criterion::Port(n) => ("port", join(&n.ports, u16::to_string)),
            Criterion::SrcPort(p) => ("src-port", join(p, u16::to_string)),
            Criterion::DstPort(p) => ("dst-port", join(p, u16::to_string)),
            Criterion::Proto(n) => ("proto", join(&n.protocols, proto_text)),
            Criterion::Sectors(r) => ("sectors", join(r, |r| format!("{}-{}", r.start(), r.end()))),
            Criterion::After(d) => ("after", duration_text(*d)),
            Criterion::Before(d) => ("before", duration_text(*d)),
        };
        write!(f, "{key}={value}")
    }
}

/// One include or exclude rule.
#[derive(Clone, PartialEq, Debug)]
pub struct Rule {
    kind: RuleKind,
    criteria: Vec<Criterion>,
}

impl Rule {
    /// Parses `include CRITERIA...` or `exclude CRITERIA...`, resolving source names in
    /// `sources`.
    pub fn parse(text: &str, sources: &SourceTable) -> Result<Rule, RuleError> {
        let err = |p: String| RuleError(format!("filter {text:?}: {p}"));
        let mut words = text.split_whitespace();
        let first = words.next().ok_or_else(|| {
            err("empty (use e.g. \"include ip=10.0.0.7\" or \"exclude class=blk\")".into())
        })?;
        let mut pending = None;
        let kind = match first.to_ascii_lowercase().as_str() {
            "include" | "only" => RuleKind::Include,
            "exclude" => RuleKind::Exclude,
            _ if first.starts_with('!') => {
                pending = Some(&first[1..]).filter(|w| !w.is_empty());
                RuleKind::Exclude
            }
            _ => {
                return Err(err(format!(
                    "starts with {first:?}, not include, only, exclude or !"
                )))
            }
        };
        let mut criteria = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for word in pending.into_iter().chain(words) {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| err(format!("{word:?} is not key=value")))?;
            let key = key.to_ascii_lowercase();
            let c = Criterion::parse(&key, value, sources).map_err(err)?;
            if keys.contains(&key) {
                return Err(err(format!(
                    "{key} is given twice (list alternatives with commas: {key}=A,B)"
                )));
            }
            keys.push(key);
            criteria.push(c);
        }
        if criteria.is_empty() {
            return Err(err(
                "no criteria (e.g. ip=10.0.0.7 or class=blk after=5s)".into()
            ));
        }
        let bound = |want: fn(&Criterion) -> Option<u64>| criteria.iter().find_map(want);
        let after = bound(|c| {
            if let Criterion::After(d) = c {
                Some(*d)
            } else {
                None
            }
        });
        let before = bound(|c| {
            if let Criterion::Before(d) = c {
                Some(*d)
            } else {
                None
            }
        });
        if let (Some(a), Some(b)) = (after, before) {
            if a >= b {
                return Err(err(format!(
                    "after={} before={} selects no time",
                    duration_text(a),
                    duration_text(b)
                )));
            }
        }
        Ok(Rule { kind, criteria })
    }

    /// Whether the rule keeps or drops what it matches.
    pub fn kind(&self) -> RuleKind {
        self.kind
    }

    /// Whether `e` survives this rule, `snapshot_ns` being the VM time `after` and `before`
    /// count from.
    pub fn passes(&self, e: &Event, snapshot_ns: u64) -> bool {
        let info = e.kind.frame().map(FrameInfo::parse);
        self.passes_with(e, info.as_ref(), snapshot_ns)
    }

    fn passes_with(&self, e: &Event, frame: Option<&FrameInfo>, snapshot_ns: u64) -> bool {
        let mut verdicts = self
            .criteria
            .iter()
            .map(|c| c.verdict(e, frame, snapshot_ns));
        match self.kind {
            RuleKind::Include => verdicts.all(|v| v != Verdict::NoMatch),
            RuleKind::Exclude => !verdicts.all(|v| v == Verdict::Match),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RuleKind::Include => "include",
            RuleKind::Exclude => "exclude",
        })?;
        self.criteria.iter().try_for_each(|c| write!(f, " {c}"))
    }
}

/// Rules applied together; empty, it passes everything.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses one rule per text, in order.
    pub fn parse(texts: &[String], sources: &SourceTable) -> Result<RuleSet, RuleError> {
        let rules = texts
            .iter()
            .map(|t| Rule::parse(t, sources))
            .collect::<Result<_, _>>()?;
        Ok(RuleSet { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether `e` passes every rule (markers always do); `snapshot_ns` is the VM time
    /// `after` and `before` count from.
    pub fn admits(&self, e: &Event, snapshot_ns: u64) -> bool {
        if self.rules.is_empty() || e.kind.class() == KindClass::Marker {
            return true;
        }
        let needs_frame = self
            .rules
            .iter()
            .flat_map(|r| &r.criteria)
            .any(Criterion::needs_frame);
        let info = e.kind.frame().filter(|_| needs_frame).map(FrameInfo::parse);
        self.rules
            .iter()
            .all(|r| r.passes_with(e, info.as_ref(), snapshot_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BlkRequestType;
    use crate::frame::tests::udp_frame;
    use crate::source::SourceInfo;
    use crate::BlkData;

    const SNAP: u64 = 1_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn table() -> SourceTable {
        SourceTable::new(vec![
            SourceInfo::net(0, "net0", None),
            SourceInfo::blk(1, "blk0"),
            SourceInfo::serial(2, "serial"),
        ])
        .unwrap()
    }

    fn ev(source: u16, t: u64, kind: EventKind) -> Event {
        Event {
            seq: 0,
            vm_time_ns: SNAP + t,
            progress: 0,
            source: SourceId(source),
            kind,
        }
    }

    fn rx(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Event {
        ev(
            0,
            0,
            EventKind::net_rx(udp_frame(src, sport, dst, dport, b"x")),
        )
    }

    fn arp(sender: [u8; 4], target: [u8; 4]) -> Event {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&sender);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        ev(0, 0, EventKind::net_rx(f))
    }

    fn read(t: u64, sector: u64, len: u32) -> Event {
        let kind = EventKind::BlkCompletion {
            request: BlkRequestType::Read,
            sector,
            len,
            status: 0,
            data: BlkData::None,
        };
        ev(1, t, kind)
    }

    fn serial(t: u64) -> Event {
        ev(
            2,
            t,
            EventKind::SerialIn {
                bytes: b"ls\n".to_vec(),
            },
        )
    }

    fn set(texts: &[&str]) -> RuleSet {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        RuleSet::parse(&texts, &table()).unwrap()
    }

    fn err(text: &str) -> String {
        Rule::parse(text, &table()).unwrap_err().to_string()
    }

    #[test]
    fn include_ip_keeps_other_classes() {
        let rules = set(&["include ip=10.0.0.7"]);
        assert!(rules.admits(&rx([10, 0, 0, 7], [10, 0, 0, 1], 1, 2), SNAP));
        assert!(rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 7], 1, 2), SNAP));
        assert!(!rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), SNAP));
        assert!(rules.admits(&arp([10, 0, 0, 1], [10, 0, 0, 7]), SNAP));
        assert!(!rules.admits(&arp([10, 0, 0, 1], [10, 0, 0, 8]), SNAP));
        assert!(rules.admits(&read(0, 0, 512), SNAP));
        assert!(rules.admits(&serial(0), SNAP));
        assert!(rules.admits(&ev(u16::MAX, 0, EventKind::RecordingStarted), SNAP));
    }

    #[test]
    fn exclude_blk_after_a_time() {
        let rules = set(&["exclude class=blk after=5s"]);
        assert!(rules.admits(&read(5 * SEC - 1, 0, 512), SNAP));
        assert!(!rules.admits(&read(5 * SEC, 0, 512), SNAP));
        assert!(!rules.admits(&ev(1, 9 * SEC, EventKind::blk_write(8, vec![0; 512])), SNAP));
        assert!(rules.admits(&serial(9 * SEC), SNAP));
        assert!(rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), SNAP));
    }

    #[test]
    fn exclude_by_source_address_only() {
        let rules = set(&["exclude src-ip=10.0.0.3"]);
        assert!(!rules.admits(&rx([10, 0, 0, 3], [10, 0, 0, 1], 1, 2), SNAP));
        assert!(rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 3], 1, 2), SNAP));
        // Not applicable to other classes, so an exclude rule leaves them alone.
        assert!(rules.admits(&read(0, 0, 512), SNAP));
        let rules = set(&["!dst-ip=10.0.0.0/24"]);
        assert!(rules.admits(&rx([10, 0, 0, 3], [10, 0, 1, 1], 1, 2), SNAP));
        assert!(!rules.admits(&rx([10, 0, 1, 1], [10, 0, 0, 9], 1, 2), SNAP));
    }

    #[test]
    fn each_criterion() {
        let udp = rx([10, 0, 0, 1], [10, 0, 0, 2], 5000, 53);
        let admits = |text: &str, e: &Event| set(&[text]).admits(e, SNAP);
        assert!(admits("only port=53,80", &udp));
        assert!(!admits("only port=80", &udp));
        assert!(admits("only src-port=5000", &udp));
        assert!(!admits("only src-port=53", &udp));
        assert!(admits("only dst-port=53", &udp));
        assert!(admits("only proto=tcp,udp", &udp));
        assert!(!admits("only proto=arp", &udp));
        assert!(admits("only mac=02:00:00:00:00:02", &udp));
        assert!(!admits("only mac=02:00:00:00:00:09", &udp));
        assert!(admits("only source=net0", &udp));
        assert!(!admits("only source=blk0,serial", &udp));
        assert!(!admits("only class=blk", &udp));
        assert!(admits("only before=1s", &udp));
        assert!(!admits("only after=1s", &udp));
        assert!(!admits("exclude class=net port=53", &udp));
        assert!(admits("exclude class=net port=80", &udp));
        // Sectors: [sector, sector + len/512) against an inclusive range.
        assert!(admits("only sectors=10-20", &read(0, 20, 4096)));
        assert!(admits("only sectors=10-20", &read(0, 3, 4096)));
        assert!(!admits("only sectors=10-20", &read(0, 2, 4096)));
        assert!(!admits("only sectors=10-20", &read(0, 21, 512)));
        assert!(admits("only sectors=10-20,100", &read(0, 100, 512)));
        assert!(admits("only sectors=10-20", &read(0, 0, 0)));
        assert!(admits("only sectors=10-20", &udp));
        assert!(!admits(
            "exclude sectors=0-7",
            &ev(1, 0, EventKind::blk_write(4, vec![0; 512]))
        ));
    }

    #[test]
    fn rules_compose() {
        let rules = set(&[
            "include class=net,serial",
            "exclude port=53",
            "!source=serial after=2s",
        ]);
        assert!(!rules.admits(&read(0, 0, 512), SNAP));
        assert!(!rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 2], 5000, 53), SNAP));
        assert!(rules.admits(&rx([10, 0, 0, 1], [10, 0, 0, 2], 5000, 80), SNAP));
        assert!(rules.admits(&serial(SEC), SNAP));
        assert!(!rules.admits(&serial(2 * SEC), SNAP));
        assert!(!rules.is_empty() && rules.rules().len() == 3);
        assert!(RuleSet::default().admits(&read(0, 0, 512), SNAP));
    }

    #[test]
    fn canonical_text() {
        for (text, canonical) in [
            ("only ip=10.0.0.7", "include ip=10.0.0.7"),
            (
                "! class=Blk,serial after=1500ms",
                "exclude class=blk,serial after=1.5s",
            ),
            (
                "!ip=10.0.0.0/8 proto=UDP,ethertype=88cc",
                "exclude ip=10.0.0.0/8 proto=udp,ethertype=0x88cc",
            ),
            (
                "include mac=02:00:00:00:00:0A source=blk0",
                "include mac=02:00:00:00:00:0a source=blk0",
            ),
            (
                "exclude sectors=7,10-20 before=1m",
                "exclude sectors=7-7,10-20 before=1m",
            ),
            (
                "include src-port=1,2 dst-port=3 port=4 src-ip=1.2.3.4 dst-ip=1.2.0.0/16",
                "include src-port=1,2 dst-port=3 port=4 src-ip=1.2.3.4 dst-ip=1.2.0.0/16",
            ),
        ] {
            let rule = Rule::parse(text, &table()).unwrap();
            assert_eq!(rule.to_string(), canonical);
            assert_eq!(Rule::parse(canonical, &table()).unwrap(), rule);
        }
    }

    #[test]
    fn errors_name_the_rule_and_the_problem() {
        assert_eq!(
            err("exclude ipp=10.0.0.3"),
            format!("filter \"exclude ipp=10.0.0.3\": unknown criterion \"ipp\" (use {KEYS})")
        );
        for (text, why) in [
            ("", "empty"),
            ("ip=10.0.0.3", "not include, only, exclude or !"),
            ("include", "no criteria"),
            ("!", "no criteria"),
            ("include ip", "\"ip\" is not key=value"),
            ("include ip=", "ip= has no value"),
            ("include port=53,", "empty value"),
            ("include port=99999", "\"99999\" is not a port number"),
            ("include ip=10.0.0.300", "10.0.0.300"),
            ("include mac=02:00", "MAC address"),
            ("include proto=sctp", "sctp"),
            ("include class=disk", "disk"),
            ("include class=marker", "markers always pass"),
            (
                "include source=net9",
                "no source \"net9\" (sources: net0, blk0, serial)",
            ),
            ("include sectors=9-3", "9 is after 3"),
            ("include after=5x", "\"5x\" is not a duration"),
            ("include after=1s,2s", "after takes one duration"),
            ("include after=5s before=2s", "selects no time"),
            ("include port=1 port=2", "port is given twice"),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!("filter {text:?}: ")) && e.contains(why),
                "{text}: {e}"
            );
        }
        let texts = vec![
            "include ip=10.0.0.1".to_string(),
            "exclude foo=1".to_string(),
        ];
        let e = RuleSet::parse(&texts, &table()).unwrap_err();
        assert!(e.0.contains("exclude foo=1"), "{e}");
    }
}
