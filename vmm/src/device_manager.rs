//! Places devices on the buses and wires them to KVM: serial and i8042 on port I/O, virtio
//! devices in MMIO windows with an irqfd each and an ioeventfd per queue.

use std::sync::{Arc, Mutex};

use devices::bus::Bus;
use devices::i8042::{I8042, I8042_PORT, I8042_PORT_COUNT};
use devices::interrupt::InterruptLine;
use devices::serial::{SerialDevice, COM1_GSI, COM1_PORT, UART_PORT_COUNT};
use devices::virtio::{MmioTransport, VirtioDevice, VirtioInterrupt};
use devices::GuestMemory;
use event_manager::MutEventSubscriber;
use vmm_sys_util::eventfd::EventFd;

use crate::arch::layout;
use crate::vstate::vm::{Vm, VmError};

/// Offset of the QueueNotify register in a virtio-mmio window.
const QUEUE_NOTIFY_OFFSET: u64 = 0x50;
/// Size of each virtio-mmio window.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

/// A device that lives on the event loop.
pub type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Why a device could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An eventfd could not be created.
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
    /// A KVM wiring call failed.
    #[error(transparent)]
    Kvm(#[from] VmError),
    /// The bus refused the range.
    #[error(transparent)]
    Bus(#[from] devices::bus::BusError),
    /// A saved device state could not be restored.
    #[error("restoring a device: {0}")]
    Restore(String),
    /// No more MMIO windows / interrupt lines.
    #[error("too many virtio devices: at most {0} are supported")]
    TooMany(u32),
}

fn eventfd() -> Result<EventFd, DeviceError> {
    EventFd::new(libc::EFD_NONBLOCK).map_err(DeviceError::EventFd)
}

/// The devices of one VM and the buses they sit on.
pub struct DeviceManager {
    /// Port I/O bus.
    pub pio: Bus,
    /// MMIO bus.
    pub mmio: Bus,
    /// Event-loop subscribers to register (virtio devices, console input).
    pub subscribers: Vec<Subscriber>,
    /// `virtio_mmio.device=` command-line entries, in attach order.
    pub cmdline_entries: Vec<String>,
    /// The UART, for console input and flushing.
    pub serial: Option<Arc<Mutex<SerialDevice>>>,
    /// The i8042.
    pub i8042: Arc<Mutex<I8042>>,
    /// Virtio devices, in slot order.
    pub virtio: Vec<VirtioSlot>,
    /// The recording taps of every backend and of the console.
    pub taps: Arc<crate::recording::Taps>,
    next_slot: u32,
}

impl DeviceManager {
    /// Empty buses and an i8042 whose reset request goes to `reset_line`.
    pub fn new(reset_line: Arc<dyn InterruptLine>) -> Result<Self, DeviceError> {
        let mut pio = Bus::new();
        let i8042 = Arc::new(Mutex::new(I8042::new(reset_line)));
        pio.insert(i8042.clone(), I8042_PORT, I8042_PORT_COUNT)?;
        Ok(DeviceManager {
            pio,
            mmio: Bus::new(),
            subscribers: Vec::new(),
            cmdline_entries: Vec::new(),
            serial: None,
            i8042,
            virtio: Vec::new(),
            taps: crate::recording::Taps::new(),
            next_slot: 0,
        })
    }

    /// Adds COM1 writing guest output to `out`.
    pub fn add_serial(
        &mut self,
        vm: &Vm,
        out: Box<dyn std::io::Write + Send>,
        saved: Option<&devices::serial::SerialDeviceState>,
    ) -> Result<Arc<Mutex<SerialDevice>>, DeviceError> {
        use snapshot::Persist;
        let irq = eventfd()?;
        vm.register_irqfd(&irq, COM1_GSI)?;
        let irq: Arc<dyn devices::interrupt::InterruptLine> = Arc::new(irq);
        let device = match saved {
            Some(state) => SerialDevice::restore(devices::serial::SerialArgs { irq, out }, state)
                .map_err(|e| DeviceError::Restore(e.to_string()))?,
            None => SerialDevice::new(irq, out).map_err(DeviceError::EventFd)?,
        };
        let serial = Arc::new(Mutex::new(device));
        self.pio
            .insert(serial.clone(), COM1_PORT, UART_PORT_COUNT)?;
        self.serial = Some(serial.clone());
        Ok(serial)
    }

    /// Puts a virtio device in the next MMIO window with its own GSI, binds its queue
    /// eventfds to the QueueNotify register, and queues it for the event loop.
    pub fn add_virtio<D>(
        &mut self,
        vm: &Vm,
        mem: &GuestMemory,
        device: Arc<Mutex<D>>,
        handle: VirtioHandle,
    ) -> Result<(), DeviceError>
    where
        D: VirtioDevice + MutEventSubscriber + 'static,
    {
        let mem = mem.clone();
        self.wire_virtio(vm, device, handle, move |device, interrupt| {
            Ok(MmioTransport::new(device, mem, interrupt))
        })
    }

    /// Like [`DeviceManager::add_virtio`], but the transport comes from `make_transport`
    /// (a restore builds it from saved state once the interrupt exists).
    pub fn wire_virtio<D>(
        &mut self,
        vm: &Vm,
        device: Arc<Mutex<D>>,
        handle: VirtioHandle,
        make_transport: impl FnOnce(
            Arc<Mutex<dyn VirtioDevice>>,
            Arc<VirtioInterrupt>,
        ) -> Result<MmioTransport, DeviceError>,
    ) -> Result<(), DeviceError>
    where
        D: VirtioDevice + MutEventSubscriber + 'static,
    {
        if self.next_slot >= layout::VIRTIO_MAX_DEVICES {
            return Err(DeviceError::TooMany(layout::VIRTIO_MAX_DEVICES));
        }
        let base = layout::VIRTIO_MMIO_BASE + u64::from(self.next_slot) * MMIO_WINDOW_SIZE;
        let gsi = layout::VIRTIO_GSI_BASE + self.next_slot;
        let irq = eventfd()?;
        vm.register_irqfd(&irq, gsi)?;
        {
            let dev = devices::bus::lock(&device);
            for (index, evt) in dev.queue_events().iter().enumerate() {
                vm.register_mmio_ioevent(evt, base + QUEUE_NOTIFY_OFFSET, index as u32)?;
            }
        }
        let interrupt = Arc::new(VirtioInterrupt::new(Box::new(irq)));
        let as_virtio: Arc<Mutex<dyn VirtioDevice>> = device.clone();
        let transport = Arc::new(Mutex::new(make_transport(as_virtio, interrupt)?));
        self.mmio
            .insert(transport.clone(), base, MMIO_WINDOW_SIZE)?;
        self.subscribers.push(device);
        self.virtio.push(VirtioSlot {
            transport,
            device: handle,
        });
        self.cmdline_entries
            .push(format!("virtio_mmio.device=4K@{base:#x}:{gsi}"));
        self.next_slot += 1;
        Ok(())
    }
}

/// A virtio device as the VMM keeps it, typed for saving and restoring.
#[derive(Clone)]
pub enum VirtioHandle {
    /// A block device and its drive id.
    Block(String, Arc<Mutex<devices::virtio::Block>>),
    /// A network device and its interface id.
    Net(String, Arc<Mutex<devices::virtio::Net>>),
}

/// One virtio-mmio window: the transport and the device behind it.
#[derive(Clone)]
pub struct VirtioSlot {
    /// The transport on the MMIO bus.
    pub transport: Arc<Mutex<MmioTransport>>,
    /// The device.
    pub device: VirtioHandle,
}
