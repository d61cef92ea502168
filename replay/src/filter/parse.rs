//! Parsing filter values from text (command lines, API requests).

use std::net::Ipv4Addr;
use std::str::FromStr;

use super::net::{Ipv4Prefix, ProtocolMatch};
use crate::error::CaptureError;
use crate::event::{Direction, KindClass};
use crate::frame::MacAddr;

impl FromStr for MacAddr {
    type Err = CaptureError;

    /// `02:00:00:00:00:01` (or with `-` separators).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(CaptureError::parse(
                "MAC address",
                s,
                "expected six hex bytes separated by ':'",
            ));
        }
        let mut mac = [0u8; 6];
        for (m, p) in mac.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(CaptureError::parse(
                    "MAC address",
                    s,
                    format!("{p:?} is not two hex digits"),
                ));
            }
            *m = u8::from_str_radix(p, 16)
                .map_err(|_| CaptureError::parse("MAC address", s, format!("{p:?} is not hex")))?;
        }
        Ok(MacAddr(mac))
    }
}

impl FromStr for Ipv4Prefix {
    type Err = CaptureError;

    /// `10.0.0.0/8`, or a bare address (`/32`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l.parse().map_err(|_| {
                    CaptureError::parse("IPv4 prefix", s, "the prefix length is not a number")
                })?;
                (a, len)
            }
            None => (s, 32),
        };
        if len > 32 {
            return Err(CaptureError::parse(
                "IPv4 prefix",
                s,
                "the prefix length is over 32",
            ));
        }
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| CaptureError::parse("IPv4 prefix", s, format!("{e}")))?;
        Ok(Ipv4Prefix { addr, len })
    }
}

impl FromStr for ProtocolMatch {
    type Err = CaptureError;

    /// `arp`, `ipv4`, `ipv6`, `icmp`, `tcp`, `udp`, `ip-proto=N`, `ethertype=0xNNNN`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "arp" => ProtocolMatch::Arp,
            "ip" | "ipv4" => ProtocolMatch::Ipv4,
            "ipv6" => ProtocolMatch::Ipv6,
            "icmp" | "icmpv6" => ProtocolMatch::Icmp,
            "tcp" => ProtocolMatch::Tcp,
            "udp" => ProtocolMatch::Udp,
            other => {
                if let Some(n) = other.strip_prefix("ip-proto=") {
                    ProtocolMatch::IpProto(n.parse().map_err(|_| {
                        CaptureError::parse("protocol", s, "the IP protocol number is not 0-255")
                    })?)
                } else if let Some(t) = other.strip_prefix("ethertype=") {
                    let t = t.strip_prefix("0x").unwrap_or(t);
                    ProtocolMatch::EtherType(u16::from_str_radix(t, 16).map_err(|_| {
                        CaptureError::parse("protocol", s, "the EtherType is not 16-bit hex")
                    })?)
                } else {
                    return Err(CaptureError::parse(
                        "protocol",
                        s,
                        "expected arp, ipv4, ipv6, icmp, tcp, udp, ip-proto=N or ethertype=0xNNNN",
                    ));
                }
            }
        })
    }
}

impl FromStr for KindClass {
    type Err = CaptureError;

    /// `net`, `blk`, `serial`, `marker` (or `markers`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "net" => Ok(KindClass::Net),
            "blk" | "block" => Ok(KindClass::Blk),
            "serial" | "console" => Ok(KindClass::Serial),
            "marker" | "markers" => Ok(KindClass::Marker),
            _ => Err(CaptureError::parse(
                "event class",
                s,
                "expected net, blk, serial or marker",
            )),
        }
    }
}

impl FromStr for Direction {
    type Err = CaptureError;

    /// `in`/`input` or `out`/`output`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "in" | "input" | "inputs" => Ok(Direction::Input),
            "out" | "output" | "outputs" => Ok(Direction::Output),
            _ => Err(CaptureError::parse("direction", s, "expected in or out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_values() {
        assert_eq!(
            "02:00:0a:FF:00:01".parse::<MacAddr>().unwrap(),
            MacAddr([2, 0, 10, 255, 0, 1])
        );
        assert!("02:00:0a:ff:00".parse::<MacAddr>().is_err());
        assert!("02:00:0a:ff:00:zz".parse::<MacAddr>().is_err());
        assert!("02:00:0a:ff:00:1".parse::<MacAddr>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Prefix>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Prefix>().is_err());
        assert!("10.0.0.0/x".parse::<Ipv4Prefix>().is_err());
        assert_eq!("TCP".parse::<ProtocolMatch>().unwrap(), ProtocolMatch::Tcp);
        assert_eq!(
            "ethertype=0x88cc".parse::<ProtocolMatch>().unwrap(),
            ProtocolMatch::EtherType(0x88cc)
        );
        assert_eq!(
            "ip-proto=47".parse::<ProtocolMatch>().unwrap(),
            ProtocolMatch::IpProto(47)
        );
        assert!("ip-proto=300".parse::<ProtocolMatch>().is_err());
        assert!("sctp".parse::<ProtocolMatch>().is_err());
        assert_eq!("blk".parse::<KindClass>().unwrap(), KindClass::Blk);
        assert!("disk".parse::<KindClass>().is_err());
        assert_eq!("out".parse::<Direction>().unwrap(), Direction::Output);
        let err = "sideways".parse::<Direction>().unwrap_err().to_string();
        assert!(err.contains("sideways"), "{err}");
    }
}
