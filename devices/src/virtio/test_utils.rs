//! Test helpers: guest memory, a driver-side view of a split virtqueue, a scripted network
//! backend and the event loop.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, MutEventSubscriber};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::backends::NetBackend;
use crate::interrupt::InterruptLine;
use crate::virtio::VirtioInterrupt;
use crate::GuestMemory;

/// Size of the guest memory used by tests.
pub(crate) const MEM_SIZE: usize = 0x100_0000;

const VIRTQ_DESC_F_NEXT: u16 = 1;
const VIRTQ_DESC_F_WRITE: u16 = 2;

/// 16 MiB of guest memory at address 0.
pub(crate) fn guest_memory() -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// A byte-identical copy of `mem` in new memory, the way a snapshot's memory comes back.
pub(crate) fn copy_memory(mem: &GuestMemory) -> GuestMemory {
    let copy = guest_memory();
    let mut bytes = vec![0u8; MEM_SIZE];
    mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
    copy.write_slice(&bytes, GuestAddress(0)).unwrap();
    copy
}

/// The whole contents of `mem`.
pub(crate) fn memory_bytes(mem: &GuestMemory) -> Vec<u8> {
    let mut bytes = vec![0u8; MEM_SIZE];
    mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
    bytes
}

/// An interrupt line that counts its pulses.
#[derive(Default)]
pub(crate) struct CountingLine(pub(crate) Arc<AtomicU32>);

impl InterruptLine for CountingLine {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A `VirtioInterrupt` plus the counter of its line's pulses.
pub(crate) fn counting_interrupt() -> (Arc<VirtioInterrupt>, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    let irq = VirtioInterrupt::new(Box::new(CountingLine(count.clone())));
    (Arc::new(irq), count)
}

/// The driver's side of a split virtqueue laid out in guest memory at `base`.
pub(crate) struct TestQueue<'a> {
    mem: &'a GuestMemory,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
}

impl<'a> TestQueue<'a> {
    /// Lays out a queue of `size` entries at `base` (16-byte aligned).
    pub(crate) fn new(mem: &'a GuestMemory, base: u64, size: u16) -> Self {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
        let q = TestQueue {
            mem,
            size,
            desc,
            avail,
            used,
            next_desc: 0,
        };
        for addr in [q.avail, q.avail + 2, q.used, q.used + 2] {
            mem.write_obj(0u16, GuestAddress(addr)).unwrap();
        }
        q
    }

    /// The same driver-side queue over `mem`, a copy of this queue's memory (the driver's
    /// own position lives in guest memory in a real guest, so it moves with the copy).
    pub(crate) fn in_memory<'b>(&self, mem: &'b GuestMemory) -> TestQueue<'b> {
        TestQueue {
            mem,
            size: self.size,
            desc: self.desc,
            avail: self.avail,
            used: self.used,
            next_desc: self.next_desc,
        }
    }

    /// The queue's size.
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// Guest address of the descriptor table.
    pub(crate) fn desc_addr(&self) -> u64 {
        self.desc
    }

    /// Guest address of the available ring.
    pub(crate) fn avail_addr(&self) -> u64 {
        self.avail
    }

    /// Guest address of the used ring.
    pub(crate) fn used_addr(&self) -> u64 {
        self.used
    }

    /// Writes a chain of `(address, length, device_writable)` buffers and makes it available.
    /// Returns the head descriptor index.
    pub(crate) fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let index = (self.next_desc + i as u16) % self.size;
            let next = (index + 1) % self.size;
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.write_desc(index, addr, len, flags, next);
        }
        self.next_desc = (self.next_desc + bufs.len() as u16) % self.size;
        self.publish(head);
        head
    }

    /// Writes one raw descriptor.
    pub(crate) fn write_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.desc + 16 * u64::from(index);
        self.mem.write_obj(addr.to_le(), GuestAddress(at)).unwrap();
        self.mem
            .write_obj(len.to_le(), GuestAddress(at + 8))
            .unwrap();
        self.mem
            .write_obj(flags.to_le(), GuestAddress(at + 12))
            .unwrap();
        self.mem
            .write_obj(next.to_le(), GuestAddress(at + 14))
            .unwrap();
    }

    /// Puts `head` on the available ring.
    pub(crate) fn publish(&self, head: u16) {
        let idx: u16 = self.mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = self.avail + 4 + 2 * u64::from(idx % self.size);
        self.mem
            .write_obj(head.to_le(), GuestAddress(slot))
            .unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1).to_le(), GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// The used ring's index.
    pub(crate) fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// Entry `i` of the used ring: (descriptor id, length written).
    pub(crate) fn used_elem(&self, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % self.size);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (id, len)
    }

    /// A device-side `Queue` configured for this layout and marked ready.
    pub(crate) fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).unwrap();
        q.set_size(self.size);
        q.set_desc_table_address(Some(self.desc as u32), Some((self.desc >> 32) as u32));
        q.set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
        q.set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
        q.set_ready(true);
        q
    }
}

/// Frames waiting for the device, and frames the device sent.
#[derive(Default)]
pub(crate) struct Wire {
    pub(crate) to_guest: VecDeque<Vec<u8>>,
    pub(crate) from_guest: Vec<Vec<u8>>,
    pub(crate) fail_sends: bool,
}

/// A backend whose ready fd is an eventfd that is readable while frames are waiting.
pub(crate) struct FakeBackend {
    wire: Arc<Mutex<Wire>>,
    ready: Arc<EventFd>,
}

impl NetBackend for FakeBackend {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut wire = self.wire.lock().unwrap();
        let Some(frame) = wire.to_guest.pop_front() else {
            return Ok(None);
        };
        if wire.to_guest.is_empty() {
            let _ = self.ready.read();
        }
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(Some(n))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut wire = self.wire.lock().unwrap();
        if wire.fail_sends {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        wire.from_guest.push(frame.to_vec());
        Ok(())
    }

    fn ready_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

/// The test's handle on the fake backend's wire.
#[derive(Clone)]
pub(crate) struct WireHandle {
    pub(crate) wire: Arc<Mutex<Wire>>,
    pub(crate) ready: Arc<EventFd>,
}

impl WireHandle {
    pub(crate) fn push(&self, frame: Vec<u8>) {
        self.wire.lock().unwrap().to_guest.push_back(frame);
        self.ready.write(1).unwrap();
    }

    pub(crate) fn waiting(&self) -> usize {
        self.wire.lock().unwrap().to_guest.len()
    }

    pub(crate) fn sent(&self) -> Vec<Vec<u8>> {
        self.wire.lock().unwrap().from_guest.clone()
    }
}

pub(crate) fn fake_backend() -> (FakeBackend, WireHandle) {
    let wire = Arc::new(Mutex::new(Wire::default()));
    let ready = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
    (
        FakeBackend {
            wire: wire.clone(),
            ready: ready.clone(),
        },
        WireHandle { wire, ready },
    )
}

pub(crate) fn event_manager() -> EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> {
    EventManager::new().unwrap()
}

/// Runs the event loop until it has nothing left to do.
pub(crate) fn run_until_idle(
    manager: &mut EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>,
) {
    for _ in 0..100 {
        if manager.run_with_timeout(50).unwrap() == 0 {
            return;
        }
    }
    panic!("the event loop never went idle");
}
