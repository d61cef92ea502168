//! The virtio-net device (type 1) over a [`NetBackend`].
//!
//! Queue 0 receives (backend → guest), queue 1 transmits (guest → backend). Only
//! VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC and VIRTIO_NET_F_STATUS are offered, so every buffer
//! starts with a 12-byte `virtio_net_hdr_v1` that carries no offload information.
//!
//! Flow control on receive: a frame read from the backend when the guest has no receive
//! buffer is kept (one frame) and the device stops polling the backend until the driver
//! adds buffers and notifies the receive queue. Frames are never lost silently: every drop
//! is counted in [`NetMetrics`] and logged.
//!
//! Before a snapshot the VMM calls [`Net::absorb_backend_backlog`], which moves the frames
//! waiting at the host end of the backend into the device (a bounded backlog, delivered
//! ahead of anything newer), so that they are saved with the device: a VM restored on a new
//! backend receives every frame that had reached the VMM before the snapshot.

mod event_handler;
mod persist;
mod rx;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::VecDeque;
use std::sync::Arc;

use log::{debug, error, warn};
use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::interrupt::VIRTIO_MMIO_INT_VRING;
use super::{copy_config, ActivateError, VirtioDevice, VirtioInterrupt, VIRTIO_F_VERSION_1};
use crate::backends::NetBackend;
use crate::GuestMemory;

pub use self::persist::{NetArgs, NetState};

/// Virtio device type of a network device.
pub const VIRTIO_ID_NET: u32 = 1;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Index of the receive queue.
pub const RX_QUEUE: usize = 0;
/// Index of the transmit queue.
pub const TX_QUEUE: usize = 1;
/// Feature bit: the device has a MAC address in config space.
pub const VIRTIO_NET_F_MAC: u32 = 5;
/// Feature bit: the link status field in config space is valid.
pub const VIRTIO_NET_F_STATUS: u32 = 16;
/// Link status bit: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// Length of `virtio_net_hdr_v1`, which precedes every frame in both directions.
pub const NET_HDR_LEN: usize = 12;
/// The largest Ethernet frame carried (64 KiB payload plus an Ethernet header with a VLAN
/// tag); larger ones are dropped and counted.
pub const MAX_FRAME_LEN: usize = 65536 + 18;
/// Most frames [`Net::absorb_backend_backlog`] takes from the backend at once.
pub const MAX_RX_BACKLOG_FRAMES: usize = QUEUE_SIZE as usize;
/// [`Net::absorb_backend_backlog`] stops taking frames once it holds this many bytes.
pub const MAX_RX_BACKLOG_BYTES: usize = 2 << 20;

/// Errors creating a network device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A queue notification eventfd could not be created.
    #[error("virtio-net: cannot create a queue eventfd: {0}")]
    EventFd(#[source] std::io::Error),
}

/// Counters of a network device since it was created (kept across snapshots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetMetrics {
    /// Frames delivered to the guest.
    pub rx_frames: u64,
    /// Bytes of frames delivered to the guest (without the virtio-net header).
    pub rx_bytes: u64,
    /// Times a received frame had to wait because the guest had no receive buffer.
    pub rx_deferred: u64,
    /// Received frames dropped: larger than the guest's buffer, or guest memory failed.
    pub rx_dropped: u64,
    /// Receive buffers returned unused because their descriptor chain was malformed.
    pub rx_bad_buffers: u64,
    /// Errors reading from the backend.
    pub rx_backend_errors: u64,
    /// Frames sent to the backend.
    pub tx_frames: u64,
    /// Bytes of frames sent to the backend.
    pub tx_bytes: u64,
    /// Frames the backend failed to send.
    pub tx_dropped: u64,
    /// Transmit chains dropped because they were malformed (bad layout, no header, too big).
    pub tx_malformed: u64,
}

/// What the device holds between DRIVER_OK and reset.
struct Active {
    mem: GuestMemory,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<VirtioInterrupt>,
}

