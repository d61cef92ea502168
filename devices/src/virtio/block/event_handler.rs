//! Event-loop glue: the request queue's eventfd drives request processing.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use log::{debug, error, warn};

use super::Block;

impl MutEventSubscriber for Block {
    fn init(&mut self, ops: &mut EventOps) {
        for (index, event) in self.queue_events.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(event, index as u32, EventSet::IN)) {
                error!("virtio-blk: cannot watch the eventfd of queue {index}: {e}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let index = events.data() as usize;
        let Some(event) = self.queue_events.get(index) else {
            warn!("virtio-blk: event for unknown source {index}");
            return;
        };
        // Consume the notification; it may already have been consumed (spurious wakeup).
        if let Err(e) = event.read() {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                error!("virtio-blk: cannot read the eventfd of queue {index}: {e}");
            }
        }
        if !self.is_activated() {
            debug!("virtio-blk: queue {index} notified before activation; ignored");
            return;
        }
        self.process_queue();
    }
}
