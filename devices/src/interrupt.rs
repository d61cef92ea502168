//! How devices raise interrupts without knowing about KVM.

use std::io;

use vmm_sys_util::eventfd::EventFd;

/// An interrupt line a device can pulse. The VMM implements it with a KVM irqfd.
pub trait InterruptLine: Send + Sync {
    /// Raises the interrupt (edge: one pulse per call).
    fn trigger(&self) -> io::Result<()>;
}

impl InterruptLine for EventFd {
    fn trigger(&self) -> io::Result<()> {
        self.write(1)
    }
}
