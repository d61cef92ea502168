//! Event-loop glue: queue notifications and backend readiness.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use log::{debug, error, warn};

use super::{BackendInterest, Net, RX_QUEUE, TX_QUEUE};

/// Event data of the backend's ready fd (queue eventfds use their queue index).
const BACKEND_TOKEN: u32 = 2;

impl Net {
    fn backend_events(&self, set: EventSet) -> Events {
        Events::with_data_raw(self.backend.ready_fd(), BACKEND_TOKEN, set)
    }

    /// Starts or stops polling the backend.
    fn set_backend_interest(&mut self, ops: &mut EventOps, listen: bool) {
        let wanted = if listen {
            BackendInterest::Listening
        } else {
            BackendInterest::Paused
        };
        if self.interest == BackendInterest::Removed || self.interest == wanted {
            return;
        }
        let set = if listen {
            EventSet::IN
        } else {
            EventSet::empty()
        };
        match ops.modify(self.backend_events(set)) {
            Ok(()) => self.interest = wanted,
            Err(e) => error!("virtio-net: cannot change polling of the backend: {e}"),
        }
    }

    fn consume_queue_event(&self, index: usize) {
        if let Err(e) = self.queue_events[index].read() {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                error!("virtio-net: cannot read the eventfd of queue {index}: {e}");
            }
        }
    }

    fn on_backend_event(&mut self, set: EventSet, ops: &mut EventOps) {
        if !set.contains(EventSet::IN) && set.intersects(EventSet::ERROR | EventSet::HANG_UP) {
            error!("virtio-net: backend reported {set:?}; no longer receiving from it");
            if let Err(e) = ops.remove(self.backend_events(EventSet::IN)) {
                error!("virtio-net: cannot stop polling the backend: {e}");
            }
            self.interest = BackendInterest::Removed;
            return;
        }
        if !self.is_activated() {
            // Nothing can be delivered yet; activation kicks the receive queue, which
            // resumes polling.
            self.set_backend_interest(ops, false);
            return;
        }
        let stalled = self.receive();
        self.set_backend_interest(ops, !stalled);
    }
}

impl MutEventSubscriber for Net {
    fn init(&mut self, ops: &mut EventOps) {
        for (index, event) in self.queue_events.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(event, index as u32, EventSet::IN)) {
                error!("virtio-net: cannot watch the eventfd of queue {index}: {e}");
            }
        }
        match ops.add(self.backend_events(EventSet::IN)) {
            Ok(()) => self.interest = BackendInterest::Listening,
            Err(e) => {
                error!("virtio-net: cannot watch the backend: {e}");
                self.interest = BackendInterest::Removed;
            }
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            token if token as usize == RX_QUEUE => {
                self.consume_queue_event(RX_QUEUE);
                if !self.is_activated() {
                    debug!("virtio-net: receive queue notified before activation; ignored");
                    return;
                }
                // New receive buffers: deliver what is waiting, then poll the backend again.
                let stalled = self.receive();
                self.set_backend_interest(ops, !stalled);
            }
            token if token as usize == TX_QUEUE => {
                self.consume_queue_event(TX_QUEUE);
                if !self.is_activated() {
                    debug!("virtio-net: transmit queue notified before activation; ignored");
                    return;
                }
                self.transmit();
            }
            BACKEND_TOKEN => self.on_backend_event(events.event_set(), ops),
            other => warn!("virtio-net: event for unknown source {other}"),
        }
    }
}
