//! `workload=console`: read lines typed on COM1 (interrupt driven) and print each
//! back as `console: <line>`; the line `quit` ends the workload. The line reader
//! is shared with workloads that wait for the host between steps.

use super::Env;
use crate::apic::{apic_id, ioapic_route};
use crate::cpl0::{events, idle_wait};
use crate::io::{inb, outb};
use crate::layout::SERIAL_VECTOR;

const COM1: u16 = 0x3f8;
const IER: u16 = COM1 + 1;
const LSR: u16 = COM1 + 5;
const LSR_DATA_READY: u8 = 0x01;
const IER_RECEIVED_DATA: u8 = 0x01;
/// ISA IRQ line of COM1.
const COM1_GSI: u32 = 4;

/// Route COM1's interrupt to this CPU and enable the received-data interrupt.
pub(super) fn enable_input() {
    ioapic_route(COM1_GSI, SERIAL_VECTOR, apic_id());
    outb(IER, IER_RECEIVED_DATA);
}

/// Stop interrupting on received data.
pub(super) fn disable_input() {
    outb(IER, 0);
}

/// Wait for the next non-empty line (without its end); longer lines are cut to
/// `line.len()` bytes. Sleeps between bytes.
pub(super) fn read_line(line: &mut [u8]) -> usize {
    let mut len = 0;
    loop {
        let seen = events();
        let mut got_any = false;
        while inb(LSR) & LSR_DATA_READY != 0 {
            got_any = true;
            let b = inb(COM1);
            if b == b'\n' || b == b'\r' {
                if len > 0 {
                    return len;
                }
            } else if len < line.len() {
                line[len] = b;
                len += 1;
            }
        }
        if !got_any {
            idle_wait(seen);
        }
    }
}

pub fn run(_env: &Env) {
    enable_input();
    crate::println!("console: ready");
    let mut line = [0u8; 128];
    loop {
        let len = read_line(&mut line);
        let text = &line[..len];
        if text == b"quit" {
            disable_input();
            crate::println!("console: bye");
            return;
        }
        crate::println!("console: {}", crate::cmdline::Bytes(text));
    }
}
