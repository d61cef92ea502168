//! Transmit path: frames from the guest's transmit buffers to the backend.

use log::{debug, warn};
use virtio_queue::{QueueOwnedT, QueueT};

use super::{Net, MAX_FRAME_LEN, NET_HDR_LEN, TX_QUEUE};
use crate::virtio::descriptors::{ChainError, DescriptorBuffers};
use crate::GuestMemory;

/// Why a transmit chain was not sent.
#[derive(Debug, thiserror::Error)]
enum TxError {
    #[error("bad descriptor chain: {0}")]
    Chain(#[from] ChainError),
    #[error("{0} bytes is shorter than the 12-byte virtio-net header")]
    NoHeader(u64),
    #[error("{0}-byte frame exceeds the maximum of {MAX_FRAME_LEN}")]
    TooLarge(u64),
}

impl Net {
    /// Sends every frame the guest queued for transmission and returns the buffers.
    pub(super) fn transmit(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let used_before = active.tx.next_used();
        loop {
            let chain = match active.tx.iter(mem) {
                Ok(mut iter) => iter.next(),
                Err(e) => {
                    warn!("virtio-net: cannot read the transmit queue's available ring: {e}");
                    None
                }
            };
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let frame = DescriptorBuffers::parse(mem, chain)
                .map_err(TxError::from)
                .and_then(|bufs| gather_frame(mem, &bufs, &mut self.tx_frame));
            match frame {
                Ok(()) => match self.backend.send(&self.tx_frame) {
                    Ok(()) => {
                        self.metrics.tx_frames += 1;
                        self.metrics.tx_bytes += self.tx_frame.len() as u64;
                    }
                    Err(e) => {
                        self.metrics.tx_dropped += 1;
                        debug!(
                            "virtio-net: backend dropped a {}-byte frame: {e}",
                            self.tx_frame.len()
                        );
                    }
                },
                Err(e) => {
                    self.metrics.tx_malformed += 1;
                    warn!("virtio-net: transmit buffer {head} dropped: {e}");
                }
            }
            if let Err(e) = active.tx.add_used(mem, head, 0) {
                warn!("virtio-net: cannot return transmit buffer {head}: {e}");
                break;
            }
        }
        if active.tx.next_used() != used_before {
            active.notify(TX_QUEUE);
        }
    }
}

/// Copies the frame (the readable bytes after the virtio-net header) into `frame`.
fn gather_frame(
    mem: &GuestMemory,
    bufs: &DescriptorBuffers,
    frame: &mut Vec<u8>,
) -> Result<(), TxError> {
    let len = bufs
        .readable_len()
        .checked_sub(NET_HDR_LEN as u64)
        .ok_or(TxError::NoHeader(bufs.readable_len()))?;
    if len > MAX_FRAME_LEN as u64 {
        return Err(TxError::TooLarge(len));
    }
    frame.resize(len as usize, 0);
    bufs.read_at(mem, NET_HDR_LEN as u64, frame)?;
    Ok(())
}
