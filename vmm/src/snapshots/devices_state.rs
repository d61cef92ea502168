//! The saved state of every device model of a VM.

use std::sync::{Arc, Mutex};

use devices::bus::lock;
use devices::i8042::{I8042State, I8042};
use devices::serial::{SerialDevice, SerialDeviceState};
use devices::virtio::{BlockState, MmioTransportState, NetState};
use serde::{Deserialize, Serialize};
use snapshot::Persist;

use crate::device_manager::{VirtioHandle, VirtioSlot};

/// The device behind one virtio-mmio window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VirtioDeviceState {
    /// virtio-blk for drive `id`.
    Block {
        /// Drive id.
        id: String,
        /// Its state.
        state: BlockState,
    },
    /// virtio-net for interface `id`.
    Net {
        /// Interface id.
        id: String,
        /// Its state.
        state: NetState,
    },
}

/// One virtio-mmio window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtioSlotState {
    /// The transport's registers and queues.
    pub transport: MmioTransportState,
    /// The device.
    pub device: VirtioDeviceState,
}

/// Every device model of a VM, in the order the guest sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicesState {
    /// COM1.
    pub serial: SerialDeviceState,
    /// The i8042.
    pub i8042: I8042State,
    /// Virtio devices in slot order.
    pub virtio: Vec<VirtioSlotState>,
}

/// Moves the frames waiting at each network backend into its device (event loop frozen),
/// so that the snapshot holds every frame that reached the VMM before it; returns how many.
pub fn absorb_net_backlogs(virtio: &[VirtioSlot]) -> usize {
    virtio
        .iter()
        .map(|slot| match &slot.device {
            VirtioHandle::Net(_, d) => lock(d).absorb_backend_backlog(),
            VirtioHandle::Block(..) => 0,
        })
        .sum()
}

/// Saves every device (vCPUs paused, event loop frozen).
pub fn save(
    serial: &Arc<Mutex<SerialDevice>>,
    i8042: &Arc<Mutex<I8042>>,
    virtio: &[VirtioSlot],
) -> DevicesState {
    let virtio = virtio
        .iter()
        .map(|slot| {
            // The device first, then the transport (which locks the device itself).
            let device = match &slot.device {
                VirtioHandle::Block(id, d) => VirtioDeviceState::Block {
                    id: id.clone(),
                    state: lock(d).save(),
                },
                VirtioHandle::Net(id, d) => VirtioDeviceState::Net {
                    id: id.clone(),
                    state: lock(d).save(),
                },
            };
            VirtioSlotState {
                transport: lock(&slot.transport).save(),
                device,
            }
        })
        .collect();
    DevicesState {
        serial: lock(serial).save(),
        i8042: lock(i8042).save(),
        virtio,
    }
}
