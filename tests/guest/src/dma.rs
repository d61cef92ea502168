//! A bump allocator for memory shared with devices (virtqueues, buffers). Guest
//! memory is identity mapped, so an address in this arena is also its
//! guest-physical address. Nothing is ever freed.

use core::sync::atomic::{AtomicUsize, Ordering};

const ARENA_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);

static mut ARENA: Arena = Arena([0; ARENA_SIZE]);
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Allocate `len` zeroed bytes aligned to `align` (a power of two).
pub fn alloc(len: usize, align: usize) -> &'static mut [u8] {
    let mut start = 0;
    let update = NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
        start = next.next_multiple_of(align);
        let end = start.checked_add(len)?;
        (end <= ARENA_SIZE).then_some(end)
    });
    if update.is_err() {
        crate::fatal!("out of DMA memory ({} bytes wanted)", len);
    }
    // SAFETY: [start, start + len) lies inside the arena and was handed out to
    // nobody else (the bump pointer only grows); the arena starts zeroed (bss).
    unsafe {
        let base = core::ptr::addr_of_mut!(ARENA).cast::<u8>();
        core::slice::from_raw_parts_mut(base.add(start), len)
    }
}
