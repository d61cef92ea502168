//! Replay taps: how a clone is fed. A clone's NICs get [`net::ReplayNet`] backends whose
//! frames come from the replay scheduler ([`replay::player::Replayer`]); its drives keep
//! their cloned volumes behind [`block::ReplayBlock`] (faults, strict checks); console input
//! is typed into the UART. Outputs reach the checker through the recording taps' observer.
//! [`ReplayHub`] is the glue: the scheduler's [`Target`], and the taps' observer.

pub mod block;
pub mod config;
pub mod net;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use devices::backends::{BlockBackend, NetBackend};
use devices::serial::SerialDevice;
use replay::player::{Replayer, Target};
use replay::{EventKind, SourceId};

use crate::api::VmmControl;
use crate::controller::Vmm;
use crate::recording::{TapObserver, Taps};
use crate::vstate::vcpu::VcpuControl;
use net::{FrameQueue, ReplayNet};

/// The clone's parts the scheduler drives, known once it is restored.
struct Attached {
    control: Arc<VcpuControl>,
    serial: Arc<Mutex<SerialDevice>>,
    taps: Arc<Taps>,
    vmm: Weak<Vmm>,
}

impl std::fmt::Debug for ReplayHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayHub(snapshot {})", self.replayer.plan().snapshot)
    }
}

/// Connects a [`Replayer`] to one clone.
pub struct ReplayHub {
    /// The replay.
    pub replayer: Arc<Replayer>,
    queues: Mutex<BTreeMap<SourceId, Arc<FrameQueue>>>,
    vm: OnceLock<Attached>,
}

impl ReplayHub {
    /// A hub for `replayer`, before the clone exists.
    pub fn new(replayer: Arc<Replayer>) -> Arc<ReplayHub> {
        Arc::new(ReplayHub {
            replayer,
            queues: Mutex::new(BTreeMap::new()),
            vm: OnceLock::new(),
        })
    }

    /// The backend of NIC `source` (with `live` for poking by hand, if given).
    pub fn net_backend(
        &self,
        source: SourceId,
        live: Option<Box<dyn NetBackend>>,
    ) -> std::io::Result<Box<dyn NetBackend>> {
        let queue = FrameQueue::new()?;
        devices::bus::lock(&self.queues).insert(source, queue.clone());
        Ok(Box::new(ReplayNet::new(queue, live)?))
    }

    /// The backend of drive `source`, over its cloned volume.
    pub fn block_backend(
        &self,
        inner: Box<dyn BlockBackend>,
        source: SourceId,
        taps: Arc<Taps>,
    ) -> Box<dyn BlockBackend> {
        Box::new(block::ReplayBlock::new(
            inner,
            source,
            self.replayer.clone(),
            taps,
        ))
    }

    /// Connects the restored clone.
    pub fn attach(
        &self,
        control: Arc<VcpuControl>,
        serial: Arc<Mutex<SerialDevice>>,
        taps: Arc<Taps>,
        vmm: Weak<Vmm>,
    ) {
        let _ = self.vm.set(Attached {
            control,
            serial,
            taps,
            vmm,
        });
    }

    fn with_vm<T>(&self, f: impl FnOnce(&Attached) -> T) -> Option<T> {
        self.vm.get().map(f)
    }
}

impl TapObserver for ReplayHub {
    fn observe(&self, source: SourceId, kind: &EventKind) {
        let now = self.vm_time_ns();
        self.replayer.observe(source, kind, now);
    }
}

impl Target for ReplayHub {
    fn vm_time_ns(&self) -> u64 {
        self.with_vm(|a| a.control.clock.now_ns()).unwrap_or(0)
    }

    fn progress(&self) -> u64 {
        self.with_vm(|a| a.control.clock.progress()).unwrap_or(0)
    }

    fn push_frame(&self, source: SourceId, frame: Vec<u8>) {
        match devices::bus::lock(&self.queues).get(&source) {
            Some(q) => q.push(frame),
            None => log::warn!("replay: no network interface is {source}; frame dropped"),
        }
    }

    fn queued_frames(&self) -> usize {
        devices::bus::lock(&self.queues)
            .values()
            .map(|q| q.len())
            .sum()
    }

    fn push_serial(&self, bytes: &[u8]) {
        let Some(a) = self.vm.get() else { return };
        let mut rest = bytes;
        while !rest.is_empty() {
            let taken = {
                let mut serial = devices::bus::lock(&a.serial);
                let room = serial.input_capacity().min(rest.len());
                if room == 0 {
                    0
                } else {
                    serial.enqueue_input(&rest[..room]).unwrap_or(0)
                }
            };
            if taken > 0 {
                crate::recording::serial::record_input(&a.taps, &rest[..taken]);
                rest = &rest[taken..];
            } else if a.control.exit_reason().is_some() {
                return;
            } else {
                // The guest has not read what it was given yet.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn stopped(&self) -> Option<String> {
        self.with_vm(|a| a.control.exit_reason().map(|r| r.to_string()))
            .flatten()
    }

    fn pause_vm(&self) {
        if let Some(vmm) = self.with_vm(|a| a.vmm.upgrade()).flatten() {
            if let Err(e) = vmm.pause() {
                log::info!("replay: cannot pause the clone: {}", e.message);
            }
        }
    }

    fn resume_vm(&self) {
        if let Some(vmm) = self.with_vm(|a| a.vmm.upgrade()).flatten() {
            if let Err(e) = vmm.resume() {
                log::info!("replay: cannot resume the clone: {}", e.message);
            }
        }
    }

    fn log_injection(&self, what: &str) {
        if let Some(a) = self.vm.get() {
            a.taps.record(SourceId::RECORDER, || EventKind::Injected {
                what: what.to_string(),
            });
        }
    }
}
