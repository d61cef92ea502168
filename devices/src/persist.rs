//! Saving and restoring device models: the [`Persist`] contract from the `snapshot` crate,
//! implemented by every device here, and what they share.
//!
//! Each device's state is a plain serde struct holding only what the guest can observe or
//! what is needed to continue exactly where the device stopped. Host resources (backends,
//! interrupt lines, guest memory, eventfds) are not state: they come back through the
//! restore arguments. Every field of a state is validated on restore, because a state file
//! is untrusted input; a bad field is reported as a [`PersistError`] naming the device and
//! the field.
//!
//! # Saving and restoring a VM's devices
//!
//! Save, with the vCPUs paused and the event loop not running:
//! - `SerialDevice::save`, `I8042::save`;
//! - for each virtio device, `MmioTransport::save` and then the device's own save
//!   (`Block::save`, `Net::save`). The transport locks its device to read the queues, so
//!   the caller must not hold the device's lock while saving the transport; neither save
//!   changes anything, so the two can be taken in either order as long as nothing runs in
//!   between.
//!
//! Restore, into a new process, after guest memory holds the snapshot's contents and
//! before the vCPUs or the event loop run:
//! - `SerialDevice::restore` / `I8042::restore` with the new interrupt lines and sink;
//! - for each virtio device: the device first (`Block::restore` with the backend,
//!   `Net::restore` with the backend), which gives a device that is not activated; then
//!   `MmioTransport::restore` with that device, guest memory and a new `VirtioInterrupt`,
//!   which checks the pair, restores the registers and queues and, if the driver had
//!   activated the device, resumes it with the saved queues;
//! - then the usual wiring, as for a new device: irqfd for the interrupt line, an
//!   ioeventfd per queue for the device's (new) queue eventfds, the transport on the MMIO
//!   bus and the device on the event loop. Resuming left a notification on each queue
//!   eventfd, so the first pass of the event loop finishes the guest's pending work.
//!
//! Interrupts are not raised by a restore: whatever was pending at save time is in the
//! interrupt controller's state, which the VMM restores with KVM.

pub use snapshot::{Persist, PersistError};

/// A [`PersistError`] for `component` saying that its saved `field` is unusable.
pub(crate) fn bad_field(
    component: impl Into<String>,
    field: &str,
    problem: impl std::fmt::Display,
) -> PersistError {
    PersistError::new(component, format!("saved field `{field}`: {problem}"))
}
