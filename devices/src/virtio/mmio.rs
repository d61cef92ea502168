//! The virtio-mmio transport, version 2 ("modern") only (virtio 1.2 §4.2.2).
//!
//! The transport owns the common registers: feature negotiation, the device status state
//! machine, the configuration of each virtqueue, interrupt status/acknowledge and the
//! configuration generation. Device-specific configuration space (from offset 0x100) is
//! forwarded to the device. When the driver sets DRIVER_OK the transport hands the queues,
//! guest memory and the interrupt to the device through [`VirtioDevice::activate`].
//!
//! Notifications: the driver writes a queue index to QueueNotify (offset
//! [`NOTIFY_REG_OFFSET`]). The VMM normally binds each of the device's
//! [`VirtioDevice::queue_events`] to that address as a KVM ioeventfd whose data match is the
//! queue index, so the write never leaves the kernel. If a write does reach the transport,
//! it signals the same eventfd itself.

use std::sync::{Arc, Mutex};

use log::{debug, error, info, warn};
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::{interrupt::VIRTIO_MMIO_INT_CONFIG, VIRTIO_F_VERSION_1};
use super::{status, ActivateError, VirtioDevice, VirtioInterrupt, VIRTIO_F_RING_EVENT_IDX};
use crate::bus::{lock, BusDevice};
use crate::GuestMemory;

/// Size of the MMIO window of one virtio-mmio device.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;
/// Offset of the QueueNotify register inside the window (the ioeventfd address).
pub const NOTIFY_REG_OFFSET: u64 = 0x50;

/// "virt" in little endian.
const MAGIC_VALUE: u32 = 0x7472_6976;
const MMIO_VERSION: u32 = 2;
/// Vendor ID reported to the driver ("RPRS").
const VENDOR_ID: u32 = 0x5352_5052;
/// Start of the device-specific configuration space.
const CONFIG_SPACE_OFFSET: u64 = 0x100;
/// Bad accesses logged at warning level before the transport falls back to debug logs, so
/// that a misbehaving guest cannot flood the host log.
const LOUD_BAD_ACCESSES: u64 = 16;
/// The largest queue a split virtqueue may have.
const MAX_QUEUE_SIZE: u16 = 32768;

mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = super::NOTIFY_REG_OFFSET;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const QUEUE_RESET: u64 = 0x0c0;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// A virtio device exposed to the guest through a virtio-mmio register window.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMemory,
    interrupt: Arc<VirtioInterrupt>,
    device_type: u32,
    avail_features: u64,
    queues: Vec<Queue>,
    /// Duplicates of the device's queue eventfds, so that a QueueNotify write that reaches
    /// userspace does not wait for the device lock (held while the device does I/O).
    notify_events: Vec<EventFd>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    driver_features: u64,
    status: u32,
    activated: bool,
    bad_accesses: u64,
}

