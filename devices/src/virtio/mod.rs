//! Virtio devices over the MMIO transport (virtio 1.x, "modern", MMIO version 2).

use std::sync::Arc;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::GuestMemory;

pub mod block;
mod descriptors;
pub mod interrupt;
pub mod mmio;
pub mod net;
pub mod notify;
#[cfg(test)]
pub(crate) mod test_utils;

pub use block::{Block, BlockError, BlockMetrics};
pub use interrupt::VirtioInterrupt;
pub use mmio::{MmioTransport, MMIO_WINDOW_SIZE, NOTIFY_REG_OFFSET};
pub use net::{Net, NetError, NetMetrics};

/// Device status bits (virtio 1.2 §2.1), as written by the driver to the Status register.
pub mod status {
    /// The guest OS found the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest OS knows how to drive the device.
    pub const DRIVER: u32 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u32 = 4;
    /// The driver acknowledged the features it understands; negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 128;
}

/// Feature bit VIRTIO_F_VERSION_1: the device follows virtio 1.x (mandatory for MMIO v2).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// Feature bit VIRTIO_F_RING_EVENT_IDX: used/avail event index notification suppression.
pub const VIRTIO_F_RING_EVENT_IDX: u32 = 29;

/// Why a device could not be activated by the driver.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver set up a queue the device cannot use.
    #[error("virtio queue {index} is not valid: {reason}")]
    BadQueue {
        /// Index of the queue.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other failure while starting the device.
    #[error("virtio device activation failed: {0}")]
    Other(String),
}

/// A virtio device behind an [`MmioTransport`]. The transport owns the common registers and
/// the queue configuration; the device owns its features, config space and queue processing.
pub trait VirtioDevice: Send {
    /// Virtio device type (1 = net, 2 = block).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered to the driver (including VIRTIO_F_VERSION_1).
    fn avail_features(&self) -> u64;
    /// Records the features the driver accepted.
    fn set_acked_features(&mut self, features: u64);
    /// Reads the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the device-specific configuration space.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device once the driver sets DRIVER_OK.
    fn activate(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError>;
    /// Returns the device to its pre-activation state (driver wrote 0 to Status).
    fn reset(&mut self);
    /// One eventfd per queue, signalled when the driver notifies that queue. The VMM binds
    /// each to the transport's QueueNotify register (KVM ioeventfd with the queue index as
    /// data match); the transport also signals them itself for a plain MMIO write.
    fn queue_events(&self) -> &[EventFd];
    /// The ConfigGeneration value: changes whenever the device changes its configuration
    /// space on its own (e.g. a block device resized online), so that a driver reading the
    /// configuration across a change notices and reads it again.
    fn config_generation(&self) -> u32 {
        0
    }
}

/// Copies the part of a device's configuration space `config` at `offset` into `data`;
/// bytes past the end of the space read as zero.
pub(crate) fn copy_config(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}
