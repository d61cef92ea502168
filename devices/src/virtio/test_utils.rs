//! Test helpers: guest memory and a driver-side view of a split virtqueue.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

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
