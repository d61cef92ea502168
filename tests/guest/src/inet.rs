//! Ethernet, ARP, IPv4 and UDP: just enough to serve UDP on one IPv4 address.
//! Parsers check what a host must check (lengths, the IPv4 header checksum, the
//! UDP checksum when present) and refuse fragments; builders write whole frames
//! with correct checksums. All multi-byte fields are big-endian on the wire.

/// Bytes in an Ethernet header (no VLAN tag).
pub const ETH_HDR: usize = 14;
/// Bytes in an IPv4 header without options (the builder never adds options).
pub const IPV4_HDR: usize = 20;
/// Bytes in a UDP header.
pub const UDP_HDR: usize = 8;
/// Offset of the UDP payload in a frame built by [`build_udp`].
pub const UDP_PAYLOAD: usize = ETH_HDR + IPV4_HDR + UDP_HDR;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_UDP: u8 = 17;
pub const BROADCAST: Mac = [0xff; 6];

pub type Mac = [u8; 6];
pub type Ipv4Addr = [u8; 4];

/// An Ethernet frame, split.
pub struct Eth<'a> {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

/// Split an Ethernet frame; None if it is shorter than the header.
pub fn parse_eth(frame: &[u8]) -> Option<Eth<'_>> {
    if frame.len() < ETH_HDR {
        return None;
    }
    Some(Eth {
        dst: mac_at(frame, 0),
        src: mac_at(frame, 6),
        ethertype: be16(frame, 12),
        payload: &frame[ETH_HDR..],
    })
}

/// An ARP request (Ethernet/IPv4, operation 1).
pub struct ArpRequest {
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

const ARP_LEN: usize = 28;

/// Parse an ARP payload; None unless it is an Ethernet/IPv4 request.
pub fn parse_arp_request(p: &[u8]) -> Option<ArpRequest> {
    if p.len() < ARP_LEN
        || be16(p, 0) != 1
        || be16(p, 2) != ETHERTYPE_IPV4
        || p[4] != 6
        || p[5] != 4
        || be16(p, 6) != 1
    {
        return None;
    }
    Some(ArpRequest {
        sender_mac: mac_at(p, 8),
        sender_ip: ip_at(p, 14),
        target_ip: ip_at(p, 24),
    })
}

/// Write into `out` the frame answering `req` with `mac` for `ip`; returns its length.
pub fn build_arp_reply(out: &mut [u8], mac: Mac, ip: Ipv4Addr, req: &ArpRequest) -> usize {
    out[0..6].copy_from_slice(&req.sender_mac);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let p = &mut out[ETH_HDR..ETH_HDR + ARP_LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes());
    p[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&2u16.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip);
    p[18..24].copy_from_slice(&req.sender_mac);
    p[24..28].copy_from_slice(&req.sender_ip);
    ETH_HDR + ARP_LEN
}

/// Why an IPv4 packet was refused.
#[derive(Clone, Copy)]
pub enum Ipv4Error {
    Truncated,
    NotVersion4,
    BadHeaderLength,
    BadTotalLength,
    BadChecksum,
    Fragment,
}

impl Ipv4Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Ipv4Error::Truncated => "truncated IPv4 header",
            Ipv4Error::NotVersion4 => "IP version is not 4",
            Ipv4Error::BadHeaderLength => "bad IPv4 header length",
            Ipv4Error::BadTotalLength => "bad IPv4 total length",
            Ipv4Error::BadChecksum => "bad IPv4 header checksum",
            Ipv4Error::Fragment => "IPv4 fragment",
        }
    }
}

/// An IPv4 packet, split (payload cut to the total length, padding dropped).
pub struct Ipv4<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload: &'a [u8],
}

/// Parse and check an IPv4 packet (the payload of an Ethernet frame).
pub fn parse_ipv4(p: &[u8]) -> Result<Ipv4<'_>, Ipv4Error> {
    if p.len() < IPV4_HDR {
        return Err(Ipv4Error::Truncated);
    }
    if p[0] >> 4 != 4 {
        return Err(Ipv4Error::NotVersion4);
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    if ihl < IPV4_HDR || ihl > p.len() {
        return Err(Ipv4Error::BadHeaderLength);
    }
    let total = usize::from(be16(p, 2));
    if total < ihl || total > p.len() {
        return Err(Ipv4Error::BadTotalLength);
    }
    if checksum(&p[..ihl], 0) != 0 {
        return Err(Ipv4Error::BadChecksum);
    }
    // More-fragments set, or a non-zero fragment offset.
    if be16(p, 6) & 0x3fff != 0 {
        return Err(Ipv4Error::Fragment);
    }
    Ok(Ipv4 {
        src: ip_at(p, 12),
        dst: ip_at(p, 16),
        protocol: p[9],
        payload: &p[ihl..total],
    })
}

