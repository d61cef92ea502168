//! Creates the virtio devices and backends a configuration asks for.

use crate::recording::block::TappedBlock;
use crate::recording::net::TappedNet;
use crate::recording::{sources, Taps};
use std::sync::{Arc, Mutex};

use devices::backends::{NetBackend, NullNet, Tap, UnixDgram};
use devices::virtio::{Block, Net};
use devices::GuestMemory;

use crate::config::{parse_mac, DriveConfig, NetConfig, VmConfig};
use crate::device_manager::{DeviceError, DeviceManager, VirtioHandle};
use crate::drives::{self, DriveHandle};
use crate::vstate::vm::Vm;

/// Why a virtio device or its backend could not be created.
#[derive(Debug, thiserror::Error)]
pub enum VirtioSetupError {
    /// Attaching to the buses failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The backend or device could not be created.
    #[error("{id}: {message}")]
    Backend {
        /// Drive or interface id.
        id: String,
        /// What went wrong.
        message: String,
    },
}

fn backend_err(id: &str) -> impl FnOnce(String) -> VirtioSetupError + '_ {
    move |message| VirtioSetupError::Backend {
        id: id.to_string(),
        message,
    }
}

fn block_device(
    drive: &DriveConfig,
    source: replay::SourceId,
    taps: &Arc<Taps>,
) -> Result<DriveHandle, VirtioSetupError> {
    let (backend, limiter, volume) =
        drives::open_backend(drive).map_err(|e| backend_err(&drive.drive_id)(e.message))?;
    let backend = Box::new(TappedBlock::new(backend, source, taps.clone()));
    let block = Block::new(backend).map_err(|e| backend_err(&drive.drive_id)(e.to_string()))?;
    Ok(DriveHandle {
        config: drive.clone(),
        block: Arc::new(Mutex::new(block)),
        limiter,
        volume,
    })
}

/// Opens the backend `net` names: a TAP device, a datagram socket pair, or (detached)
/// nothing.
pub(crate) fn open_net_backend(net: &NetConfig) -> Result<Box<dyn NetBackend>, String> {
    if net.detached {
        return Ok(Box::new(NullNet::new().map_err(|e| {
            format!("cannot create the detached backend: {e}")
        })?));
    }
    match (&net.host_dev_name, &net.socket_path, &net.peer_socket_path) {
        (Some(tap), _, _) => Ok(Box::new(Tap::open(tap).map_err(|e| e.to_string())?)),
        (None, Some(local), Some(peer)) => Ok(Box::new(
            UnixDgram::bind(local, peer).map_err(|e| e.to_string())?,
        )),
        _ => Err("no network backend configured".into()),
    }
}

fn net_device(
    net: &NetConfig,
    source: replay::SourceId,
    taps: &Arc<Taps>,
) -> Result<Net, VirtioSetupError> {
    let backend = open_net_backend(net).map_err(backend_err(&net.iface_id))?;
    let backend = Box::new(TappedNet::new(backend, source, taps.clone()));
    let mac = match &net.guest_mac {
        Some(m) => Some(parse_mac(m).map_err(|e| backend_err(&net.iface_id)(e.0))?),
        None => None,
    };
    Net::new(backend, mac).map_err(|e| backend_err(&net.iface_id)(e.to_string()))
}

/// Attaches every drive, then every network interface, in configuration order; returns
/// the drives' handles.
pub fn attach_all(
    config: &VmConfig,
    vm: &Vm,
    mem: &GuestMemory,
    dm: &mut DeviceManager,
) -> Result<Vec<DriveHandle>, VirtioSetupError> {
    let mut handles = Vec::new();
    let taps = dm.taps.clone();
    for drive in &config.drives {
        let source = sources::drive(config, &drive.drive_id).unwrap_or(replay::SourceId(0));
        let handle = block_device(drive, source, &taps)?;
        let typed = VirtioHandle::Block(drive.drive_id.clone(), handle.block.clone());
        dm.add_virtio(vm, mem, handle.block.clone(), typed)?;
        handles.push(handle);
    }
    for net in &config.nets {
        let source = sources::net(config, &net.iface_id).unwrap_or(replay::SourceId(0));
        let device = Arc::new(Mutex::new(net_device(net, source, &taps)?));
        let typed = VirtioHandle::Net(net.iface_id.clone(), device.clone());
        dm.add_virtio(vm, mem, device, typed)?;
    }
    Ok(handles)
}
