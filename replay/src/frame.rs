//! What filters and tools need to know about an Ethernet frame: addresses, protocols,
//! ports. Parsed with `etherparse`, tolerating frames that are cut short (what could be
//! parsed is kept).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The transport (or network) protocol a frame carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Protocol {
    /// ARP.
    Arp,
    /// ICMP (IPv4) or ICMPv6.
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Another IP protocol (by number).
    OtherIp(u8),
    /// A frame that is neither ARP nor IP (by EtherType).
    OtherEtherType(u16),
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Arp => f.write_str("arp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::OtherIp(n) => write!(f, "ip-proto-{n}"),
            Protocol::OtherEtherType(t) => write!(f, "ethertype-{t:#06x}"),
        }
    }
}

/// The UDP payload of a frame, if it carries UDP.
pub fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    match etherparse::SlicedPacket::from_ethernet(frame)
        .ok()?
        .transport
    {
        Some(TransportSlice::Udp(u)) => Some(u.payload()),
        _ => None,
    }
}

/// The parsed headers of a frame.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FrameInfo {
    /// Source MAC (absent when the frame is shorter than an Ethernet header).
    pub src_mac: Option<MacAddr>,
    /// Destination MAC.
    pub dst_mac: Option<MacAddr>,
    /// The EtherType after any VLAN tags.
    pub ether_type: Option<u16>,
    /// Source address (IPv4, IPv6, or the sender of an IPv4 ARP packet).
    pub src_ip: Option<IpAddr>,
    /// Destination address (or the target of an IPv4 ARP packet).
    pub dst_ip: Option<IpAddr>,
    /// The protocol.
    pub protocol: Option<Protocol>,
    /// TCP/UDP source port.
    pub src_port: Option<u16>,
    /// TCP/UDP destination port.
    pub dst_port: Option<u16>,
}

impl FrameInfo {
    /// Parses `frame` (an Ethernet II frame, without virtio-net header).
    pub fn parse(frame: &[u8]) -> FrameInfo {
        let mut info = FrameInfo::default();
        let Ok(p) = LaxSlicedPacket::from_ethernet(frame) else {
            return info;
        };
        if let Some(LinkSlice::Ethernet2(eth)) = &p.link {
            info.src_mac = Some(MacAddr(eth.source()));
            info.dst_mac = Some(MacAddr(eth.destination()));
        }
        if let Some(payload) = p.ether_payload() {
            info.ether_type = Some(payload.ether_type.0);
            info.protocol = Some(Protocol::OtherEtherType(payload.ether_type.0));
        }
        match &p.net {
            Some(LaxNetSlice::Ipv4(ip)) => {
                let h = ip.header();
                info.src_ip = Some(IpAddr::V4(h.source_addr()));
                info.dst_ip = Some(IpAddr::V4(h.destination_addr()));
                info.protocol = Some(ip_protocol(ip.payload().ip_number.0));
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                let h = ip.header();
                info.src_ip = Some(IpAddr::V6(h.source_addr()));
                info.dst_ip = Some(IpAddr::V6(h.destination_addr()));
                info.protocol = Some(ip_protocol(ip.payload().ip_number.0));
            }
            Some(LaxNetSlice::Arp(arp)) => {
                info.protocol = Some(Protocol::Arp);
                info.src_ip = arp_ip(arp.sender_protocol_addr());
                info.dst_ip = arp_ip(arp.target_protocol_addr());
            }
            None => {}
        }
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                info.protocol = Some(Protocol::Tcp);
                info.src_port = Some(t.source_port());
                info.dst_port = Some(t.destination_port());
            }
            Some(TransportSlice::Udp(u)) => {
                info.protocol = Some(Protocol::Udp);
                info.src_port = Some(u.source_port());
                info.dst_port = Some(u.destination_port());
            }
            Some(TransportSlice::Icmpv4(_)) | Some(TransportSlice::Icmpv6(_)) => {
                info.protocol = Some(Protocol::Icmp);
            }
            _ => {}
        }
        info
    }

    /// The IPv4 addresses of the frame (source, destination), those present.
    pub fn ipv4_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        [self.src_ip, self.dst_ip]
            .into_iter()
            .filter_map(|a| match a {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            })
    }

    /// The IPv6 addresses of the frame, those present.
    pub fn ipv6_addrs(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        [self.src_ip, self.dst_ip]
            .into_iter()
            .filter_map(|a| match a {
                Some(IpAddr::V6(v6)) => Some(v6),
                _ => None,
            })
    }

    /// A one-line description: `02:..:01 > 02:..:02 udp 10.0.0.1:5000 > 10.0.0.2:53`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if let (Some(a), Some(b)) = (self.src_mac, self.dst_mac) {
            s.push_str(&format!("{a} > {b}"));
        } else {
            return "runt frame".to_string();
        }
        if let Some(p) = self.protocol {
            s.push_str(&format!(" {p}"));
        }
        let end = |ip: Option<IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (Some(a), None) => a.to_string(),
            _ => String::new(),
        };
        if self.src_ip.is_some() || self.dst_ip.is_some() {
            s.push_str(&format!(
                " {} > {}",
                end(self.src_ip, self.src_port),
                end(self.dst_ip, self.dst_port)
            ));
        }
        s
    }
}

fn ip_protocol(n: u8) -> Protocol {
    match n {
        1 | 58 => Protocol::Icmp,
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        other => Protocol::OtherIp(other),
    }
}

fn arp_ip(b: &[u8]) -> Option<IpAddr> {
    <[u8; 4]>::try_from(b)
        .ok()
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// A UDP/IPv4 frame from `src` to `dst`.
    pub fn udp_frame(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("building a frame");
        out
    }

    #[test]
    fn parses_udp_tcp_arp_and_runts() {
        let f = FrameInfo::parse(&udp_frame([10, 0, 0, 1], 5000, [10, 0, 0, 2], 53, b"q"));
        assert_eq!(f.protocol, Some(Protocol::Udp));
        assert_eq!(f.src_port, Some(5000));
        assert_eq!(f.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert_eq!(
            f.summary(),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 udp 10.0.0.1:5000 > 10.0.0.2:53"
        );

        let mut tcp = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .tcp(80, 4000, 1, 1000)
            .write(&mut tcp, b"GET /")
            .unwrap();
        let f = FrameInfo::parse(&tcp);
        assert_eq!(f.protocol, Some(Protocol::Tcp));
        assert_eq!(f.dst_port, Some(4000));

        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 9]);
        let f = FrameInfo::parse(&arp);
        assert_eq!(f.protocol, Some(Protocol::Arp));
        assert_eq!(f.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))));

        let f = FrameInfo::parse(&[1, 2, 3]);
        assert_eq!(f, FrameInfo::default());
        assert_eq!(f.summary(), "runt frame");
    }
}
