//! The network tap: frames the guest receives (inputs) and sends (outputs).

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use devices::backends::NetBackend;
use replay::{EventKind, SourceId};

use super::Taps;

/// A network backend whose traffic is recorded.
pub struct TappedNet {
    inner: Box<dyn NetBackend>,
    source: SourceId,
    taps: Arc<Taps>,
}

impl TappedNet {
    /// Wraps `inner`, recording as `source`.
    pub fn new(inner: Box<dyn NetBackend>, source: SourceId, taps: Arc<Taps>) -> Self {
        TappedNet {
            inner,
            source,
            taps,
        }
    }
}

impl NetBackend for TappedNet {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let got = self.inner.recv(buf)?;
        if let Some(n) = got {
            self.taps
                .record(self.source, || EventKind::net_rx(buf[..n].to_vec()));
        }
        Ok(got)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.taps
            .record(self.source, || EventKind::net_tx(frame.to_vec()));
        self.inner.send(frame)
    }

    fn ready_fd(&self) -> RawFd {
        self.inner.ready_fd()
    }
}
