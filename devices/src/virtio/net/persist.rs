//! Saving and restoring a network device. The queues are saved by the transport.

use serde::{Deserialize, Serialize};

use super::{Net, NetMetrics, MAX_FRAME_LEN};
use crate::backends::NetBackend;
use crate::persist::{bad_field, Persist, PersistError};

/// Name of the device in restore errors.
const COMPONENT: &str = "virtio-net";

/// The saved network device.
///
/// Frames in flight: on receive, a frame taken from the backend but not yet in a guest
/// buffer is saved here and delivered after restore (before anything new is read from the
/// backend). Transmit has nothing in flight: a transmit pass takes each chain, hands the
/// frame to the backend and returns the chain in one go under the device lock, so while
/// the VMM holds the lock every chain is either still available (the restored device sends
/// it) or already used (it was sent before the snapshot). Not saved: the backend (given
/// back in [`NetArgs`]), the queues (saved with the transport), and whether the backend fd
/// was being polled (the VMM registers the restored device anew and it works that out).
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
    /// Counters.
    pub metrics: NetMetrics,
}

/// What a restored network device needs from the host.
pub struct NetArgs {
    /// Where frames go and come from after the restore.
    pub backend: Box<dyn NetBackend>,
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
            metrics: self.metrics,
        }
    }

    /// Rebuilds the device, not yet activated: restoring its transport resumes it, which
    /// delivers the pending frame as soon as the guest has a receive buffer.
    fn restore(args: NetArgs, state: &NetState) -> Result<Self, PersistError> {
        let mut net = Net::new(args.backend, state.mac)
            .map_err(|e| PersistError::new(COMPONENT, e.to_string()))?;
        let unknown = state.acked_features & !net.avail_features;
        if unknown != 0 {
            return Err(bad_field(
                COMPONENT,
                "acked_features",
                format!("features {unknown:#x} are not offered by this device"),
            ));
        }
        if let Some(frame) = &state.pending_rx_frame {
            if frame.is_empty() || frame.len() > MAX_FRAME_LEN {
                return Err(bad_field(
                    COMPONENT,
                    "pending_rx_frame",
                    format!("{} bytes; a frame has 1 to {MAX_FRAME_LEN}", frame.len()),
                ));
            }
            net.rx_frame[..frame.len()].copy_from_slice(frame);
            net.rx_pending = Some(frame.len());
        }
        net.acked_features = state.acked_features;
        net.rx_notifications = state.rx_notifications;
        net.metrics = state.metrics;
        Ok(net)
    }
}
