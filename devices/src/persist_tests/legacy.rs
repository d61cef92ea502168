//! The UART and the i8042 across a snapshot.

use std::io::{self, Write};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use super::{expect_refused, pulses, round_trip};
use crate::bus::BusDevice;
use crate::i8042::I8042;
use crate::interrupt::InterruptLine;
use crate::persist::Persist;
use crate::serial::{SerialArgs, SerialDevice};
use crate::virtio::test_utils::CountingLine;

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

fn counting_line() -> (Arc<dyn InterruptLine>, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    (Arc::new(CountingLine(count.clone())), count)
}

fn serial_args() -> (SerialArgs, Sink, Arc<AtomicU32>) {
    let (irq, count) = counting_line();
    let sink = Sink::default();
    let args = SerialArgs {
        irq,
        out: Box::new(sink.clone()),
    };
    (args, sink, count)
}

/// A UART a guest has set up: divisor, line settings, scratch, modem control, the
/// received-data interrupt, and input partly read.
fn busy_uart() -> (SerialDevice, Sink) {
    let (args, sink, _) = serial_args();
    let mut uart = SerialDevice::new(args.irq, args.out).unwrap();
    uart.write(3, &[0x80]);
    uart.write(0, &[0x01]);
    uart.write(1, &[0x00]);
    uart.write(3, &[0x1b]);
    uart.write(7, &[0x5a]);
    uart.write(4, &[0x0b]);
    uart.write(1, &[0x01]);
    for b in b"boot\n" {
        uart.write(0, &[*b]);
    }
    assert_eq!(uart.enqueue_input(b"hello").unwrap(), 5);
    let mut b = [0u8];
    uart.read(0, &mut b);
    assert_eq!(b[0], b'h');
    (uart, sink)
}

/// What the guest sees reading every register, then draining the receive FIFO.
fn guest_view(uart: &mut SerialDevice) -> Vec<u8> {
    let mut seen = Vec::new();
    for offset in [1u64, 2, 3, 4, 5, 6, 7, 2, 0, 0, 0, 0, 5, 2] {
        let mut b = [0u8];
        uart.read(offset, &mut b);
        seen.push(b[0]);
    }
    seen
}

#[test]
fn serial_restores_registers_and_fifo_without_an_extra_interrupt() {
    let (mut original, old_sink) = busy_uart();
    let (args, new_sink, new_irqs) = serial_args();
    let mut restored = round_trip(&original, args);
    // The received-data interrupt raised before the snapshot is in the interrupt
    // controller's state; the restored UART must not raise it again.
    assert_eq!(pulses(&new_irqs), 0);

    let view = guest_view(&mut original);
    assert_eq!(guest_view(&mut restored), view);
    assert_eq!(&view[8..12], b"ello");
    assert_eq!(view[12] & 1, 0, "FIFO drained");
    assert_eq!(original.save(), restored.save());

    // Output now goes to the new sink; the old one keeps what was written before.
    restored.write(0, b"x");
    assert_eq!(&*new_sink.0.lock().unwrap(), b"x");
    assert_eq!(&*old_sink.0.lock().unwrap(), b"boot\n");
    // Input flows again and interrupts as usual.
    assert_eq!(restored.enqueue_input(b"y").unwrap(), 1);
    assert_eq!(pulses(&new_irqs), 1);
}

#[test]
fn serial_drained_fifo_signals_input_room_after_restore() {
    let (original, _) = busy_uart();
    let (args, _, _) = serial_args();
    let mut restored = round_trip(&original, args);
    assert!(restored.input_room_event().read().is_err());
    let mut b = [0u8];
    for _ in 0..4 {
        restored.read(0, &mut b);
    }
    assert_eq!(restored.input_room_event().read().unwrap(), 1);
}

#[test]
fn serial_refuses_corrupted_states() {
    let (uart, _) = busy_uart();
    let good = uart.save();

    let mut s = good.clone();
    s.rx_fifo = vec![0; 65];
    expect_refused::<SerialDevice>(serial_args().0, &s, "serial", "rx_fifo");

    let mut s = good.clone();
    s.interrupt_enable = 0x10;
    expect_refused::<SerialDevice>(serial_args().0, &s, "serial", "interrupt_enable");

    let mut s = good.clone();
    s.interrupt_identification = 0x03;
    expect_refused::<SerialDevice>(serial_args().0, &s, "serial", "interrupt_identification");

    let mut s = good;
    s.line_status &= !1;
    expect_refused::<SerialDevice>(serial_args().0, &s, "serial", "line_status");
}

#[test]
fn i8042_round_trip_still_resets() {
    let (reset, _) = counting_line();
    let original = I8042::new(reset);
    let (new_reset, resets) = counting_line();
    let mut restored = round_trip(&original, new_reset);
    let mut status = [0xffu8];
    restored.read(4, &mut status);
    assert_eq!(status[0], 0);
    restored.write(4, &[0xfe]);
    assert_eq!(pulses(&resets), 1);
    assert_eq!(postcard::to_allocvec(&restored.save()).unwrap(), b"");
}
