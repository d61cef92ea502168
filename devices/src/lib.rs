//! Device models for the Reprise VMM.
//!
//! Every device here is a state machine driven by guest accesses on a [`bus::Bus`] and by
//! events from its backend. Devices never touch KVM: interrupts leave through an
//! [`interrupt::InterruptLine`] and guest notifications arrive as [`vmm_sys_util::eventfd::EventFd`]s
//! that the VMM wires to KVM (ioeventfd/irqfd). Bytes cross the guest boundary only through the
//! backend traits in [`backends`], which is where recording and replay plug in.

pub mod backends;
pub mod bus;
pub mod i8042;
pub mod interrupt;
pub mod persist;
#[cfg(test)]
mod persist_tests;
pub mod serial;
pub mod virtio;

/// Guest memory as the devices see it: mmap-backed regions with a dirty bitmap that records
/// every write the VMM makes on the guest's behalf (snapshots need those pages too).
pub type GuestMemory = vm_memory::GuestMemoryMmap<vm_memory::bitmap::AtomicBitmap>;
