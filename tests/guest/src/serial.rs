//! COM1 (8250/16550 at 0x3f8) output. Every port access exits to the VMM, so the
//! transmitter is polled once per 16 bytes (the FIFO depth) rather than per byte.

use core::fmt;

use crate::io::{inb, outb};

const COM1: u16 = 0x3f8;
const FCR: u16 = COM1 + 2;
const LSR: u16 = COM1 + 5;
const LSR_THRE: u8 = 0x20;
const FIFO_DEPTH: usize = 16;

/// Enable and clear the FIFOs.
pub fn init() {
    outb(FCR, 0x07);
}

/// Write raw bytes.
pub fn write_bytes(bytes: &[u8]) {
    for chunk in bytes.chunks(FIFO_DEPTH) {
        while inb(LSR) & LSR_THRE == 0 {
            crate::io::pause();
        }
        for &b in chunk {
            outb(COM1, b);
        }
    }
}

/// Formatter that collects output and sends it in FIFO-sized bursts.
pub struct Writer {
    buf: [u8; 128],
    len: usize,
}

impl Writer {
    /// An empty writer.
    pub const fn new() -> Self {
        Self {
            buf: [0; 128],
            len: 0,
        }
    }

    /// Send everything collected so far.
    pub fn flush(&mut self) {
        write_bytes(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Print formatted text followed by a newline to COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut w = $crate::serial::Writer::new();
        // Writing to the serial port cannot fail.
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
        let _ = core::fmt::Write::write_str(&mut w, "\n");
        w.flush();
    }};
}

/// Print `reprise-guest: FATAL <reason>` and reset the machine.
#[macro_export]
macro_rules! fatal {
    ($($arg:tt)*) => {{
        $crate::println!("reprise-guest: FATAL {}", format_args!($($arg)*));
        $crate::power::reset()
    }};
}
