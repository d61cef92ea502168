//! A [`VmmControl`] for tests: keeps a configuration and a lifecycle state like the VMM does,
//! records every call, and can be told to fail or panic on the next call.
//!
//! Drives behave like the controller's: every drive has a size ([`DEFAULT_DRIVE_SIZE`] unless
//! set with [`MockControl::set_drive_size`]); drives with a `volume_path` have snapshots,
//! taken only while the VM runs or is paused; resizing needs a running VM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::api::{
    ApiError, DriveCounters, DriveSnapshot, DriveStatus, InstanceInfo, VmState, VmmControl,
};
use crate::config::{
    BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig, VmConfig,
    MAX_VCPUS, MIN_MEM_MIB,
};

/// Size of a drive whose size was not set, in bytes (1 GiB).
pub(crate) const DEFAULT_DRIVE_SIZE: u64 = 1 << 30;

/// `created` of the first snapshot the mock takes; each later one is a second later.
pub(crate) const FIRST_SNAPSHOT_TIME: u64 = 1_700_000_000;

/// The counters every drive reports once the VM has started.
pub(crate) const COUNTERS: DriveCounters = DriveCounters {
    requests: 10,
    read_requests: 6,
    write_requests: 4,
    read_bytes: 24576,
    write_bytes: 16384,
    io_errors: 0,
    throttled: 2,
};

/// One recorded call on the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    CreateSnapshot(crate::api::SnapshotCreate),
    LoadSnapshot(crate::api::SnapshotLoad),
    ListSnapshots(PathBuf),
    SnapshotInfo(PathBuf, String),
    DeleteSnapshot(PathBuf, String),
    MachineConfig(MachineConfig),
    BootSource(BootSource),
    Drive(DriveConfig),
    Net(NetConfig),
    Serial(SerialConfig),
    DriveStatus(String),
    PatchDrive(DrivePatch),
    SnapshotDrive(String, String),
    DriveSnapshots(String),
    Start,
    Stop,
    Pause,
    Resume,
    StartRecording(crate::api::RecordingStart),
    RecordingStatus,
    StopRecording,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    state: Option<VmState>,
    config: VmConfig,
    /// Sizes set by `set_drive_size` or `PATCH`, by drive id.
    sizes: BTreeMap<String, u64>,
    /// Snapshots taken, by drive id.
    snapshots: BTreeMap<String, Vec<DriveSnapshot>>,
    /// Snapshots taken so far, for their `created` times.
    snapshots_taken: u64,
    next_error: Option<ApiError>,
    panic_next: bool,
    /// VM snapshots deleted from the mock store (which holds `base` and its diff `d1`).
    deleted: Vec<String>,
}

/// A manifest of the mock store: `base` (full) or `d1` (a diff of `base`).
pub(crate) fn mock_manifest(id: &str) -> snapshot::Manifest {
    let diff = id != "base";
    let mut m = snapshot::Manifest {
        format: snapshot::manifest::MANIFEST_FORMAT.into(),
        version: snapshot::manifest::MANIFEST_VERSION,
        id: id.into(),
        parent: diff.then(|| "base".to_string()),
        created: if diff {
            1_700_000_001_000
        } else {
            1_700_000_000_000
        },
        kind: if diff {
            snapshot::SnapshotKind::Diff
        } else {
            snapshot::SnapshotKind::Full
        },
        vm_config: serde_json::to_value(VmConfig::default()).unwrap_or_default(),
        volumes: vec![],
        memory: snapshot::MemoryInfo {
            file: if diff { "memory.diff" } else { "memory.full" }.into(),
            layout: snapshot::MemoryLayout {
                regions: vec![snapshot::MemoryRegion {
                    gpa: 0,
                    len: 64 << 20,
                }],
            },
            page_size: 4096,
            data_bytes: 1 << 20,
            file_bytes: 1 << 21,
        },
        state_file: "state.bin".into(),
        crc32: 0,
    };
    m.seal();
    m
}

impl Inner {
    fn drive(&self, drive_id: &str) -> Result<&DriveConfig, ApiError> {
        self.config
            .drives
            .iter()
            .find(|d| d.drive_id == drive_id)
            .ok_or_else(|| ApiError::not_found(format!("there is no drive `{drive_id}`")))
    }