impl Active {
    /// Raises the queue interrupt if the driver wants one for `queue`.
    fn notify(&mut self, queue: usize) {
        let q = if queue == RX_QUEUE {
            &mut self.rx
        } else {
            &mut self.tx
        };
        if crate::virtio::notify::driver_wants_interrupt(q, &self.mem) {
            if let Err(e) = self.interrupt.signal(VIRTIO_MMIO_INT_VRING) {
                error!("virtio-net: cannot raise the queue interrupt: {e}");
            }
        }
    }
}

/// Whether the device is polling its backend's ready fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendInterest {
    /// Registered for readability.
    Listening,
    /// Registered with no events: waiting for receive buffers or activation.
    Paused,
    /// Removed from the event loop after the fd reported an error or hang-up.
    Removed,
}

/// A virtio-net device.
pub struct Net {
    backend: Box<dyn NetBackend>,
    mac: Option<[u8; 6]>,
    avail_features: u64,
    acked_features: u64,
    queue_sizes: [u16; 2],
    queue_events: Vec<EventFd>,
    active: Option<Active>,
    /// Whether the driver is asked to notify when it adds receive buffers (the receive
    /// queue's notification suppression as last written to guest memory). Only while a
    /// frame waits for a buffer: otherwise each refill would cost an event-loop wake-up.
    rx_notifications: bool,
    /// A frame read from the backend that is waiting for a receive buffer.
    rx_frame: Vec<u8>,
    rx_pending: Option<usize>,
    /// Frames taken from the backend ahead of time (for a snapshot, or restored from one),
    /// delivered after `rx_pending` and before anything newer from the backend.
    rx_backlog: VecDeque<Vec<u8>>,
    tx_frame: Vec<u8>,
    interest: BackendInterest,
    metrics: NetMetrics,
}

impl Net {
    /// A network device over `backend`, with `mac` as its MAC address if given (otherwise
    /// the guest driver picks one).
    pub fn new(backend: Box<dyn NetBackend>, mac: Option<[u8; 6]>) -> Result<Self, NetError> {
        let queue_events = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()
            .map_err(NetError::EventFd)?;
        let mut avail_features = (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_STATUS);
        if mac.is_some() {
            avail_features |= 1 << VIRTIO_NET_F_MAC;
        }
        Ok(Net {
            backend,
            mac,
            avail_features,
            acked_features: 0,
            queue_sizes: [QUEUE_SIZE; 2],
            queue_events,
            active: None,
            rx_notifications: false,
            rx_frame: vec![0; MAX_FRAME_LEN],
            rx_pending: None,
            rx_backlog: VecDeque::new(),
            tx_frame: Vec::with_capacity(MAX_FRAME_LEN),
            interest: BackendInterest::Listening,
            metrics: NetMetrics::default(),
        })
    }

    /// The MAC address offered to the guest, if any.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// Features the driver accepted.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Whether the driver activated the device (and has not reset it since).
    pub fn is_activated(&self) -> bool {
        self.active.is_some()
    }

    /// Whether a received frame is waiting for a guest receive buffer.
    pub fn has_pending_rx(&self) -> bool {
        self.pending_rx_frames() > 0
    }

    /// How many received frames wait to be delivered to the guest.
    pub fn pending_rx_frames(&self) -> usize {
        usize::from(self.rx_pending.is_some()) + self.rx_backlog.len()
    }

