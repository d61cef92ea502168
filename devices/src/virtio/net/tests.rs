//! Real descriptor chains through the network device, with a scripted backend.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use event_manager::SubscriberOps;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::backends::UnixDgram;
use crate::virtio::test_utils::{
    counting_interrupt, event_manager, fake_backend, guest_memory, run_until_idle, TestQueue,
    WireHandle,
};

const RXQ_BASE: u64 = 0x1000;
const TXQ_BASE: u64 = 0x2000;
const BUF: u64 = 0x10_0000;
const MAC: [u8; 6] = [0x02, 0x52, 0x50, 0x00, 0x00, 0x01];

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(3) ^ tag).collect()
}

struct Rig<'a> {
    mem: &'a GuestMemory,
    rxq: TestQueue<'a>,
    txq: TestQueue<'a>,
    irqs: Arc<AtomicU32>,
    next_buf: u64,
}

impl<'a> Rig<'a> {
    fn new(mem: &'a GuestMemory) -> Self {
        Rig {
            mem,
            rxq: TestQueue::new(mem, RXQ_BASE, 16),
            txq: TestQueue::new(mem, TXQ_BASE, 16),
            irqs: Arc::new(AtomicU32::new(0)),
            next_buf: BUF,
        }
    }

    fn activate(&mut self, net: &mut Net) {
        let (irq, irqs) = counting_interrupt();
        self.irqs = irqs;
        net.activate(
            self.mem.clone(),
            vec![self.rxq.queue(), self.txq.queue()],
            irq,
        )
        .unwrap();
    }

    /// Allocates a guest buffer of `len` bytes holding `data` (if given).
    fn buffer(&mut self, len: u32, data: Option<&[u8]>) -> u64 {
        let addr = self.next_buf;
        self.next_buf += (u64::from(len) + 0xfff) & !0xfff;
        if let Some(data) = data {
            self.mem.write_slice(data, GuestAddress(addr)).unwrap();
        }
        addr
    }

    /// Adds a receive buffer of `len` bytes; returns its address.
    fn add_rx_buffer(&mut self, len: u32) -> u64 {
        let addr = self.buffer(len, None);
        self.rxq.add_chain(&[(addr, len, true)]);
        addr
    }

    /// Queues `frame` for transmission, split into descriptors of the given sizes
    /// (header included in the first).
    fn add_tx_frame(&mut self, frame: &[u8], split: &[usize]) {
        let mut bytes = vec![0u8; NET_HDR_LEN];
        bytes.extend_from_slice(frame);
        let mut chain = Vec::new();
        let mut at = 0;
        for &len in split {
            let addr = self.buffer(len as u32, Some(&bytes[at..at + len]));
            chain.push((addr, len as u32, false));
            at += len;
        }
        assert_eq!(at, bytes.len());
        self.txq.add_chain(&chain);
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    /// Checks that used RX entry `i` holds `frame` in the buffer at `addr`.
    fn assert_received(&self, i: u16, addr: u64, frame: &[u8]) {
        let (_, len) = self.rxq.used_elem(i);
        assert_eq!(len as usize, NET_HDR_LEN + frame.len());
        let got = self.read(addr, len as usize);
        assert_eq!(&got[..NET_HDR_LEN], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(&got[NET_HDR_LEN..], frame);
    }
}

fn new_net() -> (Net, WireHandle) {
    let (backend, wire) = fake_backend();
    (Net::new(Box::new(backend), Some(MAC)).unwrap(), wire)
}

#[test]
fn config_space_and_features() {
    let (net, _) = new_net();
    assert_eq!(net.device_type(), 1);
    assert_eq!(net.queue_max_sizes(), &[256, 256]);
    let f = net.avail_features();
    assert_ne!(f & (1 << VIRTIO_F_VERSION_1), 0);
    assert_ne!(f & (1 << VIRTIO_NET_F_MAC), 0);
    let mut mac = [0u8; 6];
    net.read_config(0, &mut mac);
    assert_eq!(mac, MAC);
    let mut status = [0u8; 2];
    net.read_config(6, &mut status);
    assert_eq!(u16::from_le_bytes(status), VIRTIO_NET_S_LINK_UP);

    let (backend, _) = fake_backend();
    let net = Net::new(Box::new(backend), None).unwrap();
    assert_eq!(net.avail_features() & (1 << VIRTIO_NET_F_MAC), 0);
}

#[test]
fn tx_frames_reach_the_backend_byte_for_byte() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    let a = frame(60, 1);
    let b = frame(1514, 2);
    let c = frame(300, 3);
    rig.add_tx_frame(&a, &[NET_HDR_LEN, 60]);
    rig.add_tx_frame(&b, &[NET_HDR_LEN + 1514]);
    rig.add_tx_frame(&c, &[5, 100, 207]);
    net.transmit();
    assert_eq!(wire.sent(), vec![a, b, c]);
    assert_eq!(rig.txq.used_idx(), 3);
    assert_eq!(rig.txq.used_elem(0), (0, 0));
    assert_eq!(rig.irqs.load(Ordering::SeqCst), 1);
    let m = net.metrics();
    assert_eq!((m.tx_frames, m.tx_bytes), (3, 60 + 1514 + 300));
}

#[test]
fn bad_tx_chains_are_returned_and_counted() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    // Shorter than the header.
    let addr = rig.buffer(8, Some(&[0; 8]));
    rig.txq.add_chain(&[(addr, 8, false)]);
    // Larger than any frame.
    let addr = rig.buffer(0x20000, None);
    rig.txq
        .add_chain(&[(addr, (NET_HDR_LEN + MAX_FRAME_LEN + 1) as u32, false)]);
    // Outside guest memory.
    rig.txq.add_chain(&[(1 << 40, 100, false)]);
    // Then a good one, which still goes out.
    let good = frame(64, 9);
    rig.add_tx_frame(&good, &[NET_HDR_LEN + 64]);
    net.transmit();
    assert_eq!(wire.sent(), vec![good]);
    assert_eq!(rig.txq.used_idx(), 4);
    assert_eq!(net.metrics().tx_malformed, 3);

