//! A raw disk image (regular file or block device) as a [`BlockBackend`].
//!
//! Reads and writes are positional (`pread`/`pwrite`). With `direct` the file is opened with
//! `O_DIRECT`, bypassing the host page cache; data then goes through a bounce buffer aligned
//! to 4 KiB because guest buffers are not. Flush is `fdatasync`; discard punches a hole and
//! falls back to writing zeros where the file system cannot.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use log::{debug, info};
use vmm_sys_util::fallocate::{fallocate, FallocateMode};

use super::BlockBackend;

/// Longest device ID a virtio-blk GET_ID request can return.
pub const MAX_DEVICE_ID_LEN: usize = 20;
/// Alignment of the memory buffer used for `O_DIRECT` transfers.
const DIRECT_ALIGN: usize = 4096;
/// Size of the `O_DIRECT` bounce buffer; larger transfers are split.
const BOUNCE_LEN: usize = 1 << 20;
/// Zeros written per call when a discard falls back to writing zeros.
const ZERO_CHUNK: usize = 1 << 20;
/// The virtio-blk sector: capacity is rounded down to it.
const SECTOR_SIZE: u64 = 512;

/// Errors opening a raw disk image.
#[derive(Debug, thiserror::Error)]
pub enum RawFileError {
    /// The image could not be opened.
    #[error("cannot open disk image {}{}: {source}", path.display(), if *direct { " with O_DIRECT" } else { "" })]
    Open {
        /// Path of the image.
        path: PathBuf,
        /// Whether O_DIRECT was requested.
        direct: bool,
        /// The underlying error.
        source: io::Error,
    },
    /// The size of the image could not be determined.
    #[error("cannot determine the size of disk image {}: {source}", path.display())]
    Size {
        /// Path of the image.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The device ID does not fit in a virtio-blk GET_ID answer.
    #[error("device ID {id:?} for disk image {} is {len} bytes; at most 20 are allowed", path.display())]
    DeviceIdTooLong {
        /// Path of the image.
        path: PathBuf,
        /// The rejected ID.
        id: String,
        /// Its length in bytes.
        len: usize,
    },
}

/// How to open a raw image.
#[derive(Clone, Debug, Default)]
pub struct RawFileOptions {
    /// Refuse writes and discards (the file is opened read-only).
    pub read_only: bool,
    /// Open with `O_DIRECT` to bypass the host page cache.
    pub direct: bool,
    /// Serial string returned to the guest for GET_ID (at most 20 bytes).
    pub device_id: String,
}

/// A raw disk image.
pub struct RawFile {
    file: File,
    path: PathBuf,
    read_only: bool,
    direct: bool,
    capacity: u64,
    device_id: String,
    /// Over-allocated storage for the aligned bounce buffer (`O_DIRECT` only).
    bounce: Vec<u8>,
    punch_hole: bool,
}

impl RawFile {
    /// Opens the image at `path`.
    pub fn open(path: impl AsRef<Path>, options: &RawFileOptions) -> Result<Self, RawFileError> {
        let path = path.as_ref().to_path_buf();
        if options.device_id.len() > MAX_DEVICE_ID_LEN {
            return Err(RawFileError::DeviceIdTooLong {
                path,
                id: options.device_id.clone(),
                len: options.device_id.len(),
            });
        }
        let mut open = OpenOptions::new();
        open.read(true).write(!options.read_only);
        if options.direct {
            open.custom_flags(libc::O_DIRECT);
        }
        let mut file = open.open(&path).map_err(|source| RawFileError::Open {
            path: path.clone(),
            direct: options.direct,
            source,
        })?;
        // Seeking to the end works for block devices too, whose metadata length is 0.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| RawFileError::Size {
                path: path.clone(),
                source,
            })?;
        let capacity = size - size % SECTOR_SIZE;
        if capacity != size {
            info!(
                "disk image {}: {size} bytes is not a whole number of 512-byte sectors; the \
                 last {} bytes are not visible to the guest",
                path.display(),
                size - capacity
            );
        }
        let bounce = if options.direct {
            vec![0; BOUNCE_LEN + DIRECT_ALIGN]
        } else {
            Vec::new()
        };
        Ok(RawFile {
            file,
            path,
            read_only: options.read_only,
            direct: options.direct,
            capacity,
            device_id: options.device_id.clone(),
            bounce,
            punch_hole: true,
        })
    }

    /// Path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the image was opened with `O_DIRECT`.
    pub fn direct(&self) -> bool {
        self.direct
    }

    /// The aligned part of the bounce buffer.
    fn aligned_bounce(bounce: &mut [u8]) -> &mut [u8] {
        let start = bounce.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        let end = (start + BOUNCE_LEN).min(bounce.len());
        &mut bounce[start..end]
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("disk image {} is read-only", self.path.display()),
            ));
        }
        Ok(())
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; (len as usize).min(ZERO_CHUNK)];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            self.write_at(offset + done, &zeros[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

impl BlockBackend for RawFile {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if !self.direct {
            return self.file.read_exact_at(buf, offset);
        }
        let bounce = Self::aligned_bounce(&mut self.bounce);
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(bounce.len());
            self.file
                .read_exact_at(&mut bounce[..n], offset + done as u64)?;
            buf[done..done + n].copy_from_slice(&bounce[..n]);
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        if !self.direct {
            return self.file.write_all_at(buf, offset);
        }
        let bounce = Self::aligned_bounce(&mut self.bounce);
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(bounce.len());
            bounce[..n].copy_from_slice(&buf[done..done + n]);
            self.file.write_all_at(&bounce[..n], offset + done as u64)?;
            done += n;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check_writable()?;
        if len == 0 {
            return Ok(());
        }
        if self.punch_hole {
            match fallocate(&self.file, FallocateMode::PunchHole, true, offset, len) {
                Ok(()) => return Ok(()),
                Err(e) if e.errno() == libc::EOPNOTSUPP || e.errno() == libc::ENOSYS => {
                    debug!(
                        "disk image {}: hole punching unsupported ({e}); discards write zeros",
                        self.path.display()
                    );
                    self.punch_hole = false;
                }
                Err(e) => return Err(io::Error::from_raw_os_error(e.errno())),
            }
        }
        self.write_zeroes(offset, len)
    }

    fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Grows or shrinks the image file (a block device cannot be resized).
    fn resize(&mut self, bytes: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("disk image {} is read-only", self.path.display()),
            ));
        }
        if !bytes.is_multiple_of(SECTOR_SIZE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "new size {bytes} of {} is not a multiple of 512",
                    self.path.display()
                ),
            ));
        }
        if !self.file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{} is not a regular file and cannot be resized",
                    self.path.display()
                ),
            ));
        }
        self.file.set_len(bytes)?;
        self.capacity = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::tempfile::TempFile;

    fn image(len: u64) -> TempFile {
        let f = TempFile::new_with_prefix("/tmp/reprise-raw").unwrap();
        f.as_file().set_len(len).unwrap();
        f
    }

    fn options(read_only: bool, direct: bool) -> RawFileOptions {
        RawFileOptions {
            read_only,
            direct,
            device_id: "disk0".to_string(),
        }
    }

    fn round_trip(direct: bool) {
        let img = image(1 << 20);
        let mut raw = match RawFile::open(img.as_path(), &options(false, direct)) {
            Ok(raw) => raw,
            Err(RawFileError::Open { source, .. })
                if direct && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                eprintln!("skipping: this file system does not support O_DIRECT");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(raw.capacity(), 1 << 20);
        let data: Vec<u8> = (0..3 * 512).map(|i| (i % 251) as u8).collect();
        raw.write_at(4096, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        raw.read_at(4096, &mut back).unwrap();
        assert_eq!(back, data);
        raw.flush().unwrap();
        raw.discard(4096, 1024).unwrap();
        raw.read_at(4096, &mut back).unwrap();
        assert!(back[..1024].iter().all(|&b| b == 0));
        assert_eq!(&back[1024..], &data[1024..]);
        // The file keeps its size.
        assert_eq!(img.as_file().metadata().unwrap().len(), 1 << 20);
    }

    #[test]
    fn buffered_round_trip() {
        round_trip(false);
    }

    #[test]
    fn direct_round_trip() {
        round_trip(true);
    }

    #[test]
    fn read_only_refuses_writes() {
        let img = image(4096);
        let mut raw = RawFile::open(img.as_path(), &options(true, false)).unwrap();
        assert!(raw.read_only());
        assert_eq!(
            raw.write_at(0, &[0; 512]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(raw.discard(0, 512).is_err());
        raw.flush().unwrap();
    }

    #[test]
    fn capacity_rounds_down_and_errors_name_the_path() {
        let img = image(1000);
        let raw = RawFile::open(img.as_path(), &options(false, false)).unwrap();
        assert_eq!(raw.capacity(), 512);
        assert_eq!(raw.device_id(), "disk0");

        let err = RawFile::open("/nonexistent/disk.img", &options(false, false))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/disk.img"), "{err}");

        let mut long = options(false, false);
        long.device_id = "x".repeat(21);
        let err = RawFile::open(img.as_path(), &long).err().unwrap();
        assert!(matches!(err, RawFileError::DeviceIdTooLong { len: 21, .. }));
    }

    #[test]
    fn zero_fallback_matches_punch_hole() {
        let img = image(8192);
        let mut raw = RawFile::open(img.as_path(), &options(false, false)).unwrap();
        raw.write_at(0, &[0xaa; 8192]).unwrap();
        raw.punch_hole = false;
        raw.discard(512, 1024).unwrap();
        let mut back = vec![0u8; 8192];
        raw.read_at(0, &mut back).unwrap();
        assert!(back[..512].iter().all(|&b| b == 0xaa));
        assert!(back[512..1536].iter().all(|&b| b == 0));
        assert!(back[1536..].iter().all(|&b| b == 0xaa));
    }
}
