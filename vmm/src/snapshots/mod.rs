//! VM snapshots: what is saved, in which order, and how a VM is rebuilt from them.

pub mod devices_state;
