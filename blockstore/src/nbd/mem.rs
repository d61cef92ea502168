//! [`MemExport`]: an export held in memory, for tests and scratch devices.

use std::io;

use super::export::NbdExport;

/// An export backed by a byte vector. Trimmed ranges read back as zeroes.
#[derive(Debug, Clone)]
pub struct MemExport {
    data: Vec<u8>,
    read_only: bool,
    block_size: u32,
    flushes: u64,
}

impl MemExport {
    /// A zero-filled, writable export of `size` bytes with 512-byte blocks.
    pub fn new(size: usize) -> MemExport {
        MemExport::from_bytes(vec![0; size])
    }

    /// A writable export holding `data`, with 512-byte blocks.
    pub fn from_bytes(data: Vec<u8>) -> MemExport {
        MemExport {
            data,
            read_only: false,
            block_size: 512,
            flushes: 0,
        }
    }

    /// Makes the export read-only (or writable again).
    pub fn with_read_only(mut self, read_only: bool) -> MemExport {
        self.read_only = read_only;
        self
    }

    /// Sets the minimum block size the server enforces (a power of two up to 65536).
    pub fn with_block_size(mut self, block_size: u32) -> MemExport {
        self.block_size = block_size;
        self
    }

    /// The current contents.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The contents, mutably (for tests that change data behind the clients' backs).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// How many flushes the export has received (FUA writes count one each).
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    fn range(&self, offset: u64, len: u64) -> io::Result<std::ops::Range<usize>> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.data.len() as u64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "range {offset}+{len} is outside the export ({} bytes)",
                        self.data.len()
                    ),
                )
            })?;
        Ok(offset as usize..end as usize)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "export is read-only",
            ));
        }
        Ok(())
    }
}

impl NbdExport for MemExport {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = self.range(offset, buf.len() as u64)?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        let r = self.range(offset, data.len() as u64)?;
        self.data[r].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }

    fn trim(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let r = self.range(offset, len)?;
        self.data[r].fill(0);
        Ok(())
    }

    fn write_zeroes(&mut self, offset: u64, len: u64, _no_hole: bool) -> io::Result<()> {
        self.check_writable()?;
        let r = self.range(offset, len)?;
        self.data[r].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_zeroes() {
        let mut e = MemExport::new(4096);
        e.write_at(512, &[7; 512]).unwrap();
        let mut buf = [0u8; 1024];
        e.read_at(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 7));
        e.write_zeroes(600, 10, true).unwrap();
        assert_eq!(
            &e.data()[598..612],
            &[7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7]
        );
        e.trim(512, 512).unwrap();
        assert!(e.data().iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_out_of_range_and_read_only() {
        let mut e = MemExport::new(1024);
        let mut buf = [0u8; 2];
        assert_eq!(
            e.read_at(1023, &mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(e.write_at(u64::MAX, &[1]).is_err());
        let mut ro = MemExport::new(1024).with_read_only(true);
        assert_eq!(
            ro.write_at(0, &[1]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(ro.trim(0, 512).is_err());
        assert!(ro.write_zeroes(0, 512, false).is_err());
    }

    #[test]
    fn default_write_zeroes_writes_in_chunks() {
        struct Plain(Vec<u8>);
        impl NbdExport for Plain {
            fn size(&self) -> u64 {
                self.0.len() as u64
            }
            fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
                let o = offset as usize;
                buf.copy_from_slice(&self.0[o..o + buf.len()]);
                Ok(())
            }
            fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
                let o = offset as usize;
                self.0[o..o + data.len()].copy_from_slice(data);
                Ok(())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut p = Plain(vec![1; 3 << 20]);
        p.write_zeroes(1, (3 << 20) - 2, false).unwrap();
        assert_eq!(p.0[0], 1);
        assert_eq!(p.0[(3 << 20) - 1], 1);
        assert!(p.0[1..(3 << 20) - 1].iter().all(|&b| b == 0));
        assert!(p.trim(0, 10).is_ok());
        assert!(!p.read_only());
        assert_eq!(p.block_size(), 512);
    }
}
