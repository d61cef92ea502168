//! Turns a validated [`VmConfig`] into a running VM.

use std::sync::{Arc, Mutex};

use devices::serial::SerialDevice;
use devices::GuestMemory;
use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

use crate::arch::{cpuid, msr, regs};
use crate::boot::{pvh, BootError, BootProtocol, BootRegs};
use crate::config::{ConfigError, VmConfig};
use crate::device_manager::{DeviceError, DeviceManager, Subscriber};
use crate::drives::DriveHandle;
use crate::serial_io::{self, ConsoleInput, SerialIoError};
use crate::virtio_setup::{self, VirtioSetupError};
use crate::vstate::memory::{create_guest_memory, MemoryError};
use crate::vstate::vcpu::{self, ResetLine, VcpuContext, VcpuControl, VcpuHandle};
use crate::vstate::vm::{Vm, VmError};

/// Why the VM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration is incomplete or invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// KVM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Kernel loading.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Device wiring.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Serial console wiring.
    #[error(transparent)]
    Serial(#[from] SerialIoError),
    /// A virtio device or its backend.
    #[error(transparent)]
    Virtio(#[from] VirtioSetupError),
    /// vCPU setup.
    #[error("vCPU {index}: {what} failed: {source}")]
    Vcpu {
        /// vCPU index.
        index: u8,
        /// Which step.
        what: &'static str,
        /// The errno.
        source: kvm_ioctls::Error,
    },
    /// A thread or eventfd could not be created.
    #[error("cannot start vCPU threads: {0}")]
    Thread(std::io::Error),
}

/// A VM whose vCPUs are running.
pub struct RunningVm {
    /// Guest RAM.
    pub memory: GuestMemory,
    /// The KVM VM.
    pub vm: Vm,
    /// vCPU threads.
    pub vcpus: Vec<VcpuHandle>,
    /// Run/pause/stop control of the vCPUs.
    pub control: Arc<VcpuControl>,
    /// The UART.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Devices to register with the event loop.
    pub subscribers: Vec<Subscriber>,
    /// The final kernel command line.
    pub cmdline: String,
    /// Attached drives, in configuration order.
    pub drives: Vec<DriveHandle>,
    /// Virtio devices, in slot order (for snapshots).
    pub virtio: Vec<crate::device_manager::VirtioSlot>,
    /// The i8042 (for snapshots).
    pub i8042: Arc<Mutex<devices::i8042::I8042>>,
    /// The previous snapshot (store, id), which a diff snapshot builds on.
    pub last_snapshot: Option<(std::path::PathBuf, String)>,
    /// Whether KVM logs dirty pages (turned on by the first snapshot).
    pub dirty_logging: bool,
    /// Where snapshots copy dirty pages while the guest is paused (kept between snapshots).
    pub staging: Option<crate::snapshots::staging::Staging>,
    /// The recording taps of the devices.
    pub taps: Arc<crate::recording::Taps>,
}

fn vcpu_err(index: u8, what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> BuildError {
    move |source| BuildError::Vcpu {
        index,
        what,
        source,
    }
}

/// Sets LINT0 to ExtINT and LINT1 to NMI, as firmware would.
fn set_lint(fd: &VcpuFd, index: u8) -> Result<(), BuildError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const MODE_EXTINT: u32 = 0x7;
    const MODE_NMI: u32 = 0x4;
    let mut lapic: kvm_lapic_state = fd.get_lapic().map_err(vcpu_err(index, "KVM_GET_LAPIC"))?;
    for (reg, mode) in [(APIC_LVT0, MODE_EXTINT), (APIC_LVT1, MODE_NMI)] {
        let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[reg + i] as u8);
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            lapic.regs[reg + i] = *b as libc::c_char;
        }
    }
    fd.set_lapic(&lapic)
        .map_err(vcpu_err(index, "KVM_SET_LAPIC"))
}

fn configure_vcpu(
    fd: &VcpuFd,
    index: u8,
    count: u8,
    tsc_khz: Option<u32>,
    boot: Option<&BootRegs>,
) -> Result<(), BuildError> {
    let mut cpuid = cpuid::supported().map_err(vcpu_err(index, "KVM_GET_SUPPORTED_CPUID"))?;
    cpuid::normalize(&mut cpuid, index, count, tsc_khz).map_err(|_| BuildError::Vcpu {
        index,
        what: "building CPUID",
        source: kvm_ioctls::Error::new(libc::E2BIG),
    })?;
    fd.set_cpuid2(&cpuid)
        .map_err(vcpu_err(index, "KVM_SET_CPUID2"))?;
    let msrs = msr::boot_msrs().map_err(|_| BuildError::Vcpu {
        index,
        what: "building MSRs",
        source: kvm_ioctls::Error::new(libc::E2BIG),
    })?;
    fd.set_msrs(&msrs)
        .map_err(vcpu_err(index, "KVM_SET_MSRS"))?;
    set_lint(fd, index)?;
    if let Some(boot) = boot {
        fd.set_regs(&boot.regs)
            .map_err(vcpu_err(index, "KVM_SET_REGS"))?;
        let mut sregs = fd.get_sregs().map_err(vcpu_err(index, "KVM_GET_SREGS"))?;
        (boot.set_sregs)(&mut sregs);
        fd.set_sregs(&sregs)
            .map_err(vcpu_err(index, "KVM_SET_SREGS"))?;
        fd.set_fpu(&regs::initial_fpu())
            .map_err(vcpu_err(index, "KVM_SET_FPU"))?;
    }
    Ok(())
}

