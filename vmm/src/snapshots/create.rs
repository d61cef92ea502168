//! Taking a snapshot of a running VM.
//!
//! Pre-copy memory while the guest runs (see [`create`]). Then the freeze order: pause every
//! vCPU (each completes the exit it was handling), park the device event loop (no device
//! touches guest memory or its queues), then save: each vCPU's KVM state (on its own thread),
//! the VM's in-kernel devices, the device models (network devices first take the frames
//! waiting at their backends, so those are saved too), a block-store snapshot of every
//! volume, and a copy of the pages written since the pre-copy. Then release the event loop,
//! resume, and write the files.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use devices::bus::lock;
use serde::{Deserialize, Serialize};
use snapshot::{
    DirtyBitmap, MemoryLayout, NewSnapshot, SnapshotStore, StateWriter, VolumeSnapshot,
};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use devices::GuestMemory;

use super::devices_state;
use super::phases::Phases;
use super::staging::Staging;
use crate::builder::RunningVm;
use crate::config::VmConfig;
use crate::event_loop::EventLoop;
use crate::vstate::vcpu::{VcpuReply, VcpuRequest};
use crate::vstate::vcpu_state::msr_index_list;
use crate::vstate::vm_state::VmState;

/// Section names in the state file.
pub mod sections {
    /// [`super::SnapshotMeta`].
    pub const META: &str = "meta";
    /// [`crate::vstate::vm_state::VmState`].
    pub const VM: &str = "vm";
    /// [`super::devices_state::DevicesState`].
    pub const DEVICES: &str = "devices";
    /// [`crate::vstate::vm_clock::ClockState`]: VM time and guest progress.
    pub const CLOCK: &str = "clock";
    /// The state of vCPU `i`.
    pub fn vcpu(i: usize) -> String {
        format!("vcpu{i}")
    }
}

/// Facts about the snapshot itself, stored in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Number of vCPUs saved.
    pub vcpu_count: u8,
    /// The VMM version that wrote it.
    pub vmm_version: String,
}

/// What a snapshot took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotCreated {
    /// Its id.
    pub id: String,
    /// Its directory.
    pub dir: String,
    /// How long the guest was stopped, in microseconds: from every vCPU having left guest
    /// mode to all of them running again.
    pub pause_us: u64,
    /// How long stopping the vCPUs took, in microseconds (until each left guest mode the
    /// guest ran, or waited halted).
    pub stop_us: u64,
    /// Bytes of guest memory data stored (zero pages are holes).
    pub memory_bytes: u64,
}

/// Why a snapshot failed.
#[derive(Debug, thiserror::Error)]
#[error("snapshot: {0}")]
pub struct CreateError(pub String);

fn e(x: impl std::fmt::Display) -> CreateError {
    CreateError(x.to_string())
}

/// Host views of guest memory regions, and their layout.
fn memory_sources(memory: &GuestMemory) -> Result<(MemoryLayout, Vec<&[u8]>), CreateError> {
    let mut regions = Vec::new();
    let mut sources = Vec::new();
    for region in memory.iter() {
        let len = region.len() as usize;
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(e)?;
        regions.push((region.start_addr().0, region.len()));
        // SAFETY: the region is a live mapping of `len` bytes owned by `memory`, which
        // outlives the returned slices (they borrow it). The guest may write these pages while
        // they are read before the pause; every such page is marked dirty and read again with
        // the guest paused, so a torn read never reaches a snapshot.
        sources.push(unsafe { std::slice::from_raw_parts(host as *const u8, len) });
    }
    Ok((MemoryLayout::new(&regions).map_err(e)?, sources))
}

/// Pages written since tracking was last reset: KVM's dirty log of each slot plus the VMM's
/// own writes (the guest-memory bitmap); resets both.
fn take_dirty(vm: &RunningVm, layout: &MemoryLayout) -> Result<DirtyBitmap, CreateError> {
    let mut dirty = DirtyBitmap::new(layout);
    for (i, region) in vm.memory.iter().enumerate() {
        let kvm = vm
            .vm
            .dirty_log(i as u32, region.len() as usize)
            .map_err(e)?;
        dirty.union_kvm_log(i, &kvm).map_err(e)?;
        let own = region.get_mmap().bitmap().get_and_reset();
        dirty.union_kvm_log(i, &own).map_err(e)?;
    }
    Ok(dirty)
}

