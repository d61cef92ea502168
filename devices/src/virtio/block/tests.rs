//! Real descriptor chains through the block device, against a temporary raw image.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempfile::TempFile;

use super::*;
use crate::backends::{RawFile, RawFileOptions};
use crate::bus::BusDevice;
use crate::virtio::test_utils::{counting_interrupt, guest_memory, TestQueue};
use crate::virtio::{status, MmioTransport, NOTIFY_REG_OFFSET, VIRTIO_F_VERSION_1};

const DISK_LEN: u64 = 64 * 1024;
const QUEUE_BASE: u64 = 0x1000;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;

fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8 ^ (offset / 4096) as u8
}

fn disk_image() -> TempFile {
    let f = TempFile::new_with_prefix("/tmp/reprise-blk").unwrap();
    let bytes: Vec<u8> = (0..DISK_LEN).map(pattern).collect();
    std::fs::write(f.as_path(), bytes).unwrap();
    f
}

fn file_bytes(f: &TempFile, offset: u64, len: usize) -> Vec<u8> {
    std::fs::read(f.as_path()).unwrap()[offset as usize..offset as usize + len].to_vec()
}

struct Rig<'a> {
    mem: &'a GuestMemory,
    tq: TestQueue<'a>,
    block: Block,
    irqs: Arc<std::sync::atomic::AtomicU32>,
    irq: Arc<VirtioInterrupt>,
}

fn rig<'a>(mem: &'a GuestMemory, image: &TempFile, read_only: bool) -> Rig<'a> {
    let options = RawFileOptions {
        read_only,
        direct: false,
        device_id: "reprise-disk-0".to_string(),
    };
    let backend = RawFile::open(image.as_path(), &options).unwrap();
    let mut block = Block::new(Box::new(backend)).unwrap();
    let tq = TestQueue::new(mem, QUEUE_BASE, 16);
    let (irq, irqs) = counting_interrupt();
    block
        .activate(mem.clone(), vec![tq.queue()], irq.clone())
        .unwrap();
    Rig {
        mem,
        tq,
        block,
        irqs,
        irq,
    }
}

fn header(mem: &GuestMemory, request_type: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&request_type.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
}

impl Rig<'_> {
    /// Submits a chain, runs the device, and returns (used length, status byte).
    fn run(&mut self, chain: &[(u64, u32, bool)]) -> (u32, u8) {
        self.mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        let head = self.tq.add_chain(chain);
        let before = self.tq.used_idx();
        self.block.process_queue();
        assert_eq!(self.tq.used_idx(), before.wrapping_add(1));
        let (id, len) = self.tq.used_elem(before);
        assert_eq!(id, u32::from(head));
        (len, self.mem.read_obj(GuestAddress(STATUS)).unwrap())
    }

    /// A request with a separate header, one data buffer and a status byte.
    fn request(&mut self, request_type: u32, sector: u64, data_len: u32, write: bool) -> (u32, u8) {
        header(self.mem, request_type, sector);
        let mut chain = vec![(HDR, 16, false)];
        if data_len > 0 {
            chain.push((DATA, data_len, write));
        }
        chain.push((STATUS, 1, true));
        self.run(&chain)
    }

    fn guest_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn discard_segment(mem: &GuestMemory, index: u64, sector: u64, sectors: u32, flags: u32) {
    let mut s = [0u8; 16];
    s[0..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&sectors.to_le_bytes());
    s[12..16].copy_from_slice(&flags.to_le_bytes());
    mem.write_slice(&s, GuestAddress(DATA + 16 * index))
        .unwrap();
}

#[test]
fn read_returns_disk_bytes() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    let (len, status) = r.request(VIRTIO_BLK_T_IN, 3, 2048, true);
    assert_eq!(status, VIRTIO_BLK_S_OK);
    assert_eq!(len, 2049);
    assert_eq!(r.guest_bytes(DATA, 2048), file_bytes(&img, 3 * 512, 2048));
    assert_eq!(r.irqs.load(Ordering::SeqCst), 1);
    assert_eq!(
        r.irq.status() & VIRTIO_MMIO_INT_VRING,
        VIRTIO_MMIO_INT_VRING
    );
    let m = r.block.metrics();
    assert_eq!((m.requests, m.read_requests, m.read_bytes), (1, 1, 2048));
}

