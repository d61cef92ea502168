//! A block device and its transport across a snapshot, with requests in flight.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::SubscriberOps;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempfile::TempFile;

use super::driver::{self, negotiate, setup_queue};
use super::{expect_refused, pulses, round_trip};
use crate::backends::{BlockBackend, IoDirection, RawFile, RawFileOptions};
use crate::persist::Persist;
use crate::virtio::block::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use crate::virtio::test_utils::{
    copy_memory, counting_interrupt, event_manager, guest_memory, memory_bytes, run_until_idle,
    TestQueue,
};
use crate::virtio::{Block, BlockArgs, MmioTransport, MmioTransportArgs, VirtioDevice};
use crate::GuestMemory;

pub(super) const DISK_LEN: u64 = 64 * 1024;
pub(super) const QUEUE_BASE: u64 = 0x1000;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;

pub(super) fn disk_image() -> TempFile {
    let f = TempFile::new_with_prefix("/tmp/reprise-persist").unwrap();
    let bytes: Vec<u8> = (0..DISK_LEN).map(|i| (i % 253) as u8).collect();
    std::fs::write(f.as_path(), bytes).unwrap();
    f
}

/// A point-in-time copy of `image`, as the block store gives a restored VM.
pub(super) fn copy_image(image: &TempFile) -> TempFile {
    let f = TempFile::new_with_prefix("/tmp/reprise-persist").unwrap();
    std::fs::copy(image.as_path(), f.as_path()).unwrap();
    f
}

pub(super) fn raw(image: &TempFile) -> Box<dyn BlockBackend> {
    let options = RawFileOptions {
        device_id: "disk0".to_string(),
        ..RawFileOptions::default()
    };
    Box::new(RawFile::open(image.as_path(), &options).unwrap())
}

/// A block device behind its transport, driven to DRIVER_OK.
pub(super) struct BlockVm {
    pub(super) block: Arc<Mutex<Block>>,
    pub(super) transport: MmioTransport,
    pub(super) irqs: Arc<AtomicU32>,
}

pub(super) fn block_vm(
    mem: &GuestMemory,
    tq: &TestQueue,
    backend: Box<dyn BlockBackend>,
) -> BlockVm {
    let block = Arc::new(Mutex::new(Block::new(backend).unwrap()));
    let (irq, irqs) = counting_interrupt();
    let mut transport = MmioTransport::new(block.clone(), mem.clone(), irq);
    negotiate(&mut transport);
    setup_queue(&mut transport, 0, tq);
    driver::driver_ok(&mut transport);
    BlockVm {
        block,
        transport,
        irqs,
    }
}

/// Restores the pair the way the VMM does: the device from its state first, then the
/// transport around it, which resumes the device.
pub(super) fn restore_block_vm(
    original: &BlockVm,
    mem: &GuestMemory,
    backend: Box<dyn BlockBackend>,
) -> BlockVm {
    let block = round_trip(&*original.block.lock().unwrap(), BlockArgs { backend });
    let block = Arc::new(Mutex::new(block));
    let (irq, irqs) = counting_interrupt();
    let transport = round_trip(
        &original.transport,
        MmioTransportArgs {
            device: block.clone(),
            mem: mem.clone(),
            interrupt: irq,
        },
    );
    BlockVm {
        block,
        transport,
        irqs,
    }
}

fn header(mem: &GuestMemory, at: u64, request_type: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&request_type.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&h, GuestAddress(at)).unwrap();
}

/// Queues a request: header at `HDR + slot * 16`, data at `DATA + slot * 4096`, status at
/// `STATUS + slot`.
fn queue_request(mem: &GuestMemory, tq: &mut TestQueue, slot: u64, kind: u32, sector: u64) {
    let write = kind == VIRTIO_BLK_T_IN;
    header(mem, HDR + slot * 16, kind, sector);
    mem.write_obj(0xeeu8, GuestAddress(STATUS + slot)).unwrap();
    tq.add_chain(&[
        (HDR + slot * 16, 16, false),
        (DATA + slot * 4096, 512, write),
        (STATUS + slot, 1, true),
    ]);
}

fn status_byte(mem: &GuestMemory, slot: u64) -> u8 {
    mem.read_obj(GuestAddress(STATUS + slot)).unwrap()
}

