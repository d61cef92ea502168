//! Split virtqueues. Descriptors come from a free list; a chain is returned to it
//! when the device hands its head back in the used ring.

use core::sync::atomic::{fence, Ordering};

use crate::dma;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Largest queue the driver sets up.
pub const MAX_SIZE: u16 = 64;

#[repr(C)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// One buffer of a chain: guest-physical address, length, device-writable?
#[derive(Clone, Copy)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

impl Buf {
    /// A buffer the device reads.
    pub fn out(data: &[u8]) -> Self {
        Self {
            addr: data.as_ptr() as u64,
            len: data.len() as u32,
            device_writes: false,
        }
    }

    /// A buffer the device writes.
    pub fn inp(data: &mut [u8]) -> Self {
        Self {
            addr: data.as_mut_ptr() as u64,
            len: data.len() as u32,
            device_writes: true,
        }
    }
}

/// A split virtqueue in DMA memory: descriptor table, available ring, used ring.
pub struct Virtqueue {
    size: u16,
    desc: *mut Desc,
    avail: *mut u16,
    used: *mut u16,
    free_head: u16,
    num_free: u16,
    avail_idx: u16,
    last_used: u16,
}

impl Virtqueue {
    /// A queue of `size` entries (a power of two, at most [`MAX_SIZE`]) with
    /// device interrupts suppressed.
    pub fn new(size: u16) -> Self {
        let n = usize::from(size);
        let desc_len = 16 * n;
        let avail_len = 6 + 2 * n;
        let used_off = (desc_len + avail_len).next_multiple_of(4);
        let mem = dma::alloc(used_off + 6 + 8 * n, 4096).as_mut_ptr();
        let q = Self {
            size,
            desc: mem.cast(),
            // SAFETY: both offsets lie inside the allocation just made.
            avail: unsafe { mem.add(desc_len).cast() },
            // SAFETY: as above.
            used: unsafe { mem.add(used_off).cast() },
            free_head: 0,
            num_free: size,
            avail_idx: 0,
            last_used: 0,
        };
        for i in 0..size {
            q.desc_mut(i).next = (i + 1) % size;
        }
        q.set_interrupts(false);
        q
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn desc_addr(&self) -> u64 {
        self.desc as u64
    }

    pub fn avail_addr(&self) -> u64 {
        self.avail as u64
    }

    pub fn used_addr(&self) -> u64 {
        self.used as u64
    }

    #[allow(clippy::mut_from_ref)] // Descriptors live in DMA memory, not in `self`.
    fn desc_mut(&self, i: u16) -> &mut Desc {
        // SAFETY: i < size, and the table is only touched through this queue.
        unsafe { &mut *self.desc.add(usize::from(i % self.size)) }
    }

    /// Ask the device for interrupts (true) or to suppress them (false).
    pub fn set_interrupts(&self, on: bool) {
        let flags = if on { 0 } else { AVAIL_F_NO_INTERRUPT };
        // SAFETY: avail[0] is the available ring's flags field.
        unsafe { self.avail.write_volatile(flags) };
        fence(Ordering::SeqCst);
    }

    /// Put a descriptor chain on the available ring; returns its head, or None
    /// if there are not enough free descriptors. The caller notifies the device.
    pub fn push(&mut self, bufs: &[Buf]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > usize::from(self.num_free) {
            return None;
        }
        let head = self.free_head;
        let mut i = head;
        for (k, b) in bufs.iter().enumerate() {
            let d = self.desc_mut(i);
            d.addr = b.addr;
            d.len = b.len;
            let last = k + 1 == bufs.len();
            d.flags =
                if b.device_writes { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            let next = d.next;
            if last {
                self.free_head = next;
            }
            i = next;
        }
        self.num_free -= bufs.len() as u16;
        let slot = usize::from(self.avail_idx % self.size);
        // SAFETY: ring[slot] (offset 2 + slot) and idx (offset 1) are inside the
        // available ring; the fence orders the descriptor writes before idx.
        unsafe {
            self.avail.add(2 + slot).write_volatile(head);
            fence(Ordering::Release);
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.avail.add(1).write_volatile(self.avail_idx);
        }
        fence(Ordering::SeqCst);
        Some(head)
    }

    /// Take the next completed chain: (head, bytes written by the device).
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        // SAFETY: used[1] is the used ring's idx field.
        let idx = unsafe { self.used.add(1).read_volatile() };
        if idx == self.last_used {
            return None;
        }
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used % self.size);
        // SAFETY: used ring element `slot` (8 bytes each, after the 4-byte header).
        let (id, len) = unsafe {
            let elem = self.used.add(2).cast::<u32>().add(2 * slot);
            (elem.read_volatile(), elem.add(1).read_volatile())
        };
        self.last_used = self.last_used.wrapping_add(1);
        let head = id as u16;
        let mut i = head;
        loop {
            self.num_free += 1;
            let d = self.desc_mut(i);
            if d.flags & DESC_F_NEXT == 0 {
                d.next = self.free_head;
                break;
            }
            i = d.next;
        }
        self.free_head = head;
        Some((head, len))
    }
}
