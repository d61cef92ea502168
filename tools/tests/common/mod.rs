//! Shared test fixture: the real API server on a temporary socket, driving a mock VMM that
//! keeps a configuration and a lifecycle state and records the calls it gets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vmm::api::server::{self, ApiServer};
use vmm::api::{
    ApiError, DriveCounters, DriveSnapshot, DriveStatus, InstanceInfo, VmState, VmmControl,
};
use vmm::config::{
    BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig, VmConfig,
};

/// Size of every drive until it is resized (1 GiB).
pub const DRIVE_SIZE: u64 = 1 << 30;

/// `created` of the first snapshot; each later one is a second later.
pub const FIRST_SNAPSHOT_TIME: u64 = 1_700_000_000;

/// The counters every drive reports once the VM has started.
pub const COUNTERS: DriveCounters = DriveCounters {
    requests: 10,
    read_requests: 6,
    write_requests: 4,
    read_bytes: 24576,
    write_bytes: 16384,
    io_errors: 0,
    throttled: 2,
};

/// A call the mock received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MachineConfig(MachineConfig),
    BootSource(BootSource),
    Drive(DriveConfig),
    Net(NetConfig),
    Serial(SerialConfig),
    PatchDrive(DrivePatch),
    SnapshotDrive(String, String),
    Start,
    Stop,
    Pause,
    Resume,
    LoadSnapshot(vmm::api::SnapshotLoad),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    state: Option<VmState>,
    config: VmConfig,
    sizes: BTreeMap<String, u64>,
    snapshots: BTreeMap<String, Vec<DriveSnapshot>>,
    taken: u64,
}

impl Inner {
    fn state(&self) -> VmState {
        self.state.unwrap_or(VmState::NotStarted)
    }

    fn drive(&self, drive_id: &str) -> Result<&DriveConfig, ApiError> {
        self.config
            .drives
            .iter()
            .find(|d| d.drive_id == drive_id)
            .ok_or_else(|| ApiError::not_found(format!("there is no drive `{drive_id}`")))
    }

    fn size(&self, drive_id: &str) -> u64 {
        self.sizes.get(drive_id).copied().unwrap_or(DRIVE_SIZE)
    }

    /// Snapshots need a volume and a started VM.
    fn running_volume(&self, drive_id: &str) -> Result<(), ApiError> {
        let drive = self.drive(drive_id)?;
        if !matches!(self.state(), VmState::Running | VmState::Paused) {
            return Err(ApiError::conflict(
                "drive snapshots are taken while the VM runs",
            ));
        }
        if drive.volume_path.is_none() {
            return Err(ApiError::bad_request(format!(
                "drive `{drive_id}` is a raw image; only block-store volumes have snapshots"
            )));
        }
        Ok(())
    }
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
            vm_time_ns: None,
            guest_progress: None,
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

    fn drive_status(&self, drive_id: &str) -> Result<DriveStatus, ApiError> {
        let inner = self.lock();
        let drive = inner.drive(drive_id)?;
        let (backend, path) = match (&drive.volume_path, &drive.path_on_host) {
            (Some(volume), _) => ("volume", volume),
            (None, Some(image)) => ("raw", image),
            (None, None) => return Err(ApiError::internal("a drive without a backend")),
        };
        Ok(DriveStatus {
            drive_id: drive_id.to_string(),
            backend: backend.into(),
            path: path.display().to_string(),
            capacity_bytes: inner.size(drive_id),
            read_only: drive.is_read_only,
            limits: drive.limits.unwrap_or_default(),
            counters: (inner.state() != VmState::NotStarted).then_some(COUNTERS),
        })
    }

