//! Virtio devices over the MMIO transport (virtio 1.x, "modern", MMIO version 2).

use std::sync::Arc;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::GuestMemory;

pub mod block;
pub mod interrupt;
pub mod mmio;
pub mod net;

pub use interrupt::VirtioInterrupt;
pub use mmio::MmioTransport;

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
}
