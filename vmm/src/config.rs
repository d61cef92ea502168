//! The VM configuration: what the API's PUT requests and `--config-file` describe.
//!
//! Field names follow Firecracker's API so that orchestrators feel at home. Every struct
//! rejects unknown fields; [`VmConfig::validate`] checks values and referenced files.

use std::path::PathBuf;

use blockstore::limits::Limits;
use serde::{Deserialize, Serialize};

/// Largest vCPU count accepted.
pub const MAX_VCPUS: u8 = 32;
/// Smallest guest memory accepted, in MiB.
pub const MIN_MEM_MIB: u64 = 16;
/// Largest guest memory accepted, in MiB (below the 3 GiB MMIO hole on this layout is not
/// required; memory above it is placed past 4 GiB).
pub const MAX_MEM_MIB: u64 = 256 * 1024;

/// `PUT /machine-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Number of vCPUs (1..=32).
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    pub mem_size_mib: u64,
    /// Back guest memory with 2 MiB huge pages (hugetlbfs via memfd).
    #[serde(default)]
    pub huge_pages: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            vcpu_count: 1,
            mem_size_mib: 128,
            huge_pages: false,
        }
    }
}

/// `PUT /boot-source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSource {
    /// Path of the kernel: an ELF with a Xen PVH entry note.
    pub kernel_image_path: PathBuf,
    /// Kernel command line. The VMM appends `virtio_mmio.device=` entries for its devices.
    #[serde(default)]
    pub boot_args: Option<String>,
    /// Optional initrd, passed as the first PVH module.
    #[serde(default)]
    pub initrd_path: Option<PathBuf>,
}

/// `PUT /drives/{drive_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveConfig {
    /// Identifier; also returned to the guest by VIRTIO_BLK_T_GET_ID.
    pub drive_id: String,
    /// Raw image file on the host. Exactly one of `path_on_host` and `volume_path` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_on_host: Option<PathBuf>,
    /// Block-store volume directory (`<store>/volumes/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_path: Option<PathBuf>,
    /// Refuse guest writes.
    #[serde(default)]
    pub is_read_only: bool,
    /// Open the image with O_DIRECT (bypass the host page cache; raw images only).
    #[serde(default)]
    pub io_direct: bool,
    /// I/O limits (token buckets); changeable while the guest runs with `PATCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `PATCH /drives/{drive_id}`: changes to an attached drive, applied while the guest runs
/// (or to the configuration before start). Omitted fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivePatch {
    /// The drive to change; must equal the path's.
    pub drive_id: String,
    /// New size in bytes (a multiple of 512). The guest sees the change through a
    /// configuration-change interrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Permit a size smaller than the current one.
    #[serde(default)]
    pub allow_shrink: bool,
    /// With `allow_shrink`: data beyond the new size may be dropped.
    #[serde(default)]
    pub discard_data: bool,
    /// New I/O limits (replace the old ones; `{}` removes every limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `PUT /network-interfaces/{iface_id}`. Exactly one backend must be given, or `detached`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Identifier.
    pub iface_id: String,
    /// Name of a host TAP device (created if missing; needs CAP_NET_ADMIN).
    #[serde(default)]
    pub host_dev_name: Option<String>,
    /// Unix datagram socket backend: the VMM binds this path and exchanges one frame per
    /// datagram with `peer_socket_path`.
    #[serde(default)]
    pub socket_path: Option<PathBuf>,
    /// Peer of the datagram backend.
    #[serde(default)]
    pub peer_socket_path: Option<PathBuf>,
    /// Guest MAC address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub guest_mac: Option<String>,
    /// No host backend: the guest has the interface, but the frames it sends are dropped
    /// and it receives nothing (a clone restored with its interface detached).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
}

/// Where the serial console's output goes and where its input comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// `stdout` (default), `null`, `file:PATH` or `socket:PATH` (a Unix stream socket the
    /// VMM listens on; the connected client receives output and its bytes become input).
    #[serde(default)]
    pub output: Option<String>,
    /// `socket:PATH`: a Unix stream socket whose clients' bytes are delivered as input.
    #[serde(default)]
    pub input: Option<String>,
}

