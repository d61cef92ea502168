//! Human-readable summaries of API responses.

use std::path::Path;

use serde_json::Value;
use vmm::api::{
    DriveSnapshot, DriveStatus, InstanceInfo, SnapshotInfo, SnapshotList, SnapshotSummary, VmState,
};
use vmm::config::{DriveConfig, NetConfig, VmConfig};

/// The name the API uses for a lifecycle state.
pub fn state_name(state: VmState) -> &'static str {
    match state {
        VmState::NotStarted => "Not started",
        VmState::Running => "Running",
        VmState::Paused => "Paused",
        VmState::Stopped => "Stopped",
    }
}

/// One line: `ID: STATE[ (EXIT REASON)] [APP VERSION]`.
pub fn status_line(info: &InstanceInfo) -> String {
    let mut line = format!("{}: {}", info.id, state_name(info.state));
    if let Some(reason) = &info.exit_reason {
        line.push_str(&format!(" ({reason})"));
    }
    line.push_str(&format!(" [{} {}]", info.app_name, info.vmm_version));
    line
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A few lines describing the configuration.
pub fn config_summary(config: &VmConfig) -> String {
    let machine = &config.machine;
    let mut lines = vec![format!(
        "machine: {} vCPU{}, {} MiB{}",
        machine.vcpu_count,
        if machine.vcpu_count == 1 { "" } else { "s" },
        machine.mem_size_mib,
        if machine.huge_pages {
            ", huge pages"
        } else {
            ""
        }
    )];
    match &config.boot {
        Some(boot) => {
            let mut line = format!("boot: kernel {}", path(&boot.kernel_image_path));
            if let Some(initrd) = &boot.initrd_path {
                line.push_str(&format!(", initrd {}", path(initrd)));
            }
            if let Some(args) = &boot.boot_args {
                line.push_str(&format!(", args {args:?}"));
            }
            lines.push(line);
        }
        None => lines.push("boot: not configured".to_string()),
    }
    lines.extend(config.drives.iter().map(drive_line));
    lines.extend(config.nets.iter().map(net_line));
    let serial = &config.serial;
    lines.push(format!(
        "serial: output {}, input {}",
        serial.output.as_deref().unwrap_or("stdout"),
        serial.input.as_deref().unwrap_or("none")
    ));
    lines.join("\n")
}

fn drive_line(drive: &DriveConfig) -> String {
    let backend = match (&drive.path_on_host, &drive.volume_path) {
        (Some(image), None) => path(image),
        (None, Some(volume)) => format!("volume {}", path(volume)),
        (Some(image), Some(volume)) => format!("{} and volume {}", path(image), path(volume)),
        (None, None) => "no backend".to_string(),
    };
    let mut flags = Vec::new();
    if drive.is_read_only {
        flags.push("read-only");
    }
    if drive.io_direct {
        flags.push("O_DIRECT");
    }
    let mut details = flags.join(", ");
    let limits = drive
        .limits
        .as_ref()
        .map(|l| serde_json::to_value(l).unwrap_or(Value::Null));
    if let Some(limits) = limits.filter(|l| l.as_object().is_some_and(|l| !l.is_empty())) {
        if !details.is_empty() {
            details.push_str("; ");
        }
        details.push_str(&format!("limits {}", limits_text(&limits)));
    }
    if details.is_empty() {
        format!("drive {}: {backend}", drive.drive_id)
    } else {
        format!("drive {}: {backend} ({details})", drive.drive_id)
    }
}

/// The limits the API returned (a `Limits` object), e.g.
/// `iops 100/s burst 10, write_bps 1 MiB/s`; `none` if there are none.
pub fn limits_text(limits: &Value) -> String {
    let Some(fields) = limits.as_object() else {
        return limits.to_string();
    };
    const ORDER: [&str; 6] = [
        "iops",
        "read_iops",
        "write_iops",
        "bps",
        "read_bps",
        "write_bps",
    ];
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort_by_key(|name| ORDER.iter().position(|o| o == name).unwrap_or(ORDER.len()));
    let mut parts = Vec::new();
    for name in names {
        let bucket = &fields[name];
        let rate = bucket["rate"].as_u64().unwrap_or(0);
        let burst = bucket["burst"].as_u64().unwrap_or(0);
        let amount = |n: u64| {
            if name.ends_with("bps") {
                bytes_text(n)
            } else {
                n.to_string()
            }
        };
        let mut part = format!("{name} {}/s", amount(rate));
        if burst != 0 {
            part.push_str(&format!(" burst {}", amount(burst)));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// A byte count in the largest binary unit that divides it exactly: `1 GiB`, `1536 B`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// Seconds since the Unix epoch as a UTC time, `2023-11-14T22:13:20Z`.
pub fn utc_time(seconds: u64) -> String {
    let days = (seconds / 86400) as i64;
    let rest = seconds % 86400;
    // Days to a civil date (Howard Hinnant's algorithm), in the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A few lines describing a drive's status.
pub fn drive_status_text(status: &DriveStatus) -> String {
    let limits = serde_json::to_value(status.limits).unwrap_or(Value::Null);
    let mut lines = vec![
        format!(
            "drive {}: {} {}, {} ({} bytes), {}",
            status.drive_id,
            status.backend,
            status.path,
            bytes_text(status.capacity_bytes),
            status.capacity_bytes,
            if status.read_only {
                "read-only"
            } else {
                "read-write"
            }
        ),
        format!("limits: {}", limits_text(&limits)),
    ];
    lines.push(match &status.counters {
        Some(c) => format!(
            "counters: {} requests ({} reads, {} writes), {} bytes read, {} bytes written, \
             {} I/O errors, throttled {} times",
            c.requests,
            c.read_requests,
            c.write_requests,
            c.read_bytes,
            c.write_bytes,
            c.io_errors,
            c.throttled
        ),
        None => "counters: none (the VM has not started)".to_string(),
    });
    lines.join("\n")
}

/// One line describing a snapshot: `NAME: SIZE, taken TIME`.
pub fn snapshot_line(snapshot: &DriveSnapshot) -> String {
    format!(
        "{}: {}, taken {}",
        snapshot.name,
        bytes_text(snapshot.size_bytes),
        utc_time(snapshot.created)
    )
}

/// The snapshots of a drive, one line each (or a line saying there are none).
pub fn snapshots_text(drive_id: &str, snapshots: &[DriveSnapshot]) -> String {
    if snapshots.is_empty() {
        return format!("drive {drive_id} has no snapshots");
    }
    snapshots
        .iter()
        .map(snapshot_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A byte count to one decimal in the largest binary unit it reaches: `1.5 MiB`, `900 B`.
pub fn approx_bytes_text(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} B")
}

/// `full` or `diff of PARENT`.
fn kind_text(kind: snapshot::SnapshotKind, parent: Option<&str>) -> String {
    match kind {
        snapshot::SnapshotKind::Full => "full".to_string(),
        snapshot::SnapshotKind::Diff => format!("diff of {}", parent.unwrap_or("?")),
    }
}

fn volumes_text(volumes: &[snapshot::VolumeSnapshot]) -> String {
    if volumes.is_empty() {
        return "no volumes".to_string();
    }
    let list: Vec<String> = volumes
        .iter()
        .map(|v| format!("{} ({} of {})", v.drive_id, v.snapshot_name, v.volume_path))
        .collect();
    format!("volumes {}", list.join(", "))
}

/// One line describing a VM snapshot: `ID: KIND, taken TIME, MEMORY of memory, VOLUMES`.
fn vm_snapshot_line(s: &SnapshotSummary) -> String {
    format!(
        "{}: {}, taken {}, {} of memory, {}",
        s.id,
        kind_text(s.kind, s.parent.as_deref()),
        utc_time(s.created / 1000),
        approx_bytes_text(s.memory_bytes),
        volumes_text(&s.volumes)
    )
}

/// The snapshots of the store at `dir`, one line each, then what the store ignores.
pub fn snapshot_list_text(dir: &Path, list: &SnapshotList) -> String {
    let mut lines: Vec<String> = list.snapshots.iter().map(vm_snapshot_line).collect();
    if lines.is_empty() {
        lines.push(format!("no snapshots in {}", path(dir)));
    }
    for ignored in &list.ignored {
        lines.push(format!(
            "ignored {}: {}{}",
            ignored.name,
            ignored.reason,
            if ignored.partial {
                " (safe to remove)"
            } else {
                ""
            }
        ));
    }
    lines.join("\n")
}

/// A few lines describing one VM snapshot, its chain and dependents.
pub fn snapshot_info_text(info: &SnapshotInfo) -> String {
    let m = &info.manifest;
    let mut lines = vec![
        vm_snapshot_line(&SnapshotSummary::from(m)),
        format!(
            "memory: {} of data in {} ({} file)",
            approx_bytes_text(m.memory.data_bytes),
            m.memory.file,
            approx_bytes_text(m.memory.file_bytes)
        ),
        format!("chain: {}", info.chain.join(" -> ")),
        format!(
            "dependents: {}",
            if info.dependents.is_empty() {
                "none".to_string()
            } else {
                info.dependents.join(", ")
            }
        ),
    ];
    match serde_json::from_value::<VmConfig>(m.vm_config.clone()) {
        Ok(config) => lines.extend(config_summary(&config).lines().map(|l| format!("vm {l}"))),
        Err(e) => lines.push(format!("vm: the saved configuration does not parse: {e}")),
    }
    lines.join("\n")
}

fn net_line(net: &NetConfig) -> String {
    let backend = match (&net.host_dev_name, &net.socket_path, &net.peer_socket_path) {
        _ if net.detached => "detached (no backend)".to_string(),
        (Some(tap), _, _) => format!("TAP {tap}"),
        (None, Some(local), Some(peer)) => {
            format!("datagram socket {} <-> {}", path(local), path(peer))
        }
        _ => "no backend".to_string(),
    };
    match &net.guest_mac {
        Some(mac) => format!("net {}: {backend}, MAC {mac}", net.iface_id),
        None => format!("net {}: {backend}", net.iface_id),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;
    use vmm::api::DriveCounters;
    use vmm::config::{BootSource, MachineConfig};

    use super::*;

    #[test]
    fn status_lines() {
        let mut info = InstanceInfo {
            id: "vm1".into(),
            state: VmState::NotStarted,
            vmm_version: "0.1.0".into(),
            app_name: "reprise".into(),
            exit_reason: None,
            vm_time_ns: None,
            guest_progress: None,
        };
        assert_eq!(status_line(&info), "vm1: Not started [reprise 0.1.0]");
        info.state = VmState::Stopped;
        info.exit_reason = Some("guest reset".into());
        assert_eq!(
            status_line(&info),
            "vm1: Stopped (guest reset) [reprise 0.1.0]"
        );
    }

    #[test]
    fn config_summaries() {
        let config = VmConfig {
            machine: MachineConfig {
                vcpu_count: 2,
                mem_size_mib: 256,
                huge_pages: false,
            },
            boot: Some(BootSource {
                kernel_image_path: PathBuf::from("/k"),
                boot_args: Some("console=ttyS0".into()),
                initrd_path: None,
            }),
            drives: vec![
                DriveConfig {
                    drive_id: "root".into(),
                    path_on_host: Some(PathBuf::from("/root.img")),
                    volume_path: None,
                    is_read_only: true,
                    io_direct: false,
                    limits: None,
                },
                DriveConfig {
                    drive_id: "data".into(),
                    path_on_host: None,
                    volume_path: Some(PathBuf::from("/store/volumes/data")),
                    is_read_only: false,
                    io_direct: false,
                    limits: serde_json::from_value(
                        json!({"iops": {"rate": 100, "burst": 10}, "bps": {"rate": 1048576}}),
                    )
                    .unwrap(),
                },
            ],
            nets: vec![NetConfig {
                iface_id: "eth0".into(),
                host_dev_name: Some("tap0".into()),
                socket_path: None,
                peer_socket_path: None,
                guest_mac: Some("02:00:00:00:00:01".into()),
                detached: false,
            }],
            serial: Default::default(),
        };
        assert_eq!(
            config_summary(&config),
            "machine: 2 vCPUs, 256 MiB\n\
             boot: kernel /k, args \"console=ttyS0\"\n\
             drive root: /root.img (read-only)\n\
             drive data: volume /store/volumes/data (limits iops 100/s burst 10, bps 1 MiB/s)\n\
             net eth0: TAP tap0, MAC 02:00:00:00:00:01\n\
             serial: output stdout, input none"
        );
    }

    #[test]
    fn byte_counts_and_times() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1536), "1536 B");
        assert_eq!(bytes_text(2048), "2 KiB");
        assert_eq!(bytes_text(10 << 20), "10 MiB");
        assert_eq!(bytes_text(3 << 30), "3 GiB");
        assert_eq!(bytes_text(1 << 40), "1 TiB");
        assert_eq!(bytes_text(1 << 50), "1024 TiB");
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_time(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(utc_time(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn limits_lines() {
        assert_eq!(limits_text(&json!({})), "none");
        assert_eq!(
            limits_text(&json!({
                "iops": {"rate": 100, "burst": 0},
                "write_iops": {"rate": 5, "burst": 10},
                "read_bps": {"rate": 1536, "burst": 4194304}
            })),
            "iops 100/s, write_iops 5/s burst 10, read_bps 1536 B/s burst 4 MiB"
        );
    }

    #[test]
    fn drive_statuses() {
        let mut status = DriveStatus {
            drive_id: "data".into(),
            backend: "volume".into(),
            path: "/store/volumes/data".into(),
            capacity_bytes: 1 << 30,
            read_only: false,
            limits: serde_json::from_value(json!({"write_bps": {"rate": 1048576}})).unwrap(),
            counters: None,
        };
        assert_eq!(
            drive_status_text(&status),
            "drive data: volume /store/volumes/data, 1 GiB (1073741824 bytes), read-write\n\
             limits: write_bps 1 MiB/s\n\
             counters: none (the VM has not started)"
        );
        status.read_only = true;
        status.limits = Default::default();
        status.counters = Some(DriveCounters {
            requests: 10,
            read_requests: 6,
            write_requests: 4,
            read_bytes: 24576,
            write_bytes: 16384,
            io_errors: 1,
            throttled: 2,
        });
        assert_eq!(
            drive_status_text(&status),
            "drive data: volume /store/volumes/data, 1 GiB (1073741824 bytes), read-only\n\
             limits: none\n\
             counters: 10 requests (6 reads, 4 writes), 24576 bytes read, 16384 bytes written, \
             1 I/O errors, throttled 2 times"
        );
    }

    #[test]
    fn snapshot_lines() {
        let snapshot = DriveSnapshot {
            name: "base".into(),
            created: 1_700_000_000,
            size_bytes: 1 << 30,
        };
        assert_eq!(
            snapshot_line(&snapshot),
            "base: 1 GiB, taken 2023-11-14T22:13:20Z"
        );
        assert_eq!(snapshots_text("data", &[]), "drive data has no snapshots");
        let second = DriveSnapshot {
            name: "v2".into(),
            created: 1_700_000_001,
            size_bytes: 2 << 30,
        };
        assert_eq!(
            snapshots_text("data", &[snapshot, second]),
            "base: 1 GiB, taken 2023-11-14T22:13:20Z\n\
             v2: 2 GiB, taken 2023-11-14T22:13:21Z"
        );
    }
}
