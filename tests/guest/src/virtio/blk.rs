//! virtio-blk driver: one request at a time (queue depth 1).

use super::mmio::Transport;
use super::queue::{Buf, Virtqueue, MAX_SIZE};
use super::{wait_used, Slot};
use crate::dma;

const F_SIZE_MAX: u64 = 1 << 1;
const F_RO: u64 = 1 << 5;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;
const F_DISCARD: u64 = 1 << 13;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const T_DISCARD: u32 = 11;

/// Request completed.
pub const S_OK: u8 = 0;
/// Sector size of the virtio-blk protocol.
pub const SECTOR: u64 = 512;
/// Length of a GET_ID answer.
const ID_LEN: usize = 20;
/// Most data descriptors per request.
const MAX_DATA_SEGS: usize = 8;

/// A virtio-blk device, ready for requests.
pub struct Blk {
    t: Transport,
    q: Virtqueue,
    features: u64,
    size_max: u32,
    /// Request header (16 bytes), discard segment (16), status (1), id (20).
    scratch: &'static mut [u8],
}

impl Blk {
    /// Initialise the device in `slot`.
    pub fn new(slot: &Slot) -> Self {
        let t = slot.transport();
        let features = t.negotiate(F_SIZE_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_DISCARD);
        let max = t.queue_max(0);
        if max == 0 {
            crate::fatal!("virtio-blk slot {}: no request queue", slot.index);
        }
        let q = Virtqueue::new(max.min(MAX_SIZE));
        t.setup_queue(0, &q);
        t.driver_ok();
        let size_max = if features & F_SIZE_MAX != 0 {
            u32::from_le_bytes(t.config::<4>(8)).max(512)
        } else {
            u32::MAX
        };
        Self {
            t,
            q,
            features,
            size_max,
            scratch: dma::alloc(64, 64),
        }
    }

    /// Acknowledge pending interrupt causes (e.g. a configuration change).
    pub fn ack_interrupt(&self) {
        self.t.ack_interrupt();
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        u64::from_le_bytes(self.t.config::<8>(0))
    }

    pub fn read_only(&self) -> bool {
        self.features & F_RO != 0
    }

    pub fn has_flush(&self) -> bool {
        self.features & F_FLUSH != 0
    }

    pub fn has_discard(&self) -> bool {
        self.features & F_DISCARD != 0
    }

    /// Read `buf.len()` bytes (a multiple of 512) from `sector`; returns the status.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> u8 {
        let (addr, len) = (buf.as_mut_ptr() as u64, buf.len());
        self.request(T_IN, sector, addr, len, true)
    }

    /// Write `buf` (a multiple of 512 bytes) at `sector`; returns the status.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> u8 {
        self.request(T_OUT, sector, buf.as_ptr() as u64, buf.len(), false)
    }

    /// Flush the device's write cache; returns the status.
    pub fn flush(&mut self) -> u8 {
        self.request(T_FLUSH, 0, 0, 0, false)
    }

    /// Discard `count` sectors from `sector`; returns the status.
    pub fn discard(&mut self, sector: u64, count: u32) -> u8 {
        let seg = &mut self.scratch[16..32];
        seg[..8].copy_from_slice(&sector.to_le_bytes());
        seg[8..12].copy_from_slice(&count.to_le_bytes());
        seg[12..16].copy_from_slice(&0u32.to_le_bytes());
        let addr = seg.as_ptr() as u64;
        self.request(T_DISCARD, 0, addr, 16, false)
    }

    /// The device ID string (GET_ID); empty if the device has none.
    pub fn id(&mut self) -> ([u8; ID_LEN], usize) {
        let addr = self.scratch[40..60].as_mut_ptr() as u64;
        let status = self.request(T_GET_ID, 0, addr, ID_LEN, true);
        let mut id = [0u8; ID_LEN];
        if status != S_OK {
            return (id, 0);
        }
        id.copy_from_slice(&self.scratch[40..60]);
        let len = id.iter().position(|&b| b == 0).unwrap_or(ID_LEN);
        (id, len)
    }

    /// Issue one request with an optional data buffer and wait for its status.
    fn request(
        &mut self,
        kind: u32,
        sector: u64,
        addr: u64,
        len: usize,
        device_writes: bool,
    ) -> u8 {
        let (hdr, rest) = self.scratch.split_at_mut(16);
        hdr[..4].copy_from_slice(&kind.to_le_bytes());
        hdr[4..8].copy_from_slice(&0u32.to_le_bytes());
        hdr[8..16].copy_from_slice(&sector.to_le_bytes());
        let status = &mut rest[16..17];
        status[0] = 0xff;

        let mut bufs = [Buf {
            addr: 0,
            len: 0,
            device_writes: false,
        }; MAX_DATA_SEGS + 2];
        bufs[0] = Buf::out(hdr);
        let mut n = 1;
        let (mut addr, mut left) = (addr, len as u64);
        while left > 0 {
            if n > MAX_DATA_SEGS {
                crate::fatal!(
                    "virtio-blk request of {} bytes needs too many segments",
                    len
                );
            }
            let seg = left.min(u64::from(self.size_max));
            bufs[n] = Buf {
                addr,
                len: seg as u32,
                device_writes,
            };
            addr += seg;
            left -= seg;
            n += 1;
        }
        bufs[n] = Buf::inp(status);
        n += 1;

        if self.q.push(&bufs[..n]).is_none() {
            crate::fatal!("virtio-blk queue full");
        }
        self.t.notify(0);
        wait_used(&self.t, &mut self.q);
        // SAFETY: the status byte lives in DMA memory the device just wrote.
        unsafe { core::ptr::read_volatile(&self.scratch[32]) }
    }
}
