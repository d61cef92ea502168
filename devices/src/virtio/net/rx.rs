//! Receive path: frames from the backend into the guest's receive buffers.

use log::{debug, warn};
use virtio_queue::{QueueOwnedT, QueueT};

use super::{Active, Net, NetMetrics, NET_HDR_LEN, RX_QUEUE};
use crate::virtio::descriptors::DescriptorBuffers;

/// Frames moved per call, so that a busy backend cannot starve the rest of the event loop
/// (the backend fd stays readable and the loop comes back).
const RX_BATCH: usize = 64;

/// `virtio_net_hdr_v1` for a received frame: no checksum or GSO information,
/// `num_buffers` = 1 (bytes 10..12).
const RX_HEADER: [u8; NET_HDR_LEN] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// What became of a frame offered to the guest.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Delivered,
    /// No receive buffer is available: keep the frame.
    NoBuffer,
    /// The frame could not be delivered and was dropped (and counted).
    Dropped,
}

impl Net {
    /// Moves frames into guest receive buffers: first the one already waiting, then those of
    /// the backlog, then new ones from the backend. Returns `true` when it stopped because
    /// the guest has no receive buffer; a frame is then pending and the backend should not
    /// be polled until the driver adds buffers.
    pub(super) fn receive(&mut self) -> bool {
        let Some(active) = self.active.as_mut() else {
            return true;
        };
        let used_before = active.rx.next_used();
        let mut stalled = false;
        for _ in 0..RX_BATCH {
            let backlog = match self.rx_pending {
                Some(_) => None,
                None => self.rx_backlog.pop_front(),
            };
            let len = match (self.rx_pending, backlog) {
                (Some(len), _) => len,
                (None, Some(frame)) => {
                    let len = frame.len().min(self.rx_frame.len());
                    self.rx_frame[..len].copy_from_slice(&frame[..len]);
                    len
                }
                (None, None) => match self.backend.recv(&mut self.rx_frame) {
                    Ok(Some(0)) => {
                        self.metrics.rx_dropped += 1;
                        debug!("virtio-net: dropped an empty frame from the backend");
                        continue;
                    }
                    Ok(Some(len)) => len.min(self.rx_frame.len()),
                    Ok(None) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        self.metrics.rx_backend_errors += 1;
                        warn!("virtio-net: receiving from the backend failed: {e}");
                        break;
                    }
                },
            };
            match deliver(active, &self.rx_frame[..len], &mut self.metrics) {
                Delivery::Delivered | Delivery::Dropped => {
                    self.rx_pending = None;
                    if self.rx_notifications {
                        match active.rx.disable_notification(&active.mem) {
                            Ok(()) => self.rx_notifications = false,
                            Err(e) => debug!("virtio-net: {e}"),
                        }
                    }
                }
                Delivery::NoBuffer if !self.rx_notifications => {
                    // Ask the driver to notify when it adds buffers; if it added some in the
                    // meantime, try again now. The frame waits either way.
                    self.rx_pending = Some(len);
                    match active.rx.enable_notification(&active.mem) {
                        Ok(more) => {
                            self.rx_notifications = true;
                            if more {
                                continue;
                            }
                        }
                        Err(e) => warn!("virtio-net: cannot enable receive notifications: {e}"),
                    }
                    self.metrics.rx_deferred += 1;
                    debug!("virtio-net: no receive buffer; holding a {len}-byte frame");
                    stalled = true;
                    break;
                }
                Delivery::NoBuffer => {
                    if self.rx_pending.is_none() {
                        self.metrics.rx_deferred += 1;
                        debug!("virtio-net: no receive buffer; holding a {len}-byte frame");
                    }
                    self.rx_pending = Some(len);
                    stalled = true;
                    break;
                }
            }
        }
        if active.rx.next_used() != used_before {
            active.notify(RX_QUEUE);
        }
        if !stalled && !self.rx_backlog.is_empty() {
            // The batch ended with frames of the backlog left, which no fd announces.
            self.kick_rx();
        }
        stalled
    }
}

/// Puts `frame` into the next usable receive buffer.
fn deliver(active: &mut Active, frame: &[u8], metrics: &mut NetMetrics) -> Delivery {
    let mem = &active.mem;
    loop {
        let chain = match active.rx.iter(mem) {
            Ok(mut iter) => iter.next(),
            Err(e) => {
                warn!("virtio-net: cannot read the receive queue's available ring: {e}");
                None
            }
        };
        let Some(chain) = chain else {
            return Delivery::NoBuffer;
        };
        let head = chain.head_index();
        let bufs = match DescriptorBuffers::parse(mem, chain) {
            Ok(bufs) => bufs,
            Err(e) => {
                metrics.rx_bad_buffers += 1;
                warn!("virtio-net: receive buffer {head} returned unused: {e}");
                if let Err(e) = active.rx.add_used(mem, head, 0) {
                    warn!("virtio-net: cannot return receive buffer {head}: {e}");
                    return Delivery::NoBuffer;
                }
                continue;
            }
        };
        let total = NET_HDR_LEN + frame.len();
        if bufs.writable_len() < total as u64 {
            // Without VIRTIO_NET_F_MRG_RXBUF a frame must fit in one buffer. Keep the buffer
            // for the next (smaller) frame.
            active.rx.go_to_previous_position();
            metrics.rx_dropped += 1;
            debug!(
                "virtio-net: dropped a {}-byte frame: receive buffer holds {} bytes",
                frame.len(),
                bufs.writable_len()
            );
            return Delivery::Dropped;
        }
        let written = bufs
            .write_at(mem, 0, &RX_HEADER)
            .and_then(|()| bufs.write_at(mem, NET_HDR_LEN as u64, frame));
        let used_len = match written {
            Ok(()) => {
                metrics.rx_frames += 1;
                metrics.rx_bytes += frame.len() as u64;
                total as u32
            }
            Err(e) => {
                metrics.rx_dropped += 1;
                warn!("virtio-net: dropped a received frame: {e}");
                0
            }
        };
        if let Err(e) = active.rx.add_used(mem, head, used_len) {
            warn!("virtio-net: cannot return receive buffer {head}: {e}");
        }
        return if used_len > 0 {
            Delivery::Delivered
        } else {
            Delivery::Dropped
        };
    }
}
