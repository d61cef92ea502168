//! One virtio-blk request: parsing, validation and execution against the backend
//! (virtio 1.2 §5.2.6).
//!
//! A request is a 16-byte header (type, reserved, sector) in the device-readable stream,
//! followed by OUT/DISCARD/WRITE_ZEROES payload; the device-writable stream holds IN/GET_ID
//! data and ends with the one-byte status. Nothing the guest writes can make this code panic:
//! every length and range is checked before the backend is called.

use std::io;

use log::{debug, warn};

use super::config::{
    MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SEG,
    SECTOR_SIZE,
};
use super::BlockMetrics;
use crate::backends::{BlockBackend, IoDirection};
use crate::virtio::descriptors::{ChainError, DescriptorBuffers};
use crate::GuestMemory;

/// Request type: read sectors.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write sectors.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush the write cache.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: read the device ID string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Request type: discard ranges.
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
/// Request type: write zeroes to ranges.
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: the request failed (bad range, read-only disk, backend error).
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: the request type or a flag is not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Length of the device ID string returned by GET_ID.
pub const VIRTIO_BLK_ID_BYTES: usize = 20;
/// WRITE_ZEROES flag: the device may deallocate the range.
const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

const HEADER_LEN: u64 = 16;
const SEGMENT_LEN: u64 = 16;
/// Data moves between guest memory and the backend in pieces of at most this size.
const IO_CHUNK: usize = 128 * 1024;

/// Why a request failed; each maps to the status the guest sees.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("request header is {0} bytes, expected 16")]
    ShortHeader(u64),
    #[error("bad descriptor chain: {0}")]
    Chain(#[from] ChainError),
    #[error("request type {0} is not supported")]
    Unsupported(u32),
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("data length {0} is not a multiple of 512")]
    Unaligned(u64),
    #[error("sectors {sector}+{sectors} are beyond the disk's {capacity} sectors")]
    OutOfRange {
        sector: u64,
        sectors: u64,
        capacity: u64,
    },
    #[error("{0}-byte segment list is not a whole number of 16-byte segments")]
    BadSegmentList(u64),
    #[error("{count} segments exceed the limit of {limit}")]
    TooManySegments { count: u64, limit: u32 },
    #[error("segment of {sectors} sectors exceeds the limit of {limit}")]
    SegmentTooLarge { sectors: u32, limit: u32 },
    #[error("segment flags {0:#x} are not supported")]
    BadFlags(u32),
    #[error("backend failed: {0}")]
    Backend(#[source] io::Error),
}

impl RequestError {
    fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) | RequestError::BadFlags(_) => VIRTIO_BLK_S_UNSUPP,
            _ => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// What a request costs under I/O limits: its direction and payload bytes. Requests that
/// move no data (FLUSH, GET_ID, unknown types) and malformed ones are not limited.
pub(super) fn admission_cost(
    mem: &GuestMemory,
    bufs: &DescriptorBuffers,
) -> Option<(IoDirection, u64)> {
    let mut header = [0u8; 4];
    bufs.read_at(mem, 0, &mut header).ok()?;
    match u32::from_le_bytes(header) {
        VIRTIO_BLK_T_IN => Some((IoDirection::Read, bufs.writable_len().saturating_sub(1))),
        VIRTIO_BLK_T_OUT => Some((
            IoDirection::Write,
            bufs.readable_len().saturating_sub(HEADER_LEN),
        )),
        VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => Some((IoDirection::Write, 0)),
        _ => None,
    }
}

/// Where a request's outcome is counted.
#[derive(Clone, Copy)]
enum Kind {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
    Other,
}

/// The disk behind a virtio-blk device: the backend plus what requests are checked against.
pub(super) struct Disk {
    /// Names the device in logs: `virtio-blk[<device id>]`.
    pub(super) label: String,
    pub(super) backend: Box<dyn BlockBackend>,
    pub(super) capacity_sectors: u64,
    pub(super) read_only: bool,
    pub(super) metrics: BlockMetrics,
    bounce: Vec<u8>,
}

impl Disk {
    pub(super) fn new(backend: Box<dyn BlockBackend>) -> Self {
        let label = match backend.device_id() {
            "" => "virtio-blk".to_string(),
            id => format!("virtio-blk[{id}]"),
        };
        Disk {
            label,
            capacity_sectors: backend.capacity() / SECTOR_SIZE,
            read_only: backend.read_only(),
            backend,
            metrics: BlockMetrics::default(),
            bounce: Vec::new(),
        }
    }

