//! The VM configuration: what the API's PUT requests and `--config-file` describe.
//!
//! Field names follow Firecracker's API so that orchestrators feel at home. Every struct
//! rejects unknown fields; [`VmConfig::validate`] checks values and referenced files.

use std::path::PathBuf;

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
        MachineConfig { vcpu_count: 1, mem_size_mib: 128, huge_pages: false }
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
    /// Raw image file on the host.
    pub path_on_host: PathBuf,
    /// Refuse guest writes.
    #[serde(default)]
    pub is_read_only: bool,
    /// Open the image with O_DIRECT (bypass the host page cache).
    #[serde(default)]
    pub io_direct: bool,
}

/// `PUT /network-interfaces/{iface_id}`. Exactly one backend must be given.
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
