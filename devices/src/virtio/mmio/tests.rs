//! The transport driven register by register, the way a guest driver does it.

use std::sync::atomic::Ordering;

use virtio_queue::QueueState;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::*;
use crate::persist::Persist;
use crate::virtio::interrupt::VIRTIO_MMIO_INT_VRING;
use crate::virtio::test_utils::{counting_interrupt, guest_memory, TestQueue};

const FEATURE_A: u64 = 1 << 3;
const FEATURE_HIGH: u64 = 1 << 40;

/// A queue as handed to the device: ready, size, descriptor table, avail ring, used ring.
type QueueSetup = (bool, u16, u64, u64, u64);

/// What the fake device saw.
#[derive(Default)]
struct Seen {
    acked: Option<u64>,
    activated_queues: Option<Vec<QueueSetup>>,
    resets: u32,
    resumes: u32,
    config_writes: Vec<(u64, Vec<u8>)>,
}

struct FakeDevice {
    events: Vec<EventFd>,
    sizes: Vec<u16>,
    fail_activate: bool,
    generation: u32,
    live_queues: Option<Vec<QueueState>>,
    seen: Seen,
}

impl FakeDevice {
    fn new(queues: usize) -> Self {
        FakeDevice {
            events: (0..queues)
                .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
                .collect(),
            sizes: vec![16; queues],
            fail_activate: false,
            generation: 7,
            live_queues: None,
            seen: Seen::default(),
        }
    }
}

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        42
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }
    fn avail_features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | FEATURE_A | FEATURE_HIGH
    }
    fn set_acked_features(&mut self, features: u64) {
        self.seen.acked = Some(features);
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = (offset as u8).wrapping_add(i as u8);
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.seen.config_writes.push((offset, data.to_vec()));
    }
    fn activate(
        &mut self,
        _mem: GuestMemory,
        queues: Vec<Queue>,
        _interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        if self.fail_activate {
            return Err(ActivateError::Other("refused".to_string()));
        }
        self.live_queues = Some(queues.iter().map(Queue::state).collect());
        self.seen.activated_queues = Some(
            queues
                .iter()
                .map(|q| {
                    (
                        q.ready(),
                        q.size(),
                        q.desc_table(),
                        q.avail_ring(),
                        q.used_ring(),
                    )
                })
                .collect(),
        );
        Ok(())
    }
    fn reset(&mut self) {
        self.seen.resets += 1;
        self.seen.activated_queues = None;
        self.seen.acked = None;
        self.live_queues = None;
    }
    fn queue_events(&self) -> &[EventFd] {
        &self.events
    }
    fn config_generation(&self) -> u32 {
        self.generation
    }
    fn acked_features(&self) -> u64 {
        self.seen.acked.unwrap_or(0)
    }
    fn queue_states(&self) -> Option<Vec<QueueState>> {
        self.live_queues.clone()
    }
    fn resume(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        self.seen.resumes += 1;
        self.activate(mem, queues, interrupt)
    }
}

struct Harness {
    device: Arc<Mutex<FakeDevice>>,
    transport: MmioTransport,
    irq_count: Arc<std::sync::atomic::AtomicU32>,
}

fn harness(queues: usize) -> Harness {
    let device = Arc::new(Mutex::new(FakeDevice::new(queues)));
    let (irq, irq_count) = counting_interrupt();
    let transport = MmioTransport::new(device.clone(), guest_memory(), irq);
    Harness {
        device,
        transport,
        irq_count,
    }
}

