//! Filter and range options shared by `show`, `stats` and `export-pcapng`.

use std::str::FromStr;

use clap::Args;
use replay::capture::reader::Query;
use replay::filter::{Ipv4Prefix, NetFilter, ProtocolMatch};
use replay::frame::MacAddr;
use replay::{Direction, Filter, KindClass, SourceTable};

use super::CliError;

/// A VM time: seconds (`12.5`) or a number with a unit (`1500ms`, `20us`, `7ns`, `2m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeArg(pub u64);

impl FromStr for TimeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (num, scale) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
        ]
        .iter()
        .find_map(|(u, k)| s.strip_suffix(u).map(|n| (n, *k)))
        .unwrap_or((s, 1e9));
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a time (e.g. 12.5, 1500ms, 20us)"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{s:?} is not a non-negative time"));
        }
        Ok(TimeArg((v * scale).round() as u64))
    }
}

/// Which events to select.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// The buffer, when DIR holds several.
    #[arg(long)]
    pub buffer: Option<String>,
    /// Event classes: net, blk, serial, marker (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<KindClass>,
    /// Only inputs (in) or outputs (out).
    #[arg(long)]
    pub direction: Option<Direction>,
    /// Sources by name (net0, blk0, serial; repeatable).
    #[arg(long)]
    pub source: Vec<String>,
    /// Frames from or to this MAC address (repeatable).
    #[arg(long)]
    pub mac: Vec<MacAddr>,
    /// Frames from or to this IPv4 address or prefix, e.g. 10.0.0.0/24 (repeatable).
    #[arg(long)]
    pub ip: Vec<Ipv4Prefix>,
    /// Frames from or to this TCP/UDP port (repeatable).
    #[arg(long)]
    pub port: Vec<u16>,
    /// Frames of this protocol: arp, ipv4, ipv6, icmp, tcp, udp, ip-proto=N,
    /// ethertype=0xNNNN (repeatable).
    #[arg(long)]
    pub proto: Vec<ProtocolMatch>,
    /// From this seq.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Up to this seq (inclusive).
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// From this VM time (seconds, or with a unit: 1500ms).
    #[arg(long)]
    pub from_time: Option<TimeArg>,
    /// Before this VM time.
    #[arg(long)]
    pub to_time: Option<TimeArg>,
    /// From the segment that starts at this snapshot.
    #[arg(long)]
    pub from_snapshot: Option<String>,
}

impl FilterArgs {
    /// The query these options describe, source names resolved in `sources`.
    pub fn query(&self, sources: &SourceTable) -> Result<Query, CliError> {
        let mut filter = Filter {
            net: NetFilter {
                macs: self.mac.clone(),
                ipv4: self.ip.clone(),
                ports: self.port.clone(),
                protocols: self.proto.clone(),
            },
            direction: self.direction,
            ..Filter::default()
        };
        if !self.kind.is_empty() {
            filter.classes = Some(self.kind.iter().copied().collect());
        }
        if !self.source.is_empty() {
            filter.sources = Some(sources.ids_of(&self.source).map_err(CliError::Usage)?);
        }
        Ok(Query {
            filter,
            from_seq: self.from_seq,
            to_seq: self.to_seq,
            from_vm_ns: self.from_time.map(|t| t.0),
            to_vm_ns: self.to_time.map(|t| t.0),
            from_snapshot: self.from_snapshot.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!("12.5".parse::<TimeArg>().unwrap(), TimeArg(12_500_000_000));
        assert_eq!("1500ms".parse::<TimeArg>().unwrap(), TimeArg(1_500_000_000));
        assert_eq!("20us".parse::<TimeArg>().unwrap(), TimeArg(20_000));
        assert_eq!("7ns".parse::<TimeArg>().unwrap(), TimeArg(7));
        assert_eq!("2m".parse::<TimeArg>().unwrap(), TimeArg(120_000_000_000));
        assert!("-1".parse::<TimeArg>().is_err());
        assert!("soon".parse::<TimeArg>().is_err());
    }
}
