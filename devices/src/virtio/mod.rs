//! Virtio devices over the MMIO transport (virtio 1.x, "modern", MMIO version 2).

use std::sync::Arc;

use virtio_queue::{Queue, QueueState};
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

pub use block::{Block, BlockArgs, BlockError, BlockMetrics, BlockState};
pub use interrupt::VirtioInterrupt;
pub use mmio::{
    MmioTransport, MmioTransportArgs, MmioTransportState, VirtqueueState, MMIO_WINDOW_SIZE,
    NOTIFY_REG_OFFSET,
};
pub use net::{Net, NetArgs, NetError, NetMetrics, NetState};

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
///
/// Snapshots: each concrete device implements [`crate::persist::Persist`] for its own state
/// (features, configuration, work it holds), and the transport's state holds the common
/// registers and the queues. The three methods at the end of this trait are what the
/// transport needs from a device behind the trait object to save and restore that part.
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
    /// The features recorded by the last [`VirtioDevice::set_acked_features`] since creation
    /// or reset (0 if none).
    fn acked_features(&self) -> u64;
    /// The queues as the device is using them, in queue order, while it is activated; `None`
    /// before activation and after reset. The device advances the queues' indexes as it
    /// works, so these, not the transport's copies, are what a snapshot must record.
    fn queue_states(&self) -> Option<Vec<QueueState>>;
    /// Returns a restored device to the activated state it was saved in, with `queues` as
    /// they were then (indexes included). Unlike [`VirtioDevice::activate`] it must not
    /// write guest memory (memory is restored byte-identical) nor reset anything the
    /// device's own restore brought back; it should make the event loop look at the queues
    /// once, so that buffers the guest made available before the snapshot are processed,
    /// exactly once, from the saved indexes.
    fn resume(
        &mut self,
        mem: GuestMemory,
        queues: Vec<Queue>,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Result<(), ActivateError>;
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
