//! Rebuilding a VM from a full snapshot in a new process.
//!
//! Guest memory is mapped `MAP_PRIVATE` from the snapshot's memory image (nothing is
//! copied; the image stays untouched). The VM and its in-kernel devices, the device models
//! and the vCPUs are restored from the state file, every field validated; volume drives get
//! copy-on-write clones of the volume snapshots taken with the VM snapshot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use devices::virtio::{Block, BlockArgs, MmioTransport, MmioTransportArgs, Net, NetArgs};
use snapshot::{Persist, SnapshotStore, StateFile};

use super::create::{sections, SnapshotMeta};
use super::devices_state::{DevicesState, VirtioDeviceState};
use super::net_overrides::{self, NetOverride};
use super::phases::Phases;
use crate::builder::{self, RunningVm};
use crate::config::{DriveConfig, VmConfig};
use crate::device_manager::{DeviceError, DeviceManager, VirtioHandle};
use crate::drives::{self, DriveHandle};
use crate::recording::block::TappedBlock;
use crate::recording::net::TappedNet;
use crate::recording::sources;
use crate::vstate::memory::map_guest_memory_private;
use crate::vstate::vcpu::{ResetLine, VcpuControl};
use crate::vstate::vcpu_state::VcpuState;
use crate::vstate::vm::Vm;
use crate::vstate::vm_state::VmState;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
#[error("restore from {snapshot}: {problem}")]
pub struct RestoreError {
    /// The snapshot directory.
    pub snapshot: String,
    /// What went wrong.
    pub problem: String,
}

/// Drive ids and the clones made for them.
type VolumeClones = Result<Vec<(String, PathBuf)>, String>;

/// Clones every volume snapshot on a thread of its own.
fn spawn_volume_clones(
    volumes: Vec<snapshot::VolumeSnapshot>,
    vm_id: String,
) -> std::io::Result<std::thread::JoinHandle<VolumeClones>> {
    std::thread::Builder::new()
        .name("volume-clones".into())
        .spawn(move || {
            volumes
                .iter()
                .map(|vs| {
                    let clone =
                        clone_volume(Path::new(&vs.volume_path), &vs.snapshot_name, &vm_id)?;
                    Ok((vs.drive_id.clone(), clone))
                })
                .collect()
        })
}

/// A clone of `volume` at `snapshot` for a restored VM, next to the original volume.
fn clone_volume(volume: &Path, snapshot: &str, vm_id: &str) -> Result<PathBuf, String> {
    let base = volume
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("volume");
    for n in 0..10_000 {
        let dir = volume.with_file_name(format!("{base}-{vm_id}-{n}"));
        if !dir.exists() {
            blockstore::volume::Volume::clone_from_snapshot(volume, snapshot, &dir)
                .map_err(|e| e.to_string())?;
            return Ok(dir);
        }
    }
    Err(format!("no free name for a clone of {}", volume.display()))
}

/// What a restored VM changes from the saved configuration (e.g. for clones that run side by
/// side: their own console, their own network or none), and how it starts.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replaces `serial.output`.
    pub serial_output: Option<String>,
    /// Replaces `serial.input`.
    pub serial_input: Option<String>,
    /// Network interfaces detached or moved to other backends (the others as saved).
    pub nets: Vec<NetOverride>,
    /// Leave the vCPUs paused (they have not entered the guest) instead of running them.
    pub paused: bool,
    /// Restore as a clone fed by this replay: NICs take frames from it (plus the backends
    /// of `nets`, for live poking) and drives apply its faults and checks.
    pub replay: Option<Arc<crate::replaying::ReplayHub>>,
}

