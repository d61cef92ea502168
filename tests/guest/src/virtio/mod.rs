//! virtio-mmio devices named on the command line, and waiting for completions.

pub mod blk;
pub mod mmio;
pub mod net;
pub mod queue;

use crate::cmdline::Cmdline;
use crate::io::{pause, rdtsc};
use crate::layout::VIRTIO_VECTOR_BASE;
use mmio::Transport;
use queue::Virtqueue;

pub const DEVICE_NET: u32 = 1;
pub const DEVICE_BLK: u32 = 2;
/// Most `virtio_mmio.device=` entries handled.
pub const MAX_SLOTS: usize = 16;

/// One `virtio_mmio.device=` entry, probed.
#[derive(Clone, Copy)]
pub struct Slot {
    pub index: usize,
    pub base: u64,
    /// DeviceID (0: empty slot).
    pub device_id: u32,
}

impl Slot {
    pub fn transport(&self) -> Transport {
        Transport::new(self.base)
    }

    /// The interrupt vector this slot's GSI is routed to.
    pub fn vector(&self) -> u8 {
        VIRTIO_VECTOR_BASE + self.index as u8
    }
}

/// Probe every `virtio_mmio.device=` entry, print a `virtio:` line for each and
/// route the interrupts of populated slots to the BSP (APIC ID `bsp`).
pub fn discover(cmdline: &Cmdline, bsp: u32) -> ([Option<Slot>; MAX_SLOTS], usize) {
    let mut slots = [None; MAX_SLOTS];
    let mut count = 0;
    for (index, spec) in cmdline.virtio_devices().enumerate() {
        if index >= MAX_SLOTS {
            crate::fatal!("more than {} virtio_mmio.device entries", MAX_SLOTS);
        }
        if spec.base < 0xc000_0000 || spec.base + spec.size > 0x1_0000_0000 || spec.size < 0x100 {
            crate::fatal!(
                "virtio slot {}: window {:#x}+{:#x} outside 0xc0000000-0xffffffff",
                index,
                spec.base,
                spec.size
            );
        }
        let (magic, version, device_id) = Transport::new(spec.base).identify();
        if magic != mmio::MAGIC {
            crate::fatal!(
                "virtio slot {}: bad magic {:#x} at {:#x}",
                index,
                magic,
                spec.base
            );
        }
        if version != mmio::VERSION_MODERN {
            crate::fatal!(
                "virtio slot {}: version {} (only modern version 2 is supported)",
                index,
                version
            );
        }
        let kind = match device_id {
            0 => TypeName::None,
            DEVICE_BLK => TypeName::Blk,
            DEVICE_NET => TypeName::Net,
            n => TypeName::Other(n),
        };
        crate::println!(
            "virtio: slot={} base={:#x} irq={} type={}",
            index,
            spec.base,
            spec.irq,
            kind
        );
        let slot = Slot {
            index,
            base: spec.base,
            device_id,
        };
        if device_id != 0 {
            crate::apic::ioapic_route(spec.irq, slot.vector(), bsp);
        }
        slots[index] = Some(slot);
        count = index + 1;
    }
    (slots, count)
}

enum TypeName {
    None,
    Blk,
    Net,
    Other(u32),
}

impl core::fmt::Display for TypeName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TypeName::None => f.write_str("none"),
            TypeName::Blk => f.write_str("blk"),
            TypeName::Net => f.write_str("net"),
            TypeName::Other(n) => write!(f, "id-{}", n),
        }
    }
}

/// TSC cycles to poll a used ring before sleeping until the device interrupts.
const SPIN_CYCLES: u64 = 1_000_000;

/// Wait for the next completed chain on `q`: poll briefly with device interrupts
/// suppressed, then enable them and sleep (service 0) until one arrives.
pub fn wait_used(t: &Transport, q: &mut Virtqueue) -> (u16, u32) {
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < SPIN_CYCLES {
        if let Some(done) = q.pop_used() {
            return done;
        }
        pause();
    }
    q.set_interrupts(true);
    let done = loop {
        let seen = crate::cpl0::events();
        t.ack_interrupt();
        if let Some(done) = q.pop_used() {
            break done;
        }
        crate::cpl0::idle_wait(seen);
    };
    q.set_interrupts(false);
    done
}
