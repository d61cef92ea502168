//! Whether the driver wants an interrupt after the device used buffers.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::GuestMemory;

/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver polls and asks for no used-buffer interrupts.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Whether to interrupt the driver after adding used buffers to `queue`. With
/// `VIRTIO_F_EVENT_IDX` this follows `used_event`; without it, it honours the available
/// ring's NO_INTERRUPT flag (which `virtio-queue` does not look at). Errors reading guest
/// memory answer "yes": a spurious interrupt is harmless, a missing one hangs the driver.
pub fn driver_wants_interrupt(queue: &mut Queue, mem: &GuestMemory) -> bool {
    if queue.event_idx_enabled() {
        return queue.needs_notification(mem).unwrap_or(true);
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    match mem.read_obj::<u16>(GuestAddress(queue.avail_ring())) {
        Ok(flags) => u16::from_le(flags) & AVAIL_F_NO_INTERRUPT == 0,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_the_no_interrupt_flag() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let mut q = Queue::new(16).unwrap();
        q.set_avail_ring_address(Some(0x2000), Some(0));
        mem.write_obj(0u16, GuestAddress(0x2000)).unwrap();
        assert!(driver_wants_interrupt(&mut q, &mem));
        mem.write_obj(AVAIL_F_NO_INTERRUPT, GuestAddress(0x2000))
            .unwrap();
        assert!(!driver_wants_interrupt(&mut q, &mem));
    }
}
