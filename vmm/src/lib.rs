//! The Reprise VMM: a KVM virtual machine, its boot, device wiring, event loop and API.

pub mod api;
pub mod config;
pub mod arch;
pub mod boot;
pub mod vstate;
