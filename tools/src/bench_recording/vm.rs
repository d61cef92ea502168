//! The `Vm` driver: a VMM configured, recorded and started through its API, then stopped
//! and measured.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vmm::api::routes::ActionType;
use vmm::api::VmState;
use vmm::config::VmConfig;

use super::cpu::CpuSampler;
use super::{err, CaptureSize, Mode, RunCost, BUFFER};
use crate::api_client::Client;
use crate::guest_run::{reprise_api_command, GuestProcess};

/// A VMM configured and started through its API.
pub(super) struct Vm {
    pub(super) process: GuestProcess,
    client: Client,
    cpu: CpuSampler,
}

/// How long the VMM may take to serve its API socket.
const API_WAIT: Duration = Duration::from_secs(10);
/// How long a VM may take to stop once its workload ended.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl Vm {
    /// Starts a VMM with its API on `dir/api.sock` (in `netns` if given), configures it with
    /// `config` (a `--config-file` body), sets up the recording of `mode` into `capture`
    /// and starts the VM.
    pub(super) fn launch(
        config: &Value,
        dir: &Path,
        capture: &Path,
        mode: Mode,
        netns: Option<&str>,
    ) -> Result<Vm, String> {
        let sock = dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let config: VmConfig = serde_json::from_value(config.clone()).map_err(err)?;
        let cmd = reprise_api_command(&sock, netns).map_err(err)?;
        let process = GuestProcess::spawn("reprise", cmd, true).map_err(err)?;
        let client = Client::new(&sock);
        let deadline = Instant::now() + API_WAIT;
        while client.instance_info().is_err() {
            if Instant::now() > deadline {
                return Err(format!("reprise did not serve {}", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let api = |e: crate::api_client::ClientError| format!("reprise API: {e}");
        client.put_machine_config(&config.machine).map_err(api)?;
        if let Some(boot) = &config.boot {
            client.put_boot_source(boot).map_err(api)?;
        }
        for d in &config.drives {
            client.put_drive(d).map_err(api)?;
        }
        for n in &config.nets {
            client.put_net(n).map_err(api)?;
        }
        if let Some(start) = mode.recording(capture) {
            let _ = std::fs::remove_dir_all(capture);
            client.start_recording(&start).map_err(api)?;
        }
        let cpu = CpuSampler::start(process.child.id());
        client.action(ActionType::InstanceStart).map_err(api)?;
        Ok(Vm {
            process,
            client,
            cpu,
        })
    }

    /// Waits for the guest to stop (which ends and flushes its recording), reads the
    /// capture's size if it was recorded, and ends the VMM.
    pub(super) fn finish(mut self, mode: Mode) -> Result<RunCost, String> {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Ok(info) = self.client.instance_info() {
                if info.state == VmState::Stopped {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("the VM did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let capture = if mode == Mode::Off {
            None
        } else {
            let status = self.client.recording_status().map_err(err)?;
            let b = status
                .buffers
                .first()
                .ok_or("GET /recording lists no buffer")?;
            if let Some(e) = &b.last_error {
                return Err(format!("capture buffer: {e}"));
            }
            let span_ns = b
                .newest_vm_time_ns
                .zip(b.oldest_vm_time_ns)
                .map_or(0, |(n, o)| n.saturating_sub(o));
            Some(CaptureSize {
                events: b.events,
                bytes: b.bytes,
                span_s: span_ns as f64 * 1e-9,
                dropped: b.dropped_events,
            })
        };
        let cpu = self.cpu.stop();
        let thread = |name: &str| cpu.get(name).copied().unwrap_or(0.0);
        // The VMM keeps serving its API after the VM stops.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        Ok(RunCost {
            capture,
            event_loop_cpu_s: thread("event-loop"),
            // The recorder names each writer thread `capture-<buffer>`.
            writer_cpu_s: thread(&format!("capture-{BUFFER}")),
        })
    }
}
