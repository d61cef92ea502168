//! `workload=kv`: a key-value service over UDP/IPv4 on the first virtio-net
//! device, keeping its data in an append-only log on the first virtio-blk disk.
//! Deterministic given its inputs: no clock is read, replies depend only on the
//! requests and the disk.
//!
//! # Options
//!
//! `kv.ip` (default `10.0.0.2`), `kv.port` (7000): where it listens; its MAC is
//! the device's. `kv.sector` (2048): first sector of the log. `kv.log_kib`
//! (4096, at least 256): size of each log half, used only when a new log is
//! written (an existing one keeps its size). `kv.report` (100): requests between
//! progress lines (0: none).
//!
//! # Network
//!
//! Answers ARP requests for its IP. Takes IPv4 frames addressed to its IP (and
//! to its MAC or broadcast) carrying UDP to its port; drops, counts and reports
//! (the first ten) frames with a bad IPv4 header checksum, a bad UDP checksum
//! (when not 0), bad lengths or fragments; ignores all other traffic. A reply
//! goes to the request's source MAC, IP and port, from the service's port.
//!
//! # Requests and replies
//!
//! One ASCII request per UDP datagram, one reply datagram per request; a single
//! trailing `\n` on a request is ignored:
//!
//! ```text
//! <id> PUT <key> <value>      store value under key            -> <id> OK
//! <id> GET <key>              read it                          -> <id> OK <value> | <id> NOT_FOUND
//! <id> DEL <key>              delete it                        -> <id> OK | <id> NOT_FOUND
//! <id> QUIT                   reply, then end the workload     -> <id> OK
//! any refused request                                          -> <id> ERR <reason>
//! ```
//!
//! `<id>`: 1-10 decimal digits, at most 4294967295, echoed in the reply (as
//! decimal without leading zeros) so that replies can be matched; a request
//! whose id cannot be read is answered with id 0. `<key>`: 1-32 bytes of
//! printable ASCII other than space. `<value>`: everything after the space that
//! ends the key, 0-256 bytes of anything. Reasons: `bad-request`,
//! `key-too-long`, `value-too-long`, `full` (no room for another key: at most
//! 768), `io` (the disk failed the request; it may or may not have taken effect).
//! A PUT or DEL is replied to only once its record is written and flushed.
//!
//! # Disk layout
//!
//! At `kv.sector`: a superblock (`RPKVLOG1`, version u32 = 1, live generation
//! u32, half size in sectors u64, CRC-32 of the preceding 24 bytes; little
//! endian), then two halves. Generation g lives in half g & 1, its records
//! packed byte after byte from the half's start:
//!
//! ```text
//! 0  u8   0xa7
//! 1  u8   kind: 1 = PUT, 2 = DEL (a tombstone, no value)
//! 2  u8   key length
//! 3  u8   value length
//! 4  u32  generation
//! 8  u32  sequence number (0, 1, 2, ... within the generation)
//! 12 u32  CRC-32 of bytes 0-11, the key and the value
//! 16      key, value
//! ```
//!
//! At start the active half is read up to the first position that holds no
//! record of the expected generation and sequence number (or a damaged one,
//! which is reported: a torn write), and the index of live keys is rebuilt, so
//! a restarted or cloned guest serves the same data. Every PUT and DEL appends
//! a record and flushes. A record that does not fit in the rest of the half
//! starts a compaction: the live records are copied into the other half under
//! the next generation, flushed, and the superblock is rewritten to name it.
//!
//! # Serial output
//!
//! ```text
//! kv: formatted a new log at sector <s>           only when the disk held none
//! kv: log generation=<g> half_kib=<k> bytes=<tail>
//! kv: log ends at record <n> (byte <b>): <why>    only when the load stopped at a damaged record
//! kv: loaded <N> keys from <M> log records
//! kv: ready ip=<ip> port=<port> mac=<mac>
//! kv: requests=<n> puts=<n> gets=<n> dels=<n> errors=<n> keys=<n> records=<n> compactions=<n> bad_frames=<n>
//!                                                 every kv.report requests
//! kv: compacted <m> records into <k> (generation <g>, <bytes> bytes)
//! kv: dropped a frame from <mac>: <why>           the first ten bad frames
//! kv: disk error on <read|append>: status=<n>     the request is answered ERR io
//! kv: stopped requests=<n> keys=<n>               after QUIT
//! ```
//!
//! # The latent bug (deliberate, for the recording and replay demos)
//!
//! Values may be up to 256 bytes long, but the record header keeps the value
//! length in one byte, so a 256-byte value is recorded as 0 bytes long. The log
//! advances its tail by the length in the header: the next record appended, by
//! any client, is written over the start of that value. The index still holds
//! the true length, so the next read of the key — a GET, or the next compaction,
//! which copies every live record — finds a record whose checksum does not
//! match, and the guest panics and resets:
//!
//! ```text
//! reprise-guest: FATAL kv: panic: log record <n> at byte <b> of generation <g> (key '<key>', <16 + key length + 256> bytes) fails its checksum: stored <crc>, computed <crc>
//! ```
//!
//! The triggering sequence: (1) `PUT <k> <a 256-byte value>` (answered OK);
//! (2) any request that appends a record, e.g. `PUT <k2> <v>` (OK); (3)
//! `GET <k>`: no reply, the panic. Without (2) the GET succeeds; if `<k>` is
//! overwritten or deleted before it is read, nothing happens until a restart,
//! whose load stops at the short record ("log ends at record <n> (byte <b>):
//! bad checksum"), losing it and every later record. Values of 0-255 bytes never
//! trigger it. `reprise-kvgen` sends random values of at most 64 bytes by
//! default and, in trigger mode, from its trigger client exactly:
//! `PUT trigger:blob <256 bytes>`, `PUT trigger:note <8 bytes>`, `GET trigger:blob`.

