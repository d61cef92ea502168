//! Running the test guest under Reprise or QEMU and reading its serial output as it comes,
//! with the time each line arrived. Shared by the demo and the benchmarks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Why a guest run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A binary could not be found or started.
    #[error("cannot start {what}: {detail}")]
    Start {
        /// Which program.
        what: String,
        /// Why.
        detail: String,
    },
    /// The expected line did not arrive in time.
    #[error("{what}: no line containing {needle:?} within {timeout:?}; output so far:\n{output}")]
    Timeout {
        /// Which program.
        what: String,
        /// The awaited text.
        needle: String,
        /// The time allowed.
        timeout: Duration,
        /// What it printed.
        output: String,
    },
    /// The program ended before printing the expected line.
    #[error("{what} exited before printing {needle:?}; output:\n{output}")]
    Exited {
        /// Which program.
        what: String,
        /// The awaited text.
        needle: String,
        /// What it printed.
        output: String,
    },
}

/// The `reprise` binary: `$REPRISE_BIN`, or the one built next to this program (in the same
/// target directory, also when this program is a test under `deps/`).
pub fn reprise_binary() -> Result<PathBuf, RunError> {
    if let Some(p) = std::env::var_os("REPRISE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| RunError::Start {
        what: "reprise".into(),
        detail: e.to_string(),
    })?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [
        dir.join("reprise"),
        dir.parent().map(|d| d.join("reprise")).unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| RunError::Start {
            what: "reprise".into(),
            detail: format!(
                "{} does not exist; build the whole workspace first (cargo build --release)",
                candidates[0].display()
            ),
        })
}

/// A guest process whose standard output carries the serial console.
pub struct GuestProcess {
    /// What runs it (for messages).
    pub what: String,
    /// The process.
    pub child: Child,
    /// When it was spawned.
    pub started: Instant,
    lines: Receiver<(Instant, String)>,
    /// Lines read so far.
    pub output: Vec<String>,
}

impl GuestProcess {
    /// Spawns `cmd` with stdout piped and stderr discarded or inherited.
    pub fn spawn(what: &str, mut cmd: Command, quiet_stderr: bool) -> Result<Self, RunError> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if quiet_stderr {
            cmd.stderr(Stdio::null());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| RunError::Start {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        let stdout: ChildStdout = child.stdout.take().ok_or_else(|| RunError::Start {
            what: what.to_string(),
            detail: "no stdout pipe".into(),
        })?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(GuestProcess {
            what: what.to_string(),
            child,
            started,
            lines: rx,
            output: Vec::new(),
        })
    }

    /// Waits for a line containing `needle`; returns the time since spawn when it arrived.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Result<Duration, RunError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = line.contains(needle);
                    self.output.push(line);
                    if hit {
                        return Ok(at - self.started);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(RunError::Timeout {
                        what: self.what.clone(),
                        needle: needle.into(),
                        timeout,
                        output: self.output.join("\n"),
                    })
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Exited {
                        what: self.what.clone(),
                        needle: needle.into(),
                        output: self.output.join("\n"),
                    })
                }
            }
        }
    }

    /// Lines that arrive within `wait` (with a zero `wait`, those already received), in
    /// order, with the time each arrived; they are added to `output` too.
    pub fn lines_for(&mut self, wait: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                self.lines.try_recv().ok()
            } else {
                self.lines.recv_timeout(left).ok()
            };
            let Some((at, line)) = next else { break };
            self.output.push(line.clone());
            lines.push((at, line));
        }
        lines
    }

    /// Waits for the process to end (killing it after `timeout`); returns whether it
    /// exited successfully.
    pub fn finish(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok((_, line)) = self.lines.try_recv() {
                    self.output.push(line);
                }
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for GuestProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A Unix-datagram network attachment: the VMM binds `vmm_sock`, the host side `host_sock`.
pub struct DgramNet {
    /// Socket the VMM binds.
    pub vmm_sock: PathBuf,
    /// Socket the host side binds.
    pub host_sock: PathBuf,
    /// Guest MAC address.
    pub mac: String,
}

/// Describes a guest boot for either VMM.
pub struct GuestSpec<'a> {
    /// The guest ELF.
    pub kernel: &'a Path,
    /// Command line (the VMM appends its device entries).
    pub args: String,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// vCPUs.
    pub vcpus: u8,
    /// Disks, in order: raw image files, or block-store volume directories (Reprise only).
    pub disks: Vec<PathBuf>,
    /// Optional datagram network.
    pub net: Option<DgramNet>,
}

