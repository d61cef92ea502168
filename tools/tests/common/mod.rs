//! Shared test fixture: the real API server on a temporary socket, driving a mock VMM that
//! keeps a configuration and a lifecycle state and records the calls it gets.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vmm::api::server::{self, ApiServer};
use vmm::api::{ApiError, InstanceInfo, VmState, VmmControl};
use vmm::config::{BootSource, DriveConfig, MachineConfig, NetConfig, SerialConfig, VmConfig};

/// A call the mock received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MachineConfig(MachineConfig),
    BootSource(BootSource),
    Drive(DriveConfig),
    Net(NetConfig),
    Serial(SerialConfig),
    Start,
    Stop,
    Pause,
    Resume,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    state: Option<VmState>,
    config: VmConfig,
}

/// The mock VMM.
#[derive(Default)]
pub struct Mock {
    inner: Mutex<Inner>,
}

impl Mock {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn configure(&self, call: Call, apply: impl FnOnce(&mut VmConfig)) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner.calls.push(call);
        if inner.state.is_some() {
            return Err(ApiError::conflict(
                "the VM has started; its configuration can no longer change",
            ));
        }
        apply(&mut inner.config);
        Ok(())
    }

    fn transition(&self, call: Call, from: &[VmState], to: VmState) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner.calls.push(call.clone());
        let state = inner.state.unwrap_or(VmState::NotStarted);
        if !from.contains(&state) {
            return Err(ApiError::conflict(format!(
                "cannot {call:?}: the VM is {state:?}"
            )));
        }
        inner.state = Some(to);
        Ok(())
    }
}

impl VmmControl for Mock {
    fn instance_info(&self) -> InstanceInfo {
        let state = self.lock().state.unwrap_or(VmState::NotStarted);
        InstanceInfo {
            id: "test-vm".into(),
            state,
            vmm_version: "9.9.9".into(),
            app_name: "reprise".into(),
            exit_reason: (state == VmState::Stopped).then(|| "stopped by the API".into()),
        }
    }

    fn vm_config(&self) -> VmConfig {
        self.lock().config.clone()
    }

    fn put_machine_config(&self, config: MachineConfig) -> Result<(), ApiError> {
        if config.vcpu_count == 0 || config.vcpu_count > vmm::config::MAX_VCPUS {
            return Err(ApiError::bad_request(format!(
                "vcpu_count {} is out of range",
                config.vcpu_count
            )));
        }
        self.configure(Call::MachineConfig(config.clone()), |c| c.machine = config)
    }

    fn put_boot_source(&self, boot: BootSource) -> Result<(), ApiError> {
        self.configure(Call::BootSource(boot.clone()), |c| c.boot = Some(boot))
    }

    fn put_drive(&self, drive: DriveConfig) -> Result<(), ApiError> {
        self.configure(Call::Drive(drive.clone()), |c| {
            c.drives.retain(|d| d.drive_id != drive.drive_id);
            c.drives.push(drive)
        })
    }

    fn put_net(&self, net: NetConfig) -> Result<(), ApiError> {
        self.configure(Call::Net(net.clone()), |c| {
            c.nets.retain(|n| n.iface_id != net.iface_id);
            c.nets.push(net)
        })
    }

    fn put_serial(&self, serial: SerialConfig) -> Result<(), ApiError> {
        self.configure(Call::Serial(serial.clone()), |c| c.serial = serial)
    }

    fn start(&self) -> Result<(), ApiError> {
        self.transition(Call::Start, &[VmState::NotStarted], VmState::Running)
    }

    fn stop(&self) -> Result<(), ApiError> {
        self.transition(
            Call::Stop,
            &[VmState::Running, VmState::Paused],
            VmState::Stopped,
        )
    }

    fn pause(&self) -> Result<(), ApiError> {
        self.transition(Call::Pause, &[VmState::Running], VmState::Paused)
    }

    fn resume(&self) -> Result<(), ApiError> {
        self.transition(Call::Resume, &[VmState::Paused], VmState::Running)
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reprise-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The API server with a mock VMM behind it.
pub struct Fixture {
    pub mock: Arc<Mock>,
    pub sock: PathBuf,
    _server: ApiServer,
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = TempDir::new("tools");
        let sock = dir.0.join("api.sock");
        let mock = Arc::new(Mock::default());
        let server = server::start(&sock, mock.clone()).expect("the API server starts");
        Fixture {
            mock,
            sock,
            _server: server,
            dir,
        }
    }
}
