//! A pcapng writer (the format Wireshark and tshark read natively): a Section Header Block,
//! an Interface Description Block per interface (Ethernet, nanosecond timestamps), and an
//! Enhanced Packet Block per frame with its direction in the `epb_flags` option.
//!
//! Blocks are written little-endian, each `type | total length | body | total length`, the
//! body padded to 32 bits; options are `code u16 | length u16 | value` padded to 32 bits
//! and closed by `opt_endofopt`.

use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_MACADDR: u16 = 6;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Which way a frame went, from the point of view of the guest's interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PacketDirection {
    /// Received by the guest (`epb_flags` direction 01).
    Inbound,
    /// Sent by the guest (`epb_flags` direction 10).
    Outbound,
}

/// Writes one pcapng section to `W`.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: u32,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn end_options(body: &mut Vec<u8>) {
    body.extend_from_slice(&OPT_END.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
}

/// Option values longer than an option can hold are cut.
fn clip(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(u16::MAX as usize - 3)]
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a section, naming the application that wrote it.
    pub fn new(out: W, application: &str) -> io::Result<PcapngWriter<W>> {
        let mut w = PcapngWriter { out, interfaces: 0 };
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        option(&mut body, SHB_USERAPPL, clip(application));
        end_options(&mut body);
        w.block(SHB, &body)?;
        Ok(w)
    }

    fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        debug_assert_eq!(body.len() % 4, 0);
        let total = u32::try_from(12 + body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Describes an Ethernet interface (timestamps in nanoseconds); returns its id for
    /// [`PcapngWriter::write_packet`].
    pub fn add_interface(
        &mut self,
        name: &str,
        description: Option<&str>,
        mac: Option<[u8; 6]>,
    ) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        option(&mut body, IF_NAME, clip(name));
        if let Some(d) = description {
            option(&mut body, IF_DESCRIPTION, clip(d));
        }
        if let Some(m) = mac {
            option(&mut body, IF_MACADDR, &m);
        }
        option(&mut body, IF_TSRESOL, &[9]);
        end_options(&mut body);
        self.block(IDB, &body)?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    /// Writes one frame seen on `interface` at `unix_ns` (nanoseconds since the Unix
    /// epoch), with its direction and an optional comment.
    pub fn write_packet(
        &mut self,
        interface: u32,
        unix_ns: u64,
        frame: &[u8],
        direction: PacketDirection,
        comment: Option<&str>,
    ) -> io::Result<()> {
        if interface >= self.interfaces {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng interface {interface} was not described"),
            ));
        }
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        let mut body = Vec::with_capacity(frame.len() + 64);
        body.extend_from_slice(&interface.to_le_bytes());
        body.extend_from_slice(&((unix_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(unix_ns as u32).to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(frame);
        body.extend(std::iter::repeat_n(0u8, pad4(frame.len())));
        if let Some(c) = comment {
            option(&mut body, OPT_COMMENT, clip(c));
        }
        let flags: u32 = match direction {
            PacketDirection::Inbound => 0b01,
            PacketDirection::Outbound => 0b10,
        };
        option(&mut body, EPB_FLAGS, &flags.to_le_bytes());
        end_options(&mut body);
        self.block(EPB, &body)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn block_structure() {
        let mut w = PcapngWriter::new(Vec::new(), "test").unwrap();
        let i = w
            .add_interface("net0", None, Some([2, 0, 0, 0, 0, 1]))
            .unwrap();
        assert_eq!(i, 0);
        w.write_packet(
            0,
            (5 << 32) + 7,
            &[0xaa; 61],
            PacketDirection::Outbound,
            Some("c"),
        )
        .unwrap();
        assert!(w
            .write_packet(1, 0, &[], PacketDirection::Inbound, None)
            .is_err());
        let b = w.finish().unwrap();
        // Walk the blocks: each total length is repeated at its end.
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < b.len() {
            let kind = u32_at(&b, at);
            let len = u32_at(&b, at + 4) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(&b, at + len - 4) as usize, len);
            kinds.push(kind);
            if kind == EPB {
                assert_eq!(u32_at(&b, at + 12), 5);
                assert_eq!(u32_at(&b, at + 16), 7);
                assert_eq!(u32_at(&b, at + 20), 61);
            }
            at += len;
        }
        assert_eq!(kinds, [SHB, IDB, EPB]);
        assert_eq!(u32_at(&b, 8), BYTE_ORDER_MAGIC);
    }
}