    wire.wire.lock().unwrap().fail_sends = true;
    rig.add_tx_frame(&frame(64, 10), &[NET_HDR_LEN + 64]);
    net.transmit();
    assert_eq!(rig.txq.used_idx(), 5);
    assert_eq!(net.metrics().tx_dropped, 1);
}

#[test]
fn rx_frame_lands_in_a_guest_buffer_with_its_header() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    let addr = rig.add_rx_buffer(1526);
    let f = frame(98, 7);
    wire.push(f.clone());
    assert!(!net.receive(), "not stalled: the backend is drained");
    assert_eq!(rig.rxq.used_idx(), 1);
    rig.assert_received(0, addr, &f);
    assert_eq!(rig.irqs.load(Ordering::SeqCst), 1);

    // A buffer split between header and data.
    let hdr = rig.buffer(NET_HDR_LEN as u32, None);
    let data = rig.buffer(1514, None);
    rig.rxq
        .add_chain(&[(hdr, NET_HDR_LEN as u32, true), (data, 1514, true)]);
    let g = frame(1514, 8);
    wire.push(g.clone());
    net.receive();
    assert_eq!(rig.rxq.used_elem(1).1 as usize, NET_HDR_LEN + 1514);
    assert_eq!(rig.read(hdr, NET_HDR_LEN)[10], 1);
    assert_eq!(rig.read(data, 1514), g);
    let m = net.metrics();
    assert_eq!((m.rx_frames, m.rx_bytes), (2, 98 + 1514));
}

#[test]
fn rx_without_buffers_keeps_the_frame_until_one_arrives() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    let (a, b) = (frame(100, 1), frame(200, 2));
    wire.push(a.clone());
    wire.push(b.clone());
    assert!(net.receive(), "stalled for lack of buffers");
    assert!(net.has_pending_rx());
    assert_eq!(wire.waiting(), 1, "the backend is not read further");
    assert!(net.receive());
    assert_eq!(net.metrics().rx_deferred, 1);

    let addr_a = rig.add_rx_buffer(1526);
    assert!(net.receive(), "a delivered, b now waits");
    rig.assert_received(0, addr_a, &a);
    assert_eq!(wire.waiting(), 0);
    let addr_b = rig.add_rx_buffer(1526);
    assert!(!net.receive());
    rig.assert_received(1, addr_b, &b);
    assert!(!net.has_pending_rx());
    let m = net.metrics();
    assert_eq!((m.rx_frames, m.rx_dropped, m.rx_deferred), (2, 0, 2));
}

#[test]
fn empty_and_oversized_rx_frames_are_dropped_and_the_buffer_kept() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    let addr = rig.add_rx_buffer(200);
    wire.push(Vec::new());
    wire.push(frame(500, 1));
    let small = frame(150, 2);
    wire.push(small.clone());
    assert!(!net.receive());
    assert_eq!(rig.rxq.used_idx(), 1);
    rig.assert_received(0, addr, &small);
    assert_eq!(net.metrics().rx_dropped, 2);
}

