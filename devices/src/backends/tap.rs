//! A Linux TAP interface as a [`NetBackend`].
//!
//! Opening attaches to the named interface (creating it if it does not exist) in
//! `IFF_TAP | IFF_NO_PI` mode, so that each `read`/`write` on the file is exactly one Ethernet
//! frame with no extra header, and brings the link up. Creating an interface or changing its
//! flags needs `CAP_NET_ADMIN`. An interface created here disappears when the `Tap` is
//! dropped unless it was made persistent beforehand (`ip tuntap add`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::NetBackend;

const TUN_DEVICE: &str = "/dev/net/tun";
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IF_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Errors opening a TAP interface.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name cannot be used.
    #[error("invalid TAP interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// `/dev/net/tun` could not be opened.
    #[error(
        "cannot open {TUN_DEVICE} for TAP interface {name}: {source}{}",
        hint(source)
    )]
    OpenTun {
        /// Interface name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The kernel refused to create or attach to the interface.
    #[error(
        "cannot attach to TAP interface {name} (TUNSETIFF): {source}{}",
        hint(source)
    )]
    Attach {
        /// Interface name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The link could not be brought up.
    #[error("cannot bring up TAP interface {name}: {source}{}", hint(source))]
    LinkUp {
        /// Interface name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (creating or configuring a TAP interface needs CAP_NET_ADMIN, or a persistent \
             interface owned by this user)"
        }
        Some(libc::EBUSY) => " (another process is already attached to it)",
        Some(libc::ENOENT) | Some(libc::ENODEV) => " (is the tun module loaded?)",
        _ => "",
    }
}

/// `struct ifreq` with the `ifr_flags` member of its union, the only one used here.
#[repr(C, align(8))]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<IfReq>() == std::mem::size_of::<libc::ifreq>());

impl IfReq {
    fn new(name: &str) -> Self {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _rest: [0; 22],
        };
        // Callers check that the name fits with its NUL terminator.
        let n = name.len().min(MAX_IF_NAME_LEN);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        req
    }

    fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// Runs an interface ioctl that reads and/or writes `req`.
fn ifreq_ioctl(fd: RawFd, request: libc::c_ulong, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `req` is a live, exclusively borrowed buffer with the size and layout of
    // `struct ifreq` (checked at compile time), which is what these ioctls read and write.
    let ret = unsafe { libc::ioctl(fd, request, req as *mut IfReq) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket to configure interfaces with.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets IFF_UP on interface `name`.
fn link_up(name: &str) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = IfReq::new(name);
    ifreq_ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)?;
    if req.flags & libc::IFF_UP as libc::c_short == 0 {
        req.flags |= libc::IFF_UP as libc::c_short;
        ifreq_ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req)?;
    }
    Ok(())
}

/// Reads the flags of interface `name` (SIOCGIFFLAGS).
pub fn interface_flags(name: &str) -> io::Result<i32> {
    let sock = control_socket()?;
    let mut req = IfReq::new(name);
    ifreq_ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)?;
    Ok(i32::from(req.flags))
}

/// An open TAP interface.
pub struct Tap {
    file: File,
    if_name: String,
}

