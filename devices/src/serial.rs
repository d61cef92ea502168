//! 8250 UART (COM1) on top of `vm-superio`, as a port-I/O bus device.

use std::io::{self, Write};
use std::sync::Arc;

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::interrupt::InterruptLine;

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
    uart: Serial<LineTrigger, InputRoom, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART raising `irq` and writing guest output to `out`.
    pub fn new(irq: Arc<dyn InterruptLine>, out: Box<dyn Write + Send>) -> io::Result<Self> {
        let room = InputRoom(EventFd::new(libc::EFD_NONBLOCK)?);
        Ok(SerialDevice {
            uart: Serial::with_events(LineTrigger(irq), room, out),
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
