//! Saving and restoring the transport: the common registers and every virtqueue.
//!
//! The queues are saved here, not by the device: they are configured through the
//! transport's registers, and their indexes, which the device advances, are fetched from
//! the device at save time ([`VirtioDevice::queue_states`]). On restore the device (already
//! rebuilt from its own state) is handed the queues again through
//! [`VirtioDevice::resume`], indexes untouched.

use std::sync::{Arc, Mutex};

use log::{error, warn};
use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::MmioTransport;
use crate::bus::lock;
use crate::persist::{bad_field, Persist, PersistError};
use crate::virtio::interrupt::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use crate::virtio::{status, VirtioDevice, VirtioInterrupt};
use crate::virtio::{VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1};
use crate::GuestMemory;

/// One split virtqueue: its configuration and the device's position in its rings.
///
/// The serde mirror of `virtio_queue::QueueState`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtqueueState {
    /// Largest size the device offers (QueueNumMax).
    pub max_size: u16,
    /// Size the driver chose (QueueNum): a power of two up to `max_size`.
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Guest address of the descriptor table (16-byte aligned).
    pub desc_table: u64,
    /// Guest address of the available ("driver") ring (2-byte aligned).
    pub avail_ring: u64,
    /// Guest address of the used ("device") ring (4-byte aligned).
    pub used_ring: u64,
    /// Next available-ring entry the device will take.
    pub next_avail: u16,
    /// Next used-ring entry the device will fill (the used ring's `idx`).
    pub next_used: u16,
    /// Whether VIRTIO_F_RING_EVENT_IDX notification suppression is in use.
    pub event_idx: bool,
}

impl From<QueueState> for VirtqueueState {
    fn from(q: QueueState) -> Self {
        VirtqueueState {
            max_size: q.max_size,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx: q.event_idx_enabled,
        }
    }
}

impl From<&VirtqueueState> for QueueState {
    fn from(q: &VirtqueueState) -> Self {
        QueueState {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx_enabled: q.event_idx,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
        }
    }
}

/// The saved transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmioTransportState {
    /// DeviceID of the device behind the transport (checked against the restored device).
    pub device_type: u32,
    /// DeviceFeatures offered (checked against the restored device).
    pub device_features: u64,
    /// DeviceFeaturesSel.
    pub device_features_select: u32,
    /// DriverFeaturesSel.
    pub driver_features_select: u32,
    /// DriverFeatures as written by the driver (accepted when `status` has FEATURES_OK).
    pub driver_features: u64,
    /// QueueSel.
    pub queue_select: u32,
    /// Status.
    pub status: u32,
    /// InterruptStatus.
    pub interrupt_status: u32,
    /// ConfigGeneration: the device's, recorded to check that the transport and device
    /// states belong together.
    pub config_generation: u32,
    /// Whether the device was activated (DRIVER_OK accepted, no reset since).
    pub activated: bool,
    /// Rejected guest accesses so far (limits log volume).
    pub bad_accesses: u64,
    /// Every queue of the device, in order. While activated these are the device's live
    /// queues, indexes included.
    pub queues: Vec<VirtqueueState>,
}

/// What a restored transport needs from the host.
pub struct MmioTransportArgs {
    /// The device behind the transport, already restored from its own state (and not
    /// locked by the caller).
    pub device: Arc<Mutex<dyn VirtioDevice>>,
    /// Guest memory, already holding the snapshot's contents.
    pub mem: GuestMemory,
    /// The InterruptStatus register and line wired to the device's GSI.
    pub interrupt: Arc<VirtioInterrupt>,
}

/// Human name of a virtio device type, for errors.
fn device_name(device_type: u32) -> String {
    match device_type {
        1 => "virtio-net".to_string(),
        2 => "virtio-blk".to_string(),
        other => format!("virtio type {other}"),
    }
}

/// Alignment the split virtqueue layout requires of each ring (virtio 1.2 §2.7).
const DESC_ALIGN: u64 = 16;
const AVAIL_ALIGN: u64 = 2;
const USED_ALIGN: u64 = 4;

impl Persist for MmioTransport {
    type State = MmioTransportState;
    type Args = MmioTransportArgs;

