//! The save/restore contract exercised the same way for every device.
//!
//! [`round_trip`] is the one path every device's state goes through: save, encode (postcard,
//! the snapshot files' encoding, and JSON), decode, restore, save again; the second save
//! must encode to exactly the same bytes. The submodules then check that restored devices
//! behave like the originals, and that corrupted states are refused with an error naming
//! the device and the field.

mod block;
mod legacy;
mod net;
mod transport;

use std::sync::atomic::Ordering;

use crate::bus::BusDevice;
use crate::persist::{Persist, PersistError};
use crate::virtio::test_utils::TestQueue;
use crate::virtio::{status, MmioTransport, VIRTIO_F_VERSION_1};

/// Saves `original`, sends the state through postcard and JSON, restores it with `args` and
/// saves the restored component again: both saves must encode identically. Returns the
/// restored component.
pub(crate) fn round_trip<T: Persist>(original: &T, args: T::Args) -> T {
    let saved = original.save();
    let bytes = postcard::to_allocvec(&saved).expect("postcard encoding");
    let json = serde_json::to_vec(&saved).expect("JSON encoding");
    let from_bytes: T::State = postcard::from_bytes(&bytes).expect("postcard decoding");
    let from_json: T::State = serde_json::from_slice(&json).expect("JSON decoding");
    assert_eq!(from_bytes, saved, "postcard changed the state");
    assert_eq!(from_json, saved, "JSON changed the state");
    let restored = match T::restore(args, &from_bytes) {
        Ok(restored) => restored,
        Err(e) => panic!("restoring a freshly saved state failed: {e}"),
    };
    let again = restored.save();
    assert_eq!(
        postcard::to_allocvec(&again).unwrap(),
        bytes,
        "save → restore → save changed the postcard encoding:\n{saved:?}\n{again:?}"
    );
    assert_eq!(serde_json::to_vec(&again).unwrap(), json);
    restored
}

/// Restores `state` (after a postcard round trip, as from a file) expecting a refusal, and
/// checks that the error names `component` and `field`.
pub(crate) fn expect_refused<T: Persist>(
    args: T::Args,
    state: &T::State,
    component: &str,
    field: &str,
) -> PersistError {
    let bytes = postcard::to_allocvec(state).unwrap();
    let decoded: T::State = postcard::from_bytes(&bytes).unwrap();
    let err = match T::restore(args, &decoded) {
        Ok(_) => panic!("a corrupted state was accepted: {state:?}"),
        Err(e) => e,
    };
    assert_eq!(err.component, component, "{err}");
    assert!(
        err.problem.contains(&format!("`{field}`")),
        "error does not name `{field}`: {err}"
    );
    err
}

/// A guest driver's register accesses to a virtio-mmio transport.
pub(crate) mod driver {
    use super::*;

    pub(crate) const STATUS: u64 = 0x70;
    pub(crate) const QUEUE_SEL: u64 = 0x30;
    pub(crate) const QUEUE_NOTIFY: u64 = 0x50;
    pub(crate) const INTERRUPT_STATUS: u64 = 0x60;
    pub(crate) const INTERRUPT_ACK: u64 = 0x64;

    pub(crate) fn r(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut b = [0xffu8; 4];
        t.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    pub(crate) fn w(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    /// ACKNOWLEDGE, DRIVER, VERSION_1 and FEATURES_OK.
    pub(crate) fn negotiate(t: &mut MmioTransport) {
        w(t, STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(t, 0x24, 1);
        w(t, 0x20, 1 << (VIRTIO_F_VERSION_1 - 32));
        w(t, 0x24, 0);
        w(t, 0x20, 0);
        w(
            t,
            STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_ne!(r(t, STATUS) & status::FEATURES_OK, 0);
    }

    /// Programs queue `index` with the layout of `tq` and marks it ready.
    pub(crate) fn setup_queue(t: &mut MmioTransport, index: u32, tq: &TestQueue) {
        w(t, QUEUE_SEL, index);
        w(t, 0x38, u32::from(tq.size()));
        w(t, 0x80, tq.desc_addr() as u32);
        w(t, 0x84, (tq.desc_addr() >> 32) as u32);
        w(t, 0x90, tq.avail_addr() as u32);
        w(t, 0x94, (tq.avail_addr() >> 32) as u32);
        w(t, 0xa0, tq.used_addr() as u32);
        w(t, 0xa4, (tq.used_addr() >> 32) as u32);
        w(t, 0x44, 1);
    }

    pub(crate) fn driver_ok(t: &mut MmioTransport) {
        w(
            t,
            STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
        assert!(t.is_activated());
    }

    /// Everything a driver can read: each register word for each queue and feature word
    /// selected, and the first 64 bytes of configuration space. Leaves QueueSel and the
    /// feature selectors as they were.
    pub(crate) fn all_registers(t: &mut MmioTransport, queues: u32) -> Vec<u32> {
        let saved = t.save();
        let mut values = Vec::new();
        for sel in 0..=queues {
            w(t, QUEUE_SEL, sel);
            w(t, 0x14, sel);
            for offset in (0..0x100).step_by(4) {
                values.push(r(t, offset));
            }
        }
        for offset in (0x100..0x140).step_by(4) {
            values.push(r(t, offset));
        }
        w(t, QUEUE_SEL, saved.queue_select);
        w(t, 0x14, saved.device_features_select);
        values
    }
}

/// How many times a counting interrupt line has been pulsed.
pub(crate) fn pulses(count: &std::sync::atomic::AtomicU32) -> u32 {
    count.load(Ordering::SeqCst)
}
