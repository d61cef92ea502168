//! Taking a snapshot of a running VM.
//!
//! Freeze order: pause every vCPU (each completes the exit it was handling), park the device
//! event loop (no device touches guest memory or its queues), then save: each vCPU's KVM
//! state (on its own thread), the VM's in-kernel devices, the device models (network devices
//! first take the frames waiting at their backends, so those are saved too), a block-store
//! snapshot of every volume, and guest memory. Then release the event loop and resume.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use devices::bus::lock;
use serde::{Deserialize, Serialize};
use snapshot::{
    DirtyBitmap, MemoryLayout, NewSnapshot, SnapshotStore, StateWriter, VolumeSnapshot,
};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::devices_state;
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
    /// How long the guest was paused, in microseconds.
    pub pause_us: u64,
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
fn memory_sources(vm: &RunningVm) -> Result<(MemoryLayout, Vec<&[u8]>), CreateError> {
    let mut regions = Vec::new();
    let mut sources = Vec::new();
    for region in vm.memory.iter() {
        let len = region.len() as usize;
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(e)?;
        regions.push((region.start_addr().0, region.len()));
        // SAFETY: the region is a live mapping of `len` bytes owned by `vm.memory`, which
        // outlives the returned slices (they borrow `vm`); the vCPUs are paused and the event
        // loop is parked, so nothing writes guest memory while the slices are read.
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

/// Takes snapshot `id` of `vm` (whose vCPUs the caller has paused) into the store at
/// `store_dir`: full, or a diff against the VM's previous snapshot in the same store.
pub fn create(
    vm: &mut RunningVm,
    config: &VmConfig,
    events: &EventLoop,
    store_dir: &Path,
    id: &str,
    diff: bool,
    resume: impl FnOnce(&RunningVm),
) -> Result<SnapshotCreated, CreateError> {
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
    for d in &vm.drives {
        if d.volume.is_none() {
            return Err(CreateError(format!(
                "drive `{}` is a raw image ({}); VM snapshots need block-store volumes, whose \
                 point-in-time snapshots are taken with the VM's",
                d.config.drive_id,
                d.path().display()
            )));
        }
    }
    let msr_indexes = Arc::new(msr_index_list().map_err(e)?);
    let started = Instant::now();
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
            None => return Err(CreateError(format!("vCPU {i} has exited; nothing to save"))),
        }
    }
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
    let mut volumes = Vec::new();
    for d in &vm.drives {
        if let Some(volume) = &d.volume {
            let name = format!("vm-{id}");
            lock(volume).snapshot(&name).map_err(e)?;
            volumes.push(VolumeSnapshot {
                drive_id: d.config.drive_id.clone(),
                volume_path: d.path().display().to_string(),
                snapshot_name: name,
            });
        }
    }
    let new = NewSnapshot {
        id: id.to_string(),
        created: snapshot::unix_ms_now(),
        vm_config: serde_json::to_value(config).map_err(e)?,
        volumes,
    };
    let mut pending = store.begin(new).map_err(e)?;
    pending.write_state(&writer).map_err(e)?;
    let logging = vm.dirty_logging;
    let (layout, sources) = memory_sources(vm)?;
    let parent_and_dirty = if logging {
        // Dirty tracking restarts here: the next diff holds what is written after this one.
        Some(take_dirty(vm, &layout)?)
    } else {
        vm.vm.set_dirty_logging(&vm.memory, true).map_err(e)?;
        for region in vm.memory.iter() {
            region.get_mmap().bitmap().reset();
        }
        None
    };
    let stats = match (parent_and_dirty, &parent) {
        (Some(dirty), Some(p)) => {
            // Copy the dirty pages while paused; write the file once the guest runs again.
            let staging = Staging::copy(&layout, &sources, &dirty).map_err(e)?;
            drop(sources);
            vm.dirty_logging = true;
            drop(frozen);
            resume(vm);
            let pause_us = started.elapsed().as_micros() as u64;
            let stats = pending
                .write_diff_memory(p, &layout, &dirty, &staging.sources())
                .map_err(e)?;
            (stats, pause_us)
        }
        _ => {
            let stats = pending.write_full_memory(&layout, &sources).map_err(e)?;
            drop(sources);
            vm.dirty_logging = true;
            drop(frozen);
            resume(vm);
            (stats, started.elapsed().as_micros() as u64)
        }
    };
    let (stats, pause_us) = stats;
    let manifest = pending.commit().map_err(e)?;
    Ok(SnapshotCreated {
        id: manifest.id,
        dir: store.dir(id).display().to_string(),
        pause_us,
        memory_bytes: stats.data_bytes,
    })
}