/// Print `kv: panic: <what broke>` as a FATAL line and reset.
#[macro_export]
macro_rules! kv_panic {
    ($($arg:tt)*) => {
        $crate::fatal!("kv: panic: {}", format_args!($($arg)*))
    };
}

mod index;
mod log;
mod proto;

use super::Env;
use crate::cmdline::Bytes;
use crate::inet::{self, Endpoint, IpFmt, MacFmt};
use crate::println;
use crate::virtio::blk::Blk;
use crate::virtio::net::Net;
use crate::virtio::{DEVICE_BLK, DEVICE_NET};
use index::Index;
use log::{Log, LogError, Record, KIND_DEL, KIND_PUT};
use proto::{Op, Refusal, Reply};

/// Bad frames reported one by one; later ones are only counted.
const BAD_FRAMES_SHOWN: u64 = 10;
/// Largest frame handled (1500-byte MTU plus the Ethernet header).
const FRAME_MAX: usize = 1514;

pub fn run(env: &Env) {
    let ip_text = env.cmdline.get("kv.ip").unwrap_or(b"10.0.0.2");
    let Some(ip) = inet::parse_ipv4_addr(ip_text) else {
        crate::fatal!("kv: bad kv.ip {}", Bytes(ip_text));
    };
    let port = env.cmdline.u64("kv.port", 7000);
    let Ok(port) = u16::try_from(port) else {
        crate::fatal!("kv: bad kv.port {}", port);
    };
    let base = env.cmdline.u64("kv.sector", 2048);
    let half_kib = env.cmdline.u64("kv.log_kib", 4096);
    if !(log::MIN_HALF_SECTORS / 2..=log::MAX_HALF_SECTORS / 2).contains(&half_kib) {
        crate::fatal!("kv: kv.log_kib must be 256-1048576, not {}", half_kib);
    }
    let report = env.cmdline.u64("kv.report", 100);
    let Some(blk_slot) = env.devices(DEVICE_BLK).next() else {
        crate::fatal!("kv: no virtio-blk device");
    };
    let Some(net_slot) = env.devices(DEVICE_NET).next() else {
        crate::fatal!("kv: no virtio-net device");
    };

    let mut index = Index::take();
    let (log, opened) = Log::open(Blk::new(blk_slot), base, half_kib * 2, |offset, rec| {
        load(&mut index, offset, rec)
    });
    if opened.formatted {
        println!("kv: formatted a new log at sector {}", base);
    }
    println!(
        "kv: log generation={} half_kib={} bytes={}",
        log.generation(),
        log.half_sectors() / 2,
        log.tail()
    );
    if let log::End::Damaged(why) = opened.end {
        println!(
            "kv: log ends at record {} (byte {}): {}",
            opened.records,
            log.tail(),
            why
        );
    }
    println!(
        "kv: loaded {} keys from {} log records",
        index.len(),
        opened.records
    );

    let mut net = Net::new(net_slot);
    let me = Endpoint {
        mac: net.mac(),
        ip,
        port,
    };
    println!(
        "kv: ready ip={} port={} mac={}",
        IpFmt(ip),
        port,
        MacFmt(me.mac)
    );
    let mut svc = Service {
        me,
        index,
        log,
        stats: Stats::default(),
        ip_id: 0,
        report,
    };
    let mut frame = [0u8; 2048];
    while !svc.stopped() {
        let len = net.recv(&mut frame);
        svc.frame(&mut net, &frame[..len]);
    }
    println!(
        "kv: stopped requests={} keys={}",
        svc.stats.requests,
        svc.index.len()
    );
}

