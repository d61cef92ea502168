//! VM snapshots: what is saved, in which order, and how a VM is rebuilt from them.

pub mod create;
pub mod devices_state;
pub mod restore;
pub mod schedule;
pub mod staging;
