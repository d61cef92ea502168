//! The Reprise VMM: a KVM virtual machine, its boot, device wiring, event loop and API.

pub mod api;
pub mod config;
pub mod arch;
pub mod boot;
pub mod vstate;
pub mod serial_io;
pub mod device_manager;
pub mod builder;
pub mod virtio_setup;
pub mod event_loop;
pub mod controller;
pub mod supervisor;
