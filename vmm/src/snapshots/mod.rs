//! VM snapshots: what is saved, in which order, and how a VM is rebuilt from them.

pub mod catalog;
pub mod create;
pub mod devices_state;
pub mod net_overrides;
pub mod phases;
pub mod restore;
pub mod schedule;
pub mod staging;
