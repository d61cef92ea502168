//! 8250 UART (COM1) on top of `vm-superio`, as a port-I/O bus device.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vm_superio::serial::{SerialEvents, SerialState};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::interrupt::InterruptLine;
use crate::persist::{bad_field, Persist, PersistError};

/// Base port of COM1.
pub const COM1_PORT: u64 = 0x3f8;
/// Number of ports a UART occupies.
pub const UART_PORT_COUNT: u64 = 8;
/// ISA interrupt line (GSI) of COM1.
pub const COM1_GSI: u32 = 4;

/// Adapts an [`InterruptLine`] to the `vm-superio` trigger contract.
pub struct LineTrigger(pub Arc<dyn InterruptLine>);

impl Trigger for LineTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}

/// The UART's interrupt line, which can be held quiet while a saved state is loaded.
pub struct UartLine {
    line: Arc<dyn InterruptLine>,
    muted: AtomicBool,
}

impl Trigger for UartLine {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        if self.muted.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.line.trigger()
    }
}

/// Signals an eventfd when the guest has drained the receive FIFO, so the host side
/// can resume feeding input instead of dropping it.
pub struct InputRoom(EventFd);

impl SerialEvents for InputRoom {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        if let Err(e) = self.0.write(1) {
            log::warn!("serial: cannot signal free input space: {e}");
        }
    }
}

/// A 16550-compatible UART whose transmitted bytes go to `out`.
pub struct SerialDevice {
    uart: Serial<UartLine, InputRoom, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART raising `irq` and writing guest output to `out`.
    pub fn new(irq: Arc<dyn InterruptLine>, out: Box<dyn Write + Send>) -> io::Result<Self> {
        let room = InputRoom(EventFd::new(libc::EFD_NONBLOCK)?);
        Ok(SerialDevice {
            uart: Serial::with_events(
                UartLine {
                    line: irq,
                    muted: AtomicBool::new(false),
                },
                room,
                out,
            ),
        })
    }

    /// Signalled whenever the guest empties the receive FIFO.
    pub fn input_room_event(&self) -> &EventFd {
        &self.uart.events().0
    }

    /// Delivers host bytes as guest input; returns how many fit in the receive FIFO.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.uart
            .enqueue_raw_bytes(bytes)
            .map_err(|e| io::Error::other(format!("serial input: {e:?}")))
    }

    /// Free space in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.uart.fifo_capacity()
    }

    /// Flushes the output sink.
    pub fn flush_output(&mut self) -> io::Result<()> {
        self.uart.writer_mut().flush()
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data.len()) {
            (Ok(off), 1) => data[0] = self.uart.read(off),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [value]) = (u8::try_from(offset), data) {
            if let Err(e) = self.uart.write(off, *value) {
                // A vanished output sink must not stop the guest.
                log::debug!("serial output failed: {e:?}");
            }
        }
    }
}

/// Name of the UART in restore errors.
const SERIAL_COMPONENT: &str = "serial";
/// Size of the receive FIFO of the `vm-superio` UART.
const RX_FIFO_SIZE: usize = 64;
/// Interrupt Enable bits a 16550A has (the UART masks writes to these).
const IER_VALID_BITS: u8 = 0x0f;
/// LSR bit: a received byte is waiting in the FIFO.
const LSR_DATA_READY: u8 = 0x01;
/// Interrupt Identification values the UART model produces: none pending, THR empty,
/// received data, or both.
const IIR_VALUES: [u8; 4] = [0x01, 0x02, 0x04, 0x06];

/// The saved UART: the 8250/16550 registers and the bytes waiting in the receive FIFO.
///
/// A mirror of `vm_superio::serial::SerialState`, which has no serde support. The output
/// sink, the interrupt line and the input-room eventfd are host resources and are not
/// saved; bytes already written to the sink are gone (the UART has no transmit FIFO).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialDeviceState {
    /// Divisor latch, low byte (DLL).
    pub baud_divisor_low: u8,
    /// Divisor latch, high byte (DLM).
    pub baud_divisor_high: u8,
    /// Interrupt Enable Register.
    pub interrupt_enable: u8,
    /// Interrupt Identification Register (pending interrupt sources).
    pub interrupt_identification: u8,
    /// Line Control Register.
    pub line_control: u8,
    /// Line Status Register.
    pub line_status: u8,
    /// Modem Control Register.
    pub modem_control: u8,
    /// Modem Status Register.
    pub modem_status: u8,
    /// Scratch Register.
    pub scratch: u8,
    /// Received bytes the guest has not read yet, oldest first (at most 64).
    pub rx_fifo: Vec<u8>,
}