    /// Executes the request held in `bufs` and writes its status byte. Returns the number of
    /// bytes written into the chain (the used length).
    pub(super) fn handle(&mut self, mem: &GuestMemory, bufs: &DescriptorBuffers) -> u32 {
        self.metrics.requests += 1;
        let Some(status_offset) = bufs.writable_len().checked_sub(1) else {
            self.metrics.invalid_requests += 1;
            warn!(
                "{}: request {} has no device-writable status byte; dropped",
                self.label,
                bufs.head()
            );
            return 0;
        };
        let (status, written) = match self.execute(mem, bufs, status_offset) {
            Ok(written) => (VIRTIO_BLK_S_OK, written),
            Err(e) => {
                self.count_failure(&e);
                (e.status(), 0)
            }
        };
        if let Err(e) = bufs.write_at(mem, status_offset, &[status]) {
            self.metrics.invalid_requests += 1;
            warn!(
                "{}: cannot write status of request {}: {e}",
                self.label,
                bufs.head()
            );
            return 0;
        }
        // `written + 1` is at most the chain's writable length, which fits in 32 bits.
        u32::try_from(written + 1).unwrap_or(u32::MAX)
    }

    fn count_failure(&mut self, e: &RequestError) {
        match e {
            RequestError::Backend(_) => {
                self.metrics.io_errors += 1;
                warn!("{}: {e}", self.label);
            }
            RequestError::Unsupported(_) => {
                self.metrics.unsupported_requests += 1;
                debug!("{}: {e}", self.label);
            }
            _ => {
                self.metrics.invalid_requests += 1;
                debug!("{}: rejected request: {e}", self.label);
            }
        }
    }