#[test]
fn malformed_rx_buffers_are_skipped() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    rig.rxq.add_chain(&[(1 << 40, 1526, true)]);
    let addr = rig.add_rx_buffer(1526);
    let f = frame(60, 4);
    wire.push(f.clone());
    net.receive();
    assert_eq!(rig.rxq.used_idx(), 2);
    assert_eq!(rig.rxq.used_elem(0).1, 0);
    rig.assert_received(1, addr, &f);
    assert_eq!(net.metrics().rx_bad_buffers, 1);
}

#[test]
fn reset_drops_the_pending_frame_and_counts_it() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (mut net, wire) = new_net();
    rig.activate(&mut net);
    wire.push(frame(60, 1));
    assert!(net.receive());
    net.reset();
    assert!(!net.is_activated());
    assert!(!net.has_pending_rx());
    assert_eq!(net.metrics().rx_dropped, 1);
    // Nothing moves until the driver activates the device again.
    assert!(net.receive());
    net.transmit();
}

#[test]
fn event_loop_pauses_the_backend_while_the_guest_has_no_buffers() {
    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    let (net, wire) = new_net();
    let net = Arc::new(Mutex::new(net));
    let mut manager = event_manager();
    manager.add_subscriber(net.clone());

    // Frames before activation are left in the backend.
    wire.push(frame(10, 0));
    run_until_idle(&mut manager);
    assert_eq!(wire.waiting(), 1);
    wire.wire.lock().unwrap().to_guest.clear();
    let _ = wire.ready.read();

    rig.activate(&mut net.lock().unwrap());
    let frames: Vec<_> = (0..3).map(|i| frame(64 + i, i as u8)).collect();
    for f in &frames {
        wire.push(f.clone());
    }
    let first = rig.add_rx_buffer(1526);
    run_until_idle(&mut manager);
    rig.assert_received(0, first, &frames[0]);
    assert!(net.lock().unwrap().has_pending_rx());
    // The third frame is still in the backend and its fd is readable, yet the loop is idle:
    // the device stopped polling it.
    assert_eq!(wire.waiting(), 1);
    assert_eq!(manager.run_with_timeout(0).unwrap(), 0);

    // The driver adds buffers and notifies the receive queue.
    let second = rig.add_rx_buffer(1526);
    let third = rig.add_rx_buffer(1526);
    net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager);
    rig.assert_received(1, second, &frames[1]);
    rig.assert_received(2, third, &frames[2]);
    assert!(!net.lock().unwrap().has_pending_rx());

    // Polling resumed: a new frame goes straight in.
    let fourth = rig.add_rx_buffer(1526);
    let late = frame(80, 9);
    wire.push(late.clone());
    run_until_idle(&mut manager);
    rig.assert_received(3, fourth, &late);
    let m = net.lock().unwrap().metrics();
    assert_eq!((m.rx_frames, m.rx_dropped), (4, 0));

    // Transmit through a queue notification.
    let out = frame(42, 5);
    rig.add_tx_frame(&out, &[NET_HDR_LEN + 42]);
    net.lock().unwrap().queue_events()[TX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager);
    assert_eq!(wire.sent(), vec![out]);
}

#[test]
fn net_over_a_unix_datagram_backend() {
    use std::os::unix::net::UnixDatagram;
    use vmm_sys_util::tempdir::TempDir;

    let dir = TempDir::new_with_prefix("/tmp/reprise-net").unwrap();
    let dev_path = dir.as_path().join("dev.sock");
    let peer_path = dir.as_path().join("peer.sock");
    let peer = UnixDatagram::bind(&peer_path).unwrap();
    let backend = UnixDgram::bind(&dev_path, &peer_path).unwrap();
    let net = Arc::new(Mutex::new(Net::new(Box::new(backend), Some(MAC)).unwrap()));
    let mut manager = event_manager();
    manager.add_subscriber(net.clone());

    let mem = guest_memory();
    let mut rig = Rig::new(&mem);
    rig.activate(&mut net.lock().unwrap());
    let addr = rig.add_rx_buffer(1526);
    run_until_idle(&mut manager);

    let inbound = frame(1000, 0x5a);
    peer.send_to(&inbound, &dev_path).unwrap();
    run_until_idle(&mut manager);
    rig.assert_received(0, addr, &inbound);

    let outbound = frame(333, 0xa5);
    rig.add_tx_frame(&outbound, &[NET_HDR_LEN, 333]);
    net.lock().unwrap().queue_events()[TX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager);
    let mut buf = vec![0u8; 2048];
    peer.set_nonblocking(true).unwrap();
    let n = peer.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &outbound[..]);
}
