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

/// While alive, the event-loop thread is parked: no device processes events, so device
/// state and guest memory stay still (used while taking a snapshot). Dropping it releases
/// the loop.
pub struct Frozen {
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl EventLoop {
    /// Parks the event-loop thread until the returned guard is dropped; returns once it
    /// is parked (so no event is being handled).
    pub fn freeze(&self) -> Result<Frozen, EventLoopError> {
        let (parked_tx, parked_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        self.endpoint.fire(move |_ops| {
            let _ = parked_tx.send(());
            // Wait for the release (or for the guard to vanish).
            let _ = release_rx.recv();
        })?;
        parked_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .map_err(|_| EventLoopError::Call("the event loop did not park in time".into()))?;
        Ok(Frozen {
            release: Some(release_tx),
        })
    }
}
