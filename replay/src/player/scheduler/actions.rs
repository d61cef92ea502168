//! What delivering one input means once entropy is applied: the frames (or console bytes)
//! to hand over, how many recorded inputs that consumes, and what was injected.

use super::*;
use crate::player::entropy::Injection;

impl Replayer {
    /// What delivering input `position` (and maybe the next) means, with entropy applied.
    pub(super) fn actions(
        &self,
        position: usize,
        e: &crate::Event,
        next: Option<&crate::Event>,
    ) -> Actions {
        let mut out = Actions {
            consumed: 1,
            deliveries: Vec::new(),
            injected: Vec::new(),
        };
        let frame = match &e.kind {
            EventKind::NetRx { frame } => frame,
            EventKind::SerialIn { bytes } => {
                out.deliveries
                    .push(Step::now(Delivery::Serial(bytes.clone())));
                return out;
            }
            _ => return out,
        };
        let entropy = &self.options.entropy;
        let at = position as u64;
        let plain = |f: Vec<u8>| Step::now(Delivery::Frame(e.source, f));
        let mut action = entropy.net(at, frame.len());
        match action {
            NetAction::Deliver => out.deliveries.push(plain(frame.clone())),
            NetAction::Drop => {}
            NetAction::Duplicate => {
                out.deliveries.push(plain(frame.clone()));
                out.deliveries.push(plain(frame.clone()));
            }
            NetAction::Corrupt { offset, xor } => {
                let mut f = frame.clone();
                if let Some(b) = f.get_mut(offset) {
                    *b ^= xor;
                }
                out.deliveries.push(plain(f));
            }
            NetAction::Delay { ns } => out.deliveries.push(Step {
                delay_ns: ns,
                what: Delivery::Frame(e.source, frame.clone()),
            }),
            NetAction::SwapWithNext => match next {
                Some(
                    n @ crate::Event {
                        kind: EventKind::NetRx { frame: nf },
                        ..
                    },
                ) => {
                    out.deliveries
                        .push(Step::now(Delivery::Frame(n.source, nf.clone())));
                    out.deliveries.push(plain(frame.clone()));
                    out.consumed = 2;
                }
                // Nothing to swap with: delivered as recorded.
                _ => {
                    out.deliveries.push(plain(frame.clone()));
                    action = NetAction::Deliver;
                }
            },
        }
        out.injected.extend(Injection::net(at, &action));
        if let Some(extra) = entropy.extra_frame(at, frame) {
            out.injected.push(Injection::extra(at, &extra));
            out.deliveries.push(plain(extra));
        }
        out
    }
}

/// Something handed to the clone.
pub(super) enum Delivery {
    /// A frame for a NIC.
    Frame(SourceId, Vec<u8>),
    /// Bytes typed on the console.
    Serial(Vec<u8>),
}

/// A delivery, after a delay in clone VM time.
pub(super) struct Step {
    pub(super) delay_ns: u64,
    pub(super) what: Delivery,
}

impl Step {
    fn now(what: Delivery) -> Step {
        Step { delay_ns: 0, what }
    }
}

/// What delivering one input comes to.
pub(super) struct Actions {
    /// Recorded inputs used up (2 when a frame was swapped with the next).
    pub(super) consumed: usize,
    /// In order.
    pub(super) deliveries: Vec<Step>,
    /// Faults injected, for status and the clone's capture.
    pub(super) injected: Vec<Injection>,
}
