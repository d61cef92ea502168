//! A descriptor chain flattened into its device-readable and device-writable byte streams.
//!
//! Drivers may frame a request however they like (virtio 1.2 §2.6.4), so devices address the
//! chain as two contiguous streams: every device-readable byte in chain order, then every
//! device-writable byte. Parsing checks the layout rules and that every buffer lies in guest
//! memory, so later accesses fail only if the memory map itself changes.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::GuestMemory;

/// What is wrong with a descriptor chain or an access to it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    /// The driver placed a device-readable buffer after a device-writable one.
    #[error("descriptor chain has a device-readable buffer after a device-writable one")]
    ReadableAfterWritable,
    /// A buffer does not lie inside guest memory.
    #[error("descriptor buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideMemory {
        /// Guest physical address of the buffer.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// The access goes past the end of the stream.
    #[error("access of {len} bytes at offset {offset} exceeds the {available} bytes of the chain")]
    OutOfBounds {
        /// Offset of the access in the stream.
        offset: u64,
        /// Length of the access.
        len: usize,
        /// Bytes in the stream.
        available: u64,
    },
    /// Guest memory refused the access.
    #[error("guest memory access at {addr:#x} failed: {source}")]
    Memory {
        /// Guest physical address of the failed access.
        addr: u64,
        /// The underlying error.
        source: vm_memory::GuestMemoryError,
    },
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    addr: GuestAddress,
    len: u32,
}

/// The buffers of one descriptor chain.
#[derive(Debug)]
pub(crate) struct DescriptorBuffers {
    head: u16,
    readable: Vec<Segment>,
    writable: Vec<Segment>,
    readable_len: u64,
    writable_len: u64,
}

impl DescriptorBuffers {
    /// Walks `chain`, checking that readable buffers come first and that every buffer is in
    /// guest memory. A chain cut short by a bad `next` index or indirect table simply ends
    /// where the walk stopped; the device then sees fewer bytes than it expects.
    pub(crate) fn parse<M>(mem: &GuestMemory, chain: DescriptorChain<M>) -> Result<Self, ChainError>
    where
        M: Deref,
        M::Target: vm_memory::GuestMemory,
    {
        let mut bufs = DescriptorBuffers {
            head: chain.head_index(),
            readable: Vec::new(),
            writable: Vec::new(),
            readable_len: 0,
            writable_len: 0,
        };
        for desc in chain {
            let segment = Segment {
                addr: desc.addr(),
                len: desc.len(),
            };
            if segment.len > 0
                && !GuestMemoryBackend::check_range(mem, segment.addr, segment.len as usize)
            {
                return Err(ChainError::OutsideMemory {
                    addr: segment.addr.0,
                    len: segment.len,
                });
            }
            if desc.is_write_only() {
                bufs.writable_len += u64::from(segment.len);
                bufs.writable.push(segment);
            } else {
                if !bufs.writable.is_empty() {
                    return Err(ChainError::ReadableAfterWritable);
                }
                bufs.readable_len += u64::from(segment.len);
                bufs.readable.push(segment);
            }
        }
        Ok(bufs)
    }

    /// Index of the chain's head descriptor, to return it on the used ring.
    pub(crate) fn head(&self) -> u16 {
        self.head
    }

    /// Total device-readable bytes.
    pub(crate) fn readable_len(&self) -> u64 {
        self.readable_len
    }

    /// Total device-writable bytes.
    pub(crate) fn writable_len(&self) -> u64 {
        self.writable_len
    }

    /// Copies `buf.len()` device-readable bytes starting at `offset` of the readable stream.
    pub(crate) fn read_at(
        &self,
        mem: &GuestMemory,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), ChainError> {
        let len = buf.len();
        for_each_piece(
            &self.readable,
            self.readable_len,
            offset,
            len,
            |addr, start, n| {
                mem.read_slice(&mut buf[start..start + n], addr)
                    .map_err(|source| ChainError::Memory {
                        addr: addr.0,
                        source,
                    })
            },
        )
    }