impl Harness {
    fn r(&mut self, offset: u64) -> u32 {
        let mut b = [0xffu8; 4];
        self.transport.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn w(&mut self, offset: u64, value: u32) {
        self.transport.write(offset, &value.to_le_bytes());
    }

    fn seen<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.device.lock().unwrap().seen)
    }

    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK.
    fn negotiate(&mut self, features: u64) -> u32 {
        self.w(reg::STATUS, status::ACKNOWLEDGE);
        self.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        self.w(reg::DRIVER_FEATURES_SEL, 0);
        self.w(reg::DRIVER_FEATURES, features as u32);
        self.w(reg::DRIVER_FEATURES_SEL, 1);
        self.w(reg::DRIVER_FEATURES, (features >> 32) as u32);
        self.w(
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        self.r(reg::STATUS)
    }

    fn setup_queue(&mut self, index: u32, tq: &TestQueue) {
        self.w(reg::QUEUE_SEL, index);
        assert_eq!(self.r(reg::QUEUE_READY), 0);
        assert_eq!(self.r(reg::QUEUE_NUM_MAX), 16);
        self.w(reg::QUEUE_NUM, 16);
        self.w(reg::QUEUE_DESC_LOW, tq.desc_addr() as u32);
        self.w(reg::QUEUE_DESC_HIGH, (tq.desc_addr() >> 32) as u32);
        self.w(reg::QUEUE_DRIVER_LOW, tq.avail_addr() as u32);
        self.w(reg::QUEUE_DRIVER_HIGH, 0);
        self.w(reg::QUEUE_DEVICE_LOW, tq.used_addr() as u32);
        self.w(reg::QUEUE_DEVICE_HIGH, 0);
        self.w(reg::QUEUE_READY, 1);
        assert_eq!(self.r(reg::QUEUE_READY), 1);
    }

    fn driver_ok(&mut self) {
        self.w(
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
    }
}

#[test]
fn identity_registers() {
    let mut h = harness(1);
    assert_eq!(h.r(reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(h.r(reg::VERSION), 2);
    assert_eq!(h.r(reg::DEVICE_ID), 42);
    assert_eq!(h.r(reg::VENDOR_ID), VENDOR_ID);
    assert_eq!(h.r(reg::CONFIG_GENERATION), 7);
    assert_eq!(h.r(reg::SHM_LEN_LOW), u32::MAX);
    assert_eq!(h.r(reg::QUEUE_RESET), 0);
}

#[test]
fn device_features_by_word() {
    let mut h = harness(1);
    h.w(reg::DEVICE_FEATURES_SEL, 0);
    assert_eq!(h.r(reg::DEVICE_FEATURES), FEATURE_A as u32);
    h.w(reg::DEVICE_FEATURES_SEL, 1);
    assert_eq!(h.r(reg::DEVICE_FEATURES), 1 | (1 << 8));
    h.w(reg::DEVICE_FEATURES_SEL, 2);
    assert_eq!(h.r(reg::DEVICE_FEATURES), 0);
}

#[test]
fn full_initialization_activates_the_device() {
    let mem = guest_memory();
    let tq0 = TestQueue::new(&mem, 0x1000, 16);
    let tq1 = TestQueue::new(&mem, 0x2000, 16);
    let mut h = harness(2);
    let features = (1 << VIRTIO_F_VERSION_1) | FEATURE_A;
    let st = h.negotiate(features);
    assert_ne!(st & status::FEATURES_OK, 0);
    assert_eq!(h.seen(|s| s.acked), Some(features));
    h.setup_queue(0, &tq0);
    h.setup_queue(1, &tq1);
    h.w(reg::QUEUE_SEL, 2);
    assert_eq!(h.r(reg::QUEUE_NUM_MAX), 0);
    h.driver_ok();
    assert!(h.transport.is_activated());
    assert_eq!(h.r(reg::STATUS), 0xf);
    let queues = h.seen(|s| s.activated_queues.clone()).unwrap();
    assert_eq!(
        queues,
        vec![
            (true, 16, tq0.desc_addr(), tq0.avail_addr(), tq0.used_addr()),
            (true, 16, tq1.desc_addr(), tq1.avail_addr(), tq1.used_addr()),
        ]
    );
    // Queue configuration is frozen after DRIVER_OK.
    h.w(reg::QUEUE_SEL, 0);
    h.w(reg::QUEUE_NUM, 8);
    h.w(reg::QUEUE_READY, 0);
    assert_eq!(h.transport.queues()[0].size(), 16);
    assert!(h.transport.queues()[0].ready());
}

#[test]
fn features_ok_is_refused_for_unoffered_or_legacy_features() {
    let mut h = harness(1);
    let st = h.negotiate((1 << VIRTIO_F_VERSION_1) | (1 << 4));
    assert_eq!(st & status::FEATURES_OK, 0);
    assert_eq!(h.seen(|s| s.acked), None);
    // DRIVER_OK without FEATURES_OK is refused too.
    h.w(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert!(!h.transport.is_activated());

    let mut h = harness(1);
    let st = h.negotiate(FEATURE_A);
    assert_eq!(st & status::FEATURES_OK, 0);
}

#[test]
fn features_and_queues_are_locked_outside_their_phase() {
    let mut h = harness(1);
    // Features before DRIVER is set are ignored.
    h.w(reg::DRIVER_FEATURES, 0xffff_ffff);
    assert_eq!(h.transport.driver_features(), 0);
    // Queue setup before FEATURES_OK is ignored.
    h.w(reg::QUEUE_NUM, 8);
    assert_eq!(h.transport.queues()[0].size(), 16);
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    // Features after FEATURES_OK are ignored.
    h.w(reg::DRIVER_FEATURES_SEL, 0);
    h.w(reg::DRIVER_FEATURES, FEATURE_A as u32);
    assert_eq!(h.transport.driver_features(), 1 << VIRTIO_F_VERSION_1);
    // Sizes must be powers of two no larger than the maximum.
    h.w(reg::QUEUE_NUM, 12);
    assert_eq!(h.transport.queues()[0].size(), 16);
    h.w(reg::QUEUE_NUM, 32);
    assert_eq!(h.transport.queues()[0].size(), 16);
    h.w(reg::QUEUE_NUM, 8);
    assert_eq!(h.transport.queues()[0].size(), 8);
}

#[test]
fn queue_notify_signals_the_queue_eventfd() {
    let mut h = harness(2);
    h.w(reg::QUEUE_NOTIFY, 1);
    h.w(reg::QUEUE_NOTIFY, 1);
    let dev = h.device.clone();
    assert_eq!(dev.lock().unwrap().events[1].read().unwrap(), 2);
    assert!(dev.lock().unwrap().events[0].read().is_err());
    let before = h.transport.bad_accesses();
    h.w(reg::QUEUE_NOTIFY, 9);
    assert_eq!(h.transport.bad_accesses(), before + 1);
}

#[test]
fn interrupt_status_and_ack() {
    let mut h = harness(1);
    h.transport
        .interrupt()
        .signal(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)
        .unwrap();
    assert_eq!(h.irq_count.load(Ordering::SeqCst), 1);
    assert_eq!(h.r(reg::INTERRUPT_STATUS), 3);
    h.w(reg::INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    assert_eq!(h.r(reg::INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
}

#[test]
fn writing_zero_to_status_resets_everything() {
    let mem = guest_memory();
    let tq = TestQueue::new(&mem, 0x1000, 16);
    let mut h = harness(1);
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.setup_queue(0, &tq);
    h.driver_ok();
    h.transport
        .interrupt()
        .signal(VIRTIO_MMIO_INT_VRING)
        .unwrap();
    h.w(reg::STATUS, 0);
    assert_eq!(h.r(reg::STATUS), 0);
    assert_eq!(h.r(reg::INTERRUPT_STATUS), 0);
    assert!(!h.transport.is_activated());
    assert_eq!(h.seen(|s| s.resets), 1);
    assert!(h.seen(|s| s.activated_queues.is_none()));
    h.w(reg::QUEUE_SEL, 0);
    assert_eq!(h.r(reg::QUEUE_READY), 0);
    assert_eq!(h.transport.queues()[0].desc_table(), 0);
    assert_eq!(h.transport.driver_features(), 0);
    // Teardown after reset disables the queue without complaint.
    let before = h.transport.bad_accesses();
    h.w(reg::QUEUE_READY, 0);
    assert_eq!(h.r(reg::QUEUE_READY), 0);
    assert_eq!(h.transport.bad_accesses(), before);
    // And the device can be brought up again.
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.setup_queue(0, &tq);
    h.driver_ok();
    assert!(h.transport.is_activated());
}

#[test]
fn failed_activation_sets_needs_reset() {
    let mem = guest_memory();
    let tq = TestQueue::new(&mem, 0x1000, 16);
    let mut h = harness(1);
    h.device.lock().unwrap().fail_activate = true;
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.setup_queue(0, &tq);
    h.driver_ok();
    assert!(!h.transport.is_activated());
    assert_ne!(h.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert_ne!(h.r(reg::INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG, 0);
    h.w(reg::STATUS, 0);
    assert_eq!(h.r(reg::STATUS), 0);
}

#[test]
fn queue_outside_memory_fails_activation() {
    let mut h = harness(1);
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.w(reg::QUEUE_SEL, 0);
    h.w(reg::QUEUE_NUM, 16);
    h.w(reg::QUEUE_DESC_LOW, 0);
    h.w(reg::QUEUE_DESC_HIGH, 0x10);
    h.w(reg::QUEUE_DRIVER_LOW, 0x2000);
    h.w(reg::QUEUE_DEVICE_LOW, 0x3000);
    h.w(reg::QUEUE_READY, 1);
    h.driver_ok();
    assert!(!h.transport.is_activated());
    assert_ne!(h.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert!(h.seen(|s| s.activated_queues.is_none()));
}

#[test]
fn status_bits_cannot_be_cleared_without_reset() {
    let mut h = harness(1);
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.w(reg::STATUS, status::ACKNOWLEDGE);
    assert_ne!(h.r(reg::STATUS) & status::FEATURES_OK, 0);
    // The driver cannot set DEVICE_NEEDS_RESET either.
    h.w(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DEVICE_NEEDS_RESET,
    );
    assert_eq!(h.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn config_space_is_forwarded_with_any_natural_width() {
    let mut h = harness(1);
    for len in [1usize, 2, 4, 8] {
        let mut b = vec![0u8; len];
        h.transport.read(0x104, &mut b);
        let want: Vec<u8> = (0..len).map(|i| 4 + i as u8).collect();
        assert_eq!(b, want);
    }
    let mut b = [0xaau8; 3];
    h.transport.read(0x100, &mut b);
    assert_eq!(b, [0, 0, 0]);
    h.transport.write(0x108, &[1, 2]);
    assert_eq!(h.seen(|s| s.config_writes.clone()), vec![(8, vec![1, 2])]);
}

#[test]
fn bad_accesses_are_ignored_without_panicking() {
    let mut h = harness(1);
    let mut b2 = [0xffu8; 2];
    h.transport.read(reg::MAGIC_VALUE, &mut b2);
    assert_eq!(b2, [0, 0]);
    let mut b4 = [0xffu8; 4];
    h.transport.read(0x2, &mut b4);
    assert_eq!(b4, [0; 4]);
    // Write-only and unknown registers read as zero.
    assert_eq!(h.r(reg::QUEUE_NOTIFY), 0);
    assert_eq!(h.r(reg::DRIVER_FEATURES), 0);
    assert_eq!(h.r(0x0f0), 0);
    // Writes to read-only registers change nothing.
    h.w(reg::MAGIC_VALUE, 0);
    h.w(reg::DEVICE_ID, 1);
    h.w(reg::QUEUE_NUM_MAX, 1);
    assert_eq!(h.r(reg::MAGIC_VALUE), MAGIC_VALUE);
    assert_eq!(h.r(reg::DEVICE_ID), 42);
    // Wrong widths, odd offsets and offsets past the window.
    h.transport.write(reg::STATUS, &[1]);
    h.transport.write(reg::STATUS, &[1, 0, 0, 0, 0, 0, 0, 0]);
    h.transport.write(reg::STATUS + 1, &[1, 0, 0, 0]);
    assert_eq!(h.r(reg::STATUS), 0);
    let mut big = [0xffu8; 16];
    h.transport.read(0x100, &mut big);
    h.transport.read(u64::MAX - 3, &mut b4);
    h.transport.write(u64::MAX - 3, &[0; 4]);
    h.transport.read(MMIO_WINDOW_SIZE, &mut b4);
    h.transport.write(0x200, &[]);
    assert!(h.transport.bad_accesses() >= 12);
}

#[test]
fn invalid_device_queue_size_is_rounded_down() {
    let mut dev = FakeDevice::new(1);
    dev.sizes = vec![300];
    let (irq, _) = counting_interrupt();
    let t = MmioTransport::new(Arc::new(Mutex::new(dev)), guest_memory(), irq);
    assert_eq!(t.queues()[0].max_size(), 256);
}

/// Arguments restoring a transport onto a new fake device that remembers `acked` (as the
/// device's own restore would).
fn restore_args(acked: Option<u64>) -> (MmioTransportArgs, Arc<Mutex<FakeDevice>>) {
    let mut dev = FakeDevice::new(1);
    dev.seen.acked = acked;
    let dev = Arc::new(Mutex::new(dev));
    let (irq, _) = counting_interrupt();
    let args = MmioTransportArgs {
        device: dev.clone(),
        mem: guest_memory(),
        interrupt: irq,
    };
    (args, dev)
}

#[test]
fn restore_resumes_an_activated_device_at_its_saved_position() {
    let mem = guest_memory();
    let tq = TestQueue::new(&mem, 0x1000, 16);
    let mut h = harness(1);
    let features = (1 << VIRTIO_F_VERSION_1) | FEATURE_HIGH;
    h.negotiate(features);
    h.setup_queue(0, &tq);
    h.driver_ok();
    // The device has worked: the transport's copy of the queue is stale, the device's not.
    {
        let mut dev = h.device.lock().unwrap();
        let live = &mut dev.live_queues.as_mut().unwrap()[0];
        live.next_avail = 7;
        live.next_used = 5;
    }
    let state = h.transport.save();
    assert_eq!(
        (state.queues[0].next_avail, state.queues[0].next_used),
        (7, 5)
    );

    let (args, dev2) = restore_args(Some(features));
    let t2 = crate::persist_tests::round_trip(&h.transport, args);
    assert!(t2.is_activated());
    let dev2 = dev2.lock().unwrap();
    assert_eq!(dev2.seen.resumes, 1);
    let live = &dev2.live_queues.as_ref().unwrap()[0];
    assert_eq!((live.next_avail, live.next_used, live.size), (7, 5, 16));
    assert_eq!(dev2.seen.resets, 0);
}

#[test]
fn restore_after_failed_activation_keeps_needs_reset_and_does_not_resume() {
    let mem = guest_memory();
    let tq = TestQueue::new(&mem, 0x1000, 16);
    let mut h = harness(1);
    h.device.lock().unwrap().fail_activate = true;
    h.negotiate(1 << VIRTIO_F_VERSION_1);
    h.setup_queue(0, &tq);
    h.driver_ok();
    assert!(!h.transport.is_activated());

    let (args, dev2) = restore_args(Some(1 << VIRTIO_F_VERSION_1));
    let mut t2 = crate::persist_tests::round_trip(&h.transport, args);
    assert!(!t2.is_activated());
    assert_eq!(dev2.lock().unwrap().seen.resumes, 0);
    let mut b = [0u8; 4];
    t2.read(reg::STATUS, &mut b);
    assert_ne!(u32::from_le_bytes(b) & status::DEVICE_NEEDS_RESET, 0);
    t2.read(reg::INTERRUPT_STATUS, &mut b);
    assert_eq!(u32::from_le_bytes(b), VIRTIO_MMIO_INT_CONFIG);
}
