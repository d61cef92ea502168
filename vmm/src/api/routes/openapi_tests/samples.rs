//! Sample values of every documented schema, with every optional field set, for the
//! OpenAPI checks.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use blockstore::limits::{Bucket, Limits};

use super::super::*;
use crate::api::{DriveCounters, DriveSnapshot, DriveStatus, InstanceInfo, VmState};
use crate::config::{SerialConfig, VmConfig};

mod replay_samples;

use replay_samples::replay_checks;

/// A documented schema and the Rust type it describes.
pub(super) struct SchemaCheck {
    pub(super) name: &'static str,
    /// A value with every optional field present and non-null.
    pub(super) sample: Value,
    /// Whether the Rust type deserializes a value.
    pub(super) accepts: fn(Value) -> bool,
    /// For each enum-valued field, the serialized form of every variant.
    pub(super) enums: Vec<(&'static str, Vec<Value>)>,
}

fn accepts<T: DeserializeOwned>(value: Value) -> bool {
    serde_json::from_value::<T>(value).is_ok()
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("sample serializes")
}

pub(super) fn checks() -> Vec<SchemaCheck> {
    let machine = MachineConfig {
        vcpu_count: 2,
        mem_size_mib: 256,
        huge_pages: true,
    };
    let boot = BootSource {
        kernel_image_path: PathBuf::from("/guest/kernel"),
        boot_args: Some("console=ttyS0".into()),
        initrd_path: Some(PathBuf::from("/guest/initrd")),
    };
    let bucket = Bucket {
        rate: 1000,
        burst: 2000,
    };
    let limits = Limits {
        iops: Some(bucket),
        read_iops: Some(bucket),
        write_iops: Some(bucket),
        bps: Some(bucket),
        read_bps: Some(bucket),
        write_bps: Some(bucket),
    };
    // Both backends, to show every field; the API rejects that in validation, not in serde.
    let drive = DriveConfig {
        drive_id: "root".into(),
        path_on_host: Some(PathBuf::from("/guest/root.img")),
        volume_path: Some(PathBuf::from("/store/volumes/root")),
        is_read_only: true,
        io_direct: true,
        limits: Some(limits),
    };
    let patch = DrivePatch {
        drive_id: "root".into(),
        size_bytes: Some(1 << 30),
        allow_shrink: true,
        discard_data: true,
        limits: Some(limits),
    };
    let counters = DriveCounters {
        requests: 10,
        read_requests: 6,
        write_requests: 4,
        read_bytes: 24576,
        write_bytes: 16384,
        io_errors: 1,
        throttled: 2,
    };
    let status = DriveStatus {
        drive_id: "root".into(),
        backend: "volume".into(),
        path: "/store/volumes/root".into(),
        capacity_bytes: 1 << 30,
        read_only: false,
        limits,
        counters: Some(counters.clone()),
    };
    let snapshot = DriveSnapshot {
        name: "before-upgrade".into(),
        created: 1_700_000_000,
        size_bytes: 1 << 30,
    };
    let net = NetConfig {
        iface_id: "eth0".into(),
        host_dev_name: Some("tap0".into()),
        socket_path: Some(PathBuf::from("/run/a.sock")),
        peer_socket_path: Some(PathBuf::from("/run/b.sock")),
        guest_mac: Some("02:00:00:00:00:01".into()),
        detached: true,
    };
    let serial = SerialConfig {
        output: Some("stdout".into()),
        input: Some("socket:/run/in".into()),
    };
    let vm = VmConfig {
        machine: machine.clone(),
        boot: Some(boot.clone()),
        drives: vec![drive.clone()],
        nets: vec![net.clone()],
        serial: serial.clone(),
    };
    let info = InstanceInfo {
        id: "reprise".into(),
        state: VmState::Stopped,
        vmm_version: "0.1.0".into(),
        app_name: "reprise".into(),
        exit_reason: Some("guest reset".into()),
        vm_time_ns: Some(1_500_000_000),
        guest_progress: Some(4200),
    };
    let vm_states = [
        VmState::NotStarted,
        VmState::Running,
        VmState::Paused,
        VmState::Stopped,
    ];
    let actions = [ActionType::InstanceStart, ActionType::InstanceStop];
    let changes = [VmStateChange::Paused, VmStateChange::Resumed];
    // Every field set, even those that exclude each other; validation refuses that, serde not.
    let net_override = crate::api::NetOverride {
        iface_id: "eth0".into(),
        detach: true,
        host_dev_name: Some("tap1".into()),
        socket_path: Some(PathBuf::from("/run/clone.sock")),
        peer_socket_path: Some(PathBuf::from("/run/clone-peer.sock")),
        guest_mac: Some("02:00:00:00:00:02".into()),
    };
    let load = crate::api::SnapshotLoad {
        snapshot_path: PathBuf::from("/var/lib/reprise/snapshots/base"),
        vm_id: Some("clone1".into()),
        serial_output: Some("file:/tmp/clone1.log".into()),
        serial_input: Some("socket:/tmp/clone1.in".into()),
        network_overrides: vec![net_override.clone()],
        resume: false,
    };
    let volume = snapshot::VolumeSnapshot {
        drive_id: "root".into(),
        volume_path: "/store/volumes/root".into(),
        snapshot_name: "vm-d1".into(),
    };
    let region = snapshot::MemoryRegion {
        gpa: 0,
        len: 256 << 20,
    };
    let layout = snapshot::MemoryLayout {
        regions: vec![region],
    };
    let memory = snapshot::MemoryInfo {
        file: "memory.diff".into(),
        layout: layout.clone(),
        page_size: 4096,
        data_bytes: 1 << 20,
        file_bytes: 1 << 21,
    };
    let mut manifest = snapshot::Manifest {
        format: snapshot::manifest::MANIFEST_FORMAT.into(),
        version: snapshot::manifest::MANIFEST_VERSION,
        id: "d1".into(),
        parent: Some("base".into()),
        created: 1_700_000_000_000,
        kind: snapshot::SnapshotKind::Diff,
        vm_config: to_value(&vm),
        volumes: vec![volume.clone()],
        memory: memory.clone(),
        state_file: "state.bin".into(),
        crc32: 0,
    };
    manifest.seal();
    let summary = crate::api::SnapshotSummary::from(&manifest);
    let ignored = crate::api::IgnoredEntry {
        name: "half.tmp".into(),
        reason: "a half-written snapshot".into(),
        partial: true,
    };
    let kinds = || {
        vec![
            to_value(&snapshot::SnapshotKind::Full),
            to_value(&snapshot::SnapshotKind::Diff),
        ]
    };
    let mut replay_checks = replay_checks(&net_override);
    let mut checks = vec![
        SchemaCheck {
            name: "SnapshotLoad",
            sample: to_value(&load),
            accepts: accepts::<crate::api::SnapshotLoad>,
            enums: vec![],
        },
        SchemaCheck {
            name: "NetOverride",
            sample: to_value(&net_override),
            accepts: accepts::<crate::api::NetOverride>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotList",
            sample: to_value(&crate::api::SnapshotList {
                snapshots: vec![summary.clone()],
                ignored: vec![ignored.clone()],
            }),
            accepts: accepts::<crate::api::SnapshotList>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotSummary",
            sample: to_value(&summary),
            accepts: accepts::<crate::api::SnapshotSummary>,
            enums: vec![("kind", kinds())],
        },
        SchemaCheck {
            name: "SnapshotVolume",
            sample: to_value(&volume),
            accepts: accepts::<snapshot::VolumeSnapshot>,
            enums: vec![],
        },
        SchemaCheck {
            name: "IgnoredSnapshotEntry",
            sample: to_value(&ignored),
            accepts: accepts::<crate::api::IgnoredEntry>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotInfo",
            sample: to_value(&crate::api::SnapshotInfo {
                manifest: manifest.clone(),
                chain: vec!["base".into(), "d1".into()],
                dependents: vec!["d2".into()],
            }),
            accepts: accepts::<crate::api::SnapshotInfo>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotManifest",
            sample: to_value(&manifest),
            accepts: accepts::<snapshot::Manifest>,
            enums: vec![("kind", kinds())],
        },
        SchemaCheck {
            name: "SnapshotMemory",
            sample: to_value(&memory),
            accepts: accepts::<snapshot::MemoryInfo>,
            enums: vec![],
        },
        SchemaCheck {
            name: "MemoryLayout",
            sample: to_value(&layout),
            accepts: accepts::<snapshot::MemoryLayout>,
            enums: vec![],
        },
        SchemaCheck {
            name: "MemoryRegion",
            sample: to_value(&region),
            accepts: accepts::<snapshot::MemoryRegion>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotCreate",
            sample: to_value(&crate::api::SnapshotCreate {
                snapshot_dir: PathBuf::from("/var/lib/reprise/snapshots"),
                snapshot_id: Some("before-upgrade".into()),
                snapshot_type: Some(crate::api::SnapshotType::Diff),
            }),
            accepts: accepts::<crate::api::SnapshotCreate>,
            enums: vec![(
                "snapshot_type",
                vec![
                    to_value(&crate::api::SnapshotType::Full),
                    to_value(&crate::api::SnapshotType::Diff),
                ],
            )],
        },
        SchemaCheck {
            name: "SnapshotSchedule",
            sample: to_value(&crate::api::SnapshotSchedule {
                snapshot_dir: PathBuf::from("/var/lib/reprise/snapshots"),
                interval_ms: 300_000,
                keep_count: Some(12),
                max_age_secs: Some(3600),
            }),
            accepts: accepts::<crate::api::SnapshotSchedule>,
            enums: vec![],
        },
        SchemaCheck {
            name: "RecordingStart",
            sample: to_value(&crate::api::RecordingStart {
                buffers: vec![
                    crate::api::BufferSpec {
                        name: "all".into(),
                        dir: PathBuf::from("/var/lib/reprise/capture/all"),
                        filter: Default::default(),
                        window_secs: Some(300),
                        max_bytes: Some(1 << 30),
                        block_data: Some(crate::recording::config::BlockData::Compact),
                        overflow: Some(crate::recording::config::Overflow::Backpressure),
                        ring_bytes: Some(8 << 20),
                        max_segment_bytes: Some(64 << 20),
                    },
                    crate::api::BufferSpec {
                        name: "client7".into(),
                        dir: PathBuf::from("/var/lib/reprise/capture/client7"),
                        filter: crate::api::FilterSpec {
                            classes: vec!["net".into()],
                            direction: Some("in".into()),
                            sources: vec!["net0".into()],
                            macs: vec!["02:00:00:00:00:07".into()],
                            ipv4: vec!["10.0.0.7".into()],
                            ports: vec![7000],
                            protocols: vec!["udp".into()],
                        },
                        window_secs: Some(3600),
                        max_bytes: None,
                        block_data: Some(crate::recording::config::BlockData::Full),
                        overflow: Some(crate::recording::config::Overflow::Drop),
                        ring_bytes: None,
                        max_segment_bytes: None,
                    },
                ],
            }),
            accepts: accepts::<crate::api::RecordingStart>,
            enums: vec![],
        },
        SchemaCheck {
            name: "BufferSpec",
            sample: to_value(&crate::api::BufferSpec {
                name: "all".into(),
                dir: PathBuf::from("/var/lib/reprise/capture/all"),
                filter: crate::api::FilterSpec {
                    classes: vec!["net".into(), "blk".into()],
                    ..Default::default()
                },
                window_secs: Some(300),
                max_bytes: Some(1 << 30),
                block_data: Some(crate::recording::config::BlockData::Full),
                overflow: Some(crate::recording::config::Overflow::Drop),
                ring_bytes: Some(1 << 20),
                max_segment_bytes: Some(16 << 20),
            }),
            accepts: accepts::<crate::api::BufferSpec>,
            enums: vec![
                (
                    "block_data",
                    vec![
                        to_value(&crate::recording::config::BlockData::Full),
                        to_value(&crate::recording::config::BlockData::Compact),
                    ],
                ),
                (
                    "overflow",
                    vec![
                        to_value(&crate::recording::config::Overflow::Backpressure),
                        to_value(&crate::recording::config::Overflow::Drop),
                    ],
                ),
            ],
        },
        SchemaCheck {
            name: "FilterSpec",
            sample: to_value(&crate::api::FilterSpec {
                classes: vec!["net".into()],
                direction: Some("out".into()),
                sources: vec!["eth0".into()],
                macs: vec!["02:00:00:00:00:01".into()],
                ipv4: vec!["10.0.0.0/24".into()],
                ports: vec![53],
                protocols: vec!["udp".into()],
            }),
            accepts: accepts::<crate::api::FilterSpec>,
            enums: vec![],
        },
        SchemaCheck {
            name: "BufferState",
            sample: to_value(&crate::api::BufferState {
                name: "all".into(),
                dir: PathBuf::from("/var/lib/reprise/capture/all"),
                events: 10,
                bytes: 4096,
                oldest_vm_time_ns: Some(1),
                newest_vm_time_ns: Some(5),
                dropped_events: 2,
                segments: 1,
                last_error: Some("disk full".into()),
            }),
            accepts: accepts::<crate::api::BufferState>,
            enums: vec![],
        },
        SchemaCheck {
            name: "RecordingStatus",
            sample: to_value(&crate::api::RecordingStatus {
                recording: true,
                buffers: vec![crate::api::BufferState {
                    name: "all".into(),
                    dir: PathBuf::from("/var/lib/reprise/capture/all"),
                    events: 1200,
                    bytes: 1 << 20,
                    oldest_vm_time_ns: Some(1_000_000),
                    newest_vm_time_ns: Some(9_000_000_000),
                    dropped_events: 0,
                    segments: 3,
                    last_error: None,
                }],
            }),
            accepts: accepts::<crate::api::RecordingStatus>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SnapshotCreated",
            sample: to_value(&crate::api::SnapshotCreated {
                id: "before-upgrade".into(),
                dir: "/var/lib/reprise/snapshots/before-upgrade".into(),
                pause_us: 1500,
                stop_us: 40,
                memory_bytes: 1 << 24,
            }),
            accepts: accepts::<crate::api::SnapshotCreated>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Error",
            sample: to_value(&ErrorBody {
                fault_message: "what went wrong".into(),
            }),
            accepts: accepts::<ErrorBody>,
            enums: vec![],
        },
        SchemaCheck {
            name: "InstanceInfo",
            sample: to_value(&info),
            accepts: accepts::<InstanceInfo>,
            enums: vec![("state", vm_states.iter().map(to_value).collect())],
        },
        SchemaCheck {
            name: "MachineConfig",
            sample: to_value(&machine),
            accepts: accepts::<MachineConfig>,
            enums: vec![],
        },
        SchemaCheck {
            name: "BootSource",
            sample: to_value(&boot),
            accepts: accepts::<BootSource>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DriveConfig",
            sample: to_value(&drive),
            accepts: accepts::<DriveConfig>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Limits",
            sample: to_value(&limits),
            accepts: accepts::<Limits>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Bucket",
            sample: to_value(&bucket),
            accepts: accepts::<Bucket>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DrivePatch",
            sample: to_value(&patch),
            accepts: accepts::<DrivePatch>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DriveStatus",
            sample: to_value(&status),
            accepts: accepts::<DriveStatus>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DriveCounters",
            sample: to_value(&counters),
            accepts: accepts::<DriveCounters>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DriveSnapshot",
            sample: to_value(&snapshot),
            accepts: accepts::<DriveSnapshot>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Empty",
            sample: to_value(&Empty {}),
            accepts: accepts::<Empty>,
            enums: vec![],
        },
        SchemaCheck {
            name: "NetConfig",
            sample: to_value(&net),
            accepts: accepts::<NetConfig>,
            enums: vec![],
        },
        SchemaCheck {
            name: "SerialConfig",
            sample: to_value(&serial),
            accepts: accepts::<SerialConfig>,
            enums: vec![],
        },
        SchemaCheck {
            name: "VmConfig",
            sample: to_value(&vm),
            accepts: accepts::<VmConfig>,
            enums: vec![],
        },
        SchemaCheck {
            name: "InstanceAction",
            sample: to_value(&InstanceAction {
                action_type: ActionType::InstanceStart,
            }),
            accepts: accepts::<InstanceAction>,
            enums: vec![("action_type", actions.iter().map(to_value).collect())],
        },
        SchemaCheck {
            name: "VmStatePatch",
            sample: to_value(&VmStatePatch {
                state: VmStateChange::Paused,
            }),
            accepts: accepts::<VmStatePatch>,
            enums: vec![("state", changes.iter().map(to_value).collect())],
        },
        SchemaCheck {
            name: "VcpuRegisters",
            sample: to_value(&crate::api::VcpuRegisters {
                index: 1,
                cpl: 3,
                rip: 0x40_1000,
                rflags: 0x202,
                cs: 0x2b,
                cr0: 0x8000_0011,
                cr3: 0x1000,
                cr4: 0x20,
                efer: 0x500,
                ..Default::default()
            }),
            accepts: accepts::<crate::api::VcpuRegisters>,
            enums: vec![],
        },
        SchemaCheck {
            name: "DebuggerStart",
            // Both; validation refuses that, serde not.
            sample: to_value(&crate::api::DebuggerStart {
                socket_path: Some(PathBuf::from("/run/reprise/gdb.sock")),
                tcp_address: Some("127.0.0.1:1234".into()),
            }),
            accepts: accepts::<crate::api::DebuggerStart>,
            enums: vec![],
        },
        SchemaCheck {
            name: "GdbStatus",
            sample: to_value(&crate::api::GdbStatus {
                listening: "127.0.0.1:1234".into(),
                attached: true,
            }),
            accepts: accepts::<crate::api::GdbStatus>,
            enums: vec![],
        },
    ];
    checks.append(&mut replay_checks);
    checks
}