    /// Runs the request; returns the number of data bytes written into the chain (not
    /// counting the status byte).
    fn execute(
        &mut self,
        mem: &GuestMemory,
        bufs: &DescriptorBuffers,
        data_in_len: u64,
    ) -> Result<u64, RequestError> {
        if bufs.readable_len() < HEADER_LEN {
            return Err(RequestError::ShortHeader(bufs.readable_len()));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        bufs.read_at(mem, 0, &mut header)?;
        let request_type = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut sector_bytes = [0u8; 8];
        sector_bytes.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(sector_bytes);
        let data_out_len = bufs.readable_len() - HEADER_LEN;

        let kind = match request_type {
            VIRTIO_BLK_T_IN => Kind::In,
            VIRTIO_BLK_T_OUT => Kind::Out,
            VIRTIO_BLK_T_FLUSH => Kind::Flush,
            VIRTIO_BLK_T_GET_ID => Kind::GetId,
            VIRTIO_BLK_T_DISCARD => Kind::Discard,
            VIRTIO_BLK_T_WRITE_ZEROES => Kind::WriteZeroes,
            _ => Kind::Other,
        };
        match kind {
            Kind::In => {
                self.metrics.read_requests += 1;
                self.read(mem, bufs, sector, data_in_len)?;
                self.metrics.read_bytes += data_in_len;
                Ok(data_in_len)
            }
            Kind::Out => {
                self.metrics.write_requests += 1;
                self.write(mem, bufs, sector, data_out_len)?;
                self.metrics.write_bytes += data_out_len;
                Ok(0)
            }
            Kind::Flush => {
                self.metrics.flush_requests += 1;
                self.backend.flush().map_err(RequestError::Backend)?;
                Ok(0)
            }
            Kind::GetId => {
                self.metrics.get_id_requests += 1;
                let mut id = [0u8; VIRTIO_BLK_ID_BYTES];
                let src = self.backend.device_id().as_bytes();
                let n = src.len().min(VIRTIO_BLK_ID_BYTES);
                id[..n].copy_from_slice(&src[..n]);
                // The string is NUL-padded to 20 bytes; a shorter buffer gets what fits.
                let len = data_in_len.min(VIRTIO_BLK_ID_BYTES as u64) as usize;
                bufs.write_at(mem, 0, &id[..len])?;
                Ok(len as u64)
            }
            Kind::Discard | Kind::WriteZeroes => {
                let discard = matches!(kind, Kind::Discard);
                if discard {
                    self.metrics.discard_requests += 1;
                } else {
                    self.metrics.write_zeroes_requests += 1;
                }
                self.discard_or_zero(mem, bufs, data_out_len, discard)?;
                Ok(0)
            }
            Kind::Other => Err(RequestError::Unsupported(request_type)),
        }
    }

    /// Checks that `len` bytes at `sector` are whole sectors inside the disk; returns the
    /// byte offset.
    fn check_range(&self, sector: u64, len: u64) -> Result<u64, RequestError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(RequestError::Unaligned(len));
        }
        let sectors = len / SECTOR_SIZE;
        let out_of_range = RequestError::OutOfRange {
            sector,
            sectors,
            capacity: self.capacity_sectors,
        };
        match sector.checked_add(sectors) {
            Some(end) if end <= self.capacity_sectors => Ok(sector * SECTOR_SIZE),
            _ => Err(out_of_range),
        }
    }

    fn bounce(&mut self, len: u64) -> usize {
        let chunk = len.min(IO_CHUNK as u64) as usize;
        if self.bounce.len() < chunk {
            self.bounce.resize(chunk, 0);
        }
        chunk
    }

    fn read(
        &mut self,
        mem: &GuestMemory,
        bufs: &DescriptorBuffers,
        sector: u64,
        len: u64,
    ) -> Result<(), RequestError> {
        let offset = self.check_range(sector, len)?;
        let mut done = 0;
        while done < len {
            let n = self.bounce(len - done);
            let buf = &mut self.bounce[..n];
            self.backend
                .read_at(offset + done, buf)
                .map_err(RequestError::Backend)?;
            bufs.write_at(mem, done, buf)?;
            done += n as u64;
        }
        Ok(())
    }

    fn write(
        &mut self,
        mem: &GuestMemory,
        bufs: &DescriptorBuffers,
        sector: u64,
        len: u64,
    ) -> Result<(), RequestError> {
        if self.read_only {
            return Err(RequestError::ReadOnly);
        }
        let offset = self.check_range(sector, len)?;
        let mut done = 0;
        while done < len {
            let n = self.bounce(len - done);
            let buf = &mut self.bounce[..n];
            bufs.read_at(mem, HEADER_LEN + done, buf)?;
            self.backend
                .write_at(offset + done, buf)
                .map_err(RequestError::Backend)?;
            done += n as u64;
        }
        Ok(())
    }

    /// DISCARD and WRITE_ZEROES: every segment is validated before any is executed.
    fn discard_or_zero(
        &mut self,
        mem: &GuestMemory,
        bufs: &DescriptorBuffers,
        payload_len: u64,
        discard: bool,
    ) -> Result<(), RequestError> {
        if self.read_only {
            return Err(RequestError::ReadOnly);
        }
        if payload_len == 0 || !payload_len.is_multiple_of(SEGMENT_LEN) {
            return Err(RequestError::BadSegmentList(payload_len));
        }
        let (max_seg, max_sectors) = if discard {
            (MAX_DISCARD_SEG, MAX_DISCARD_SECTORS)
        } else {
            (MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SECTORS)
        };
        let count = payload_len / SEGMENT_LEN;
        if count > u64::from(max_seg) {
            return Err(RequestError::TooManySegments {
                count,
                limit: max_seg,
            });
        }
        let mut segments = Vec::with_capacity(count as usize);
        for i in 0..count {
            let mut raw = [0u8; SEGMENT_LEN as usize];
            bufs.read_at(mem, HEADER_LEN + i * SEGMENT_LEN, &mut raw)?;
            let mut sector = [0u8; 8];
            sector.copy_from_slice(&raw[0..8]);
            let sector = u64::from_le_bytes(sector);
            let sectors = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let flags = u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]);
            let allowed_flags = if discard {
                0
            } else {
                VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
            };
            if flags & !allowed_flags != 0 {
                return Err(RequestError::BadFlags(flags));
            }
            if sectors > max_sectors {
                return Err(RequestError::SegmentTooLarge {
                    sectors,
                    limit: max_sectors,
                });
            }
            let len = u64::from(sectors) * SECTOR_SIZE;
            let offset = self.check_range(sector, len)?;
            segments.push((offset, len, flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0));
        }
        for (offset, len, unmap) in segments {
            if len == 0 {
                continue;
            }
            if discard || unmap {
                // The backend contract: discarded ranges read back as zeros.
                self.backend
                    .discard(offset, len)
                    .map_err(RequestError::Backend)?;
            } else {
                self.write_zeroes(offset, len)?;
            }
        }
        Ok(())
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), RequestError> {
        let mut done = 0;
        while done < len {
            let n = self.bounce(len - done);
            let buf = &mut self.bounce[..n];
            buf.fill(0);
            self.backend
                .write_at(offset + done, buf)
                .map_err(RequestError::Backend)?;
            done += n as u64;
        }
        Ok(())
    }
}