/// Rebuild the index from one record of the log.
fn load(index: &mut Index, offset: u32, rec: &Record) {
    match rec.kind {
        KIND_PUT => {
            if index
                .insert(rec.key, rec.value.len() as u16, offset)
                .is_err()
            {
                crate::fatal!("kv: the log holds more live keys than the index can take");
            }
        }
        _ => {
            index.remove(rec.key);
        }
    }
}

#[derive(Default)]
struct Stats {
    requests: u64,
    puts: u64,
    gets: u64,
    dels: u64,
    errors: u64,
    compactions: u64,
    bad_frames: u64,
    quit: bool,
}

struct Service {
    me: Endpoint,
    index: Index,
    log: Log,
    stats: Stats,
    /// Identification field of the next IPv4 packet sent.
    ip_id: u16,
    report: u64,
}

impl Service {
    fn stopped(&self) -> bool {
        self.stats.quit
    }

    /// Handle one received frame.
    fn frame(&mut self, net: &mut Net, frame: &[u8]) {
        let Some(eth) = inet::parse_eth(frame) else {
            return;
        };
        if eth.dst != self.me.mac && eth.dst != inet::BROADCAST {
            return;
        }
        match eth.ethertype {
            inet::ETHERTYPE_ARP => {
                if let Some(req) = inet::parse_arp_request(eth.payload) {
                    if req.target_ip == self.me.ip {
                        let mut out = [0u8; 64];
                        let n = inet::build_arp_reply(&mut out, self.me.mac, self.me.ip, &req);
                        net.send(&out[..n]);
                    }
                }
            }
            inet::ETHERTYPE_IPV4 => {
                let ip = match inet::parse_ipv4(eth.payload) {
                    Ok(ip) => ip,
                    Err(e) => return self.bad_frame(eth.src, e.as_str()),
                };
                if ip.dst != self.me.ip || ip.protocol != inet::PROTO_UDP {
                    return;
                }
                let udp = match inet::parse_udp(&ip) {
                    Ok(udp) => udp,
                    Err(e) => return self.bad_frame(eth.src, e.as_str()),
                };
                if udp.dst_port != self.me.port {
                    return;
                }
                let client = Endpoint {
                    mac: eth.src,
                    ip: ip.src,
                    port: udp.src_port,
                };
                self.request(net, &client, udp.payload);
            }
            _ => {}
        }
    }

    fn bad_frame(&mut self, from: inet::Mac, why: &str) {
        self.stats.bad_frames += 1;
        if self.stats.bad_frames <= BAD_FRAMES_SHOWN {
            println!("kv: dropped a frame from {}: {}", MacFmt(from), why);
        }
    }