    fn size(&self, drive_id: &str) -> u64 {
        self.sizes
            .get(drive_id)
            .copied()
            .unwrap_or(DEFAULT_DRIVE_SIZE)
    }

    /// The drive, if it is a volume of a started VM (what snapshots need).
    fn running_volume(&self, drive_id: &str) -> Result<&DriveConfig, ApiError> {
        let drive = self.drive(drive_id)?;
        if !matches!(MockControl::state(self), VmState::Running | VmState::Paused) {
            return Err(ApiError::conflict(
                "drive snapshots are taken while the VM runs",
            ));
        }
        if drive.volume_path.is_none() {
            return Err(ApiError::bad_request(format!(
                "drive `{drive_id}` is a raw image; only block-store volumes have snapshots"
            )));
        }
        Ok(drive)
    }
}

/// The mock controller.
#[derive(Default)]
pub(crate) struct MockControl {
    inner: Mutex<Inner>,
}

impl MockControl {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far but `instance_info` and `vm_config`, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Sets the size a drive reports.
    pub(crate) fn set_drive_size(&self, drive_id: &str, size: u64) {
        self.lock().sizes.insert(drive_id.to_string(), size);
    }

    /// Makes the next recorded call return `error`.
    pub(crate) fn fail_next(&self, error: ApiError) {
        self.lock().next_error = Some(error);
    }

    /// Makes the next call of any kind panic.
    pub(crate) fn panic_next(&self) {
        self.lock().panic_next = true;
    }

    fn state(inner: &Inner) -> VmState {
        inner.state.unwrap_or(VmState::NotStarted)
    }

    /// Common prologue: panics or fails if told to, then records `call`.
    fn enter(&self, call: Call) -> Result<MutexGuard<'_, Inner>, ApiError> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.panic_next) {
            drop(inner);
            panic!("mock controller told to panic");
        }
        inner.calls.push(call);
        match inner.next_error.take() {
            Some(error) => Err(error),
            None => Ok(inner),
        }
    }

    fn before_start(inner: &Inner, what: &str) -> Result<(), ApiError> {
        if Self::state(inner) == VmState::NotStarted {
            Ok(())
        } else {
            Err(ApiError::conflict(format!(
                "{what} can only be changed before the VM starts"
            )))
        }
    }

    fn transition(&self, call: Call, from: &[VmState], to: VmState) -> Result<(), ApiError> {
        let mut inner = self.enter(call.clone())?;
        let state = Self::state(&inner);
        if !from.contains(&state) {
            return Err(ApiError::conflict(format!(
                "cannot {call:?} a VM that is {state:?}"
            )));
        }
        inner.state = Some(to);
        Ok(())
    }
}

impl MockControl {
    /// The ids in the mock store `store` (`/snapshots`; any other store is missing).
    fn store_ids(inner: &Inner, store: &Path) -> Result<Vec<&'static str>, ApiError> {
        if store != Path::new("/snapshots") {
            return Err(ApiError::not_found(format!(
                "there is no snapshot store at {}",
                store.display()
            )));
        }
        Ok(["base", "d1"]
            .into_iter()
            .filter(|id| !inner.deleted.iter().any(|d| d == id))
            .collect())
    }
}

