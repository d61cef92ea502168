//! Event-loop glue: the request queue's eventfd drives request processing.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use log::{debug, error, warn};

use super::Block;

/// Event data of the I/O-limit timer (queue eventfds use their queue index).
const THROTTLE_TIMER: u32 = u32::MAX;

impl MutEventSubscriber for Block {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::with_data(
            &self.throttle_timer,
            THROTTLE_TIMER,
            EventSet::IN,
        )) {
            error!("{}: cannot watch the I/O-limit timer: {e}", self.disk.label);
        }
        for (index, event) in self.queue_events.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(event, index as u32, EventSet::IN)) {
                error!(
                    "{}: cannot watch the eventfd of queue {index}: {e}",
                    self.disk.label
                );
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.data() == THROTTLE_TIMER {
            self.release_queue();
            return;
        }
        let index = events.data() as usize;
        let Some(event) = self.queue_events.get(index) else {
            warn!("{}: event for unknown source {index}", self.disk.label);
            return;
        };
        // Consume the notification; it may already have been consumed (spurious wakeup).
        if let Err(e) = event.read() {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                error!(
                    "{}: cannot read the eventfd of queue {index}: {e}",
                    self.disk.label
                );
            }
        }
        if !self.is_activated() {
            debug!(
                "{}: queue {index} notified before activation; ignored",
                self.disk.label
            );
            return;
        }
        self.process_queue();
    }
}