/// The whole VM description: the body of `--config-file` and of `GET /vm/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// vCPUs and memory.
    #[serde(rename = "machine-config", default)]
    pub machine: MachineConfig,
    /// Kernel, command line, initrd.
    #[serde(rename = "boot-source", default)]
    pub boot: Option<BootSource>,
    /// Block devices, in the order the guest sees them.
    #[serde(default)]
    pub drives: Vec<DriveConfig>,
    /// Network devices, in the order the guest sees them.
    #[serde(rename = "network-interfaces", default)]
    pub nets: Vec<NetConfig>,
    /// Serial console wiring.
    #[serde(default)]
    pub serial: SerialConfig,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn check_file(what: &str, path: &std::path::Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => err(format!("{what} {} is not a regular file", path.display())),
        Err(e) => err(format!("{what} {} cannot be used: {e}", path.display())),
    }
}

fn check_id(what: &str, id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 20
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        err(format!(
            "{what} {id:?} is not valid: use 1 to 20 characters from [A-Za-z0-9_-]"
        ))
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], ConfigError> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || {
        ConfigError(format!(
            "guest_mac {s:?} is not a MAC address like 06:00:ac:10:00:02"
        ))
    };
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 {
        return err(format!(
            "guest_mac {s:?} is a multicast address; the low bit of the first byte must be 0"
        ));
    }
    Ok(mac)
}

impl MachineConfig {
    /// Checks the ranges of vCPU count and memory size.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpu_count == 0 || self.vcpu_count > MAX_VCPUS {
            return err(format!(
                "vcpu_count {} is out of range 1..={MAX_VCPUS}",
                self.vcpu_count
            ));
        }
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&self.mem_size_mib) {
            return err(format!(
                "mem_size_mib {} is out of range {MIN_MEM_MIB}..={MAX_MEM_MIB}",
                self.mem_size_mib
            ));
        }
        if self.huge_pages && !self.mem_size_mib.is_multiple_of(2) {
            return err("mem_size_mib must be a multiple of 2 with huge_pages");
        }
        Ok(())
    }
}

impl BootSource {
    /// Checks that the kernel (and initrd) files exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_file("kernel_image_path", &self.kernel_image_path)?;
        if let Some(initrd) = &self.initrd_path {
            check_file("initrd_path", initrd)?;
        }
        if let Some(args) = &self.boot_args {
            if args.len() >= crate::arch::layout::CMDLINE_MAX_SIZE / 2 {
                return err(format!(
                    "boot_args is {} bytes; at most {} are allowed",
                    args.len(),
                    crate::arch::layout::CMDLINE_MAX_SIZE / 2 - 1
                ));
            }
        }
        Ok(())
    }
}

impl DriveConfig {
    /// Checks the id, that exactly one backend is named and exists, and the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_id("drive_id", &self.drive_id)?;
        match (&self.path_on_host, &self.volume_path) {
            (Some(path), None) => check_file("path_on_host", path)?,
            (None, Some(dir)) => {
                if self.io_direct {
                    return err("io_direct applies to raw images (path_on_host) only");
                }
                if !dir.join("manifest.json").is_file() {
                    return err(format!(
                        "volume_path {} is not a block-store volume (no manifest.json in it)",
                        dir.display()
                    ));
                }
            }
            (Some(_), Some(_)) => return err("give only one of path_on_host and volume_path"),
            (None, None) => {
                return err("give path_on_host (a raw image) or volume_path (a volume)")
            }
        }
        if let Some(limits) = &self.limits {
            limits.validate().map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(())
    }
}

impl DrivePatch {
    /// Checks the size and limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(size) = self.size_bytes {
            if size == 0 || !size.is_multiple_of(512) {
                return err(format!(
                    "size_bytes {size} must be a positive multiple of 512"
                ));
            }
        }
        if self.discard_data && !self.allow_shrink {
            return err("discard_data needs allow_shrink");
        }
        if let Some(limits) = &self.limits {
            limits.validate().map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(())
    }
}