/// Starts tracking from now: turns dirty logging on, or forgets what it logged so far.
fn restart_tracking(vm: &RunningVm, layout: &MemoryLayout) -> Result<(), CreateError> {
    if vm.dirty_logging {
        take_dirty(vm, layout)?;
    } else {
        vm.vm.set_dirty_logging(&vm.memory, true).map_err(e)?;
        for region in vm.memory.iter() {
            region.get_mmap().bitmap().reset();
        }
    }
    Ok(())
}

/// The VM's staging area, made (or remade) to fit `layout`.
fn staging<'a>(
    slot: &'a mut Option<Staging>,
    layout: &MemoryLayout,
) -> Result<&'a mut Staging, CreateError> {
    if !slot.as_ref().is_some_and(|s| s.fits(layout)) {
        *slot = Some(Staging::new(layout).map_err(e)?);
    }
    slot.as_mut()
        .ok_or_else(|| CreateError("no staging area".into()))
}

/// What to snapshot, and where.
pub struct CreateRequest<'a> {
    /// The snapshot store.
    pub store_dir: &'a Path,
    /// The new snapshot's id.
    pub id: &'a str,
    /// A diff against the VM's previous snapshot in the same store, or a full one.
    pub diff: bool,
}

/// Takes snapshot `request.id` of `vm` into the store at `request.store_dir`: full, or a
/// diff against the VM's previous snapshot in the same store.
///
/// Memory is pre-copied while the guest runs (all of it for a full snapshot, the pages
/// dirtied since the previous snapshot for a diff); then `pause` stops the vCPUs, the device
/// models are frozen, the state is saved and the pages written during the pre-copy are copied
/// to a staging area; `resume` lets the guest go on, and the files are written afterwards.
/// On error the caller resumes the vCPUs (`resume` may not have run).
pub fn create(
    vm: &mut RunningVm,
    config: &VmConfig,
    events: &EventLoop,
    request: CreateRequest<'_>,
    pause: impl FnOnce(&RunningVm) -> Result<(), CreateError>,
    resume: impl FnOnce(&RunningVm),
) -> Result<SnapshotCreated, CreateError> {
    let CreateRequest {
        store_dir,
        id,
        diff,
    } = request;
    let parent = match (&vm.last_snapshot, diff) {
        (Some((dir, parent)), true) if dir == store_dir && vm.dirty_logging => Some(parent.clone()),
        (_, true) => {
            return Err(CreateError(format!(
                "a diff snapshot needs an earlier snapshot of this VM in {}; take a full one first",
                store_dir.display()
            )))
        }
        (_, false) => None,
    };
    let store = SnapshotStore::open(store_dir).map_err(e)?;
    let mut volumes = Vec::new();
    for d in &vm.drives {
        if d.volume.is_none() {
            return Err(CreateError(format!(
                "drive `{}` is a raw image ({}); VM snapshots need block-store volumes, whose \
                 point-in-time snapshots are taken with the VM's",
                d.config.drive_id,
                d.path().display()
            )));
        }
        volumes.push(VolumeSnapshot {
            drive_id: d.config.drive_id.clone(),
            volume_path: d.path().display().to_string(),
            snapshot_name: format!("vm-{id}"),
        });
    }
    let msr_indexes = Arc::new(msr_index_list().map_err(e)?);
    let new = NewSnapshot {
        id: id.to_string(),
        created: snapshot::unix_ms_now(),
        vm_config: serde_json::to_value(config).map_err(e)?,
        volumes,
    };
    let mut pending = store.begin(new).map_err(e)?;
    let mut phases = Phases::new(Instant::now());

    // Pre-copy, with the guest running. Tracking restarts here, so until this snapshot is
    // complete no diff may build on the previous one.
    vm.last_snapshot = None;
    let (layout, sources) = memory_sources(&vm.memory)?;
    let mut precopied = None;
    let mut dirty = match &parent {
        Some(_) => {
            let dirty = take_dirty(vm, &layout)?;
            staging(&mut vm.staging, &layout)?.copy(&sources, &dirty);
            dirty
        }
        None => {
            restart_tracking(vm, &layout)?;
            vm.dirty_logging = true;
            let mut image = pending.begin_precopied_memory(&layout).map_err(e)?;
            image.copy_live(&sources).map_err(e)?;
            image.sync_data().map_err(e)?;
            precopied = Some(image);
            // A second round, still running, stages what the guest wrote during the first:
            // the pause then only copies what it writes during this shorter one.
            let dirty = take_dirty(vm, &layout)?;
            staging(&mut vm.staging, &layout)?.copy(&sources, &dirty);
            dirty
        }
    };
    phases.mark("pre-copy");
    // Volumes flush and make their next head layer now, so the pause only seals them.
    for d in &vm.drives {
        if let Some(volume) = &d.volume {
            lock(volume).prepare_snapshot().map_err(e)?;
        }
    }
    phases.mark("prepare volumes");

    let stopping = Instant::now();
    let stopped = |vm: &RunningVm| {
        vm.control.exit_reason().map(|reason| {
            CreateError(format!(
                "the VM stopped while the snapshot was being taken ({reason})"
            ))
        })
    };
    pause(vm).map_err(|err| stopped(vm).unwrap_or(err))?;
    // Only a vCPU stops the VM (a reset, a fault), and none runs now: this check is final.
    if let Some(err) = stopped(vm) {
        return Err(err);
    }
    let stop_us = stopping.elapsed().as_micros() as u64;
    let started = Instant::now();
    phases.mark("stop vcpus");
    let frozen = events.freeze().map_err(e)?;
    let mut writer = StateWriter::new();
    let replies = vm
        .control
        .request_all(VcpuRequest::SaveState { msr_indexes })
        .map_err(CreateError)?;
    for (i, reply) in replies.into_iter().enumerate() {
        match reply {
            Some(VcpuReply::State(state)) => writer
                .put(&sections::vcpu(i), &(*state).map_err(e)?)
                .map_err(e)?,
            Some(other) => {
                return Err(CreateError(format!(
                    "vCPU {i}: unexpected reply to a save: {other:?}"
                )))
            }
            None => return Err(CreateError(format!("vCPU {i} has exited; nothing to save"))),
        }
    }
    phases.mark("vcpus");
    writer
        .put(sections::VM, &VmState::save(vm.vm.fd()).map_err(e)?)
        .map_err(e)?;
    let absorbed = devices_state::absorb_net_backlogs(&vm.virtio);
    if absorbed > 0 {
        log::debug!("snapshot {id}: {absorbed} received frame(s) taken from network backends");
    }
    writer
        .put(
            sections::DEVICES,
            &devices_state::save(&vm.serial, &vm.i8042, &vm.virtio),
        )
        .map_err(e)?;
    let meta = SnapshotMeta {
        vcpu_count: vm.vcpus.len() as u8,
        vmm_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    writer.put(sections::META, &meta).map_err(e)?;
    writer
        .put(sections::CLOCK, &vm.control.clock.state())
        .map_err(e)?;
    // Recordings cut here: the events after this marker replay from this snapshot.
    vm.taps.set_snapshot_store(store_dir);
    if let Some(recorder) = vm.taps.recorder() {
        if let Err(err) = recorder.snapshot_taken(id) {
            log::warn!("snapshot {id}: the recording could not mark it: {err}");
        }
    }
    phases.mark("vm+devices");
    for d in &vm.drives {
        if let Some(volume) = &d.volume {
            lock(volume).snapshot(&format!("vm-{id}")).map_err(e)?;
        }
    }
    phases.mark("volumes");
    let written = take_dirty(vm, &layout)?;
    staging(&mut vm.staging, &layout)?.copy(&sources, &written);
    phases.mark("stage dirty pages");
    drop(frozen);
    resume(vm);
    let pause_us = started.elapsed().as_micros() as u64;
    pending.set_created(snapshot::unix_ms_now());

    // The guest runs again: write the files.
    pending.write_state(&writer).map_err(e)?;
    let staged = vm
        .staging
        .as_ref()
        .ok_or_else(|| CreateError("no staging area".into()))?
        .sources();
    let stats = match (precopied, &parent) {
        (Some(mut image), _) => {
            dirty.union(&written).map_err(e)?;
            image.patch(&dirty, &staged).map_err(e)?;
            pending.finish_precopied_memory(image, &layout).map_err(e)?
        }
        (None, Some(p)) => {
            dirty.union(&written).map_err(e)?;
            pending
                .write_diff_memory(p, &layout, &dirty, &staged)
                .map_err(e)?
        }
        (None, None) => return Err(CreateError("no memory image was started".into())),
    };
    let manifest = pending.commit().map_err(e)?;
    phases.mark("files written");
    log::debug!("snapshot {id} phases: {}", phases.report());
    vm.last_snapshot = Some((store_dir.to_path_buf(), id.to_string()));
    Ok(SnapshotCreated {
        id: manifest.id,
        dir: store.dir(id).display().to_string(),
        pause_us,
        stop_us,
        memory_bytes: stats.data_bytes,
    })
}