/// Restores snapshot `dir` (a directory `<store>/<id>`); returns the configuration the VM
/// now runs with (volume paths point at the clones) and the running VM.
pub fn restore(
    dir: &Path,
    vm_id: &str,
    options: &RestoreOptions,
) -> Result<(VmConfig, RunningVm), RestoreError> {
    let fail = |problem: String| RestoreError {
        snapshot: dir.display().to_string(),
        problem,
    };
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail("not a snapshot directory".into()))?;
    let root = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(fail("not a snapshot directory".into())),
    };
    if !dir.is_dir() {
        return Err(fail("there is no snapshot directory there".into()));
    }
    let store = SnapshotStore::open(root).map_err(|e| fail(e.to_string()))?;
    let mut phases = Phases::new(std::time::Instant::now());
    let manifest = store.get(id).map_err(|e| fail(e.to_string()))?;
    let mut config: VmConfig = serde_json::from_value(manifest.vm_config.clone())
        .map_err(|e| fail(format!("the saved VM configuration is not valid: {e}")))?;
    if let Some(out) = &options.serial_output {
        config.serial.output = Some(out.clone());
    }
    if let Some(input) = &options.serial_input {
        config.serial.input = Some(input.clone());
    }
    net_overrides::apply(&mut config, &options.nets).map_err(fail)?;
    // Cloning volumes (a few file creations and flushes each) overlaps the rest.
    let clones = if manifest.volumes.is_empty() {
        None
    } else {
        Some(
            spawn_volume_clones(manifest.volumes.clone(), vm_id.to_string())
                .map_err(|e| fail(format!("cannot start a thread to clone volumes: {e}")))?,
        )
    };
    let state: StateFile = store.open_state(id).map_err(|e| fail(e.to_string()))?;
    let meta: SnapshotMeta = state.get(sections::META).map_err(|e| fail(e.to_string()))?;
    if meta.vcpu_count != config.machine.vcpu_count {
        return Err(fail(format!(
            "{} vCPUs saved, but the configuration has {}",
            meta.vcpu_count, config.machine.vcpu_count
        )));
    }
    // The chain's full image is mapped; a diff's chain (kept short by consolidation in the
    // background) is laid over it.
    let (image, diffs) = store
        .open_memory_chain(id)
        .map_err(|e| fail(e.to_string()))?;
    phases.mark("open state and memory");
    let expected = crate::arch::layout::ram_ranges(config.machine.mem_size_mib << 20);
    let regions: Vec<(u64, u64)> = image
        .layout()
        .regions
        .iter()
        .map(|r| (r.gpa, r.len))
        .collect();
    if regions != expected {
        return Err(fail(format!(
            "the memory image's layout {regions:x?} does not match {} MiB of guest memory",
            config.machine.mem_size_mib
        )));
    }
    let offsets: Vec<u64> = (0..regions.len()).map(|i| image.region_offset(i)).collect();
    let memory = map_guest_memory_private(image.file(), &regions, &offsets)
        .map_err(|e| fail(e.to_string()))?;
    phases.mark("map memory");
    if !diffs.is_empty() {
        lay_diffs_over(&memory, &diffs).map_err(fail)?;
        phases.mark("lay diffs over memory");
    }
    let vm = Vm::new(&memory).map_err(|e| fail(e.to_string()))?;
    phases.mark("create VM");
    let count = config.machine.vcpu_count;
    // Snapshots from before VM time was saved continue from zero.
    let clock = if state.contains(sections::CLOCK) {
        state
            .get(sections::CLOCK)
            .map_err(|e| fail(e.to_string()))?
    } else {
        Default::default()
    };
    let control = VcpuControl::restored(usize::from(count), options.paused, clock);
    let control = Arc::new(control.map_err(|e| fail(e.to_string()))?);
    let mut dm = DeviceManager::new(Arc::new(ResetLine(control.clone())))
        .map_err(|e| fail(e.to_string()))?;
    let devices: DevicesState = state
        .get(sections::DEVICES)
        .map_err(|e| fail(e.to_string()))?;
    let serial = builder::attach_console(&mut dm, &vm, &config, Some(&devices.serial))
        .map_err(|e| fail(e.to_string()))?;

    // Volume drives continue on clones of the volume snapshots taken with this snapshot.
    let cloned = match clones {
        Some(thread) => thread
            .join()
            .map_err(|_| fail("the volume-cloning thread failed".into()))?
            .map_err(fail)?,
        None => Vec::new(),
    };
    for (drive_id, clone) in cloned {
        if let Some(d) = config.drives.iter_mut().find(|d| d.drive_id == drive_id) {
            d.volume_path = Some(clone);
        }
    }
    phases.mark("console and volume clones");
    let mut drive_handles = Vec::new();
    for slot in &devices.virtio {
        let transport_state = slot.transport.clone();
        let mem = memory.clone();
        let make = move |device, interrupt| {
            MmioTransport::restore(
                MmioTransportArgs {
                    device,
                    mem,
                    interrupt,
                },
                &transport_state,
            )
            .map_err(|e| DeviceError::Restore(e.to_string()))
        };
        match &slot.device {
            VirtioDeviceState::Block { id, state } => {
                let drive: &DriveConfig = config
                    .drives
                    .iter()
                    .find(|d| &d.drive_id == id)
                    .ok_or_else(|| fail(format!("no drive `{id}` in the configuration")))?;
                let (backend, limiter, volume) =
                    drives::open_backend(drive).map_err(|e| fail(e.to_string()))?;
                let source = sources::drive(&config, id).unwrap_or(replay::SourceId(0));
                let backend = match &options.replay {
                    Some(hub) => hub.block_backend(backend, source, dm.taps.clone()),
                    None => backend,
                };
                let backend = Box::new(TappedBlock::new(backend, source, dm.taps.clone()));
                let block = Arc::new(Mutex::new(
                    Block::restore(BlockArgs { backend }, state)
                        .map_err(|e| fail(e.to_string()))?,
                ));
                dm.wire_virtio(
                    &vm,
                    block.clone(),
                    VirtioHandle::Block(id.clone(), block.clone()),
                    make,
                )
                .map_err(|e| fail(e.to_string()))?;
                drive_handles.push(DriveHandle {
                    config: drive.clone(),
                    block,
                    limiter,
                    volume,
                });
            }
            VirtioDeviceState::Net { id, state } => {
                let net_config =
                    config
                        .nets
                        .iter()
                        .find(|n| &n.iface_id == id)
                        .ok_or_else(|| {
                            fail(format!("no network interface `{id}` in the configuration"))
                        })?;
                let source = sources::net(&config, id).unwrap_or(replay::SourceId(0));
                let open = || {
                    crate::virtio_setup::open_net_backend(net_config)
                        .map_err(|e| fail(format!("network interface `{id}`: {e}")))
                };
                let backend = match &options.replay {
                    Some(hub) => {
                        let live = options.nets.iter().any(|o| &o.iface_id == id && !o.detach);
                        let live = if live { Some(open()?) } else { None };
                        hub.net_backend(source, live).map_err(|e| {
                            fail(format!("network interface `{id}`: replay backend: {e}"))
                        })?
                    }
                    None => open()?,
                };
                let backend = Box::new(TappedNet::new(backend, source, dm.taps.clone()));
                let mac = match &net_config.guest_mac {
                    Some(m) => Some(crate::config::parse_mac(m).map_err(|e| fail(e.0))?),
                    None => None,
                };
                let net = Arc::new(Mutex::new(
                    Net::restore(NetArgs { backend, mac }, state)
                        .map_err(|e| fail(e.to_string()))?,
                ));
                dm.wire_virtio(
                    &vm,
                    net.clone(),
                    VirtioHandle::Net(id.clone(), net.clone()),
                    make,
                )
                .map_err(|e| fail(e.to_string()))?;
            }
        }
    }

    phases.mark("virtio devices");
    let fds = builder::create_vcpu_fds(&vm, count).map_err(|e| fail(e.to_string()))?;
    let vm_state: VmState = state.get(sections::VM).map_err(|e| fail(e.to_string()))?;
    vm_state.restore(vm.fd()).map_err(|e| fail(e.to_string()))?;
    for (i, fd) in fds.iter().enumerate() {
        let s: VcpuState = state
            .get(&sections::vcpu(i))
            .map_err(|e| fail(e.to_string()))?;
        s.validate(i as u8).map_err(|e| fail(e.to_string()))?;
        s.restore(fd).map_err(|e| fail(e.to_string()))?;
    }
    // An interrupt a device raised just before the snapshot may not have reached the
    // interrupt controllers saved with it: raise the unacknowledged ones again.
    for slot in &dm.virtio {
        devices::bus::lock(&slot.transport)
            .interrupt()
            .resignal_pending()
            .map_err(|e| fail(format!("cannot raise a virtio interrupt: {e}")))?;
    }
    phases.mark("vCPU and VM state");
    let cmdline = format!("(restored from snapshot {id})");
    let running =
        builder::start_vcpus(fds, memory, vm, control, dm, serial, cmdline, drive_handles)
            .map_err(|e| fail(e.to_string()))?;
    phases.mark("start vCPUs");
    log::debug!("restore of {id} phases: {}", phases.report());
    if options.paused && !crate::vstate::vcpu::pause_all(&running.control, &running.vcpus) {
        log::warn!("a restored vCPU did not report itself paused in time");
    }
    log::info!(
        "VM restored from snapshot {}: {count} vCPU(s), {} MiB{}",
        dir.display(),
        config.machine.mem_size_mib,
        if options.paused { ", paused" } else { "" }
    );
    Ok((config, running))
}

/// Writes the pages of `diffs` (oldest first) into the freshly mapped guest `memory`.
fn lay_diffs_over(
    memory: &devices::GuestMemory,
    diffs: &[snapshot::DiffImage],
) -> Result<(), String> {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let mut slices = Vec::new();
    for region in memory.iter() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| e.to_string())?;
        // SAFETY: the region is a private mapping of `len` bytes owned by `memory`, which
        // outlives the slices; no vCPU or device exists yet, so nothing else accesses it.
        slices.push(unsafe { std::slice::from_raw_parts_mut(host, region.len() as usize) });
    }
    for diff in diffs {
        diff.apply_to(&mut slices).map_err(|e| e.to_string())?;
    }
    Ok(())
}
