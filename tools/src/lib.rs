//! Command-line tools for Reprise.

pub mod api_client;
pub mod bench;
pub mod bench_recording;
pub mod bench_replay;
pub mod bench_snapshots;
pub mod bench_volumes;
pub mod capture_cli;
pub mod ctl;
pub mod demo_replay;
pub mod demo_snapshot;
pub mod guest_run;
pub mod kvgen;
pub mod netns;
pub mod qmp;
pub mod vmm_process;
pub mod volume_cli;