    fn patch_drive(&self, patch: DrivePatch) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner.calls.push(Call::PatchDrive(patch.clone()));
        patch.validate().map_err(|e| ApiError::bad_request(e.0))?;
        inner.drive(&patch.drive_id)?;
        match (inner.state(), patch.size_bytes) {
            (VmState::Stopped, _) => {
                return Err(ApiError::conflict(
                    "the VM has stopped; its drives can no longer change",
                ))
            }
            (VmState::NotStarted, Some(_)) => {
                return Err(ApiError::conflict("a drive is resized while the VM runs"))
            }
            (_, Some(size)) if size < inner.size(&patch.drive_id) && !patch.allow_shrink => {
                return Err(ApiError::bad_request(format!(
                    "drive `{}`: {size} bytes is smaller than the current size; set allow_shrink to shrink",
                    patch.drive_id
                )))
            }
            (_, Some(size)) => {
                inner.sizes.insert(patch.drive_id.clone(), size);
            }
            (_, None) => {}
        }
        if let Some(limits) = patch.limits {
            let drive = inner.config.drives.iter_mut();
            for d in drive.filter(|d| d.drive_id == patch.drive_id) {
                d.limits = (!limits.is_unlimited()).then_some(limits);
            }
        }
        Ok(())
    }

    fn set_snapshot_schedule(&self, _schedule: vmm::api::SnapshotSchedule) -> Result<(), ApiError> {
        Ok(())
    }

    fn create_snapshot(
        &self,
        request: vmm::api::SnapshotCreate,
    ) -> Result<vmm::api::SnapshotCreated, ApiError> {
        let id = request.snapshot_id.unwrap_or_else(|| "snap-1".into());
        let dir = request.snapshot_dir.join(&id).display().to_string();
        Ok(vmm::api::SnapshotCreated {
            id,
            dir,
            pause_us: 1500,
            stop_us: 40,
            memory_bytes: 1 << 20,
        })
    }

    fn snapshot_drive(&self, drive_id: &str, name: &str) -> Result<DriveSnapshot, ApiError> {
        let mut inner = self.lock();
        inner
            .calls
            .push(Call::SnapshotDrive(drive_id.into(), name.into()));
        inner.running_volume(drive_id)?;
        if inner
            .snapshots
            .get(drive_id)
            .is_some_and(|list| list.iter().any(|s| s.name == name))
        {
            return Err(ApiError::bad_request(format!(
                "the volume already has a snapshot `{name}`"
            )));
        }
        let snapshot = DriveSnapshot {
            name: name.into(),
            created: FIRST_SNAPSHOT_TIME + inner.taken,
            size_bytes: inner.size(drive_id),
        };
        inner.taken += 1;
        inner
            .snapshots
            .entry(drive_id.into())
            .or_default()
            .push(snapshot.clone());
        Ok(snapshot)
    }

    fn drive_snapshots(&self, drive_id: &str) -> Result<Vec<DriveSnapshot>, ApiError> {
        let inner = self.lock();
        inner.running_volume(drive_id)?;
        Ok(inner.snapshots.get(drive_id).cloned().unwrap_or_default())
    }

    fn load_snapshot(&self, request: vmm::api::SnapshotLoad) -> Result<(), ApiError> {
        let paused = !request.resume;
        let to = if paused {
            VmState::Paused
        } else {
            VmState::Running
        };
        self.transition(Call::LoadSnapshot(request), &[VmState::NotStarted], to)
    }

    // The store routes use the real store code, on the directory the test names.
    fn list_snapshots(&self, store: &std::path::Path) -> Result<vmm::api::SnapshotList, ApiError> {
        Ok(vmm::snapshots::catalog::list(store)?)
    }

    fn snapshot_info(
        &self,
        store: &std::path::Path,
        id: &str,
    ) -> Result<vmm::api::SnapshotInfo, ApiError> {
        Ok(vmm::snapshots::catalog::info(store, id)?)
    }

    fn delete_snapshot(&self, store: &std::path::Path, id: &str) -> Result<(), ApiError> {
        Ok(vmm::snapshots::catalog::delete(store, id)?)
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

    fn start_recording(&self, _request: vmm::api::RecordingStart) -> Result<(), ApiError> {
        Err(ApiError::conflict("the mock does not record"))
    }

    fn recording_status(&self) -> vmm::api::RecordingStatus {
        vmm::api::RecordingStatus::default()
    }

    fn stop_recording(&self) -> Result<vmm::api::RecordingStatus, ApiError> {
        Err(ApiError::conflict("no recording is running"))
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