/// Opens the console and adds COM1 (restored from `saved` when given), with its input
/// sockets queued for the event loop.
pub(crate) fn attach_console(
    dm: &mut DeviceManager,
    vm: &Vm,
    config: &VmConfig,
    saved: Option<&devices::serial::SerialDeviceState>,
) -> Result<Arc<Mutex<SerialDevice>>, BuildError> {
    let console = serial_io::Console::open(&config.serial)?;
    let output = crate::recording::serial::TappedOutput::new(console.output, dm.taps.clone());
    let serial = dm.add_serial(vm, Box::new(output), saved)?;
    for listener in console.listeners {
        let input = ConsoleInput::new(
            listener.socket,
            listener.client,
            serial.clone(),
            dm.taps.clone(),
        )
        .map_err(BuildError::Thread)?;
        dm.subscribers.push(Arc::new(Mutex::new(input)));
    }
    Ok(serial)
}

/// Creates `count` vCPU fds.
pub(crate) fn create_vcpu_fds(vm: &Vm, count: u8) -> Result<Vec<VcpuFd>, BuildError> {
    (0..count)
        .map(|i| {
            vm.fd()
                .create_vcpu(u64::from(i))
                .map_err(vcpu_err(i, "KVM_CREATE_VCPU"))
        })
        .collect()
}

/// Starts a thread per vCPU and assembles the running VM.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_vcpus(
    fds: Vec<VcpuFd>,
    memory: GuestMemory,
    vm: Vm,
    control: Arc<VcpuControl>,
    dm: DeviceManager,
    serial: Arc<Mutex<SerialDevice>>,
    cmdline: String,
    drives: Vec<DriveHandle>,
) -> Result<RunningVm, BuildError> {
    let mut vcpus = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        let ctx = VcpuContext {
            pio: dm.pio.clone(),
            mmio: dm.mmio.clone(),
            control: control.clone(),
        };
        match vcpu::spawn(i as u8, fd, ctx) {
            Ok(h) => vcpus.push(h),
            Err(e) => {
                vcpu::stop_all(&control, &mut vcpus);
                return Err(BuildError::Thread(e));
            }
        }
    }
    control.started(&vcpus);
    Ok(RunningVm {
        memory,
        vm,
        vcpus,
        control,
        serial,
        subscribers: dm.subscribers,
        cmdline,
        drives,
        virtio: dm.virtio,
        i8042: dm.i8042,
        last_snapshot: None,
        dirty_logging: false,
        staging: None,
        taps: dm.taps.clone(),
    })
}

/// Builds and starts the VM described by `config`.
pub fn build_and_start(config: &VmConfig, paused: bool) -> Result<RunningVm, BuildError> {
    config.validate()?;
    let Some(boot_source) = config.boot.as_ref() else {
        return Err(ConfigError("no boot source".into()).into());
    };
    let machine = &config.machine;
    let t0 = std::time::Instant::now();
    let lap = |what: &str| log::debug!("build: {what} at {:?}", t0.elapsed());
    let memory = create_guest_memory(machine.mem_size_mib, machine.huge_pages)?;
    lap("memory");
    let vm = Vm::new(&memory)?;
    lap("vm");
    let count = machine.vcpu_count;
    let control = if paused {
        VcpuControl::new_paused(usize::from(count))
    } else {
        VcpuControl::new(usize::from(count))
    };
    let control = Arc::new(control.map_err(BuildError::Thread)?);
    let mut dm = DeviceManager::new(Arc::new(ResetLine(control.clone())))?;
    let serial = attach_console(&mut dm, &vm, config, None)?;
    let drives = virtio_setup::attach_all(config, &vm, &memory, &mut dm)?;
    lap("devices");

    let BootProtocol::Pvh { entry } = pvh::load_kernel(&memory, &boot_source.kernel_image_path)?;
    let cmdline = pvh::build_cmdline(
        boot_source.boot_args.as_deref().unwrap_or(""),
        &dm.cmdline_entries,
    )?;
    let cmdline_text = cmdline
        .as_cstring()
        .map_err(|e| BootError::Cmdline(e.to_string()))?
        .to_string_lossy()
        .into_owned();
    let boot_regs = pvh::configure(&memory, entry, &cmdline, boot_source.initrd_path.as_ref())?;
    lap("kernel");

    let fds = create_vcpu_fds(&vm, count)?;
    let tsc_khz = fds[0].get_tsc_khz().ok();
    for (i, fd) in fds.iter().enumerate() {
        let i = i as u8;
        configure_vcpu(fd, i, count, tsc_khz, (i == 0).then_some(&boot_regs))?;
    }
    lap("vcpus configured");
    let running = start_vcpus(fds, memory, vm, control, dm, serial, cmdline_text, drives)?;
    log::info!(
        "VM started: {count} vCPU(s), {} MiB, command line {:?}",
        machine.mem_size_mib,
        running.cmdline
    );
    Ok(running)
}
