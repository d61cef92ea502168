//! virtio-net driver: a receive queue kept full of 2 KiB buffers and a transmit
//! queue used one frame at a time.

use super::mmio::Transport;
use super::queue::{Buf, Virtqueue, MAX_SIZE};
use super::{wait_used, Slot};
use crate::dma;

const F_MAC: u64 = 1 << 5;
/// The modern virtio-net header (with `num_buffers`).
pub const HDR_LEN: usize = 12;
const BUF_LEN: usize = 2048;
const RX: u16 = 0;
const TX: u16 = 1;

/// A virtio-net device, ready for traffic.
pub struct Net {
    t: Transport,
    rxq: Virtqueue,
    txq: Virtqueue,
    mac: [u8; 6],
    rx_bufs: &'static mut [u8],
    tx_buf: &'static mut [u8],
}

impl Net {
    /// Initialise the device in `slot` and post every receive buffer.
    pub fn new(slot: &Slot) -> Self {
        let t = slot.transport();
        let features = t.negotiate(F_MAC);
        let (rx_max, tx_max) = (t.queue_max(RX), t.queue_max(TX));
        if rx_max == 0 || tx_max == 0 {
            crate::fatal!("virtio-net slot {}: missing queues", slot.index);
        }
        let rxq = Virtqueue::new(rx_max.min(MAX_SIZE));
        let txq = Virtqueue::new(tx_max.min(MAX_SIZE));
        t.setup_queue(RX, &rxq);
        t.setup_queue(TX, &txq);
        let mac = if features & F_MAC != 0 {
            t.config::<6>(0)
        } else {
            [0; 6]
        };
        let rx_bufs = dma::alloc(BUF_LEN * usize::from(rxq.size()), 4096);
        let tx_buf = dma::alloc(BUF_LEN, 4096);
        let mut net = Self {
            t,
            rxq,
            txq,
            mac,
            rx_bufs,
            tx_buf,
        };
        t.driver_ok();
        for i in 0..net.rxq.size() {
            net.post_rx(i);
        }
        net
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Post receive buffer `i`. Buffers are posted in order, so descriptor i is
    /// always buffer i (each chain is a single descriptor).
    fn post_rx(&mut self, i: u16) {
        let start = usize::from(i) * BUF_LEN;
        let buf = Buf::inp(&mut self.rx_bufs[start..start + BUF_LEN]);
        if self.rxq.push(&[buf]) != Some(i) {
            crate::fatal!("virtio-net receive ring out of step");
        }
        self.t.notify(RX);
    }

    /// Wait for a frame and copy it (without the virtio header) into `out`;
    /// returns its length (truncated to `out.len()`).
    pub fn recv(&mut self, out: &mut [u8]) -> usize {
        let (id, len) = wait_used(&self.t, &mut self.rxq);
        let start = usize::from(id) * BUF_LEN;
        let len = (len as usize).clamp(HDR_LEN, BUF_LEN) - HDR_LEN;
        let n = len.min(out.len());
        out[..n].copy_from_slice(&self.rx_bufs[start + HDR_LEN..start + HDR_LEN + n]);
        self.post_rx(id);
        n
    }

    /// Send one frame (without virtio header) and wait until the device took it.
    pub fn send(&mut self, frame: &[u8]) {
        let len = frame.len().min(BUF_LEN - HDR_LEN);
        self.tx_buf[..HDR_LEN].fill(0);
        self.tx_buf[HDR_LEN..HDR_LEN + len].copy_from_slice(&frame[..len]);
        let buf = Buf::out(&self.tx_buf[..HDR_LEN + len]);
        if self.txq.push(&[buf]).is_none() {
            crate::fatal!("virtio-net transmit queue full");
        }
        self.t.notify(TX);
        wait_used(&self.t, &mut self.txq);
    }
}
