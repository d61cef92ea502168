//! The console tap: bytes typed into the guest (inputs) and bytes it printed (outputs).

use std::io::{self, Write};
use std::sync::Arc;

use replay::{EventKind, SourceId};

use super::Taps;

/// The console's source id (see [`super::sources`]).
pub const SERIAL_SOURCE: SourceId = SourceId(0);

/// The console output sink, recording what the guest prints.
pub struct TappedOutput {
    inner: Box<dyn Write + Send>,
    taps: Arc<Taps>,
}

impl TappedOutput {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Write + Send>, taps: Arc<Taps>) -> Self {
        TappedOutput { inner, taps }
    }
}

impl Write for TappedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.taps.record(SERIAL_SOURCE, || EventKind::SerialOut {
            bytes: buf[..n].to_vec(),
        });
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Records `bytes` given to the guest's UART.
pub fn record_input(taps: &Taps, bytes: &[u8]) {
    taps.record(SERIAL_SOURCE, || EventKind::SerialIn {
        bytes: bytes.to_vec(),
    });
}