impl NetConfig {
    /// Checks the id, that exactly one backend is given (or `detached`), and the MAC.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_id("iface_id", &self.iface_id)?;
        if self.detached {
            if self.host_dev_name.is_some()
                || self.socket_path.is_some()
                || self.peer_socket_path.is_some()
            {
                return err(
                    "a detached interface has no backend: drop host_dev_name, socket_path and \
                     peer_socket_path, or detached",
                );
            }
        } else {
            self.validate_backend()?;
        }
        if let Some(mac) = &self.guest_mac {
            parse_mac(mac)?;
        }
        Ok(())
    }

    fn validate_backend(&self) -> Result<(), ConfigError> {
        match (
            &self.host_dev_name,
            &self.socket_path,
            &self.peer_socket_path,
        ) {
            (Some(tap), None, None) => {
                if tap.is_empty() || tap.len() >= 16 {
                    return err(format!("host_dev_name {tap:?} must be 1 to 15 bytes"));
                }
            }
            (None, Some(_), Some(_)) => {}
            (None, Some(_), None) | (None, None, Some(_)) => {
                return err("the datagram backend needs both socket_path and peer_socket_path")
            }
            (None, None, None) => {
                return err(
                    "give a backend: host_dev_name (TAP) or socket_path + peer_socket_path, \
                     or detached",
                )
            }
            _ => {
                return err(
                    "give only one backend: host_dev_name or socket_path + peer_socket_path",
                )
            }
        }
        Ok(())
    }
}

impl VmConfig {
    /// Checks everything needed to boot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.machine.validate()?;
        match &self.boot {
            Some(b) => b.validate()?,
            None => return err("no boot source: set boot-source.kernel_image_path"),
        }
        let mut ids = std::collections::HashSet::new();
        for d in &self.drives {
            d.validate()?;
            if !ids.insert(d.drive_id.as_str()) {
                return err(format!("drive_id {:?} is used twice", d.drive_id));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for n in &self.nets {
            n.validate()?;
            if !ids.insert(n.iface_id.as_str()) {
                return err(format!("iface_id {:?} is used twice", n.iface_id));
            }
        }
        let count = self.drives.len() + self.nets.len();
        let max = crate::arch::layout::VIRTIO_MAX_DEVICES as usize;
        if count > max {
            return err(format!(
                "{count} virtio devices configured; at most {max} are supported"
            ));
        }
        crate::serial_io::parse_output(self.serial.output.as_deref())
            .map_err(|e| ConfigError(e.to_string()))?;
        crate::serial_io::parse_input(self.serial.input.as_deref())
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_values_with_names() {
        let m = MachineConfig {
            vcpu_count: 0,
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().0.contains("vcpu_count"));
        let m = MachineConfig {
            mem_size_mib: 1,
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().0.contains("mem_size_mib"));
        let b = BootSource {
            kernel_image_path: "/nonexistent/k".into(),
            boot_args: None,
            initrd_path: None,
        };
        assert!(b.validate().unwrap_err().0.contains("/nonexistent/k"));
        assert!(parse_mac("06:00:00:00:00:01").is_ok());
        assert!(parse_mac("07:00:00:00:00:01").is_err());
        assert!(parse_mac("06:00:00:00:00").is_err());
        let n = NetConfig {
            iface_id: "eth0".into(),
            host_dev_name: None,
            socket_path: None,
            peer_socket_path: None,
            guest_mac: None,
            detached: false,
        };
        assert!(n.validate().unwrap_err().0.contains("backend"));
        let detached = NetConfig {
            detached: true,
            ..n.clone()
        };
        assert!(detached.validate().is_ok());
        let both = NetConfig {
            host_dev_name: Some("tap0".into()),
            ..detached
        };
        assert!(both.validate().unwrap_err().0.contains("detached"));
        assert!(VmConfig::default()
            .validate()
            .unwrap_err()
            .0
            .contains("boot source"));
    }

    #[test]
    fn config_file_rejects_unknown_fields() {
        let e = serde_json::from_str::<VmConfig>(
            r#"{"machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "bogus": 1}}"#,
        );
        assert!(e.unwrap_err().to_string().contains("bogus"));
    }
}