    /// Locks the device to read its live queues and configuration generation: the caller
    /// must not hold the device's lock.
    fn save(&self) -> MmioTransportState {
        let device = lock(&self.device);
        let mut queues: Vec<VirtqueueState> =
            self.queues.iter().map(|q| q.state().into()).collect();
        if self.activated {
            match device.queue_states() {
                Some(live) if live.len() == queues.len() => {
                    queues = live.into_iter().map(VirtqueueState::from).collect();
                }
                other => error!(
                    "virtio-mmio (device type {}): the activated device reports {} queues \
                     instead of {}; saving the transport's copies",
                    self.device_type,
                    other.map_or(0, |q| q.len()),
                    queues.len()
                ),
            }
        }
        MmioTransportState {
            device_type: self.device_type,
            device_features: self.avail_features,
            device_features_select: self.device_features_select,
            driver_features_select: self.driver_features_select,
            driver_features: self.driver_features,
            queue_select: self.queue_select,
            status: self.status,
            interrupt_status: self.interrupt.status(),
            config_generation: device.config_generation(),
            activated: self.activated,
            bad_accesses: self.bad_accesses,
            queues,
        }
    }

    /// Checks `state` against the device and guest memory, rebuilds the registers and
    /// queues, sets InterruptStatus without raising the interrupt (see
    /// [`VirtioInterrupt::resignal_pending`] for after the VM's state is restored), and, if the device was
    /// activated, resumes it with the saved queues (see [`VirtioDevice::resume`]).
    fn restore(args: MmioTransportArgs, state: &MmioTransportState) -> Result<Self, PersistError> {
        let mut transport = MmioTransport::new(args.device, args.mem, args.interrupt);
        let component = format!("virtio-mmio[{}]", device_name(transport.device_type));
        let bad = |field: &str, problem: String| bad_field(component.as_str(), field, problem);

        if state.device_type != transport.device_type {
            return Err(bad(
                "device_type",
                format!(
                    "saved for a {} but the device given is a {}",
                    device_name(state.device_type),
                    device_name(transport.device_type)
                ),
            ));
        }
        if state.device_features != transport.avail_features {
            return Err(bad(
                "device_features",
                format!(
                    "saved offer {:#x} differs from the device's {:#x}",
                    state.device_features, transport.avail_features
                ),
            ));
        }
        let (device_acked, device_generation) = {
            let dev = lock(&transport.device);
            (dev.acked_features(), dev.config_generation())
        };
        if state.config_generation != device_generation {
            return Err(bad(
                "config_generation",
                format!(
                    "{} differs from the restored device's {device_generation}: the transport \
                     and device states are not from the same snapshot",
                    state.config_generation
                ),
            ));
        }
        let features_ok = state.status & status::FEATURES_OK != 0;
        let driver_ok = state.status & status::DRIVER_OK != 0;
        let needs_reset = state.status & status::DEVICE_NEEDS_RESET != 0;
        if driver_ok && !features_ok {
            return Err(bad(
                "status",
                format!("{:#x} has DRIVER_OK without FEATURES_OK", state.status),
            ));
        }
        if state.activated != (driver_ok && !needs_reset) {
            return Err(bad(
                "activated",
                format!(
                    "{} contradicts status {:#x} (activated means DRIVER_OK without \
                     DEVICE_NEEDS_RESET)",
                    state.activated, state.status
                ),
            ));
        }
        if features_ok {
            let unknown = state.driver_features & !state.device_features;
            if unknown != 0 {
                return Err(bad(
                    "driver_features",
                    format!("accepted features {unknown:#x} were never offered"),
                ));
            }
            if state.driver_features & (1 << VIRTIO_F_VERSION_1) == 0 {
                return Err(bad(
                    "driver_features",
                    "FEATURES_OK without VIRTIO_F_VERSION_1".to_string(),
                ));
            }
        }
        let expected_acked = if features_ok {
            state.driver_features
        } else {
            0
        };
        if device_acked != expected_acked {
            return Err(bad(
                "driver_features",
                format!(
                    "the device's acked features {device_acked:#x} should be \
                     {expected_acked:#x}: the transport and device states do not belong \
                     together"
                ),
            ));
        }
        let interrupt_bits = VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG;
        if state.interrupt_status & !interrupt_bits != 0 {
            return Err(bad(
                "interrupt_status",
                format!("{:#x} has undefined bits", state.interrupt_status),
            ));
        }
        if state.queues.len() != transport.queues.len() {
            return Err(bad(
                "queues",
                format!(
                    "{} saved, the device has {}",
                    state.queues.len(),
                    transport.queues.len()
                ),
            ));
        }
        let event_idx = state.driver_features & (1 << VIRTIO_F_RING_EVENT_IDX) != 0;
        let mut queues = Vec::with_capacity(state.queues.len());
        for (index, (saved, current)) in state.queues.iter().zip(&transport.queues).enumerate() {
            let queue = restore_queue(
                &transport.mem,
                saved,
                current.max_size(),
                state.activated.then_some(event_idx),
            )
            .map_err(|(field, problem)| bad(&format!("queues[{index}].{field}"), problem))?;
            queues.push(queue);
        }

        // The selectors and the rejected-access count hold whatever the driver caused; any
        // value is one the live transport can have (out-of-range selections read as zero).
        transport.queues = queues;
        transport.device_features_select = state.device_features_select;
        transport.driver_features_select = state.driver_features_select;
        transport.driver_features = state.driver_features;
        transport.queue_select = state.queue_select;
        transport.status = state.status;
        transport.bad_accesses = state.bad_accesses;
        transport.interrupt.restore_status(state.interrupt_status);
        if state.activated {
            let queues = transport
                .queues
                .iter()
                .map(|q| Queue::try_from(q.state()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("queues", e.to_string()))?;
            lock(&transport.device)
                .resume(transport.mem.clone(), queues, transport.interrupt.clone())
                .map_err(|e| bad("activated", format!("the device cannot resume: {e}")))?;
            transport.activated = true;
        }
        Ok(transport)
    }
}

/// Validates one saved queue and rebuilds it. `event_idx` is `Some(negotiated)` for an
/// activated device, `None` before activation (when the device has never used the queue,
/// so its indexes are still zero). Errors name the field.
fn restore_queue(
    mem: &GuestMemory,
    saved: &VirtqueueState,
    max_size: u16,
    event_idx: Option<bool>,
) -> Result<Queue, (&'static str, String)> {
    if saved.max_size != max_size {
        return Err((
            "max_size",
            format!("{} differs from the device's {max_size}", saved.max_size),
        ));
    }
    if saved.size == 0 || !saved.size.is_power_of_two() || saved.size > max_size {
        return Err((
            "size",
            format!(
                "{} is not a power of two between 1 and the maximum {max_size}",
                saved.size
            ),
        ));
    }
    for (field, addr, align) in [
        ("desc_table", saved.desc_table, DESC_ALIGN),
        ("avail_ring", saved.avail_ring, AVAIL_ALIGN),
        ("used_ring", saved.used_ring, USED_ALIGN),
    ] {
        if !addr.is_multiple_of(align) {
            return Err((field, format!("{addr:#x} is not {align}-byte aligned")));
        }
    }
    match event_idx {
        None => {
            if saved.next_avail != 0 || saved.next_used != 0 || saved.event_idx {
                return Err((
                    "next_avail",
                    format!(
                        "a queue of a device that is not activated must be unused (next_avail \
                         {}, next_used {}, event_idx {})",
                        saved.next_avail, saved.next_used, saved.event_idx
                    ),
                ));
            }
        }
        Some(negotiated) => {
            if saved.event_idx != negotiated {
                return Err((
                    "event_idx",
                    format!(
                        "{} but VIRTIO_F_RING_EVENT_IDX negotiation says {negotiated}",
                        saved.event_idx
                    ),
                ));
            }
            // The device takes entries at next_avail and returns them at next_used; it can
            // hold at most a ring's worth in between.
            let in_flight = saved.next_avail.wrapping_sub(saved.next_used);
            if in_flight > saved.size {
                return Err((
                    "next_used",
                    format!(
                        "{} is not within {} entries behind next_avail {}",
                        saved.next_used, saved.size, saved.next_avail
                    ),
                ));
            }
        }
    }
    let queue = Queue::try_from(QueueState::from(saved)).map_err(|e| ("size", e.to_string()))?;
    if event_idx.is_some() && saved.ready {
        if !queue.is_valid(mem) {
            return Err((
                "desc_table",
                format!(
                    "the rings (descriptors {:#x}, available {:#x}, used {:#x}, {} entries) are \
                     not all inside guest memory",
                    saved.desc_table, saved.avail_ring, saved.used_ring, saved.size
                ),
            ));
        }
        // Guest memory is the guest's to write, so a disagreement is reported, not refused;
        // it usually means memory from another snapshot.
        if let Ok(used_idx) = mem.read_obj::<u16>(GuestAddress(saved.used_ring + 2)) {
            let used_idx = u16::from_le(used_idx);
            if used_idx != saved.next_used {
                warn!(
                    "virtio queue at {:#x}: the used ring's index in guest memory is {used_idx} \
                     but the saved device position is {}; was guest memory restored from the \
                     same snapshot?",
                    saved.desc_table, saved.next_used
                );
            }
        }
    }
    Ok(queue)
}
