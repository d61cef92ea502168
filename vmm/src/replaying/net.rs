//! The network backend of a replaying clone: what the guest receives comes from the
//! replay scheduler's queue (and, for live poking, from an optional host backend); what it
//! sends goes to the checker through the taps (and to that host backend).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use devices::backends::NetBackend;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Frames waiting for one NIC, with an eventfd that is readable while any wait.
pub struct FrameQueue {
    frames: Mutex<VecDeque<Vec<u8>>>,
    ready: EventFd,
}

impl FrameQueue {
    /// An empty queue.
    pub fn new() -> io::Result<Arc<FrameQueue>> {
        Ok(Arc::new(FrameQueue {
            frames: Mutex::new(VecDeque::new()),
            ready: EventFd::new(EFD_NONBLOCK)?,
        }))
    }

    /// Queues a frame for the guest.
    pub fn push(&self, frame: Vec<u8>) {
        let mut q = devices::bus::lock(&self.frames);
        q.push_back(frame);
        if q.len() == 1 {
            if let Err(e) = self.ready.write(1) {
                log::warn!("replay: cannot signal a queued frame: {e}");
            }
        }
    }

    /// Frames not yet taken by the device.
    pub fn len(&self) -> usize {
        devices::bus::lock(&self.frames).len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<Vec<u8>> {
        let mut q = devices::bus::lock(&self.frames);
        let f = q.pop_front();
        if q.is_empty() {
            // Drain the counter so the fd polls readable only while frames wait.
            let _ = self.ready.read();
        }
        f
    }
}

/// A NIC backend fed by replay.
pub struct ReplayNet {
    queue: Arc<FrameQueue>,
    /// A host backend for live poking (frames from it are delivered too; frames the guest
    /// sends go to it as well).
    live: Option<Box<dyn NetBackend>>,
    /// Polls readable when the queue or the live backend has a frame.
    poll: Epoll,
}

impl ReplayNet {
    /// A backend taking frames from `queue`, and from `live` if given.
    pub fn new(queue: Arc<FrameQueue>, live: Option<Box<dyn NetBackend>>) -> io::Result<Self> {
        let poll = Epoll::new()?;
        let mut fds = vec![queue.ready.as_raw_fd()];
        fds.extend(live.as_ref().map(|l| l.ready_fd()));
        for fd in fds {
            poll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, fd as u64),
            )?;
        }
        Ok(ReplayNet { queue, live, poll })
    }
}

impl NetBackend for ReplayNet {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let Some(frame) = self.queue.pop() {
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            return Ok(Some(n));
        }
        match self.live.as_mut() {
            Some(l) => l.recv(buf),
            None => Ok(None),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.live.as_mut() {
            Some(l) => l.send(frame),
            None => Ok(()),
        }
    }

    fn ready_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut fds = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) == 1 }
    }

    #[test]
    fn queued_frames_are_received_in_order_and_the_fd_follows() {
        let q = FrameQueue::new().unwrap();
        let mut net = ReplayNet::new(q.clone(), None).unwrap();
        let mut buf = [0u8; 64];
        assert!(!readable(net.ready_fd()));
        assert_eq!(net.recv(&mut buf).unwrap(), None);
        q.push(vec![1; 10]);
        q.push(vec![2; 20]);
        assert!(readable(net.ready_fd()));
        assert_eq!(q.len(), 2);
        assert_eq!(net.recv(&mut buf).unwrap(), Some(10));
        assert_eq!(buf[0], 1);
        assert!(readable(net.ready_fd()));
        assert_eq!(net.recv(&mut buf).unwrap(), Some(20));
        assert_eq!(buf[0], 2);
        assert!(!readable(net.ready_fd()));
        assert!(q.is_empty());
        net.send(&[3; 60]).unwrap();
    }
}
