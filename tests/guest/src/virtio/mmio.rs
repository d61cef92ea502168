//! The virtio-mmio transport (version 2, "modern" devices only).

use crate::io::{mmio_read32, mmio_write32};

use super::queue::Virtqueue;

pub const MAGIC: u32 = 0x7472_6976;
pub const VERSION_MODERN: u32 = 2;
pub const F_VERSION_1: u64 = 1 << 32;

const REG_MAGIC: usize = 0x000;
const REG_VERSION: usize = 0x004;
const REG_DEVICE_ID: usize = 0x008;
const REG_DEVICE_FEATURES: usize = 0x010;
const REG_DEVICE_FEATURES_SEL: usize = 0x014;
const REG_DRIVER_FEATURES: usize = 0x020;
const REG_DRIVER_FEATURES_SEL: usize = 0x024;
const REG_QUEUE_SEL: usize = 0x030;
const REG_QUEUE_NUM_MAX: usize = 0x034;
const REG_QUEUE_NUM: usize = 0x038;
const REG_QUEUE_READY: usize = 0x044;
const REG_QUEUE_NOTIFY: usize = 0x050;
const REG_INTERRUPT_STATUS: usize = 0x060;
const REG_INTERRUPT_ACK: usize = 0x064;
const REG_STATUS: usize = 0x070;
const REG_QUEUE_DESC: usize = 0x080;
const REG_QUEUE_DRIVER: usize = 0x090;
const REG_QUEUE_DEVICE: usize = 0x0a0;
const REG_CONFIG_GENERATION: usize = 0x0fc;
const REG_CONFIG: usize = 0x100;

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;

/// One virtio-mmio register window.
#[derive(Clone, Copy)]
pub struct Transport {
    base: usize,
}

impl Transport {
    pub fn new(base: u64) -> Self {
        Self {
            base: base as usize,
        }
    }

    fn read(&self, reg: usize) -> u32 {
        mmio_read32(self.base + reg)
    }

    fn write(&self, reg: usize, value: u32) {
        mmio_write32(self.base + reg, value)
    }

    /// (MagicValue, Version, DeviceID).
    pub fn identify(&self) -> (u32, u32, u32) {
        (
            self.read(REG_MAGIC),
            self.read(REG_VERSION),
            self.read(REG_DEVICE_ID),
        )
    }

    /// Reset the device and negotiate `wanted & offered` (VERSION_1 is required).
    /// Returns the negotiated features; queues are set up next, then `driver_ok`.
    pub fn negotiate(&self, wanted: u64) -> u64 {
        self.write(REG_STATUS, 0);
        while self.read(REG_STATUS) != 0 {
            crate::io::pause();
        }
        self.write(REG_STATUS, STATUS_ACKNOWLEDGE);
        self.write(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let offered = self.features_word(0) | (self.features_word(1) << 32);
        if offered & F_VERSION_1 == 0 {
            crate::fatal!("virtio device at {:#x} does not offer VERSION_1", self.base);
        }
        let features = (wanted | F_VERSION_1) & offered;
        for (sel, word) in [(0u32, features as u32), (1, (features >> 32) as u32)] {
            self.write(REG_DRIVER_FEATURES_SEL, sel);
            self.write(REG_DRIVER_FEATURES, word);
        }
        let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        self.write(REG_STATUS, status);
        if self.read(REG_STATUS) & STATUS_FEATURES_OK == 0 {
            crate::fatal!(
                "virtio device at {:#x} rejected features {:#x}",
                self.base,
                features
            );
        }
        features
    }

    fn features_word(&self, sel: u32) -> u64 {
        self.write(REG_DEVICE_FEATURES_SEL, sel);
        u64::from(self.read(REG_DEVICE_FEATURES))
    }

    /// Largest size the device allows for queue `index` (0: queue absent).
    pub fn queue_max(&self, index: u16) -> u16 {
        self.write(REG_QUEUE_SEL, u32::from(index));
        self.read(REG_QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16
    }

    /// Hand queue `index` to the device.
    pub fn setup_queue(&self, index: u16, q: &Virtqueue) {
        self.write(REG_QUEUE_SEL, u32::from(index));
        self.write(REG_QUEUE_NUM, u32::from(q.size()));
        for (reg, addr) in [
            (REG_QUEUE_DESC, q.desc_addr()),
            (REG_QUEUE_DRIVER, q.avail_addr()),
            (REG_QUEUE_DEVICE, q.used_addr()),
        ] {
            self.write(reg, addr as u32);
            self.write(reg + 4, (addr >> 32) as u32);
        }
        self.write(REG_QUEUE_READY, 1);
    }

    /// Finish initialisation: the device may now use its queues.
    pub fn driver_ok(&self) {
        let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
        self.write(REG_STATUS, status);
    }

    /// Tell the device that queue `index` has new buffers.
    pub fn notify(&self, index: u16) {
        self.write(REG_QUEUE_NOTIFY, u32::from(index));
    }

    /// Acknowledge whatever interrupt causes are pending (drops the IRQ line).
    pub fn ack_interrupt(&self) {
        let status = self.read(REG_INTERRUPT_STATUS);
        if status != 0 {
            self.write(REG_INTERRUPT_ACK, status);
        }
    }

    /// Read `N` bytes of device configuration at `offset`, consistently.
    pub fn config<const N: usize>(&self, offset: usize) -> [u8; N] {
        loop {
            let generation = self.read(REG_CONFIG_GENERATION);
            let mut out = [0u8; N];
            for (i, b) in out.iter_mut().enumerate() {
                // SAFETY: byte reads inside the device's configuration space,
                // which is part of the user-mapped MMIO window.
                *b = unsafe {
                    core::ptr::read_volatile((self.base + REG_CONFIG + offset + i) as *const u8)
                };
            }
            if self.read(REG_CONFIG_GENERATION) == generation {
                return out;
            }
        }
    }
}
