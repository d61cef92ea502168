//! The main thread's job: wait for the VM to start, then for it to stop (guest reset,
//! vCPU failure) or for SIGTERM/SIGINT, and wind things down.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use vmm_sys_util::eventfd::EventFd;

use crate::controller::Vmm;
use crate::vstate::exit_report::ExitReason;

static TERM_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_term_signal(_: libc::c_int) {
    let fd = TERM_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid 8-byte value and the
        // eventfd stays open for the life of the process.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Pulsed by SIGTERM and SIGINT.
pub fn install_term_handler() -> std::io::Result<EventFd> {
    let evt = EventFd::new(libc::EFD_NONBLOCK)?;
    TERM_FD.store(evt.as_raw_fd(), Ordering::Relaxed);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only performs an async-signal-safe write.
        let r = unsafe { libc::signal(sig, on_term_signal as *const () as libc::sighandler_t) };
        if r == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(evt)
}

fn poll_readable(fds: &[RawFd]) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of pollfd for the duration of the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
    if n < 0 {
        return vec![false; fds.len()];
    }
    pfds.iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect()
}

/// How the supervisor ended.
pub enum Outcome {
    /// The VM stopped and `exit_with_vm` was set.
    VmStopped(ExitReason),
    /// A termination signal arrived.
    Terminated,
}

/// Runs until the VM stops (when `exit_with_vm`) or a termination signal arrives.
pub fn run(vmm: &Vmm, term: &EventFd, exit_with_vm: bool) -> Outcome {
    loop {
        let watch = vmm.exit_watch();
        let mut fds = vec![term.as_raw_fd(), vmm.started_fd()];
        if let Some(w) = &watch {
            fds.push(w.as_raw_fd());
        }
        let ready = poll_readable(&fds);
        if ready[0] {
            let _ = term.read();
            vmm.finish(Some(ExitReason::Stopped));
            return Outcome::Terminated;
        }
        if ready[1] {
            let _ = vmm.started_evt.read();
        }
        if watch.is_some() && ready[2] {
            if let Some(reason) = vmm.finish(None) {
                if exit_with_vm {
                    return Outcome::VmStopped(reason);
                }
            }
        }
    }
}