    /// Serve one request and send its reply to `client`.
    fn request(&mut self, net: &mut Net, client: &Endpoint, datagram: &[u8]) {
        let mut out = [0u8; FRAME_MAX];
        let reply_buf = &mut out[inet::UDP_PAYLOAD..];
        let len = match proto::parse(datagram) {
            Ok(req) => {
                let mut reply = Reply::new(reply_buf, req.id);
                self.execute(&req.op, &mut reply);
                reply.written()
            }
            Err((id, why)) => {
                self.stats.errors += 1;
                let mut reply = Reply::new(reply_buf, id);
                reply.push(b" ERR ").push(why.as_str().as_bytes());
                reply.written()
            }
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let n = inet::build_udp(&mut out, &self.me, client, self.ip_id, len);
        net.send(&out[..n]);
        self.stats.requests += 1;
        if self.report != 0 && self.stats.requests.is_multiple_of(self.report) {
            let s = &self.stats;
            println!(
                "kv: requests={} puts={} gets={} dels={} errors={} keys={} records={} compactions={} bad_frames={}",
                s.requests,
                s.puts,
                s.gets,
                s.dels,
                s.errors,
                self.index.len(),
                self.log.records(),
                s.compactions,
                s.bad_frames
            );
        }
    }

    /// Carry out a parsed request, writing the rest of its reply.
    fn execute(&mut self, op: &Op, reply: &mut Reply) {
        let refused = match *op {
            Op::Put { key, value } => {
                self.stats.puts += 1;
                if self.index.is_full_for(key) {
                    Some(Refusal::Full)
                } else {
                    match self.append(KIND_PUT, key, value) {
                        Ok(offset) => {
                            // The index cannot be full: checked above.
                            let _ = self.index.insert(key, value.len() as u16, offset);
                            reply.push(b" OK");
                            None
                        }
                        Err(why) => Some(why),
                    }
                }
            }
            Op::Get { key } => {
                self.stats.gets += 1;
                match self.index.get(key) {
                    None => {
                        reply.push(b" NOT_FOUND");
                        None
                    }
                    Some(e) => match self.log.read_value(e) {
                        Ok(value) => {
                            reply.push(b" OK ").push(value);
                            None
                        }
                        Err(e) => Some(disk_error(e, "read")),
                    },
                }
            }
            Op::Del { key } => {
                self.stats.dels += 1;
                if self.index.get(key).is_none() {
                    reply.push(b" NOT_FOUND");
                    None
                } else {
                    match self.append(KIND_DEL, key, &[]) {
                        Ok(_) => {
                            self.index.remove(key);
                            reply.push(b" OK");
                            None
                        }
                        Err(why) => Some(why),
                    }
                }
            }
            Op::Quit => {
                self.stats.quit = true;
                reply.push(b" OK");
                None
            }
        };
        if let Some(why) = refused {
            self.stats.errors += 1;
            reply.push(b" ERR ").push(why.as_str().as_bytes());
        }
    }

    /// Append a record, compacting the log first if it does not fit.
    fn append(&mut self, kind: u8, key: &[u8], value: &[u8]) -> Result<u32, Refusal> {
        match self.log.append(kind, key, value) {
            Ok(offset) => return Ok(offset),
            Err(LogError::NoRoom) => {}
            Err(e) => return Err(disk_error(e, "append")),
        }
        let c = self.log.compact(&mut self.index);
        self.stats.compactions += 1;
        println!(
            "kv: compacted {} records into {} (generation {}, {} bytes)",
            c.records_before,
            c.records_after,
            self.log.generation(),
            c.bytes_after
        );
        match self.log.append(kind, key, value) {
            Ok(offset) => Ok(offset),
            Err(LogError::NoRoom) => Err(Refusal::Full),
            Err(e) => Err(disk_error(e, "append")),
        }
    }
}

/// Report a failed disk request; the client gets `ERR io` (`ERR full` for no room).
fn disk_error(e: LogError, what: &str) -> Refusal {
    match e {
        LogError::NoRoom => Refusal::Full,
        LogError::Io(status) => {
            println!("kv: disk error on {}: status={}", what, status);
            Refusal::Io
        }
    }
}