impl VmmControl for MockControl {
    fn instance_info(&self) -> InstanceInfo {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.panic_next) {
            drop(inner);
            panic!("mock controller told to panic");
        }
        InstanceInfo {
            id: "mock".into(),
            state: Self::state(&inner),
            vmm_version: "0.0.0-test".into(),
            app_name: "reprise".into(),
            exit_reason: (Self::state(&inner) == VmState::Stopped)
                .then(|| "stopped by the API".into()),
            vm_time_ns: None,
            guest_progress: None,
        }
    }

    fn vm_config(&self) -> VmConfig {
        self.lock().config.clone()
    }

    fn put_machine_config(&self, config: MachineConfig) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::MachineConfig(config.clone()))?;
        Self::before_start(&inner, "the machine configuration")?;
        if config.vcpu_count == 0 || config.vcpu_count > MAX_VCPUS {
            return Err(ApiError::bad_request(format!(
                "vcpu_count {} is out of range: it must be 1..={MAX_VCPUS}",
                config.vcpu_count
            )));
        }
        if config.mem_size_mib < MIN_MEM_MIB {
            return Err(ApiError::bad_request(format!(
                "mem_size_mib {} is too small: at least {MIN_MEM_MIB} MiB is needed",
                config.mem_size_mib
            )));
        }
        inner.config.machine = config;
        Ok(())
    }

    fn put_boot_source(&self, boot: BootSource) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::BootSource(boot.clone()))?;
        Self::before_start(&inner, "the boot source")?;
        inner.config.boot = Some(boot);
        Ok(())
    }

    fn put_drive(&self, drive: DriveConfig) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::Drive(drive.clone()))?;
        Self::before_start(&inner, "drives")?;
        inner.config.drives.retain(|d| d.drive_id != drive.drive_id);
        inner.config.drives.push(drive);
        Ok(())
    }

    fn put_net(&self, net: NetConfig) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::Net(net.clone()))?;
        Self::before_start(&inner, "network interfaces")?;
        inner.config.nets.retain(|n| n.iface_id != net.iface_id);
        inner.config.nets.push(net);
        Ok(())
    }

    fn put_serial(&self, serial: SerialConfig) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::Serial(serial.clone()))?;
        Self::before_start(&inner, "the serial console")?;
        inner.config.serial = serial;
        Ok(())
    }

    fn drive_status(&self, drive_id: &str) -> Result<DriveStatus, ApiError> {
        let inner = self.enter(Call::DriveStatus(drive_id.to_string()))?;
        let drive = inner.drive(drive_id)?;
        let (backend, path) = match (&drive.path_on_host, &drive.volume_path) {
            (_, Some(volume)) => ("volume", volume),
            (Some(image), None) => ("raw", image),
            (None, None) => return Err(ApiError::internal("a drive without a backend")),
        };
        Ok(DriveStatus {
            drive_id: drive_id.to_string(),
            backend: backend.to_string(),
            path: path.display().to_string(),
            capacity_bytes: inner.size(drive_id),
            read_only: drive.is_read_only,
            limits: drive.limits.unwrap_or_default(),
            counters: (Self::state(&inner) != VmState::NotStarted).then_some(COUNTERS),
        })
    }

    fn patch_drive(&self, patch: DrivePatch) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::PatchDrive(patch.clone()))?;
        patch.validate().map_err(|e| ApiError::bad_request(e.0))?;
        let drive = inner.drive(&patch.drive_id)?;
        let read_only = drive.is_read_only;
        let state = Self::state(&inner);
        if state == VmState::Stopped {
            return Err(ApiError::conflict(
                "the VM has stopped; its drives can no longer change",
            ));
        }
        if let Some(size) = patch.size_bytes {
            if state == VmState::NotStarted {
                return Err(ApiError::conflict("a drive is resized while the VM runs"));
            }
            if read_only {
                return Err(ApiError::bad_request(format!(
                    "drive `{}` is read-only",
                    patch.drive_id
                )));
            }
            let current = inner.size(&patch.drive_id);
            if size < current && !patch.allow_shrink {
                return Err(ApiError::bad_request(format!(
                    "drive `{}`: {size} bytes is smaller than the current {current}; set \
                     allow_shrink to shrink",
                    patch.drive_id
                )));
            }
        }
        if let Some(size) = patch.size_bytes {
            inner.sizes.insert(patch.drive_id.clone(), size);
        }
        if let Some(limits) = patch.limits {
            if let Some(drive) = inner
                .config
                .drives
                .iter_mut()
                .find(|d| d.drive_id == patch.drive_id)
            {
                drive.limits = (!limits.is_unlimited()).then_some(limits);
            }
        }
        Ok(())
    }

    fn set_snapshot_schedule(
        &self,
        _schedule: crate::api::SnapshotSchedule,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    fn create_snapshot(
        &self,
        request: crate::api::SnapshotCreate,
    ) -> Result<crate::api::SnapshotCreated, ApiError> {
        let id = request
            .snapshot_id
            .clone()
            .unwrap_or_else(|| "snap-1".into());
        let dir = request.snapshot_dir.join(&id).display().to_string();
        let _inner = self.enter(Call::CreateSnapshot(request))?;
        Ok(crate::api::SnapshotCreated {
            id,
            dir,
            pause_us: 1500,
            stop_us: 40,
            memory_bytes: 1 << 20,
        })
    }

    fn snapshot_drive(&self, drive_id: &str, name: &str) -> Result<DriveSnapshot, ApiError> {
        let mut inner = self.enter(Call::SnapshotDrive(drive_id.to_string(), name.to_string()))?;
        inner.running_volume(drive_id)?;
        let taken = inner.snapshots.get(drive_id).into_iter().flatten();
        if taken.into_iter().any(|s| s.name == name) {
            return Err(ApiError::bad_request(format!(
                "volume of drive `{drive_id}` already has a snapshot `{name}`"
            )));
        }
        let snapshot = DriveSnapshot {
            name: name.to_string(),
            created: FIRST_SNAPSHOT_TIME + inner.snapshots_taken,
            size_bytes: inner.size(drive_id),
        };
        inner.snapshots_taken += 1;
        inner
            .snapshots
            .entry(drive_id.to_string())
            .or_default()
            .push(snapshot.clone());
        Ok(snapshot)
    }

    fn drive_snapshots(&self, drive_id: &str) -> Result<Vec<DriveSnapshot>, ApiError> {
        let inner = self.enter(Call::DriveSnapshots(drive_id.to_string()))?;
        inner.running_volume(drive_id)?;
        Ok(inner.snapshots.get(drive_id).cloned().unwrap_or_default())
    }

    fn load_snapshot(&self, request: crate::api::SnapshotLoad) -> Result<(), ApiError> {
        let resume = request.resume;
        let mut inner = self.enter(Call::LoadSnapshot(request))?;
        if Self::state(&inner) != VmState::NotStarted || inner.config != VmConfig::default() {
            return Err(ApiError::conflict("a VM is already configured or running"));
        }
        inner.state = Some(if resume {
            VmState::Running
        } else {
            VmState::Paused
        });
        Ok(())
    }

    fn list_snapshots(&self, store: &Path) -> Result<crate::api::SnapshotList, ApiError> {
        let inner = self.enter(Call::ListSnapshots(store.to_path_buf()))?;
        let ids = Self::store_ids(&inner, store)?;
        Ok(crate::api::SnapshotList {
            snapshots: ids
                .iter()
                .map(|id| crate::api::SnapshotSummary::from(&mock_manifest(id)))
                .collect(),
            ignored: vec![crate::api::IgnoredEntry {
                name: "half.tmp".into(),
                reason: "a half-written snapshot".into(),
                partial: true,
            }],
        })
    }

    fn snapshot_info(&self, store: &Path, id: &str) -> Result<crate::api::SnapshotInfo, ApiError> {
        let inner = self.enter(Call::SnapshotInfo(store.to_path_buf(), id.to_string()))?;
        let ids = Self::store_ids(&inner, store)?;
        if !ids.contains(&id) {
            return Err(ApiError::not_found(format!("there is no snapshot {id:?}")));
        }
        let chain = if id == "base" {
            vec!["base".to_string()]
        } else {
            vec!["base".to_string(), id.to_string()]
        };
        let dependents = if id == "base" {
            ids.iter()
                .filter(|d| **d != "base")
                .map(|d| d.to_string())
                .collect()
        } else {
            vec![]
        };
        Ok(crate::api::SnapshotInfo {
            manifest: mock_manifest(id),
            chain,
            dependents,
        })
    }

    fn delete_snapshot(&self, store: &Path, id: &str) -> Result<(), ApiError> {
        let mut inner = self.enter(Call::DeleteSnapshot(store.to_path_buf(), id.to_string()))?;
        let ids = Self::store_ids(&inner, store)?;
        if !ids.contains(&id) {
            return Err(ApiError::not_found(format!("there is no snapshot {id:?}")));
        }
        if id == "base" && ids.contains(&"d1") {
            return Err(ApiError::conflict(
                "cannot delete: snapshot \"base\" is needed by diff snapshot(s) [\"d1\"]",
            ));
        }
        inner.deleted.push(id.to_string());
        Ok(())
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

    fn start_recording(&self, request: crate::api::RecordingStart) -> Result<(), ApiError> {
        self.enter(Call::StartRecording(request)).map(|_| ())
    }

    fn recording_status(&self) -> crate::api::RecordingStatus {
        drop(self.enter(Call::RecordingStatus));
        crate::api::RecordingStatus::default()
    }

    fn stop_recording(&self) -> Result<crate::api::RecordingStatus, ApiError> {
        drop(self.enter(Call::StopRecording)?);
        Ok(crate::api::RecordingStatus::default())
    }
}
