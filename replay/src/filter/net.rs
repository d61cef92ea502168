//! Criteria on network frames.

use std::net::Ipv4Addr;

use crate::frame::{FrameInfo, MacAddr, Protocol};

/// An IPv4 address and prefix length (`10.0.0.0/8`; a bare address is a `/32`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Prefix {
    /// The network address (bits past the prefix are ignored).
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// Whether `a` is inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        };
        u32::from(a) & mask == u32::from(self.addr) & mask
    }
}

/// A protocol a frame may be selected by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProtocolMatch {
    /// ARP.
    Arp,
    /// Any IPv4 packet.
    Ipv4,
    /// Any IPv6 packet.
    Ipv6,
    /// ICMP or ICMPv6.
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// An IP protocol number.
    IpProto(u8),
    /// An EtherType (after VLAN tags).
    EtherType(u16),
}

impl ProtocolMatch {
    /// Whether the frame `f` is of this protocol.
    pub fn matches(&self, f: &FrameInfo) -> bool {
        match self {
            ProtocolMatch::Arp => f.protocol == Some(Protocol::Arp),
            ProtocolMatch::Ipv4 => f.ether_type == Some(0x0800),
            ProtocolMatch::Ipv6 => f.ether_type == Some(0x86dd),
            ProtocolMatch::Icmp => f.protocol == Some(Protocol::Icmp),
            ProtocolMatch::Tcp => f.protocol == Some(Protocol::Tcp),
            ProtocolMatch::Udp => f.protocol == Some(Protocol::Udp),
            ProtocolMatch::IpProto(n) => match f.protocol {
                Some(Protocol::Tcp) => *n == 6,
                Some(Protocol::Udp) => *n == 17,
                Some(Protocol::Icmp) => *n == 1 || *n == 58,
                Some(Protocol::OtherIp(p)) => p == *n,
                _ => false,
            },
            ProtocolMatch::EtherType(t) => f.ether_type == Some(*t),
        }
    }
}

/// Criteria on network frames; empty lists select nothing out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetFilter {
    /// The frame's source or destination MAC is one of these.
    pub macs: Vec<MacAddr>,
    /// The frame's source or destination IPv4 address (ARP sender/target included) is in
    /// one of these prefixes.
    pub ipv4: Vec<Ipv4Prefix>,
    /// The frame's TCP/UDP source or destination port is one of these.
    pub ports: Vec<u16>,
    /// The frame is of one of these protocols.
    pub protocols: Vec<ProtocolMatch>,
}

impl NetFilter {
    /// Whether no criterion is set.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
            && self.ipv4.is_empty()
            && self.ports.is_empty()
            && self.protocols.is_empty()
    }

    /// Whether the frame passes every criterion that is set.
    pub fn matches(&self, f: &FrameInfo) -> bool {
        let mac_ok = self.macs.is_empty()
            || [f.src_mac, f.dst_mac]
                .iter()
                .flatten()
                .any(|m| self.macs.contains(m));
        let ip_ok = self.ipv4.is_empty()
            || f.ipv4_addrs()
                .any(|a| self.ipv4.iter().any(|p| p.contains(a)));
        let port_ok = self.ports.is_empty()
            || [f.src_port, f.dst_port]
                .iter()
                .flatten()
                .any(|p| self.ports.contains(p));
        let proto_ok = self.protocols.is_empty() || self.protocols.iter().any(|p| p.matches(f));
        mac_ok && ip_ok && port_ok && proto_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::udp_frame;

    #[test]
    fn prefixes() {
        let p: Ipv4Prefix = "10.1.0.0/16".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(10, 1, 200, 3)));
        assert!(!p.contains(Ipv4Addr::new(10, 2, 0, 1)));
        let any: Ipv4Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let host: Ipv4Prefix = "10.0.0.7".parse().unwrap();
        assert_eq!(host.len, 32);
        assert!(host.contains(Ipv4Addr::new(10, 0, 0, 7)));
        assert!(!host.contains(Ipv4Addr::new(10, 0, 0, 8)));
    }

    #[test]
    fn each_criterion_and_their_conjunction() {
        let f = FrameInfo::parse(&udp_frame([10, 0, 0, 1], 1234, [10, 0, 0, 2], 53, b"x"));
        let mac: MacAddr = "02:00:00:00:00:02".parse().unwrap();
        let other_mac: MacAddr = "02:00:00:00:00:09".parse().unwrap();
        let cases = [
            (NetFilter::default(), true),
            (
                NetFilter {
                    macs: vec![mac],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    macs: vec![other_mac],
                    ..Default::default()
                },
                false,
            ),
            (
                NetFilter {
                    ipv4: vec!["10.0.0.0/24".parse().unwrap()],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    ipv4: vec!["10.0.1.0/24".parse().unwrap()],
                    ..Default::default()
                },
                false,
            ),
            (
                NetFilter {
                    ports: vec![80, 53],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    ports: vec![80],
                    ..Default::default()
                },
                false,
            ),
            (
                NetFilter {
                    protocols: vec![ProtocolMatch::Udp],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    protocols: vec![ProtocolMatch::Ipv4],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    protocols: vec![ProtocolMatch::IpProto(17)],
                    ..Default::default()
                },
                true,
            ),
            (
                NetFilter {
                    protocols: vec![ProtocolMatch::Tcp, ProtocolMatch::Arp],
                    ..Default::default()
                },
                false,
            ),
            (
                NetFilter {
                    ports: vec![53],
                    protocols: vec![ProtocolMatch::Tcp],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(filter.matches(&f), *want, "case {i}: {filter:?}");
        }
    }
}