#[test]
fn read_spanning_descriptors_and_merged_framing() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    header(&mem, VIRTIO_BLK_T_IN, 10);
    // Data in three pieces, the last one sharing its descriptor with the status byte.
    let (len, status) = r.run(&[
        (HDR, 16, false),
        (DATA, 100, true),
        (DATA + 0x1000, 312, true),
        (DATA + 0x2000, 101, true),
    ]);
    assert_eq!(status, 0xee, "status is the last writable byte, not STATUS");
    assert_eq!(len, 513);
    let mut got = r.guest_bytes(DATA, 100);
    got.extend(r.guest_bytes(DATA + 0x1000, 312));
    got.extend(r.guest_bytes(DATA + 0x2000, 100));
    assert_eq!(got, file_bytes(&img, 10 * 512, 512));
    assert_eq!(r.guest_bytes(DATA + 0x2000 + 100, 1), [VIRTIO_BLK_S_OK]);
}

#[test]
fn write_then_flush_reaches_the_file() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    let data: Vec<u8> = (0..1024).map(|i| (i * 13 % 256) as u8).collect();
    mem.write_slice(&data, GuestAddress(DATA)).unwrap();
    let (len, status) = r.request(VIRTIO_BLK_T_OUT, 8, 1024, false);
    assert_eq!((len, status), (1, VIRTIO_BLK_S_OK));
    assert_eq!(
        r.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).1,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(file_bytes(&img, 8 * 512, 1024), data);
    // Neighbours are untouched.
    assert_eq!(
        file_bytes(&img, 8 * 512 - 512, 512),
        (3584..4096).map(pattern).collect::<Vec<_>>()
    );
    let m = r.block.metrics();
    assert_eq!(
        (m.write_requests, m.write_bytes, m.flush_requests),
        (1, 1024, 1)
    );
}

#[test]
fn get_id_returns_the_padded_serial() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    mem.write_slice(&[0xff; 20], GuestAddress(DATA)).unwrap();
    let (len, status) = r.request(VIRTIO_BLK_T_GET_ID, 0, 20, true);
    assert_eq!((len, status), (21, VIRTIO_BLK_S_OK));
    let mut want = b"reprise-disk-0".to_vec();
    want.resize(20, 0);
    assert_eq!(r.guest_bytes(DATA, 20), want);
}

#[test]
fn discard_and_write_zeroes_clear_ranges() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    discard_segment(&mem, 0, 8, 8, 0);
    discard_segment(&mem, 1, 32, 1, 0);
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 32, false).1,
        VIRTIO_BLK_S_OK
    );
    assert!(file_bytes(&img, 4096, 4096).iter().all(|&b| b == 0));
    assert!(file_bytes(&img, 32 * 512, 512).iter().all(|&b| b == 0));
    assert_eq!(
        file_bytes(&img, 33 * 512, 512),
        (33 * 512..34 * 512).map(pattern).collect::<Vec<_>>()
    );
    assert_eq!(std::fs::metadata(img.as_path()).unwrap().len(), DISK_LEN);

    discard_segment(&mem, 0, 40, 2, 0);
    assert_eq!(
        r.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false).1,
        VIRTIO_BLK_S_OK
    );
    discard_segment(&mem, 0, 50, 2, 1);
    assert_eq!(
        r.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false).1,
        VIRTIO_BLK_S_OK
    );
    assert!(file_bytes(&img, 40 * 512, 1024).iter().all(|&b| b == 0));
    assert!(file_bytes(&img, 50 * 512, 1024).iter().all(|&b| b == 0));
    let m = r.block.metrics();
    assert_eq!((m.discard_requests, m.write_zeroes_requests), (1, 2));
}

#[test]
fn bad_discards_are_refused_before_touching_the_disk() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    // The unmap flag is not allowed on DISCARD.
    discard_segment(&mem, 0, 0, 1, 1);
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 16, false).1,
        VIRTIO_BLK_S_UNSUPP
    );
    // A valid segment followed by one past the end: nothing is discarded.
    discard_segment(&mem, 0, 0, 1, 0);
    discard_segment(&mem, 1, DISK_LEN / 512, 1, 0);
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 32, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        file_bytes(&img, 0, 512),
        (0..512).map(pattern).collect::<Vec<_>>()
    );
    // Not a whole number of segments, no segments, too many segments.
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 20, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 0, false).1,
        VIRTIO_BLK_S_IOERR
    );
    for i in 0..33 {
        discard_segment(&mem, i, i, 1, 0);
    }
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 33 * 16, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        file_bytes(&img, 0, 512),
        (0..512).map(pattern).collect::<Vec<_>>()
    );
}

#[test]
fn out_of_range_and_unaligned_requests_fail_with_ioerr() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    let last = DISK_LEN / 512 - 1;
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, last, 512, true).1,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, last, 1024, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_OUT, last + 1, 512, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, u64::MAX, 512, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, u64::MAX / 512, 512, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, 0, 100, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_OUT, 0, 700, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(r.block.metrics().invalid_requests, 6);
    assert_eq!(std::fs::metadata(img.as_path()).unwrap().len(), DISK_LEN);
}

