//! A network device and its transport across a snapshot, with frames in flight.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use event_manager::SubscriberOps;
use vm_memory::{Bytes, GuestAddress};

use super::driver::{self, negotiate, setup_queue};
use super::{expect_refused, pulses, round_trip};
use crate::persist::Persist;
use crate::virtio::net::{NET_HDR_LEN, RX_QUEUE, TX_QUEUE};
use crate::virtio::test_utils::{
    copy_memory, counting_interrupt, event_manager, fake_backend, guest_memory, memory_bytes,
    run_until_idle, TestQueue, WireHandle,
};
use crate::virtio::{MmioTransport, MmioTransportArgs, Net, NetArgs, VirtioDevice};
use crate::GuestMemory;

const RXQ_BASE: u64 = 0x1000;
const TXQ_BASE: u64 = 0x2000;
const RX_BUF: u64 = 0x10_0000;
const TX_BUF: u64 = 0x20_0000;
const MAC: [u8; 6] = [0x02, 0x52, 0x50, 0x00, 0x00, 0x07];

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ tag).collect()
}

struct NetVm {
    net: Arc<Mutex<Net>>,
    transport: MmioTransport,
    irqs: Arc<AtomicU32>,
}

fn net_vm(mem: &GuestMemory, rxq: &TestQueue, txq: &TestQueue) -> (NetVm, WireHandle) {
    let (backend, wire) = fake_backend();
    let net = Arc::new(Mutex::new(Net::new(Box::new(backend), Some(MAC)).unwrap()));
    let (irq, irqs) = counting_interrupt();
    let mut transport = MmioTransport::new(net.clone(), mem.clone(), irq);
    negotiate(&mut transport);
    setup_queue(&mut transport, RX_QUEUE as u32, rxq);
    setup_queue(&mut transport, TX_QUEUE as u32, txq);
    driver::driver_ok(&mut transport);
    (
        NetVm {
            net,
            transport,
            irqs,
        },
        wire,
    )
}

/// Restores the pair onto a new backend: the device first, then the transport.
fn restore_net_vm(original: &NetVm, mem: &GuestMemory) -> (NetVm, WireHandle) {
    let (backend, wire) = fake_backend();
    let net = round_trip(
        &*original.net.lock().unwrap(),
        NetArgs {
            backend: Box::new(backend),
            mac: None,
        },
    );
    let net = Arc::new(Mutex::new(net));
    let (irq, irqs) = counting_interrupt();
    let transport = round_trip(
        &original.transport,
        MmioTransportArgs {
            device: net.clone(),
            mem: mem.clone(),
            interrupt: irq,
        },
    );
    (
        NetVm {
            net,
            transport,
            irqs,
        },
        wire,
    )
}

fn received(mem: &GuestMemory, rxq: &TestQueue, i: u16) -> Vec<u8> {
    let (_, len) = rxq.used_elem(i);
    let mut bytes = vec![0u8; len as usize];
    mem.read_slice(&mut bytes, GuestAddress(RX_BUF + 4096 * u64::from(i)))
        .unwrap();
    bytes.split_off(NET_HDR_LEN)
}

#[test]
fn pending_rx_frame_and_unsent_tx_frame_cross_the_snapshot_exactly_once() {
    let mem = guest_memory();
    let mut rxq = TestQueue::new(&mem, RXQ_BASE, 16);
    let mut txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (mut vm, wire) = net_vm(&mem, &rxq, &txq);
    let mut manager = event_manager();
    manager.add_subscriber(vm.net.clone());
    run_until_idle(&mut manager);

    // A frame arrives while the guest has no receive buffer: the device holds it.
    let inbound = frame(300, 0x11);
    wire.push(inbound.clone());
    run_until_idle(&mut manager);
    assert!(vm.net.lock().unwrap().has_pending_rx());
    assert_eq!(wire.waiting(), 0);
    // The guest queues a frame to send and notifies; the VMM pauses before the loop
    // handles it.
    let outbound = frame(90, 0x22);
    let mut bytes = vec![0u8; NET_HDR_LEN];
    bytes.extend_from_slice(&outbound);
    mem.write_slice(&bytes, GuestAddress(TX_BUF)).unwrap();
    txq.add_chain(&[(TX_BUF, bytes.len() as u32, false)]);
    driver::w(&mut vm.transport, driver::QUEUE_NOTIFY, TX_QUEUE as u32);

    let mem2 = copy_memory(&mem);
    let (vm2, wire2) = restore_net_vm(&vm, &mem2);
    let mut rxq2 = rxq.in_memory(&mem2);
    let txq2 = txq.in_memory(&mem2);
    assert!(vm2.net.lock().unwrap().has_pending_rx());
    let mut manager2 = event_manager();
    manager2.add_subscriber(vm2.net.clone());
    run_until_idle(&mut manager2);
    // The unsent frame goes out of the restored VM once; the held frame still waits.
    assert_eq!(wire2.sent(), vec![outbound.clone()]);
    assert_eq!(txq2.used_idx(), 1);
    assert!(vm2.net.lock().unwrap().has_pending_rx());
    assert_eq!(rxq2.used_idx(), 0);

    // The guest adds a receive buffer: the held frame is delivered, once.
    rxq2.add_chain(&[(RX_BUF, 4096, true)]);
    vm2.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager2);
    assert_eq!(rxq2.used_idx(), 1);
    assert_eq!(received(&mem2, &rxq2, 0), inbound);
    assert!(!vm2.net.lock().unwrap().has_pending_rx());
    rxq2.add_chain(&[(RX_BUF + 4096, 4096, true)]);
    vm2.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager2);
    assert_eq!(rxq2.used_idx(), 1, "nothing is delivered twice");
    let m = vm2.net.lock().unwrap().metrics();
    assert_eq!((m.rx_frames, m.rx_deferred, m.tx_frames), (1, 1, 1));
    assert!(pulses(&vm2.irqs) >= 1);

    // The original does the same with its own backend: same guest memory at the end.
    run_until_idle(&mut manager);
    rxq.add_chain(&[(RX_BUF, 4096, true)]);
    vm.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager);
    rxq.add_chain(&[(RX_BUF + 4096, 4096, true)]);
    vm.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager);
    assert_eq!(wire.sent(), vec![outbound]);
    assert!(memory_bytes(&mem) == memory_bytes(&mem2), "memories differ");
    assert_eq!(vm.transport.save(), vm2.transport.save());
    assert_eq!(
        vm.net.lock().unwrap().save(),
        vm2.net.lock().unwrap().save()
    );
}