/// The Reprise VM configuration (the `--config-file` body) for `spec`.
pub fn reprise_config(spec: &GuestSpec<'_>) -> serde_json::Value {
    let drives: Vec<serde_json::Value> = spec
        .disks
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // A directory is a block-store volume; a file is a raw image.
            let key = if p.is_dir() {
                "volume_path"
            } else {
                "path_on_host"
            };
            serde_json::json!({"drive_id": format!("disk{i}"), key: p})
        })
        .collect();
    let nets: Vec<serde_json::Value> = spec
        .net
        .iter()
        .map(|n| {
            serde_json::json!({"iface_id": "net0", "socket_path": n.vmm_sock,
                               "peer_socket_path": n.host_sock, "guest_mac": n.mac})
        })
        .collect();
    serde_json::json!({
        "machine-config": {"vcpu_count": spec.vcpus, "mem_size_mib": spec.mem_mib},
        "boot-source": {"kernel_image_path": spec.kernel, "boot_args": spec.args},
        "drives": drives,
        "network-interfaces": nets,
    })
}

/// A `reprise --config-file` command for `spec`, writing its config into `dir`.
pub fn reprise_command(spec: &GuestSpec<'_>, dir: &Path) -> Result<Command, RunError> {
    let config = reprise_config(spec);
    let path = dir.join("reprise-vm.json");
    let text = serde_json::to_vec_pretty(&config).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| RunError::Start {
        what: "reprise".into(),
        detail: format!("cannot write {}: {e}", path.display()),
    })?;
    let mut cmd = Command::new(reprise_binary()?);
    cmd.arg("--config-file")
        .arg(path)
        .args(["--log-level", "warn"]);
    Ok(cmd)
}

/// A `reprise --api-sock` command: the VMM waits to be configured and started through the
/// API on `api_sock`. With `netns`, it runs in that network namespace (`ip netns exec`,
/// which execs it: the child's pid is the VMM's).
pub fn reprise_api_command(api_sock: &Path, netns: Option<&str>) -> Result<Command, RunError> {
    let bin = reprise_binary()?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("--api-sock")
        .arg(api_sock)
        .args(["--log-level", "warn"]);
    Ok(cmd)
}

/// A QEMU microvm command running `spec` with the same devices (virtio-mmio, modern).
///
/// `-cpu host,-arch-capabilities`: on PVM hosts KVM refuses QEMU's write of
/// IA32_ARCH_CAPABILITIES (MSR 0x10a) and QEMU 7.2 aborts with plain `-cpu host`.
pub fn qemu_command(spec: &GuestSpec<'_>) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "microvm,acpi=off",
        "-accel",
        "kvm",
        "-cpu",
        "host,-arch-capabilities",
    ])
    .args([
        "-m",
        &spec.mem_mib.to_string(),
        "-smp",
        &spec.vcpus.to_string(),
    ])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ])
    .args(["-no-reboot", "-global", "virtio-mmio.force-legacy=false"])
    .arg("-kernel")
    .arg(spec.kernel)
    .args(["-append", &spec.args]);
    for (i, disk) in spec.disks.iter().enumerate() {
        cmd.arg("-drive")
            .arg(format!(
                "id=d{i},file={},format=raw,if=none,discard=unmap",
                disk.display()
            ))
            .args([
                "-device",
                &format!("virtio-blk-device,drive=d{i},serial=disk{i}"),
            ]);
    }
    if let Some(n) = &spec.net {
        cmd.arg("-netdev")
            .arg(format!(
                "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                n.vmm_sock.display(),
                n.host_sock.display()
            ))
            .args([
                "-device",
                &format!("virtio-net-device,netdev=n0,mac={}", n.mac),
            ]);
    }
    cmd
}

/// Whether QEMU can be run here.
pub fn qemu_available() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
