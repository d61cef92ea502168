//! The virtio-mmio interrupt status register shared by a transport and its device.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::interrupt::InterruptLine;

/// Interrupt status bit: a used buffer was added to a queue.
pub const VIRTIO_MMIO_INT_VRING: u32 = 0x1;
/// Interrupt status bit: the device configuration changed.
pub const VIRTIO_MMIO_INT_CONFIG: u32 = 0x2;

/// InterruptStatus of a virtio-mmio device plus the line that signals the guest.
pub struct VirtioInterrupt {
    status: AtomicU32,
    line: Box<dyn InterruptLine>,
}

impl VirtioInterrupt {
    /// Wraps the line the VMM wired to this device's GSI.
    pub fn new(line: Box<dyn InterruptLine>) -> Self {
        VirtioInterrupt {
            status: AtomicU32::new(0),
            line,
        }
    }

    /// Sets `bits` in InterruptStatus and pulses the line.
    pub fn signal(&self, bits: u32) -> std::io::Result<()> {
        self.status.fetch_or(bits, Ordering::SeqCst);
        self.line.trigger()
    }

    /// Current InterruptStatus.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// Sets InterruptStatus to `bits` without pulsing the line (restoring a snapshot: an
    /// interrupt pending then is part of the interrupt controller's saved state).
    pub fn restore_status(&self, bits: u32) {
        self.status.store(bits, Ordering::SeqCst);
    }

    /// Pulses the line again if InterruptStatus holds bits the guest has not acknowledged.
    /// A restored VM calls it once its interrupt controllers are restored: an interrupt the
    /// device raised just before the snapshot may not have reached them (KVM injects an
    /// irqfd pulse for an IOAPIC pin from a work queue), and a spare pulse is harmless (the
    /// driver reads InterruptStatus and the used ring).
    pub fn resignal_pending(&self) -> std::io::Result<()> {
        if self.status() != 0 {
            self.line.trigger()?;
        }
        Ok(())
    }

    /// InterruptACK: clears `bits`.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    struct Count(Arc<AtomicUsize>);

    impl InterruptLine for Count {
        fn trigger(&self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn only_an_unacknowledged_interrupt_is_raised_again() {
        let pulses = Arc::new(AtomicUsize::new(0));
        let irq = VirtioInterrupt::new(Box::new(Count(pulses.clone())));
        irq.resignal_pending().unwrap();
        assert_eq!(pulses.load(Ordering::SeqCst), 0);
        irq.restore_status(VIRTIO_MMIO_INT_VRING);
        irq.resignal_pending().unwrap();
        assert_eq!(pulses.load(Ordering::SeqCst), 1);
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING);
        irq.ack(VIRTIO_MMIO_INT_VRING);
        irq.resignal_pending().unwrap();
        assert_eq!(pulses.load(Ordering::SeqCst), 1);
    }
}
