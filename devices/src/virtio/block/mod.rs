//! The virtio-blk device (type 2) over a [`BlockBackend`].
//!
//! One request queue. Requests are executed synchronously on the event loop thread when the
//! queue's eventfd fires (see [`event_manager::MutEventSubscriber`] below).

mod config;
mod event_handler;
mod persist;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use log::{debug, error, info, warn};
use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueOwnedT, QueueState, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::timerfd::TimerFd;

use self::request::Disk;
use super::descriptors::DescriptorBuffers;
use super::interrupt::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use super::{copy_config, ActivateError, VirtioDevice, VirtioInterrupt};
use crate::backends::BlockBackend;
use crate::GuestMemory;

pub use self::config::{
    SECTOR_SIZE, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
pub use self::persist::{BlockArgs, BlockState};
pub use self::request::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
};

/// Virtio device type of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;

/// Errors creating a block device.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The queue notification eventfd could not be created.
    #[error("virtio-blk: cannot create the queue eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    /// The I/O-limit timer could not be created.
    #[error("virtio-blk: cannot create the I/O-limit timer: {0}")]
    TimerFd(#[source] std::io::Error),
}

/// Counters of a block device since it was created (kept across snapshots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMetrics {
    /// Requests taken from the queue.
    pub requests: u64,
    /// IN (read) requests.
    pub read_requests: u64,
    /// OUT (write) requests.
    pub write_requests: u64,
    /// FLUSH requests.
    pub flush_requests: u64,
    /// GET_ID requests.
    pub get_id_requests: u64,
    /// DISCARD requests.
    pub discard_requests: u64,
    /// WRITE_ZEROES requests.
    pub write_zeroes_requests: u64,
    /// Bytes read for the guest.
    pub read_bytes: u64,
    /// Bytes written for the guest.
    pub write_bytes: u64,
    /// Requests that failed in the backend (answered IOERR).
    pub io_errors: u64,
    /// Malformed or out-of-range requests (answered IOERR, or dropped with no status byte).
    pub invalid_requests: u64,
    /// Requests of an unknown type (answered UNSUPP).
    pub unsupported_requests: u64,
    /// Times the queue was held because an I/O limit was reached.
    pub throttled: u64,
}

/// What the device holds between DRIVER_OK and reset.
struct Active {
    mem: GuestMemory,
    queue: Queue,
    interrupt: Arc<VirtioInterrupt>,
}

/// A virtio-blk device.
pub struct Block {
    disk: Disk,
    avail_features: u64,
    acked_features: u64,
    config_generation: u32,
    queue_sizes: [u16; 1],
    queue_events: Vec<EventFd>,
    active: Option<Active>,
    /// Fires when an I/O limit lets the held queue go again.
    throttle_timer: TimerFd,
    /// The queue is held until `throttle_timer` fires.
    throttled: bool,
}

impl Block {
    /// A block device serving `backend`. Its capacity is the backend's, rounded down to
    /// 512-byte sectors; it is read-only (VIRTIO_BLK_F_RO) when the backend is.
    pub fn new(backend: Box<dyn BlockBackend>) -> Result<Self, BlockError> {
        let queue_event = EventFd::new(EFD_NONBLOCK).map_err(BlockError::EventFd)?;
        let disk = Disk::new(backend);
        let throttle_timer = TimerFd::new().map_err(|e| BlockError::TimerFd(e.into()))?;
        Ok(Block {
            throttle_timer,
            throttled: false,
            avail_features: config::avail_features(disk.read_only),
            disk,
            acked_features: 0,
            config_generation: 0,
            queue_sizes: [QUEUE_SIZE],
            queue_events: vec![queue_event],
            active: None,
        })
    }

    /// Capacity in 512-byte sectors, as the guest sees it.
    pub fn capacity_sectors(&self) -> u64 {
        self.disk.capacity_sectors
    }

    /// Whether the disk is read-only.
    pub fn read_only(&self) -> bool {
        self.disk.read_only
    }

    /// Features the driver accepted.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Whether the driver activated the device (and has not reset it since).
    pub fn is_activated(&self) -> bool {
        self.active.is_some()
    }

    /// Counters since the device was created.
    pub fn metrics(&self) -> BlockMetrics {
        self.disk.metrics
    }

    /// Changes the capacity the guest sees to `bytes` (rounded down to 512-byte sectors):
    /// updates the configuration space, bumps the configuration generation and, when the
    /// device is active, raises a configuration-change interrupt. Used for online resize;
    /// the backend must already serve the new size.
    pub fn set_capacity(&mut self, bytes: u64) {
        let sectors = bytes / SECTOR_SIZE;
        info!(
            "{}: capacity changes from {} to {sectors} sectors",
            self.disk.label, self.disk.capacity_sectors
        );
        self.disk.capacity_sectors = sectors;
        self.config_generation = self.config_generation.wrapping_add(1);
        if let Some(active) = &self.active {
            if let Err(e) = active.interrupt.signal(VIRTIO_MMIO_INT_CONFIG) {
                error!(
                    "{}: cannot raise the configuration-change interrupt: {e}",
                    self.disk.label
                );
            }
        }
    }

