//! The device event loop: one thread running an `event-manager` loop for virtio queues,
//! network backends and the console socket. Other threads add and remove subscribers
//! through its remote endpoint.

use event_manager::{EventManager, RemoteEndpoint, SubscriberId};

use crate::device_manager::Subscriber;

/// Handle on the event-loop thread.
#[derive(Clone)]
pub struct EventLoop {
    endpoint: RemoteEndpoint<Subscriber>,
}

/// Why the event loop could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    /// Creating the epoll context or thread failed.
    #[error("cannot start the event loop: {0}")]
    Start(String),
    /// The loop rejected a request.
    #[error("event loop: {0}")]
    Call(String),
}

impl From<event_manager::Error> for EventLoopError {
    fn from(e: event_manager::Error) -> Self {
        EventLoopError::Call(format!("{e:?}"))
    }
}

impl EventLoop {
    /// Starts the loop on its own thread.
    pub fn start() -> Result<Self, EventLoopError> {
        let mut manager = EventManager::<Subscriber>::new()
            .map_err(|e| EventLoopError::Start(format!("{e:?}")))?;
        let endpoint = manager.remote_endpoint();
        std::thread::Builder::new()
            .name("event-loop".into())
            .spawn(move || loop {
                if let Err(e) = manager.run() {
                    log::error!("event loop: {e:?}");
                }
            })
            .map_err(|e| EventLoopError::Start(e.to_string()))?;
        Ok(EventLoop { endpoint })
    }

    /// Adds subscribers; returns their ids for later removal.
    pub fn add(&self, subscribers: Vec<Subscriber>) -> Result<Vec<SubscriberId>, EventLoopError> {
        self.endpoint
            .call_blocking(move |ops| -> Result<Vec<SubscriberId>, EventLoopError> {
                Ok(subscribers
                    .into_iter()
                    .map(|s| ops.add_subscriber(s))
                    .collect())
            })
    }

    /// Removes subscribers added earlier.
    pub fn remove(&self, ids: Vec<SubscriberId>) -> Result<(), EventLoopError> {
        self.endpoint
            .call_blocking(move |ops| -> Result<(), EventLoopError> {
                for id in ids {
                    ops.remove_subscriber(id)?;
                }
                Ok(())
            })
    }
}
