//! A [`VmmControl`] for tests: keeps a configuration and a lifecycle state like the VMM does,
//! records every call, and can be told to fail or panic on the next call.

use std::sync::{Mutex, MutexGuard};

use crate::api::{ApiError, InstanceInfo, VmState, VmmControl};
use crate::config::{
    BootSource, DriveConfig, MachineConfig, NetConfig, SerialConfig, VmConfig, MAX_VCPUS,
    MIN_MEM_MIB,
};

/// One recorded call on the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
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
    next_error: Option<ApiError>,
    panic_next: bool,
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

    /// Every mutating call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes the next mutating call return `error`.
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