    /// Takes the frames waiting at the backend into the device, oldest first and behind any
    /// frame already waiting: at most [`MAX_RX_BACKLOG_FRAMES`] frames, stopping once
    /// [`MAX_RX_BACKLOG_BYTES`] are held. The VMM calls this with the event loop parked,
    /// just before saving the device, so that frames which reached the host end of the
    /// backend before a snapshot are part of it: a VM restored on a new backend delivers
    /// them, and so does this device. Returns how many frames were taken.
    pub fn absorb_backend_backlog(&mut self) -> usize {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut bytes: usize = self.rx_backlog.iter().map(Vec::len).sum();
        let mut taken = 0;
        while self.rx_backlog.len() < MAX_RX_BACKLOG_FRAMES && bytes < MAX_RX_BACKLOG_BYTES {
            match self.backend.recv(&mut buf) {
                Ok(Some(0)) => {
                    self.metrics.rx_dropped += 1;
                    debug!("virtio-net: dropped an empty frame from the backend");
                }
                Ok(Some(len)) => {
                    let len = len.min(buf.len());
                    self.rx_backlog.push_back(buf[..len].to_vec());
                    bytes += len;
                    taken += 1;
                }
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.metrics.rx_backend_errors += 1;
                    warn!("virtio-net: receiving from the backend failed: {e}");
                    break;
                }
            }
        }
        if taken > 0 {
            debug!("virtio-net: took {taken} waiting frame(s) from the backend");
            self.kick_rx();
        }
        taken
    }

    /// Has the event loop run the receive path once (to deliver frames the backend's fd
    /// does not announce: those of the backlog).
    fn kick_rx(&self) {
        if self.active.is_some() {
            if let Err(e) = self.queue_events[RX_QUEUE].write(1) {
                error!("virtio-net: cannot kick the receive queue: {e}");
            }
        }
    }

    /// Counters since the device was created.
    pub fn metrics(&self) -> NetMetrics {
        self.metrics
    }

    /// Takes the queues and has the event loop look at both once: buffers queued before
    /// DRIVER_OK (or before a snapshot) are used, a waiting frame is delivered, and polling
    /// of the backend resumes (the receive-queue handler does that). A fresh activation
    /// also turns off receive-queue notifications in guest memory; a resumed device keeps
    /// them as they were saved, since guest memory already says so.
    fn start(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
        fresh: bool,
    ) -> Result<(), ActivateError> {
        let Ok([rx, tx]) = <[Queue; 2]>::try_from(queues) else {
            return Err(ActivateError::Other(
                "virtio-net expects exactly two queues".to_string(),
            ));
        };
        for (index, q) in [(RX_QUEUE, &rx), (TX_QUEUE, &tx)] {
            if !q.ready() {
                return Err(ActivateError::BadQueue {
                    index,
                    reason: "the queue is not ready".to_string(),
                });
            }
        }
        let mut rx = rx;
        if fresh {
            self.rx_notifications = match rx.disable_notification(&mem) {
                Ok(()) => false,
                Err(e) => {
                    warn!("virtio-net: cannot suppress receive-queue notifications: {e}");
                    true
                }
            };
        }
        self.active = Some(Active {
            mem,
            rx,
            tx,
            interrupt,
        });
        for (index, event) in self.queue_events.iter().enumerate() {
            if let Err(e) = event.write(1) {
                error!("virtio-net: cannot kick queue {index} after activation: {e}");
            }
        }
        Ok(())
    }

    fn config_space(&self) -> [u8; 8] {
        let mut config = [0u8; 8];
        if let Some(mac) = self.mac {
            config[..6].copy_from_slice(&mac);
        }
        config[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        config
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config_space(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // The MAC is writable only in legacy devices; there is nothing else to write.
        debug!(
            "virtio-net: ignored {}-byte write to read-only config space at {offset:#x}",
            data.len()
        );
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        self.start(mem, queues, interrupt, true)
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
        self.rx_notifications = false;
        let dropped = self.pending_rx_frames();
        self.rx_pending = None;
        self.rx_backlog.clear();
        if dropped > 0 {
            self.metrics.rx_dropped += dropped as u64;
            debug!("virtio-net: reset dropped {dropped} frame(s) waiting for receive buffers");
        }
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn queue_states(&self) -> Option<Vec<QueueState>> {
        self.active
            .as_ref()
            .map(|active| vec![active.rx.state(), active.tx.state()])
    }

    fn resume(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        self.start(mem, queues, interrupt, false)
    }
}
