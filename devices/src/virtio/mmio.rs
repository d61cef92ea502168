//! Placeholder replaced by the implementation.

/// The virtio-mmio transport.
pub struct MmioTransport;
