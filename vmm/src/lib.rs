//! The Reprise VMM: a KVM virtual machine, its boot, device wiring, event loop and API.

pub mod api;
pub mod arch;
pub mod boot;
pub mod builder;
pub mod config;
pub mod controller;
pub mod device_manager;
pub mod drives;
pub mod event_loop;
pub mod gdb;
pub mod recording;
pub mod replaying;
pub mod serial_io;
pub mod snapshots;
pub mod supervisor;
pub mod virtio_setup;
pub mod volume_backend;
pub mod vstate;
