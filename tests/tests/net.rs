//! virtio-net end to end: frames sent by the test are echoed by the guest byte for byte,
//! through the Unix datagram backend and through a real TAP device.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

const GUEST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x02];
const HOST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x01];
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb6];

fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&TEST_ETHERTYPE);
    let mut x = seq.wrapping_mul(0x9e37_79b9) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f
}

fn expected_echo(sent: &[u8]) -> Vec<u8> {
    let mut e = sent.to_vec();
    e[..6].copy_from_slice(&sent[6..12]);
    e[6..12].copy_from_slice(&sent[..6]);
    e
}

fn stop_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(b"STOP");
    f.resize(60, 0);
    f
}

const SIZES: [usize; 6] = [60, 64, 128, 512, 1500, 1514];

#[test]
fn echo_through_datagram_backend() {
    require_kvm();
    let scratch = Scratch::new("net-dgram");
    let vm_sock = scratch.path("vm.sock");
    let test_sock = scratch.path("test.sock");
    let sock = UnixDatagram::bind(&test_sock).expect("bind test socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(), "boot_args": "workload=net-echo"},
        "network-interfaces": [{"iface_id": "net0", "socket_path": vm_sock,
                                 "peer_socket_path": test_sock, "guest_mac": "06:00:ac:10:00:02"}],
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    });
    let path = write_config(&scratch, &cfg);
    let mut vm = Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    );
    vm.wait_serial(
        "net-echo: ready mac=06:00:ac:10:00:02",
        Duration::from_secs(30),
    );

    let mut buf = [0u8; 2048];
    let mut sent = 0;
    for round in 0..5u32 {
        for (i, &len) in SIZES.iter().enumerate() {
            let f = frame(len, round * 100 + i as u32);
            sock.send_to(&f, &vm_sock).expect("send frame");
            let n = sock.recv(&mut buf).expect("echo (timed out?)");
            assert_eq!(
                &buf[..n],
                &expected_echo(&f)[..],
                "echo of a {len}-byte frame differs"
            );
            sent += 1;
        }
    }
    // A burst: several frames in flight at once, echoed in order.
    let burst: Vec<Vec<u8>> = (0..16)
        .map(|i| frame(200 + i * 50, 1000 + i as u32))
        .collect();
    for f in &burst {
        sock.send_to(f, &vm_sock).expect("send burst");
    }
    for f in &burst {
        let n = sock.recv(&mut buf).expect("burst echo");
        assert_eq!(&buf[..n], &expected_echo(f)[..]);
        sent += 1;
    }
    sock.send_to(&stop_frame(), &vm_sock).expect("send stop");
    vm.wait_serial(
        &format!("net-echo: stopped frames={sent}"),
        Duration::from_secs(10),
    );
    assert!(vm.wait_exit(Duration::from_secs(10)).success());
}

/// A raw AF_PACKET socket bound to one interface.
struct PacketSocket(i32);

impl PacketSocket {
    fn bind(ifname: &str) -> Self {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(ifname).expect("ifname");
        // SAFETY: `name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        PacketSocket(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a valid buffer of the given length.
        let n = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Next frame arriving *from* the interface (not our own outgoing copies) with our ethertype.
    fn recv_incoming(&self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: sockaddr_ll is plain data.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are valid for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            assert!(
                n >= 0,
                "recv on TAP timed out or failed: {}",
                std::io::Error::last_os_error()
            );
            let n = n as usize;
            if from.sll_pkttype == libc::PACKET_OUTGOING || n < 14 || buf[12..14] != TEST_ETHERTYPE
            {
                continue;
            }
            return buf[..n].to_vec();
        }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this struct owns.
        unsafe { libc::close(self.0) };
    }
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct TapGuard(String);
impl Drop for TapGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

#[test]
fn echo_through_tap_device() {
    require_kvm();
    require_device("/dev/net/tun", "TUN/TAP");
    let scratch = Scratch::new("net-tap");
    let tap = format!("rptap{}", std::process::id() % 100_000);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &tap])
        .output();
    ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
    let _guard = TapGuard(tap.clone());
    // No addresses, no IPv6 autoconfiguration: only the test's frames cross this link.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6"), "1");
    ip(&["link", "set", &tap, "up"]);
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(), "boot_args": "workload=net-echo"},
        "network-interfaces": [{"iface_id": "net0", "host_dev_name": tap, "guest_mac": "06:00:ac:10:00:02"}],
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    });
    let path = write_config(&scratch, &cfg);
    let mut vm = Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    );
    vm.wait_serial("net-echo: ready", Duration::from_secs(30));
    let sock = PacketSocket::bind(&tap);
    let mut sent = 0;
    for (i, &len) in SIZES.iter().enumerate() {
        let f = frame(len, 500 + i as u32);
        sock.send(&f);
        let echo = sock.recv_incoming();
        assert_eq!(
            echo,
            expected_echo(&f),
            "TAP echo of a {len}-byte frame differs"
        );
        sent += 1;
    }
    sock.send(&stop_frame());
    let serial = vm.wait_serial("net-echo: stopped frames=", Duration::from_secs(10));
    // Frames the host kernel itself sent to the TAP may also have been echoed; ours were.
    let echoed: usize = lines_with(&serial, "net-echo: stopped frames=")[0]
        .trim_start_matches("net-echo: stopped frames=")
        .parse()
        .expect("count");
    assert!(echoed >= sent, "{serial}");
    assert!(vm.wait_exit(Duration::from_secs(10)).success());
}
