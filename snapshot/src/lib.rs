//! VM snapshots on disk, and the contract every saved component follows.
//!
//! A snapshot is a directory holding a manifest, a VM-state file and a memory image (full,
//! or a diff against a parent snapshot). This crate owns those formats and knows nothing of
//! KVM or of devices' internals: components describe their state with [`Persist`].
//!
//! - [`state`]: the VM-state file (named, checksummed sections of postcard-encoded values).
//! - [`memory`]: memory layouts and images: sparse full images to map `MAP_PRIVATE`, diff
//!   images of dirty pages, consolidation of a chain into a full image.
//! - [`dirty`]: page bitmaps for dirty-page bookkeeping.
//! - [`manifest`] and [`store`]: snapshot directories, their manifest, listing, chains,
//!   deletion, consolidation and retention.
//!
//! - `testing` (cargo feature `test-utils`): `check_round_trip` for `Persist` implementors.
//!
//! Everything read from disk is untrusted: sizes are checked against [`limits`] before
//! anything is allocated, checksums are verified, and errors ([`SnapshotError`]) name the file
//! and what is wrong. Files are written under a temporary name and renamed into place once
//! flushed, so a crash never leaves a half-written file under a final name.

pub mod bitmap;
pub mod codec;
pub mod dirty;
pub mod error;
pub mod fsutil;
pub mod limits;
pub mod manifest;
pub mod memory;
pub mod pending;
pub mod persist;
pub mod retention;
pub mod state;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use bitmap::PageBitmap;
pub use dirty::DirtyBitmap;
pub use error::{Result, SnapshotError};
pub use manifest::{Manifest, MemoryInfo, SnapshotKind, VolumeSnapshot};
pub use memory::{
    apply_diff, consolidate, write_diff, write_full, DiffImage, FullImage, MemoryLayout,
    MemoryRegion, PrecopiedImage,
};
pub use pending::{unix_ms_now, NewSnapshot, PendingSnapshot};
pub use persist::{Persist, PersistError};
pub use retention::{plan_retention, RetentionPlan};
pub use state::{StateFile, StateWriter};
pub use store::{Ignored, Listing, SnapshotStore};