#[test]
fn request_available_at_save_completes_once_after_restore() {
    let mem = guest_memory();
    let image = disk_image();
    let mut tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let mut vm = block_vm(&mem, &tq, raw(&image));

    // One write completes before the snapshot, so the indexes are not at zero.
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    queue_request(&mem, &mut tq, 0, VIRTIO_BLK_T_OUT, 3);
    vm.block.lock().unwrap().process_queue();
    assert_eq!(tq.used_idx(), 1);
    // The guest makes a read of that sector available and notifies; the VMM pauses before
    // the event loop gets to it.
    queue_request(&mem, &mut tq, 1, VIRTIO_BLK_T_IN, 3);
    driver::w(&mut vm.transport, driver::QUEUE_NOTIFY, 0);

    // Snapshot: memory and disk copied as they are, device states saved and restored.
    let mem2 = copy_memory(&mem);
    let image2 = copy_image(&image);
    let mut vm2 = restore_block_vm(&vm, &mem2, raw(&image2));
    let tq2 = tq.in_memory(&mem2);
    assert_eq!(
        driver::all_registers(&mut vm2.transport, 1),
        driver::all_registers(&mut vm.transport, 1)
    );

    // The restored VM's event loop picks the request up through the resume kick.
    let mut manager = event_manager();
    manager.add_subscriber(vm2.block.clone());
    run_until_idle(&mut manager);
    assert_eq!(tq2.used_idx(), 2, "the in-flight request completes");
    assert_eq!(
        tq2.used_elem(1),
        (3, 513),
        "head descriptor 3, 512 bytes and status"
    );
    assert_eq!(status_byte(&mem2, 1), VIRTIO_BLK_S_OK);
    let mut got = [0u8; 512];
    mem2.read_slice(&mut got, GuestAddress(DATA + 4096))
        .unwrap();
    assert_eq!(got, [0xab; 512]);
    assert_eq!(pulses(&vm2.irqs), 1);
    let m = vm2.block.lock().unwrap().metrics();
    assert_eq!((m.requests, m.write_requests, m.read_requests), (2, 1, 1));

    // Exactly once: more notifications find nothing new.
    driver::w(&mut vm2.transport, driver::QUEUE_NOTIFY, 0);
    run_until_idle(&mut manager);
    assert_eq!(tq2.used_idx(), 2);
    assert_eq!(vm2.block.lock().unwrap().metrics().requests, 2);

    // The original, continuing, ends up in the same place: same memory, same disk.
    vm.block.lock().unwrap().process_queue();
    assert_eq!(tq.used_idx(), 2);
    assert!(memory_bytes(&mem) == memory_bytes(&mem2), "memories differ");
    assert_eq!(
        std::fs::read(image.as_path()).unwrap(),
        std::fs::read(image2.as_path()).unwrap()
    );
    assert_eq!(vm.transport.save(), vm2.transport.save());
    assert_eq!(
        vm.block.lock().unwrap().save(),
        vm2.block.lock().unwrap().save()
    );
}

/// A backend that holds every request while `hold` is set.
struct Held {
    inner: Box<dyn BlockBackend>,
    hold: bool,
}

impl BlockBackend for Held {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
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
        self.inner.device_id()
    }
    fn admit(&mut self, _dir: IoDirection, _bytes: u64) -> Option<Duration> {
        self.hold.then_some(Duration::from_secs(3600))
    }
}

#[test]
fn request_held_by_an_io_limit_runs_after_restore() {
    let mem = guest_memory();
    let image = disk_image();
    let mut tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let held = Held {
        inner: raw(&image),
        hold: true,
    };
    let vm = block_vm(&mem, &tq, Box::new(held));
    queue_request(&mem, &mut tq, 0, VIRTIO_BLK_T_IN, 5);
    vm.block.lock().unwrap().process_queue();
    assert_eq!(tq.used_idx(), 0, "held");
    assert_eq!(vm.block.lock().unwrap().metrics().throttled, 1);

    // The timer is not saved: the restored device asks its (new) limits again.
    let mem2 = copy_memory(&mem);
    let vm2 = restore_block_vm(&vm, &mem2, raw(&image));
    let tq2 = tq.in_memory(&mem2);
    let mut manager = event_manager();
    manager.add_subscriber(vm2.block.clone());
    run_until_idle(&mut manager);
    assert_eq!(tq2.used_idx(), 1);
    assert_eq!(status_byte(&mem2, 0), VIRTIO_BLK_S_OK);
    let mut got = [0u8; 512];
    mem2.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    let want: Vec<u8> = (5 * 512..6 * 512).map(|i| (i % 253) as u8).collect();
    assert_eq!(&got[..], &want[..]);
    assert_eq!(vm2.block.lock().unwrap().metrics().requests, 1);
}

#[test]
fn block_refuses_corrupted_states() {
    let mem = guest_memory();
    let image = disk_image();
    let tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let vm = block_vm(&mem, &tq, raw(&image));
    let good = vm.block.lock().unwrap().save();
    let args = || BlockArgs {
        backend: raw(&image),
    };
    let component = "virtio-blk[disk0]";

    let mut s = good.clone();
    s.acked_features |= 1 << 40;
    expect_refused::<Block>(args(), &s, component, "acked_features");

    let mut s = good.clone();
    s.capacity_sectors = DISK_LEN / 512 + 1;
    expect_refused::<Block>(args(), &s, component, "capacity_sectors");

    let mut s = good;
    s.read_only = true;
    expect_refused::<Block>(args(), &s, component, "read_only");
}

#[test]
fn inactive_block_device_round_trips_and_activates_later() {
    let mem = guest_memory();
    let image = disk_image();
    let block = Arc::new(Mutex::new(Block::new(raw(&image)).unwrap()));
    let (irq, _) = counting_interrupt();
    let transport = MmioTransport::new(block.clone(), mem.clone(), irq);
    let restored = round_trip(
        &*block.lock().unwrap(),
        BlockArgs {
            backend: raw(&image),
        },
    );
    let restored = Arc::new(Mutex::new(restored));
    let (irq2, _) = counting_interrupt();
    let mut transport2 = round_trip(
        &transport,
        MmioTransportArgs {
            device: restored.clone(),
            mem: mem.clone(),
            interrupt: irq2,
        },
    );
    assert!(!restored.lock().unwrap().is_activated());
    let mut tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    negotiate(&mut transport2);
    setup_queue(&mut transport2, 0, &tq);
    driver::driver_ok(&mut transport2);
    queue_request(&mem, &mut tq, 0, VIRTIO_BLK_T_IN, 0);
    restored.lock().unwrap().process_queue();
    assert_eq!(tq.used_idx(), 1);
    assert_eq!(
        restored.lock().unwrap().queue_states().unwrap()[0].next_used,
        1
    );
}