/// Adds receive buffer `i` (at `RX_BUF + 4096 * i`) and notifies the device.
fn post_rx_buffer(vm: &NetVm, rxq: &mut TestQueue, i: u64) {
    rxq.add_chain(&[(RX_BUF + 4096 * i, 4096, true)]);
    vm.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
}

#[test]
fn frames_waiting_at_the_backend_are_taken_into_the_snapshot_and_delivered_once() {
    let mem = guest_memory();
    let mut rxq = TestQueue::new(&mem, RXQ_BASE, 16);
    let txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (vm, wire) = net_vm(&mem, &rxq, &txq);
    let mut manager = event_manager();
    manager.add_subscriber(vm.net.clone());
    post_rx_buffer(&vm, &mut rxq, 0);
    post_rx_buffer(&vm, &mut rxq, 1);
    run_until_idle(&mut manager);

    // Five frames arrive: two fill the guest's buffers, one waits in the device, and two
    // are still at the backend when the VMM freezes for a snapshot.
    let frames: Vec<Vec<u8>> = (0..6)
        .map(|i| frame(100 + 50 * i, 0x40 + i as u8))
        .collect();
    for f in &frames[..3] {
        wire.push(f.clone());
    }
    run_until_idle(&mut manager);
    for f in &frames[3..5] {
        wire.push(f.clone());
    }
    assert_eq!(rxq.used_idx(), 2);
    assert_eq!(wire.waiting(), 2);
    assert_eq!(vm.net.lock().unwrap().absorb_backend_backlog(), 2);
    assert_eq!(wire.waiting(), 0, "the backend is drained");
    assert_eq!(vm.net.lock().unwrap().pending_rx_frames(), 3);
    assert_eq!(vm.net.lock().unwrap().absorb_backend_backlog(), 0);

    // The restored VM, on a new backend, delivers the three waiting frames in order before
    // one that arrives on its own backend.
    let mem2 = copy_memory(&mem);
    let (vm2, wire2) = restore_net_vm(&vm, &mem2);
    let mut rxq2 = rxq.in_memory(&mem2);
    assert_eq!(vm2.net.lock().unwrap().pending_rx_frames(), 3);
    let mut manager2 = event_manager();
    manager2.add_subscriber(vm2.net.clone());
    run_until_idle(&mut manager2);
    assert_eq!(rxq2.used_idx(), 2, "no buffer: nothing more is delivered");
    wire2.push(frames[5].clone());
    for i in 2..6 {
        post_rx_buffer(&vm2, &mut rxq2, i);
    }
    run_until_idle(&mut manager2);
    assert_eq!(rxq2.used_idx(), 6);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(&received(&mem2, &rxq2, i as u16), f, "frame {i}");
    }
    assert_eq!(vm2.net.lock().unwrap().pending_rx_frames(), 0);
    post_rx_buffer(&vm2, &mut rxq2, 6);
    run_until_idle(&mut manager2);
    assert_eq!(rxq2.used_idx(), 6, "nothing is delivered twice");

    // The original keeps the frames it took and delivers them the same way.
    run_until_idle(&mut manager);
    wire.push(frames[5].clone());
    for i in 2..6 {
        post_rx_buffer(&vm, &mut rxq, i);
    }
    run_until_idle(&mut manager);
    assert_eq!(rxq.used_idx(), 6);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(&received(&mem, &rxq, i as u16), f, "original, frame {i}");
    }
}

