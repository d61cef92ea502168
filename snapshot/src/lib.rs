//! VM snapshots on disk, and the contract every saved component follows.
//!
//! A snapshot is a directory holding a manifest, a VM-state file and a memory image (full,
//! or a diff against a parent snapshot). This crate owns those formats and knows nothing of
//! KVM or of devices' internals: components describe their state with [`Persist`].

pub mod persist;

pub use persist::{Persist, PersistError};