impl From<SerialState> for SerialDeviceState {
    fn from(s: SerialState) -> Self {
        SerialDeviceState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            rx_fifo: s.in_buffer,
        }
    }
}

impl From<&SerialDeviceState> for SerialState {
    fn from(s: &SerialDeviceState) -> Self {
        SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.rx_fifo.clone(),
        }
    }
}

impl SerialDeviceState {
    /// Checks what the UART model itself maintains; the other registers hold whatever the
    /// guest wrote and any byte is valid.
    fn validate(&self) -> Result<(), PersistError> {
        let bad = |field, problem: String| Err(bad_field(SERIAL_COMPONENT, field, problem));
        if self.rx_fifo.len() > RX_FIFO_SIZE {
            return bad(
                "rx_fifo",
                format!(
                    "{} bytes do not fit in the {RX_FIFO_SIZE}-byte receive FIFO",
                    self.rx_fifo.len()
                ),
            );
        }
        if self.interrupt_enable & !IER_VALID_BITS != 0 {
            return bad(
                "interrupt_enable",
                format!(
                    "{:#04x} has bits a 16550A does not have",
                    self.interrupt_enable
                ),
            );
        }
        if !IIR_VALUES.contains(&self.interrupt_identification) {
            return bad(
                "interrupt_identification",
                format!(
                    "{:#04x} is not a combination of pending interrupts",
                    self.interrupt_identification
                ),
            );
        }
        let data_ready = self.line_status & LSR_DATA_READY != 0;
        if data_ready == self.rx_fifo.is_empty() {
            return bad(
                "line_status",
                format!(
                    "data-ready bit is {} but the receive FIFO holds {} bytes",
                    u8::from(data_ready),
                    self.rx_fifo.len()
                ),
            );
        }
        Ok(())
    }
}

/// What a restored UART needs from the host.
pub struct SerialArgs {
    /// The interrupt line (COM1's GSI).
    pub irq: Arc<dyn InterruptLine>,
    /// Where guest output goes from now on.
    pub out: Box<dyn Write + Send>,
}

impl Persist for SerialDevice {
    type State = SerialDeviceState;
    type Args = SerialArgs;

    fn save(&self) -> SerialDeviceState {
        self.uart.state().into()
    }

    /// Rebuilds the UART without raising its interrupt: an interrupt that was pending at
    /// save time is part of the interrupt controller's saved state (KVM irqchip), so raising
    /// it again would give the guest one interrupt more than the original had.
    fn restore(args: SerialArgs, state: &SerialDeviceState) -> Result<Self, PersistError> {
        state.validate()?;
        let room = InputRoom(EventFd::new(libc::EFD_NONBLOCK).map_err(|e| {
            PersistError::new(
                SERIAL_COMPONENT,
                format!("cannot create the input-room eventfd: {e}"),
            )
        })?);
        let line = UartLine {
            line: args.irq,
            muted: AtomicBool::new(true),
        };
        let uart = Serial::from_state(&SerialState::from(state), line, room, args.out)
            .map_err(|e| PersistError::new(SERIAL_COMPONENT, format!("{e:?}")))?;
        uart.interrupt_evt().muted.store(false, Ordering::Relaxed);
        Ok(SerialDevice { uart })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmits_and_receives() {
        let irq = Arc::new(vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let sink = Sink::default();
        let mut dev = SerialDevice::new(irq.clone(), Box::new(sink.clone())).unwrap();
        for b in b"hi\n" {
            dev.write(0, &[*b]);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n");
        // Enable the received-data interrupt, then feed input.
        dev.write(1, &[0x01]);
        assert_eq!(dev.enqueue_input(b"x").unwrap(), 1);
        assert!(irq.read().unwrap() >= 1);
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut rbr = [0u8];
        dev.read(0, &mut rbr);
        assert_eq!(rbr[0], b'x');
    }
}
