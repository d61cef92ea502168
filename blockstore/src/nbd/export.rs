//! What the server serves: the [`NbdExport`] trait.

use std::io;
use std::sync::{Arc, Mutex};

/// An export shared by every connection that uses it. All connections lock the same
/// object, so what one connection wrote and flushed is what every other one reads.
pub type SharedExport = Arc<Mutex<dyn NbdExport>>;

/// A block device the NBD server can serve.
///
/// The server checks every request against [`size`](NbdExport::size) and
/// [`block_size`](NbdExport::block_size) before calling these methods, so `offset`
/// and lengths passed in are always within the export and aligned (except that a range
/// may end at the export's end when the size is not a multiple of the block size).
///
/// Errors are sent to the client: [`io::ErrorKind::PermissionDenied`] and
/// [`io::ErrorKind::ReadOnlyFilesystem`] as `NBD_EPERM`,
/// [`io::ErrorKind::StorageFull`], [`io::ErrorKind::QuotaExceeded`] and
/// [`io::ErrorKind::FileTooLarge`] as `NBD_ENOSPC`, [`io::ErrorKind::InvalidInput`] as
/// `NBD_EINVAL`, and everything else as `NBD_EIO`.
pub trait NbdExport: Send {
    /// Size in bytes.
    fn size(&self) -> u64;

    /// Whether writes must be refused. The server then advertises the export as
    /// read-only and answers writes, trims and zeroing with `NBD_EPERM` without calling
    /// the methods below that change data.
    fn read_only(&self) -> bool {
        false
    }

    /// Minimum block size: the alignment the server demands of offsets and lengths.
    /// Must be a power of two from 1 to 65536; other values are treated as 1.
    fn block_size(&self) -> u32 {
        512
    }

    /// Fills `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes every completed write durable.
    fn flush(&mut self) -> io::Result<()>;

    /// The client no longer needs `len` bytes at `offset`. A hint: what the range reads
    /// afterwards is unspecified until it is written again. The default does nothing.
    fn trim(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Makes `len` bytes at `offset` read as zeroes. If `no_hole` is false the export
    /// may deallocate the range instead of writing it; if true the range must stay
    /// allocated. The default writes zero buffers.
    fn write_zeroes(&mut self, offset: u64, len: u64, no_hole: bool) -> io::Result<()> {
        let _ = no_hole;
        const CHUNK: u64 = 1 << 20;
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            self.write_at(offset + done, &zeroes[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}
