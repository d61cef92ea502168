//! Human-readable summaries of API responses.

use std::path::Path;

use vmm::api::{InstanceInfo, VmState};
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
    let mut flags = Vec::new();
    if drive.is_read_only {
        flags.push("read-only");
    }
    if drive.io_direct {
        flags.push("O_DIRECT");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(", "))
    };
    format!(
        "drive {}: {}{flags}",
        drive.drive_id,
        path(vmm::drives::drive_path(drive))
    )
}

fn net_line(net: &NetConfig) -> String {
    let backend = match (&net.host_dev_name, &net.socket_path, &net.peer_socket_path) {
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
            drives: vec![DriveConfig {
                drive_id: "root".into(),
                path_on_host: PathBuf::from("/root.img"),
                is_read_only: true,
                io_direct: false,
            }],
            nets: vec![NetConfig {
                iface_id: "eth0".into(),
                host_dev_name: Some("tap0".into()),
                socket_path: None,
                peer_socket_path: None,
                guest_mac: Some("02:00:00:00:00:01".into()),
            }],
            serial: Default::default(),
        };
        assert_eq!(
            config_summary(&config),
            "machine: 2 vCPUs, 256 MiB\n\
             boot: kernel /k, args \"console=ttyS0\"\n\
             drive root: /root.img (read-only)\n\
             net eth0: TAP tap0, MAC 02:00:00:00:00:01\n\
             serial: output stdout, input none"
        );
    }
}