impl MmioTransport {
    /// Wraps `device`. `mem` is what the device will use to reach its queues, `interrupt` the
    /// InterruptStatus register and line wired to this device's GSI.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: GuestMemory,
        interrupt: Arc<VirtioInterrupt>,
    ) -> Self {
        let (device_type, avail_features, queues, notify_events) = {
            let dev = lock(&device);
            let queues = dev
                .queue_max_sizes()
                .iter()
                .enumerate()
                .map(|(index, &max)| new_queue(dev.device_type(), index, max))
                .collect();
            let notify_events = dev
                .queue_events()
                .iter()
                .map(EventFd::try_clone)
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| {
                    warn!(
                        "virtio-mmio (device type {}): cannot duplicate queue eventfds ({e}); \
                         notifications will lock the device",
                        dev.device_type()
                    );
                    Vec::new()
                });
            (
                dev.device_type(),
                dev.avail_features(),
                queues,
                notify_events,
            )
        };
        MmioTransport {
            device,
            mem,
            interrupt,
            device_type,
            avail_features,
            queues,
            notify_events,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            status: 0,
            activated: false,
            bad_accesses: 0,
        }
    }

    /// The device behind this transport.
    pub fn device(&self) -> &Arc<Mutex<dyn VirtioDevice>> {
        &self.device
    }

    /// The interrupt status register shared with the device.
    pub fn interrupt(&self) -> &Arc<VirtioInterrupt> {
        &self.interrupt
    }

    /// The device status as the driver last set it (plus DEVICE_NEEDS_RESET if raised).
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the device was activated (DRIVER_OK accepted) and not reset since.
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    /// Features the driver wrote, as last accepted with FEATURES_OK or still being negotiated.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The transport's view of each queue's configuration.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// How many guest accesses were rejected (bad width, offset or register direction).
    pub fn bad_accesses(&self) -> u64 {
        self.bad_accesses
    }

    fn bad_access(&mut self, what: String) {
        self.bad_accesses += 1;
        if self.bad_accesses <= LOUD_BAD_ACCESSES {
            warn!("virtio-mmio (device type {}): {}", self.device_type, what);
        } else {
            debug!("virtio-mmio (device type {}): {}", self.device_type, what);
        }
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn has_status(&self, set: u32, clear: u32) -> bool {
        self.status & set == set && self.status & clear == 0
    }

    fn read_register(&mut self, offset: u64) -> Option<u32> {
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device_type,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_select {
                0 => self.avail_features as u32,
                1 => (self.avail_features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().is_some_and(|q| q.ready()).into(),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            // No shared memory regions: a non-existent region reads as length and base -1.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            // VIRTIO_F_RING_RESET is never offered.
            reg::QUEUE_RESET => 0,
            reg::CONFIG_GENERATION => lock(&self.device).config_generation(),
            _ => return None,
        };
        Some(value)
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_select = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_select = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_select = value,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue_config(offset, value),
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            reg::SHM_SEL => {}
            reg::MAGIC_VALUE
            | reg::VERSION
            | reg::DEVICE_ID
            | reg::VENDOR_ID
            | reg::DEVICE_FEATURES
            | reg::QUEUE_NUM_MAX
            | reg::INTERRUPT_STATUS
            | reg::SHM_LEN_LOW
            | reg::SHM_LEN_HIGH
            | reg::SHM_BASE_LOW
            | reg::SHM_BASE_HIGH
            | reg::CONFIG_GENERATION => self.bad_access(format!(
                "write of {value:#x} to read-only register {offset:#x}"
            )),
            _ => self.bad_access(format!(
                "write of {value:#x} to unknown register {offset:#x}"
            )),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if !self.has_status(status::DRIVER, status::FEATURES_OK | status::FAILED) {
            self.bad_access(format!(
                "DriverFeatures written in status {:#x}",
                self.status
            ));
            return;
        }
        match self.driver_features_select {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features =
                    (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            sel => {
                if value != 0 {
                    self.bad_access(format!(
                        "DriverFeatures word {sel} written with {value:#x}; no such features"
                    ));
                }
            }
        }
    }

    fn write_queue_config(&mut self, offset: u64, value: u32) {
        // Drivers disable queues while tearing down, after they reset the device (Linux
        // writes QueueReady = 0 in del_vqs); that is always harmless before DRIVER_OK.
        if offset == reg::QUEUE_READY && value == 0 && self.status & status::DRIVER_OK == 0 {
            if let Some(queue) = self.selected_queue() {
                queue.set_ready(false);
            }
            return;
        }
        if !self.has_status(
            status::FEATURES_OK,
            status::DRIVER_OK | status::FAILED | status::DEVICE_NEEDS_RESET,
        ) {
            self.bad_access(format!(
                "queue register {offset:#x} written in status {:#x}",
                self.status
            ));
            return;
        }
        let select = self.queue_select;
        let Some(queue) = self.queues.get_mut(select as usize) else {
            self.bad_access(format!(
                "queue register {offset:#x} written for missing queue {select}"
            ));
            return;
        };
        if queue.ready() && offset != reg::QUEUE_READY {
            self.bad_access(format!(
                "queue register {offset:#x} written while queue {select} is ready"
            ));
            return;
        }
        match offset {
            reg::QUEUE_NUM => {
                let valid = u16::try_from(value)
                    .ok()
                    .filter(|&size| queue.try_set_size(size).is_ok());
                if valid.is_none() {
                    self.bad_access(format!(
                        "queue {select}: size {value} is not a power of two up to the maximum"
                    ));
                }
            }
            reg::QUEUE_READY => queue.set_ready(value == 1),
            reg::QUEUE_DESC_LOW => queue.set_desc_table_address(Some(value), None),
            reg::QUEUE_DESC_HIGH => queue.set_desc_table_address(None, Some(value)),
            reg::QUEUE_DRIVER_LOW => queue.set_avail_ring_address(Some(value), None),
            reg::QUEUE_DRIVER_HIGH => queue.set_avail_ring_address(None, Some(value)),
            reg::QUEUE_DEVICE_LOW => queue.set_used_ring_address(Some(value), None),
            reg::QUEUE_DEVICE_HIGH => queue.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    fn notify(&mut self, index: u32) {
        if !self.activated {
            debug!(
                "virtio-mmio (device type {}): notify of queue {index} before activation",
                self.device_type
            );
        }
        let index_usize = index as usize;
        let result = match self.notify_events.get(index_usize) {
            Some(event) => Some(event.write(1)),
            None if self.notify_events.is_empty() => lock(&self.device)
                .queue_events()
                .get(index_usize)
                .map(|event| event.write(1)),
            None => None,
        };
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => error!(
                "virtio-mmio (device type {}): cannot signal queue {index}: {e}",
                self.device_type
            ),
            None => self.bad_access(format!("notify of missing queue {index}")),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // DEVICE_NEEDS_RESET belongs to the device; the driver cannot set or clear it.
        let needs_reset = self.status & status::DEVICE_NEEDS_RESET;
        let value = (value & !status::DEVICE_NEEDS_RESET) | needs_reset;
        if value & self.status != self.status {
            self.bad_access(format!(
                "status {value:#x} clears bits of {:#x} without a reset",
                self.status
            ));
            return;
        }
        let added = value & !self.status;
        let mut new_status = value;
        if added & status::FEATURES_OK != 0 && !self.accept_features() {
            new_status &= !status::FEATURES_OK;
        }
        if added & status::DRIVER_OK != 0 {
            if new_status & status::FEATURES_OK == 0 || needs_reset != 0 {
                self.bad_access(format!(
                    "DRIVER_OK set in status {:#x} before features were accepted",
                    self.status
                ));
                new_status &= !status::DRIVER_OK;
            } else {
                self.status = new_status;
                self.activate();
                return;
            }
        }
        if added & status::FAILED != 0 {
            info!(
                "virtio-mmio (device type {}): driver reported FAILED",
                self.device_type
            );
        }
        self.status = new_status;
    }

    /// FEATURES_OK: the driver may only accept offered features, and must accept VERSION_1
    /// (there is no legacy interface here).
    fn accept_features(&mut self) -> bool {
        let unknown = self.driver_features & !self.avail_features;
        if unknown != 0 {
            self.bad_access(format!(
                "driver accepted features {unknown:#x} that were not offered"
            ));
            return false;
        }
        if self.driver_features & (1 << VIRTIO_F_VERSION_1) == 0 {
            self.bad_access(
                "driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)"
                    .to_string(),
            );
            return false;
        }
        lock(&self.device).set_acked_features(self.driver_features);
        true
    }

    fn activate(&mut self) {
        let event_idx = self.driver_features & (1 << VIRTIO_F_RING_EVENT_IDX) != 0;
        let result = self.device_queues(event_idx).and_then(|queues| {
            lock(&self.device).activate(self.mem.clone(), queues, self.interrupt.clone())
        });
        match result {
            Ok(()) => {
                self.activated = true;
                debug!("virtio-mmio (device type {}): activated", self.device_type);
            }
            Err(e) => {
                error!(
                    "virtio-mmio (device type {}): activation failed, device needs reset: {e}",
                    self.device_type
                );
                self.status |= status::DEVICE_NEEDS_RESET;
                if let Err(e) = self.interrupt.signal(VIRTIO_MMIO_INT_CONFIG) {
                    error!(
                        "virtio-mmio (device type {}): cannot raise interrupt: {e}",
                        self.device_type
                    );
                }
            }
        }
    }

    /// The queues handed to the device: every ready queue must lie in guest memory.
    fn device_queues(&self, event_idx: bool) -> Result<Vec<Queue>, ActivateError> {
        self.queues
            .iter()
            .enumerate()
            .map(|(index, q)| {
                if q.ready() && !q.is_valid(&self.mem) {
                    return Err(ActivateError::BadQueue {
                        index,
                        reason: "its rings are outside guest memory".to_string(),
                    });
                }
                queue_for_device(index, q, event_idx)
            })
            .collect()
    }

    fn reset(&mut self) {
        lock(&self.device).reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.activated = false;
        self.status = 0;
        self.queue_select = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.driver_features = 0;
        self.interrupt.ack(u32::MAX);
        debug!("virtio-mmio (device type {}): reset", self.device_type);
    }
}

/// Builds the transport's copy of queue `index`. A device that declares a maximum size that
/// is not a power of two (a bug in the device model, not guest input) gets the largest power
/// of two below it.
fn new_queue(device_type: u32, index: usize, max: u16) -> Queue {
    let capped = max.clamp(1, MAX_QUEUE_SIZE);
    let usable = 1u16 << (15 - capped.leading_zeros());
    if usable != max {
        error!(
            "virtio device type {device_type}: queue {index} maximum size {max} is not a power \
             of two up to {MAX_QUEUE_SIZE}; using {usable}"
        );
    }
    let mut queue = Queue::default();
    if let Ok(q) = Queue::new(usable) {
        queue = q;
    }
    queue
}

/// A copy of `queue` for the device, with event index suppression as negotiated.
fn queue_for_device(index: usize, queue: &Queue, event_idx: bool) -> Result<Queue, ActivateError> {
    let mut state = queue.state();
    state.event_idx_enabled = event_idx;
    Queue::try_from(state).map_err(|e| ActivateError::BadQueue {
        index,
        reason: e.to_string(),
    })
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if (CONFIG_SPACE_OFFSET..MMIO_WINDOW_SIZE).contains(&offset) {
            if matches!(data.len(), 1 | 2 | 4 | 8) {
                lock(&self.device).read_config(offset - CONFIG_SPACE_OFFSET, data);
            } else {
                data.fill(0);
                self.bad_access(format!(
                    "{}-byte read of config space at {offset:#x}",
                    data.len()
                ));
            }
            return;
        }
        data.fill(0);
        if data.len() != 4 || !offset.is_multiple_of(4) {
            self.bad_access(format!(
                "{}-byte read of register {offset:#x} (registers are 32-bit, aligned)",
                data.len()
            ));
            return;
        }
        match self.read_register(offset) {
            Some(value) => data.copy_from_slice(&value.to_le_bytes()),
            None => self.bad_access(format!(
                "read of write-only or unknown register {offset:#x}"
            )),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if (CONFIG_SPACE_OFFSET..MMIO_WINDOW_SIZE).contains(&offset) {
            if matches!(data.len(), 1 | 2 | 4 | 8) {
                lock(&self.device).write_config(offset - CONFIG_SPACE_OFFSET, data);
            } else {
                self.bad_access(format!(
                    "{}-byte write of config space at {offset:#x}",
                    data.len()
                ));
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            self.bad_access(format!(
                "{}-byte write of register {offset:#x} (registers are 32-bit, aligned)",
                data.len()
            ));
            return;
        };
        if !offset.is_multiple_of(4) {
            self.bad_access(format!("unaligned write of register {offset:#x}"));
            return;
        }
        self.write_register(offset, u32::from_le_bytes(bytes));
    }
}

mod persist;
#[cfg(test)]
mod tests;

pub use self::persist::{MmioTransportArgs, MmioTransportState, VirtqueueState};