impl Tap {
    /// Attaches to TAP interface `name`, creating it if needed, and brings its link up. An
    /// empty name lets the kernel choose one (`tapN`); see [`Tap::if_name`].
    pub fn open(name: &str) -> Result<Self, TapError> {
        let invalid = |reason| TapError::InvalidName {
            name: name.to_string(),
            reason,
        };
        if name.len() > MAX_IF_NAME_LEN {
            return Err(invalid("longer than 15 bytes"));
        }
        if name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
        {
            return Err(invalid("contains NUL, '/' or whitespace"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_DEVICE)
            .map_err(|source| TapError::OpenTun {
                name: name.to_string(),
                source,
            })?;
        let mut req = IfReq::new(name);
        req.flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        ifreq_ioctl(file.as_raw_fd(), libc::TUNSETIFF as libc::c_ulong, &mut req).map_err(
            |source| TapError::Attach {
                name: name.to_string(),
                source,
            },
        )?;
        let if_name = req.name();
        link_up(&if_name).map_err(|source| TapError::LinkUp {
            name: if_name.clone(),
            source,
        })?;
        log::info!("attached to TAP interface {if_name}");
        Ok(Tap { file, if_name })
    }

    /// Name of the interface.
    pub fn if_name(&self) -> &str {
        &self.if_name
    }
}

impl NetBackend for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = self.file.write(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "TAP interface {} took {n} of {} bytes",
                    self.if_name,
                    frame.len()
                ),
            ));
        }
        Ok(())
    }

    fn ready_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// An experimental EtherType (IEEE 802 local use) to pick our frames out of any traffic
    /// the host stack sends on a fresh interface.
    const TEST_ETHERTYPE: u16 = 0x88b5;

    fn test_frame(tag: u8) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, tag]);
        f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
        f.extend((0..50).map(|i| i as u8 ^ tag));
        f
    }

    fn is_test_frame(f: &[u8]) -> bool {
        f.len() >= 14 && f[12..14] == TEST_ETHERTYPE.to_be_bytes()
    }

    /// An AF_PACKET socket bound to interface `ifindex`: the host side of the TAP link.
    fn packet_socket(ifindex: i32) -> OwnedFd {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: `fd` is new and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed matches it.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(ret, 0, "{}", io::Error::last_os_error());
        fd
    }

    fn wait_for(mut f: impl FnMut() -> Option<Vec<u8>>) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(frame) = f() {
                return frame;
            }
            assert!(Instant::now() < deadline, "timed out waiting for a frame");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(
            Tap::open("a-name-that-is-too-long"),
            Err(TapError::InvalidName { .. })
        ));
        assert!(matches!(
            Tap::open("a/b"),
            Err(TapError::InvalidName { .. })
        ));
    }

    #[test]
    fn exchanges_frames_with_the_host() {
        let name = format!("rprtap{}", std::process::id() % 100_000);
        let mut tap = match Tap::open(&name) {
            Ok(tap) => tap,
            Err(e) => {
                eprintln!("skipping TAP test: {e}");
                return;
            }
        };
        assert_eq!(tap.if_name(), name);
        assert_ne!(interface_flags(&name).unwrap() & libc::IFF_UP, 0);
        let cname = std::ffi::CString::new(name.clone()).unwrap();
        // SAFETY: `cname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        assert!(ifindex > 0);
        let sock = packet_socket(ifindex);

        // Host → guest: what the host transmits on the interface is read from the TAP.
        let out = test_frame(1);
        // SAFETY: `out` is a valid buffer of the given length.
        let sent = unsafe { libc::send(sock.as_raw_fd(), out.as_ptr().cast(), out.len(), 0) };
        assert_eq!(sent, out.len() as isize, "{}", io::Error::last_os_error());
        let mut buf = vec![0u8; 2048];
        let got = wait_for(|| match tap.recv(&mut buf).unwrap() {
            Some(n) if is_test_frame(&buf[..n]) => Some(buf[..n].to_vec()),
            _ => None,
        });
        assert_eq!(got, out);

        // Guest → host: a frame written to the TAP arrives on the interface.
        let back = test_frame(2);
        tap.send(&back).unwrap();
        let got = wait_for(|| {
            let mut b = vec![0u8; 2048];
            // SAFETY: `b` is a valid writable buffer of the given length.
            let n = unsafe { libc::recv(sock.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
            (n > 0 && b[..n as usize] == back[..]).then(|| b[..n as usize].to_vec())
        });
        assert_eq!(got, back);
        drop(tap);
        // A non-persistent interface goes away with its last file descriptor.
        assert!(interface_flags(&name).is_err());
    }
}