/// Why a UDP datagram was refused.
#[derive(Clone, Copy)]
pub enum UdpError {
    Truncated,
    BadLength,
    BadChecksum,
}

impl UdpError {
    pub fn as_str(self) -> &'static str {
        match self {
            UdpError::Truncated => "truncated UDP header",
            UdpError::BadLength => "bad UDP length",
            UdpError::BadChecksum => "bad UDP checksum",
        }
    }
}

/// A UDP datagram, split.
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Parse and check the UDP datagram carried by `ip` (checksum 0 means "none").
pub fn parse_udp<'a>(ip: &Ipv4<'a>) -> Result<Udp<'a>, UdpError> {
    let p = ip.payload;
    if p.len() < UDP_HDR {
        return Err(UdpError::Truncated);
    }
    let len = usize::from(be16(p, 4));
    if len < UDP_HDR || len > p.len() {
        return Err(UdpError::BadLength);
    }
    if be16(p, 6) != 0 && checksum(&p[..len], pseudo_header_sum(ip.src, ip.dst, len)) != 0 {
        return Err(UdpError::BadChecksum);
    }
    Ok(Udp {
        src_port: be16(p, 0),
        dst_port: be16(p, 2),
        payload: &p[UDP_HDR..len],
    })
}

/// One end of a UDP conversation.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// Complete the frame in `out` whose UDP payload (`len` bytes) is already at
/// [`UDP_PAYLOAD`]: Ethernet, IPv4 (identification `ip_id`, don't-fragment, TTL 64)
/// and UDP headers with their checksums. Returns the frame length.
pub fn build_udp(out: &mut [u8], from: &Endpoint, to: &Endpoint, ip_id: u16, len: usize) -> usize {
    let udp_len = UDP_HDR + len;
    let ip_len = IPV4_HDR + udp_len;
    out[0..6].copy_from_slice(&to.mac);
    out[6..12].copy_from_slice(&from.mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let ip = &mut out[ETH_HDR..ETH_HDR + IPV4_HDR];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = PROTO_UDP;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&from.ip);
    ip[16..20].copy_from_slice(&to.ip);
    let sum = checksum(ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let udp = &mut out[ETH_HDR + IPV4_HDR..ETH_HDR + ip_len];
    udp[0..2].copy_from_slice(&from.port.to_be_bytes());
    udp[2..4].copy_from_slice(&to.port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].fill(0);
    let sum = match checksum(udp, pseudo_header_sum(from.ip, to.ip, udp_len)) {
        // A computed zero is sent as all ones (zero means "no checksum").
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    ETH_HDR + ip_len
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum
/// `initial`. Over data that includes a correct checksum field it is 0.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut pairs = data.chunks_exact(2);
    for pair in &mut pairs {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Partial sum of the UDP pseudo-header.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    let word = |a: Ipv4Addr, i: usize| u32::from(u16::from_be_bytes([a[i], a[i + 1]]));
    word(src, 0)
        + word(src, 2)
        + word(dst, 0)
        + word(dst, 2)
        + u32::from(PROTO_UDP)
        + udp_len as u32
}

/// Parse a dotted-quad IPv4 address.
pub fn parse_ipv4_addr(s: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

fn mac_at(p: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&p[at..at + 6]);
    m
}

fn ip_at(p: &[u8], at: usize) -> Ipv4Addr {
    [p[at], p[at + 1], p[at + 2], p[at + 3]]
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub struct MacFmt(pub Mac);

impl core::fmt::Display for MacFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

/// Formats an IPv4 address as a dotted quad.
pub struct IpFmt(pub Ipv4Addr);

impl core::fmt::Display for IpFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{}.{}.{}.{}", a, b, c, d)
    }
}