    /// Copies `buf` into the device-writable stream starting at `offset`.
    pub(crate) fn write_at(
        &self,
        mem: &GuestMemory,
        offset: u64,
        buf: &[u8],
    ) -> Result<(), ChainError> {
        for_each_piece(
            &self.writable,
            self.writable_len,
            offset,
            buf.len(),
            |addr, start, len| {
                mem.write_slice(&buf[start..start + len], addr)
                    .map_err(|source| ChainError::Memory {
                        addr: addr.0,
                        source,
                    })
            },
        )
    }
}

/// Calls `f(guest_address, offset_in_buffer, length)` for each contiguous piece of the
/// `[offset, offset + len)` range of the stream made of `segments`.
fn for_each_piece(
    segments: &[Segment],
    total: u64,
    offset: u64,
    len: usize,
    mut f: impl FnMut(GuestAddress, usize, usize) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    let out_of_bounds = ChainError::OutOfBounds {
        offset,
        len,
        available: total,
    };
    match offset.checked_add(len as u64) {
        Some(end) if end <= total => {}
        _ => return Err(out_of_bounds),
    }
    let mut skip = offset;
    let mut done = 0usize;
    for seg in segments {
        if done == len {
            break;
        }
        let seg_len = u64::from(seg.len);
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        // `skip < seg_len <= u32::MAX`, so these conversions cannot truncate.
        let piece = ((seg_len - skip) as usize).min(len - done);
        let addr =
            seg.addr
                .0
                .checked_add(skip)
                .map(GuestAddress)
                .ok_or(ChainError::OutsideMemory {
                    addr: seg.addr.0,
                    len: seg.len,
                })?;
        f(addr, done, piece)?;
        done += piece;
        skip = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{guest_memory, TestQueue};

    #[test]
    fn streams_span_descriptors() {
        let mem = guest_memory();
        let mut tq = TestQueue::new(&mem, 0x1000, 16);
        mem.write_slice(b"abcd", GuestAddress(0x10_0000)).unwrap();
        mem.write_slice(b"efgh", GuestAddress(0x20_0000)).unwrap();
        tq.add_chain(&[
            (0x10_0000, 4, false),
            (0x20_0000, 4, false),
            (0x30_0000, 3, true),
            (0x40_0000, 3, true),
        ]);
        let mut q = tq.queue();
        let chain = virtio_queue::QueueT::pop_descriptor_chain(&mut q, &mem).unwrap();
        let bufs = DescriptorBuffers::parse(&mem, chain).unwrap();
        assert_eq!(bufs.readable_len(), 8);
        assert_eq!(bufs.writable_len(), 6);
        let mut b = [0u8; 4];
        bufs.read_at(&mem, 2, &mut b).unwrap();
        assert_eq!(&b, b"cdef");
        bufs.write_at(&mem, 1, b"XYZW").unwrap();
        let mut w = [0u8; 3];
        mem.read_slice(&mut w, GuestAddress(0x30_0000)).unwrap();
        assert_eq!(&w[1..], b"XY");
        mem.read_slice(&mut w, GuestAddress(0x40_0000)).unwrap();
        assert_eq!(&w[..2], b"ZW");
        assert!(matches!(
            bufs.write_at(&mem, 4, b"toolong"),
            Err(ChainError::OutOfBounds { .. })
        ));
        assert!(bufs.read_at(&mem, u64::MAX, &mut b).is_err());
    }

    #[test]
    fn rejects_bad_layouts() {
        let mem = guest_memory();
        let mut tq = TestQueue::new(&mem, 0x1000, 16);
        tq.add_chain(&[(0x30_0000, 3, true), (0x10_0000, 4, false)]);
        tq.add_chain(&[(0xffff_0000_0000, 4, false)]);
        let mut q = tq.queue();
        let chain = virtio_queue::QueueT::pop_descriptor_chain(&mut q, &mem).unwrap();
        assert!(matches!(
            DescriptorBuffers::parse(&mem, chain),
            Err(ChainError::ReadableAfterWritable)
        ));
        let chain = virtio_queue::QueueT::pop_descriptor_chain(&mut q, &mem).unwrap();
        assert!(matches!(
            DescriptorBuffers::parse(&mem, chain),
            Err(ChainError::OutsideMemory { .. })
        ));
    }
}