    /// Resizes the backend to `bytes` and shows the guest the new capacity (a
    /// configuration-change interrupt).
    pub fn resize(&mut self, bytes: u64) -> std::io::Result<()> {
        self.disk.backend.resize(bytes)?;
        let capacity = self.disk.backend.capacity();
        self.set_capacity(capacity);
        Ok(())
    }

    /// Holds the queue for `wait` (an I/O limit was reached).
    fn hold_queue(&mut self, wait: std::time::Duration) {
        let wait = wait.max(std::time::Duration::from_micros(50));
        match self.throttle_timer.reset(wait, None) {
            Ok(()) => {
                self.throttled = true;
                self.disk.metrics.throttled += 1;
            }
            Err(e) => error!("{}: cannot arm the I/O-limit timer: {e}", self.disk.label),
        }
    }

    /// Takes every available request from the queue, executes it, and interrupts the guest
    /// if anything was completed. Stops early when an I/O limit says to wait. Does nothing
    /// before activation or while the queue is held.
    pub fn process_queue(&mut self) {
        if self.throttled {
            return;
        }
        let mut hold = None;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let mut completed = 0u32;
        loop {
            let chain = match active.queue.iter(mem) {
                Ok(mut iter) => iter.next(),
                Err(e) => {
                    self.disk.metrics.invalid_requests += 1;
                    warn!("{}: cannot read the available ring: {e}", self.disk.label);
                    None
                }
            };
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let used_len = match DescriptorBuffers::parse(mem, chain) {
                Ok(bufs) => {
                    let cost = request::admission_cost(mem, &bufs);
                    if let Some(wait) = cost.and_then(|(dir, n)| self.disk.backend.admit(dir, n)) {
                        // Put the request back; it goes first when the limit allows.
                        active.queue.go_to_previous_position();
                        hold = Some(wait);
                        break;
                    }
                    self.disk.handle(mem, &bufs)
                }
                Err(e) => {
                    self.disk.metrics.requests += 1;
                    self.disk.metrics.invalid_requests += 1;
                    warn!("{}: request {head} dropped: {e}", self.disk.label);
                    0
                }
            };
            if let Err(e) = active.queue.add_used(mem, head, used_len) {
                error!(
                    "{}: cannot return request {head} to the guest: {e}",
                    self.disk.label
                );
                break;
            }
            completed += 1;
        }
        if completed > 0 && crate::virtio::notify::driver_wants_interrupt(&mut active.queue, mem) {
            if let Err(e) = active.interrupt.signal(VIRTIO_MMIO_INT_VRING) {
                error!("{}: cannot raise the queue interrupt: {e}", self.disk.label);
            }
        }
        if let Some(wait) = hold {
            self.hold_queue(wait);
        }
    }

    /// Takes the request queue and has the event loop look at it once.
    fn start(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        let Ok([queue]) = <[Queue; 1]>::try_from(queues) else {
            return Err(ActivateError::Other(
                "virtio-blk expects exactly one queue".to_string(),
            ));
        };
        if !queue.ready() {
            return Err(ActivateError::BadQueue {
                index: 0,
                reason: "the request queue is not ready".to_string(),
            });
        }
        self.active = Some(Active {
            mem,
            queue,
            interrupt,
        });
        if let Err(e) = self.queue_events[0].write(1) {
            error!(
                "{}: cannot kick the request queue after activation: {e}",
                self.disk.label
            );
        }
        Ok(())
    }

    /// The I/O-limit timer fired: let the queue go again.
    fn release_queue(&mut self) {
        if let Err(e) = self.throttle_timer.wait() {
            debug!("{}: I/O-limit timer: {e}", self.disk.label);
        }
        self.throttled = false;
        self.process_queue();
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
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
        let config = config::config_space(self.disk.capacity_sectors, self.queue_sizes[0]);
        copy_config(&config, offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // No field is writable: CONFIG_WCE is not offered.
        debug!(
            "{}: ignored {}-byte write to read-only config space at {offset:#x}",
            self.disk.label,
            data.len()
        );
    }

    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        // Requests the driver queued before DRIVER_OK are picked up by the event loop.
        self.start(mem, queues, interrupt)
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
        self.throttled = false;
        if let Err(e) = self.throttle_timer.clear() {
            debug!("{}: I/O-limit timer: {e}", self.disk.label);
        }
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn config_generation(&self) -> u32 {
        self.config_generation
    }

    fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn queue_states(&self) -> Option<Vec<QueueState>> {
        self.active
            .as_ref()
            .map(|active| vec![active.queue.state()])
    }

    fn resume(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        // Activation touches nothing in guest memory, so resuming is the same: requests
        // made available before the snapshot are processed from the saved position.
        self.start(mem, queues, interrupt)
    }
}