#[test]
fn a_backlog_longer_than_a_receive_batch_is_delivered_whole() {
    let mem = guest_memory();
    let mut rxq = TestQueue::new(&mem, RXQ_BASE, 128);
    let txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (vm, wire) = net_vm(&mem, &rxq, &txq);
    let mut manager = event_manager();
    manager.add_subscriber(vm.net.clone());
    run_until_idle(&mut manager);
    for i in 0..100 {
        wire.push(frame(60, i as u8));
    }
    assert_eq!(vm.net.lock().unwrap().absorb_backend_backlog(), 100);
    let (vm2, _wire2) = restore_net_vm(&vm, &mem);
    let mut manager2 = event_manager();
    manager2.add_subscriber(vm2.net.clone());
    for i in 0..100 {
        rxq.add_chain(&[(RX_BUF + 4096 * (i % 32), 4096, true)]);
    }
    vm2.net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    run_until_idle(&mut manager2);
    assert_eq!(rxq.used_idx(), 100);
    assert_eq!(vm2.net.lock().unwrap().metrics().rx_frames, 100);
}

#[test]
fn a_restored_net_device_can_get_a_new_mac() {
    let mem = guest_memory();
    let rxq = TestQueue::new(&mem, RXQ_BASE, 16);
    let txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (vm, _wire) = net_vm(&mem, &rxq, &txq);
    let new_mac = [0x02, 0, 0, 0, 0, 0x99];
    let net = Net::restore(
        NetArgs {
            backend: Box::new(fake_backend().0),
            mac: Some(new_mac),
        },
        &vm.net.lock().unwrap().save(),
    )
    .unwrap();
    let mut mac = [0u8; 6];
    net.read_config(0, &mut mac);
    assert_eq!(mac, new_mac);
    assert_eq!(net.save().mac, Some(new_mac));
}

#[test]
fn restored_net_device_keeps_receiving() {
    let mem = guest_memory();
    let mut rxq = TestQueue::new(&mem, RXQ_BASE, 16);
    let txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (vm, _wire) = net_vm(&mem, &rxq, &txq);
    rxq.add_chain(&[(RX_BUF, 4096, true)]);
    rxq.add_chain(&[(RX_BUF + 4096, 4096, true)]);
    let (vm2, wire2) = restore_net_vm(&vm, &mem);
    let mut manager = event_manager();
    manager.add_subscriber(vm2.net.clone());
    run_until_idle(&mut manager);
    let a = frame(60, 1);
    let b = frame(1514, 2);
    wire2.push(a.clone());
    wire2.push(b.clone());
    run_until_idle(&mut manager);
    assert_eq!(rxq.used_idx(), 2);
    assert_eq!(received(&mem, &rxq, 0), a);
    assert_eq!(received(&mem, &rxq, 1), b);
    let mut mac = [0u8; 6];
    vm2.net.lock().unwrap().read_config(0, &mut mac);
    assert_eq!(mac, MAC);
}

#[test]
fn net_refuses_corrupted_states() {
    let mem = guest_memory();
    let rxq = TestQueue::new(&mem, RXQ_BASE, 16);
    let txq = TestQueue::new(&mem, TXQ_BASE, 16);
    let (vm, _) = net_vm(&mem, &rxq, &txq);
    let good = vm.net.lock().unwrap().save();
    let args = || NetArgs {
        backend: Box::new(fake_backend().0),
        mac: None,
    };

    let mut s = good.clone();
    s.pending_rx_frame = Some(Vec::new());
    expect_refused::<Net>(args(), &s, "virtio-net", "pending_rx_frame");

    let mut s = good.clone();
    s.pending_rx_frame = Some(vec![0; crate::virtio::net::MAX_FRAME_LEN + 1]);
    expect_refused::<Net>(args(), &s, "virtio-net", "pending_rx_frame");

    let mut s = good.clone();
    s.rx_backlog = vec![vec![1; 60], Vec::new()];
    expect_refused::<Net>(args(), &s, "virtio-net", "rx_backlog[1]");

    let mut s = good.clone();
    s.rx_backlog = vec![vec![0; 60]; crate::virtio::net::MAX_RX_BACKLOG_FRAMES + 1];
    expect_refused::<Net>(args(), &s, "virtio-net", "rx_backlog");

    let mut s = good.clone();
    s.rx_backlog = vec![vec![0; crate::virtio::net::MAX_FRAME_LEN]; 40];
    expect_refused::<Net>(args(), &s, "virtio-net", "rx_backlog");

    let mut s = good.clone();
    s.acked_features |= 1 << 12;
    expect_refused::<Net>(args(), &s, "virtio-net", "acked_features");

    // Without a MAC the device does not offer VIRTIO_NET_F_MAC, which the guest acked.
    let mut s = good.clone();
    s.mac = None;
    s.acked_features |= 1 << crate::virtio::net::VIRTIO_NET_F_MAC;
    expect_refused::<Net>(args(), &s, "virtio-net", "acked_features");

    // A net state paired with a block transport state is refused by the transport.
    let net = Net::restore(args(), &good).unwrap();
    let mut t = vm.transport.save();
    t.device_type = 2;
    let (irq, _) = counting_interrupt();
    expect_refused::<MmioTransport>(
        MmioTransportArgs {
            device: Arc::new(Mutex::new(net)),
            mem: mem.clone(),
            interrupt: irq,
        },
        &t,
        "virtio-mmio[virtio-net]",
        "device_type",
    );
}
