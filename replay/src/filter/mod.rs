//! Which events a capture buffer keeps, or a reader shows: by class (net/blk/serial/
//! markers), by direction, by source, and for network frames by MAC, IPv4 address or
//! prefix, port and protocol.
//!
//! An empty [`Filter`] (the default) passes everything. Each criterion that is set must
//! hold; within one criterion any listed value may match (`--port 53 --port 80` is "port 53
//! or 80"). The network criteria apply to network frames only: a block or console event is
//! not excluded by them (select classes to exclude it). At capture time markers pass every
//! filter; when reading they follow the class criterion.

pub mod net;
mod parse;

use std::collections::BTreeSet;

use crate::event::{Direction, Event, KindClass, SourceId};
use crate::frame::FrameInfo;

pub use net::{Ipv4Prefix, NetFilter, ProtocolMatch};

/// A selection of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Classes to keep (`None`: all).
    pub classes: Option<BTreeSet<KindClass>>,
    /// Only inputs or only outputs (`None`: both; markers are not affected).
    pub direction: Option<Direction>,
    /// Sources to keep (`None`: all; markers are not affected).
    pub sources: Option<BTreeSet<SourceId>>,
    /// Criteria on network frames.
    pub net: NetFilter,
}

impl Filter {
    /// A filter that passes everything.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// A filter keeping only the given classes.
    pub fn classes(classes: &[KindClass]) -> Filter {
        Filter {
            classes: Some(classes.iter().copied().collect()),
            ..Filter::default()
        }
    }

    /// Whether nothing is filtered.
    pub fn is_all(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        let class = event.kind.class();
        if let Some(c) = &self.classes {
            if !c.contains(&class) {
                return false;
            }
        }
        if class == KindClass::Marker {
            return true;
        }
        if let Some(d) = self.direction {
            if event.kind.direction() != d {
                return false;
            }
        }
        if let Some(s) = &self.sources {
            if !s.contains(&event.source) {
                return false;
            }
        }
        match event.kind.frame() {
            Some(frame) if !self.net.is_empty() => self.net.matches(&FrameInfo::parse(frame)),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::frame::tests::udp_frame;

    fn ev(source: u16, kind: EventKind) -> Event {
        Event {
            seq: 0,
            vm_time_ns: 0,
            progress: 0,
            source: SourceId(source),
            kind,
        }
    }

    #[test]
    fn criteria_combine() {
        let rx = ev(
            0,
            EventKind::net_rx(udp_frame([10, 0, 0, 1], 1000, [10, 0, 0, 2], 53, b"")),
        );
        let tx = ev(
            0,
            EventKind::net_tx(udp_frame([10, 0, 0, 2], 53, [10, 0, 0, 1], 1000, b"")),
        );
        let out = ev(
            2,
            EventKind::SerialOut {
                bytes: b"x".to_vec(),
            },
        );
        let blk = ev(1, EventKind::blk_write(0, vec![0; 512]));
        let marker = ev(u16::MAX, EventKind::RecordingStarted);
        let all = [&rx, &tx, &out, &blk, &marker];

        assert!(all.iter().all(|e| Filter::all().matches(e)));

        let net_only = Filter::classes(&[KindClass::Net]);
        let kept: Vec<bool> = all.iter().map(|e| net_only.matches(e)).collect();
        assert_eq!(kept, [true, true, false, false, false]);

        let outputs = Filter {
            direction: Some(Direction::Output),
            ..Filter::default()
        };
        let kept: Vec<bool> = all.iter().map(|e| outputs.matches(e)).collect();
        assert_eq!(kept, [false, true, true, true, true]);

        let by_source = Filter {
            sources: Some([SourceId(1)].into()),
            ..Filter::default()
        };
        let kept: Vec<bool> = all.iter().map(|e| by_source.matches(e)).collect();
        assert_eq!(kept, [false, false, false, true, true]);

        // Network criteria leave other classes alone.
        let port = Filter {
            net: NetFilter {
                ports: vec![1000],
                ..NetFilter::default()
            },
            ..Filter::default()
        };
        assert!(port.matches(&rx) && port.matches(&tx) && port.matches(&blk));
        let port = Filter {
            net: NetFilter {
                ports: vec![80],
                ..NetFilter::default()
            },
            ..Filter::default()
        };
        assert!(!port.matches(&rx) && !port.matches(&tx) && port.matches(&out));
    }
}
