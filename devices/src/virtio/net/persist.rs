//! Saving and restoring a network device. The queues are saved by the transport.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Net, NetMetrics, MAX_FRAME_LEN, MAX_RX_BACKLOG_BYTES, MAX_RX_BACKLOG_FRAMES};
use crate::backends::NetBackend;
use crate::persist::{bad_field, Persist, PersistError};

/// Name of the device in restore errors.
const COMPONENT: &str = "virtio-net";

/// The saved network device.
///
/// Frames in flight: on receive, frames taken from the backend but not yet in a guest
/// buffer (the one waiting for a buffer, then the backlog that
/// [`Net::absorb_backend_backlog`] took from the backend just before the snapshot) are saved
/// here and delivered after restore, before anything new is read from the backend.
/// Transmit has nothing in flight: a transmit pass takes each chain, hands the frame to the
/// backend and returns the chain in one go under the device lock, so while the VMM holds
/// the lock every chain is either still available (the restored device sends it) or
/// already used (it was sent before the snapshot). Not saved: the backend (given back in
/// [`NetArgs`]), the queues (saved with the transport), and whether the backend fd was
/// being polled (the VMM registers the restored device anew and it works that out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The MAC address in config space, if one was given (this decides VIRTIO_NET_F_MAC).
    pub mac: Option<[u8; 6]>,
    /// Features the driver accepted.
    pub acked_features: u64,
    /// Whether the device had asked the driver to notify it of new receive buffers.
    pub rx_notifications: bool,
    /// A received frame waiting for a guest receive buffer.
    pub pending_rx_frame: Option<Vec<u8>>,
    /// Received frames queued behind it, oldest first (taken from the backend just before
    /// the snapshot).
    pub rx_backlog: Vec<Vec<u8>>,
    /// Counters.
    pub metrics: NetMetrics,
}

/// What a restored network device needs from the host.
pub struct NetArgs {
    /// Where frames go and come from after the restore.
    pub backend: Box<dyn NetBackend>,
    /// A MAC address to put in config space instead of the saved one (a clone's own
    /// address). The guest sees it when its driver next reads the config space.
    pub mac: Option<[u8; 6]>,
}

impl Persist for Net {
    type State = NetState;
    type Args = NetArgs;

    fn save(&self) -> NetState {
        NetState {
            mac: self.mac,
            acked_features: self.acked_features,
            rx_notifications: self.rx_notifications,
            pending_rx_frame: self.rx_pending.map(|len| self.rx_frame[..len].to_vec()),
            rx_backlog: self.rx_backlog.iter().cloned().collect(),
            metrics: self.metrics,
        }
    }

    /// Rebuilds the device, not yet activated: restoring its transport resumes it, which
    /// delivers the pending frames as soon as the guest has receive buffers.
    fn restore(args: NetArgs, state: &NetState) -> Result<Self, PersistError> {
        let mut net = Net::new(args.backend, args.mac.or(state.mac))
            .map_err(|e| PersistError::new(COMPONENT, e.to_string()))?;
        let unknown = state.acked_features & !net.avail_features;
        if unknown != 0 {
            return Err(bad_field(
                COMPONENT,
                "acked_features",
                format!("features {unknown:#x} are not offered by this device"),
            ));
        }
        let check_frame = |field: &str, frame: &[u8]| {
            if frame.is_empty() || frame.len() > MAX_FRAME_LEN {
                Err(bad_field(
                    COMPONENT,
                    field,
                    format!("{} bytes; a frame has 1 to {MAX_FRAME_LEN}", frame.len()),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(frame) = &state.pending_rx_frame {
            check_frame("pending_rx_frame", frame)?;
            net.rx_frame[..frame.len()].copy_from_slice(frame);
            net.rx_pending = Some(frame.len());
        }
        let backlog = &state.rx_backlog;
        if backlog.len() > MAX_RX_BACKLOG_FRAMES {
            return Err(bad_field(
                COMPONENT,
                "rx_backlog",
                format!(
                    "{} frames; the backlog holds at most {MAX_RX_BACKLOG_FRAMES}",
                    backlog.len()
                ),
            ));
        }
        let mut total = 0usize;
        for (i, frame) in backlog.iter().enumerate() {
            check_frame(&format!("rx_backlog[{i}]"), frame)?;
            total += frame.len();
        }
        // The last frame taken may cross the byte limit.
        let limit = MAX_RX_BACKLOG_BYTES + MAX_FRAME_LEN;
        if total > limit {
            return Err(bad_field(
                COMPONENT,
                "rx_backlog",
                format!("{total} bytes of frames; the backlog holds at most {limit}"),
            ));
        }
        net.rx_backlog = backlog.iter().cloned().collect::<VecDeque<_>>();
        net.acked_features = state.acked_features;
        net.rx_notifications = state.rx_notifications;
        net.metrics = state.metrics;
        Ok(net)
    }
}
