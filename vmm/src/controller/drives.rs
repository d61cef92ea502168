//! Drive operations on a running (or configured) VM: status, resize, I/O limits and
//! block-store snapshots.

use devices::bus::lock;

use super::{Inner, Phase};
use crate::api::{ApiError, DriveCounters, DriveSnapshot, DriveStatus};
use crate::config::DrivePatch;
use crate::drives::{self, drive_path, DriveHandle};

fn unknown(drive_id: &str) -> ApiError {
    ApiError::not_found(format!("there is no drive `{drive_id}`"))
}

fn running_drive<'a>(inner: &'a Inner, drive_id: &str) -> Option<&'a DriveHandle> {
    match &inner.phase {
        Phase::Running { vm, .. } => vm.drives.iter().find(|d| d.config.drive_id == drive_id),
        _ => None,
    }
}

/// `GET /drives/{id}`.
pub(super) fn status(inner: &Inner, drive_id: &str) -> Result<DriveStatus, ApiError> {
    if let Some(d) = running_drive(inner, drive_id) {
        let block = lock(&d.block);
        let m = block.metrics();
        return Ok(DriveStatus {
            drive_id: drive_id.to_string(),
            backend: d.backend_kind().to_string(),
            path: d.path().display().to_string(),
            capacity_bytes: block.capacity_sectors() * 512,
            read_only: block.read_only(),
            limits: lock(&d.limiter).limits(),
            counters: Some(DriveCounters {
                requests: m.requests,
                read_requests: m.read_requests,
                write_requests: m.write_requests,
                read_bytes: m.read_bytes,
                write_bytes: m.write_bytes,
                io_errors: m.io_errors,
                throttled: m.throttled,
            }),
        });
    }
    let config = inner
        .config
        .drives
        .iter()
        .find(|d| d.drive_id == drive_id)
        .ok_or_else(|| unknown(drive_id))?;
    let path = drive_path(config);
    let capacity_bytes = match &config.volume_path {
        Some(dir) => blockstore::volume::Volume::open_read_only(dir)
            .map(|v| v.size())
            .unwrap_or(0),
        None => std::fs::metadata(path)
            .map(|m| m.len() / 512 * 512)
            .unwrap_or(0),
    };
    Ok(DriveStatus {
        drive_id: drive_id.to_string(),
        backend: if config.volume_path.is_some() {
            "volume"
        } else {
            "raw"
        }
        .to_string(),
        path: path.display().to_string(),
        capacity_bytes,
        read_only: config.is_read_only,
        limits: config.limits.unwrap_or_default(),
        counters: None,
    })
}

/// `PATCH /drives/{id}`: limits first (cannot fail half-way), then the size.
pub(super) fn patch(inner: &mut Inner, patch: DrivePatch) -> Result<(), ApiError> {
    if let Phase::Configuring = inner.phase {
        let drive = inner
            .config
            .drives
            .iter_mut()
            .find(|d| d.drive_id == patch.drive_id)
            .ok_or_else(|| unknown(&patch.drive_id))?;
        if patch.size_bytes.is_some() {
            return Err(ApiError::conflict(
                "a drive is resized while the VM runs; before start, resize the image or volume itself",
            ));
        }
        if let Some(limits) = patch.limits {
            drive.limits = (!limits.is_unlimited()).then_some(limits);
        }
        return Ok(());
    }
    if let Phase::Stopped(_) = inner.phase {
        return Err(ApiError::conflict(
            "the VM has stopped; its drives can no longer change",
        ));
    }
    let Phase::Running { vm, .. } = &mut inner.phase else {
        return Err(unknown(&patch.drive_id));
    };
    let d = vm
        .drives
        .iter_mut()
        .find(|d| d.config.drive_id == patch.drive_id)
        .ok_or_else(|| unknown(&patch.drive_id))?;
    if let Some(limits) = patch.limits {
        drives::set_limits(&d.limiter, limits).map_err(ApiError::bad_request)?;
        d.config.limits = (!limits.is_unlimited()).then_some(limits);
    }
    if let Some(size) = patch.size_bytes {
        resize(d, size, &patch)?;
    }
    Ok(())
}

fn resize(d: &DriveHandle, size: u64, patch: &DrivePatch) -> Result<(), ApiError> {
    let mut block = lock(&d.block);
    if block.read_only() {
        return Err(ApiError::bad_request(format!(
            "drive `{}` is read-only",
            d.config.drive_id
        )));
    }
    let current = block.capacity_sectors() * 512;
    if size < current && !patch.allow_shrink {
        return Err(ApiError::bad_request(format!(
            "drive `{}`: {size} bytes is smaller than the current {current}; set allow_shrink to shrink",
            d.config.drive_id
        )));
    }
    match &d.volume {
        Some(volume) => {
            let options = blockstore::volume::ResizeOptions {
                allow_shrink: patch.allow_shrink,
                discard_data: patch.discard_data,
            };
            let new_size = {
                let mut v = lock(volume);
                v.resize(size, &options)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                v.size()
            };
            block.set_capacity(new_size);
        }
        None => block
            .resize(size)
            .map_err(|e| ApiError::bad_request(format!("drive `{}`: {e}", d.config.drive_id)))?,
    }
    Ok(())
}

fn volume_of<'a>(inner: &'a Inner, drive_id: &str) -> Result<&'a DriveHandle, ApiError> {
    let d = match running_drive(inner, drive_id) {
        Some(d) => d,
        None if inner.config.drives.iter().any(|d| d.drive_id == drive_id) => {
            return Err(ApiError::conflict(
                "drive snapshots are taken while the VM runs; before start, use reprise-volume snapshot",
            ))
        }
        None => return Err(unknown(drive_id)),
    };
    if d.volume.is_none() {
        return Err(ApiError::bad_request(format!(
            "drive `{drive_id}` is a raw image; only block-store volumes have snapshots"
        )));
    }
    Ok(d)
}

/// `PUT /drives/{id}/snapshots/{name}`: taken with the device locked, so no request is
/// half done; the volume flushes what the guest wrote so far into the snapshot.
pub(super) fn snapshot(
    inner: &Inner,
    drive_id: &str,
    name: &str,
) -> Result<DriveSnapshot, ApiError> {
    let d = volume_of(inner, drive_id)?;
    let _quiet = lock(&d.block);
    let Some(volume) = &d.volume else {
        return Err(unknown(drive_id));
    };
    let info = lock(volume)
        .snapshot(name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(DriveSnapshot {
        name: info.name,
        created: info.created,
        size_bytes: info.size,
    })
}

/// `GET /drives/{id}/snapshots`.
pub(super) fn snapshots(inner: &Inner, drive_id: &str) -> Result<Vec<DriveSnapshot>, ApiError> {
    let d = volume_of(inner, drive_id)?;
    let Some(volume) = &d.volume else {
        return Err(unknown(drive_id));
    };
    Ok(lock(volume)
        .snapshots()
        .into_iter()
        .map(|s| DriveSnapshot {
            name: s.name,
            created: s.created,
            size_bytes: s.size,
        })
        .collect())
}