#[test]
fn unknown_request_types_are_unsupported() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    assert_eq!(r.request(99, 0, 512, true).1, VIRTIO_BLK_S_UNSUPP);
    assert_eq!(r.request(2, 0, 0, false).1, VIRTIO_BLK_S_UNSUPP);
    assert_eq!(r.block.metrics().unsupported_requests, 2);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, true);
    assert!(r.block.read_only());
    assert_ne!(r.block.avail_features() & (1 << VIRTIO_BLK_F_RO), 0);
    assert_eq!(r.block.avail_features() & (1 << VIRTIO_BLK_F_DISCARD), 0);
    mem.write_slice(&[0u8; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        r.request(VIRTIO_BLK_T_OUT, 0, 512, false).1,
        VIRTIO_BLK_S_IOERR
    );
    discard_segment(&mem, 0, 0, 1, 0);
    assert_eq!(
        r.request(VIRTIO_BLK_T_DISCARD, 0, 16, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        r.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        file_bytes(&img, 0, 512),
        (0..512).map(pattern).collect::<Vec<_>>()
    );
    assert_eq!(r.request(VIRTIO_BLK_T_IN, 0, 512, true).1, VIRTIO_BLK_S_OK);
    assert_eq!(
        r.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).1,
        VIRTIO_BLK_S_OK
    );
}

#[test]
fn malformed_chains_do_not_panic() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    header(&mem, VIRTIO_BLK_T_IN, 0);
    // No writable byte at all: nothing to report the status in.
    assert_eq!(r.run(&[(HDR, 16, false), (DATA, 512, false)]).0, 0);
    // A zero-length status descriptor: the status lands in the last data byte, and the
    // now 511-byte data area is rejected.
    let (len, _) = r.run(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 0, true)]);
    assert_eq!(len, 1);
    assert_eq!(r.guest_bytes(DATA + 511, 1), [VIRTIO_BLK_S_IOERR]);
    // A short header.
    let (len, status) = r.run(&[(HDR, 8, false), (STATUS, 1, true)]);
    assert_eq!((len, status), (1, VIRTIO_BLK_S_IOERR));
    // Readable after writable.
    assert_eq!(r.run(&[(STATUS, 1, true), (HDR, 16, false)]).0, 0);
    // Buffers outside guest memory.
    assert_eq!(
        r.run(&[(HDR, 16, false), (1 << 40, 512, true), (STATUS, 1, true)])
            .0,
        0
    );
    assert_eq!(r.run(&[(u64::MAX - 4, 16, false), (STATUS, 1, true)]).0, 0);
    // A descriptor whose `next` points outside the table ends the chain there.
    let head = 15;
    r.tq.write_desc(head, HDR, 16, 1, 200);
    r.tq.publish(head);
    r.block.process_queue();
    assert_eq!(r.tq.used_elem(6), (15, 0));
    assert_eq!(r.block.metrics().invalid_requests, 7);
    assert_eq!(r.block.metrics().requests, 7);
}

#[test]
fn nothing_happens_before_activation_or_after_reset() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    r.block.reset();
    assert!(!r.block.is_activated());
    header(&mem, VIRTIO_BLK_T_IN, 0);
    r.tq.add_chain(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]);
    r.block.process_queue();
    assert_eq!(r.tq.used_idx(), 0);
    assert_eq!(r.block.metrics().requests, 0);
}

#[test]
fn config_space_and_online_resize() {
    let mem = guest_memory();
    let img = disk_image();
    let mut r = rig(&mem, &img, false);
    let mut cap = [0u8; 8];
    r.block.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), DISK_LEN / 512);
    let mut blk_size = [0u8; 4];
    r.block.read_config(0x14, &mut blk_size);
    assert_eq!(u32::from_le_bytes(blk_size), 512);
    let mut past = [0xffu8; 4];
    r.block.read_config(0x1000, &mut past);
    assert_eq!(past, [0; 4]);
    assert_eq!(r.block.config_generation(), 0);

    // Grow the file, then tell the device.
    img.as_file().set_len(2 * DISK_LEN).unwrap();
    r.block.set_capacity(2 * DISK_LEN + 100);
    r.block.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 2 * DISK_LEN / 512);
    assert_eq!(r.block.config_generation(), 1);
    assert_ne!(r.irq.status() & VIRTIO_MMIO_INT_CONFIG, 0);
    assert_eq!(r.irqs.load(Ordering::SeqCst), 1);
    // The new sectors are usable.
    assert_eq!(
        r.request(VIRTIO_BLK_T_IN, DISK_LEN / 512, 512, true).1,
        VIRTIO_BLK_S_OK
    );
}

