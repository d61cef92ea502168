//! A volume as an NBD export.

use std::io;

use blockstore::nbd::NbdExport;
use blockstore::volume::Volume;

/// Serves one volume (or one snapshot of it) over NBD.
pub struct VolumeExport(pub Volume);

fn io_err(e: impl std::fmt::Display, kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, e.to_string())
}

impl NbdExport for VolumeExport {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_only(&self) -> bool {
        self.0.read_only()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0
            .read_at(offset, buf)
            .map_err(|e| io_err(e, io::ErrorKind::Other))
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0
            .write_at(offset, data)
            .map_err(|e| io_err(e, io::ErrorKind::Other))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(|e| io_err(e, io::ErrorKind::Other))
    }
    fn trim(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.0
            .discard(offset, len)
            .map_err(|e| io_err(e, io::ErrorKind::Other))
    }
    fn write_zeroes(&mut self, offset: u64, len: u64, _no_hole: bool) -> io::Result<()> {
        self.0
            .write_zeroes(offset, len)
            .map_err(|e| io_err(e, io::ErrorKind::Other))
    }
}