/// The whole path the VMM uses: MMIO registers, queue notify, the event manager.
#[test]
fn works_through_the_transport_and_event_manager() {
    let mem = guest_memory();
    let img = disk_image();
    let backend = RawFile::open(img.as_path(), &RawFileOptions::default()).unwrap();
    let block = Arc::new(Mutex::new(Block::new(Box::new(backend)).unwrap()));

    let mut manager: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    manager.add_subscriber(block.clone());
    let (irq, irqs) = counting_interrupt();
    let mut transport = MmioTransport::new(block.clone(), mem.clone(), irq);

    let mut tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    w(&mut transport, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    w(&mut transport, 0x24, 1);
    w(&mut transport, 0x20, 1 << (VIRTIO_F_VERSION_1 - 32));
    w(
        &mut transport,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    w(&mut transport, 0x30, 0);
    w(&mut transport, 0x38, 16);
    w(&mut transport, 0x80, tq.desc_addr() as u32);
    w(&mut transport, 0x90, tq.avail_addr() as u32);
    w(&mut transport, 0xa0, tq.used_addr() as u32);
    w(&mut transport, 0x44, 1);
    w(&mut transport, 0x70, 0xf);
    assert!(transport.is_activated());
    assert!(block.lock().unwrap().is_activated());
    // Activation kicks the queue; nothing is there yet.
    assert_eq!(manager.run_with_timeout(100).unwrap(), 1);

    header(&mem, VIRTIO_BLK_T_IN, 1);
    tq.add_chain(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]);
    w(&mut transport, NOTIFY_REG_OFFSET, 0);
    assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
    assert_eq!(tq.used_idx(), 1);
    assert_eq!(tq.used_elem(0).1, 513);
    let mut got = vec![0u8; 512];
    mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    assert_eq!(got, file_bytes(&img, 512, 512));
    assert_eq!(irqs.load(Ordering::SeqCst), 1);
    let mut isr = [0u8; 4];
    transport.read(0x60, &mut isr);
    assert_eq!(u32::from_le_bytes(isr), VIRTIO_MMIO_INT_VRING);

    // Reset through the transport: later notifications are consumed and ignored.
    w(&mut transport, 0x70, 0);
    assert!(!block.lock().unwrap().is_activated());
    tq.add_chain(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]);
    w(&mut transport, NOTIFY_REG_OFFSET, 0);
    assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
    assert_eq!(tq.used_idx(), 1);
    assert_eq!(manager.run_with_timeout(0).unwrap(), 0);
}

/// A backend that asks the device to wait while `hold` is set, recording what it was asked.
struct Gate {
    inner: RawFile,
    hold: Arc<Mutex<Option<std::time::Duration>>>,
    asked: Arc<Mutex<Vec<(crate::backends::IoDirection, u64)>>>,
}

impl BlockBackend for Gate {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.inner.discard(offset, len)
    }
    fn device_id(&self) -> &str {
        "gate"
    }
    fn admit(
        &mut self,
        dir: crate::backends::IoDirection,
        bytes: u64,
    ) -> Option<std::time::Duration> {
        self.asked.lock().unwrap().push((dir, bytes));
        *self.hold.lock().unwrap()
    }
}

#[test]
fn io_limit_holds_the_queue_until_the_timer_fires() {
    use crate::backends::IoDirection;
    let mem = guest_memory();
    let img = disk_image();
    let hold = Arc::new(Mutex::new(Some(std::time::Duration::from_millis(5))));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let options = RawFileOptions {
        read_only: false,
        direct: false,
        device_id: "g".into(),
    };
    let gate = Gate {
        inner: RawFile::open(img.as_path(), &options).unwrap(),
        hold: hold.clone(),
        asked: asked.clone(),
    };
    let mut block = Block::new(Box::new(gate)).unwrap();
    let mut tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let (irq, _irqs) = counting_interrupt();
    block.activate(mem.clone(), vec![tq.queue()], irq).unwrap();

    header(&mem, VIRTIO_BLK_T_IN, 1);
    tq.add_chain(&[(HDR, 16, false), (DATA, 4096, true), (STATUS, 1, true)]);
    block.process_queue();
    assert_eq!(tq.used_idx(), 0, "a held request must not complete");
    assert_eq!(block.metrics().throttled, 1);
    assert!(block.throttle_timer.is_armed().unwrap());
    assert_eq!(asked.lock().unwrap()[0], (IoDirection::Read, 4096));
    // More notifications while held change nothing.
    block.process_queue();
    assert_eq!(tq.used_idx(), 0);
    // The limit lets go: the same request completes, once.
    *hold.lock().unwrap() = None;
    std::thread::sleep(std::time::Duration::from_millis(6));
    block.release_queue();
    assert_eq!(tq.used_idx(), 1);
    assert_eq!(block.metrics().read_requests, 1);
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_OK
    );
}
