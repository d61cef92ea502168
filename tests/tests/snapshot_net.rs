//! Network interfaces across snapshots, with the net-echo guest on the Unix datagram
//! backend: clones that are detached or moved to their own socket pair, and frames in
//! flight at the snapshot answered exactly once across the original and the restored VM.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reprise_tests::*;
use serde_json::json;

const GUEST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x02];
const HOST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x01];
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb6];
/// Receive buffers the test guest keeps posted (its virtqueues hold 64 entries).
const GUEST_RX_BUFFERS: usize = 64;

/// Frame `seq`: to the guest, from the host, the test ethertype, `seq`, then filler.
fn frame(seq: u32) -> Vec<u8> {
    let len = 60 + (seq as usize % 5) * 37;
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&TEST_ETHERTYPE);
    f.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(0x9e37_79b9) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f
}

fn echo_of(sent: &[u8]) -> Vec<u8> {
    let mut e = sent.to_vec();
    e[..6].copy_from_slice(&sent[6..12]);
    e[6..12].copy_from_slice(&sent[..6]);
    e
}

/// The sequence number of an echo, which must be byte for byte the echo of that frame.
fn seq_of_echo(echo: &[u8]) -> u32 {
    assert!(echo.len() >= 18, "a {}-byte frame came back", echo.len());
    let seq = u32::from_le_bytes(echo[14..18].try_into().expect("4 bytes"));
    assert_eq!(
        echo,
        &echo_of(&frame(seq))[..],
        "the echo of frame {seq} differs"
    );
    seq
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

/// The test's end of a datagram socket pair, bound at `path`.
fn peer_socket(path: &Path) -> UnixDatagram {
    let sock = UnixDatagram::bind(path).expect("bind the test's socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock
}

/// Sends frame `seq` to `to` and returns the sequence number of the echo that comes back.
fn echo(sock: &UnixDatagram, to: &Path, seq: u32) -> u32 {
    sock.send_to(&frame(seq), to).expect("send a frame");
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("an echo (timed out?)");
    seq_of_echo(&buf[..n])
}

/// Whatever is waiting on `sock` right now, as echo sequence numbers.
fn drain(sock: &UnixDatagram) -> Vec<u32> {
    sock.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    let mut seqs = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        seqs.push(seq_of_echo(&buf[..n]));
    }
    sock.set_nonblocking(false).expect("blocking");
    seqs
}

/// A VM running net-echo over the API, its `net0` on `vm_sock` ↔ `peer_sock`.
fn start_echo_vm(scratch: &Scratch, vm_sock: &Path, peer_sock: &Path) -> Reprise {
    let mut vm = Reprise::with_api(scratch);
    vm.api_ok(
        "PUT",
        "/network-interfaces/net0",
        json!({"iface_id": "net0", "socket_path": vm_sock, "peer_socket_path": peer_sock,
               "guest_mac": "06:00:ac:10:00:02"}),
    );
    vm.boot_guest(64, "workload=net-echo", json!([]), None);
    vm.wait_serial(
        "net-echo: ready mac=06:00:ac:10:00:02",
        Duration::from_secs(30),
    );
    vm
}

fn snapshot(vm: &Reprise, store: &Path, id: &str) {
    let (status, body) = vm.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": store, "snapshot_id": id})),
    );
    assert_eq!(status, 201, "{body:?}\n{}", vm.stderr());
}

/// A `reprise --api-sock` with no VM, its files in `scratch`.
fn empty_vmm(scratch: &Scratch) -> Reprise {
    Reprise::with_api(scratch)
}

fn load(vmm: &Reprise, body: serde_json::Value) {
    let (status, resp) = vmm.api("PUT", "/snapshot/load", Some(body));
    assert_eq!(status, 204, "{resp:?}\n{}", vmm.stderr());
}

/// The count the guest prints when it stops, from `serial`.
fn stopped_count(serial: &str) -> usize {
    lines_with(serial, "net-echo: stopped frames=")
        .last()
        .expect("a stopped line")
        .trim_start_matches("net-echo: stopped frames=")
        .parse()
        .expect("a count")
}

#[test]
fn a_detached_clone_runs_without_reaching_the_original_peer() {
    require_kvm();
    let scratch = Scratch::new("net-detach");
    let store = scratch.path("snapshots");
    let (vm_sock, peer_sock) = (scratch.path("vm.sock"), scratch.path("peer.sock"));
    let peer = peer_socket(&peer_sock);
    let mut vm = start_echo_vm(&scratch, &vm_sock, &peer_sock);
    for seq in 0..3 {
        assert_eq!(echo(&peer, &vm_sock, seq), seq);
    }
    // Three frames and STOP are in flight (in the guest's buffers) when the snapshot is taken.
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    for seq in 100..103 {
        peer.send_to(&frame(seq), &vm_sock).expect("send");
    }
    peer.send_to(&stop_frame(), &vm_sock).expect("send stop");
    snapshot(&vm, &store, "s1");
    let dir = store.join("s1");

    // Overrides are checked against the snapshot before anything runs.
    for (spec, needle) in [
        (
            "eth9=detach",
            "no network interface `eth9` in the snapshot; it has net0",
        ),
        ("net0=tap:t1,mac=zz", "\"zz\""),
        ("net0=bridge:br0", "unknown backend"),
    ] {
        let out = std::process::Command::new(reprise_bin())
            .args(["--restore", dir.to_str().expect("utf-8"), "--net", spec])
            .arg("--serial-output")
            .arg("null")
            .output()
            .expect("run reprise");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--net {spec} was accepted");
        assert!(stderr.contains(needle), "--net {spec}: {stderr}");
    }

    // The detached clone runs next to the paused original: it takes the three frames and
    // STOP from its memory, echoes into nothing, and stops.
    let clone_scratch = Scratch::new("net-detach-clone");
    let clone_log = clone_scratch.path("serial.log");
    let clone_api = clone_scratch.path("api.sock");
    let mut clone = Reprise::spawn(
        &[
            "--restore",
            dir.to_str().expect("utf-8"),
            "--id",
            "clone",
            "--net",
            "net0=detach",
            "--serial-output",
            &format!("file:{}", clone_log.display()),
            "--api-sock",
            clone_api.to_str().expect("utf-8"),
        ],
        Some(clone_api.clone()),
        clone_log,
    );
    let serial = clone.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(stopped_count(&serial), 6, "{serial}");
    let (status, config) = clone.api("GET", "/vm/config", None);
    assert_eq!(status, 200);
    let net = &config.expect("config")["network-interfaces"][0];
    assert_eq!(net["detached"], json!(true), "{net}");
    assert!(net.get("socket_path").is_none_or(|p| p.is_null()), "{net}");
    assert_eq!(net["guest_mac"], json!("06:00:ac:10:00:02"));
    assert!(
        drain(&peer).is_empty(),
        "the detached clone reached the original's peer"
    );

    // The original, untouched, answers the same frames on its own socket, once each.
    vm.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    let serial = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(stopped_count(&serial), 6, "{serial}");
    let mut buf = [0u8; 2048];
    let mut answered = Vec::new();
    for _ in 100..103 {
        let n = peer.recv(&mut buf).expect("the original's echo");
        answered.push(seq_of_echo(&buf[..n]));
    }
    assert_eq!(answered, [100, 101, 102]);
    assert!(drain(&peer).is_empty(), "an echo came twice");
}

#[test]
fn a_clone_on_its_own_socket_pair_answers_there_while_the_original_answers_on_its_own() {
    require_kvm();
    let scratch = Scratch::new("net-own-pair");
    let store = scratch.path("snapshots");
    let (vm_sock, peer_sock) = (scratch.path("vm.sock"), scratch.path("peer.sock"));
    let peer = peer_socket(&peer_sock);
    let mut vm = start_echo_vm(&scratch, &vm_sock, &peer_sock);
    for seq in 0..2 {
        assert_eq!(echo(&peer, &vm_sock, seq), seq);
    }
    snapshot(&vm, &store, "s1");

    let clone_scratch = Scratch::new("net-own-pair-clone");
    let (clone_vm_sock, clone_peer_sock) = (
        clone_scratch.path("clone-vm.sock"),
        clone_scratch.path("clone-peer.sock"),
    );
    let clone_peer = peer_socket(&clone_peer_sock);
    let mut clone = empty_vmm(&clone_scratch);
    // An interface the snapshot does not have, or a bad MAC, is refused by name, and the
    // VMM stays ready for a good request.
    for (overrides, needle) in [
        (json!([{"iface_id": "eth1", "detach": true}]), "`eth1`"),
        (
            json!([{"iface_id": "net0", "host_dev_name": "t0", "guest_mac": "02:zz:00:00:00:01"}]),
            "02:zz:00:00:00:01",
        ),
    ] {
        let (status, body) = clone.api(
            "PUT",
            "/snapshot/load",
            Some(json!({"snapshot_path": store.join("s1"), "network_overrides": overrides})),
        );
        assert_eq!(status, 400, "{body:?}");
        let message = body.expect("error")["fault_message"].to_string();
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(clone.state(), "Not started");
    load(
        &clone,
        json!({
            "snapshot_path": store.join("s1"),
            "vm_id": "clone",
            "serial_output": format!("file:{}", clone.serial_log.display()),
            "network_overrides": [{"iface_id": "net0", "socket_path": clone_vm_sock,
                                   "peer_socket_path": clone_peer_sock,
                                   "guest_mac": "02:00:00:00:00:99"}],
        }),
    );
    let (_, config) = clone.api("GET", "/vm/config", None);
    let net = &config.expect("config")["network-interfaces"][0];
    assert_eq!(net["socket_path"], json!(clone_vm_sock), "{net}");
    assert_eq!(net["guest_mac"], json!("02:00:00:00:00:99"), "{net}");

    // Interleaved traffic: each answers on its own pair only.
    for round in 0..5 {
        assert_eq!(echo(&peer, &vm_sock, 1000 + round), 1000 + round);
        assert_eq!(
            echo(&clone_peer, &clone_vm_sock, 2000 + round),
            2000 + round
        );
    }
    assert!(drain(&peer).is_empty() && drain(&clone_peer).is_empty());
    peer.send_to(&stop_frame(), &vm_sock).expect("stop");
    clone_peer
        .send_to(&stop_frame(), &clone_vm_sock)
        .expect("stop");
    let serial = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(stopped_count(&serial), 7, "{serial}");
    let serial = clone.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(stopped_count(&serial), 7, "{serial}");
}

/// Disconnects a datagram socket (it then takes datagrams from any sender).
fn disconnect(sock: &UnixDatagram) {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr is plain data; zeroed (AF_UNSPEC) is a valid value.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: connect(2) on a socket this test owns with a valid sockaddr of the size given.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "disconnect: {}", std::io::Error::last_os_error());
}

/// Connects `sock` to `to`. A datagram socket connected to the VMM's socket takes its
/// frames past the kernel's queue limit for unconnected senders (which would make the VMM
/// drop echoes when the test reads late); it is reconnected to the restored VMM's socket.
fn connect(sock: &UnixDatagram, to: &Path) {
    sock.connect(to).expect("connect to the VMM's socket");
}

/// Collects echoes on a clone of the test's socket until told to stop.
struct Collector {
    seqs: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(sock: &UnixDatagram) -> Self {
        let sock = sock.try_clone().expect("clone the socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seqs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let seq = seq_of_echo(&buf[..n]);
                    s.lock().expect("lock").push(seq);
                }
            }
        });
        Collector {
            seqs,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.seqs.lock().expect("lock").len()
    }

    fn seqs(&self) -> Vec<u32> {
        self.seqs.lock().expect("lock").clone()
    }

    /// Waits until nothing has arrived for `quiet`.
    fn settle(&self, quiet: Duration) {
        let mut last = self.count();
        let mut since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(30);
        while since.elapsed() < quiet {
            assert!(Instant::now() < deadline, "echoes never stopped arriving");
            std::thread::sleep(Duration::from_millis(10));
            let now = self.count();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    /// Waits until echo `seq` has arrived.
    fn wait_for(&self, seq: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.seqs.lock().expect("lock").contains(&seq) {
            assert!(
                Instant::now() < deadline,
                "no echo of {seq}; got {:?}",
                self.seqs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many times each sequence number occurs.
fn counts(seqs: &[u32]) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for s in seqs {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

/// Kills the original without letting it run further, then loads the snapshot paused into
/// a new VMM on the same socket paths, reconnects the test's socket to it, and resumes it.
/// Returns the restored VMM. Echoes the original sent are all in `collector` before it
/// returns, so everything collected later comes from the restored VM.
fn kill_and_restore(
    vm: &mut Reprise,
    peer: &UnixDatagram,
    collector: &Collector,
    snapshot_dir: &Path,
    vm_sock: &Path,
    clone_scratch: &Scratch,
) -> (Reprise, usize) {
    vm.child.kill().expect("kill the original");
    vm.child.wait().expect("wait for the original");
    collector.settle(Duration::from_millis(300));
    let from_original = collector.count();
    // Until the restored VMM binds the path again, take datagrams from any sender: a frame
    // the guest had queued for transmission goes out as soon as the device is restored.
    disconnect(peer);
    let clone = empty_vmm(clone_scratch);
    load(
        &clone,
        json!({
            "snapshot_path": snapshot_dir,
            "serial_output": format!("file:{}", clone.serial_log.display()),
            "resume": false,
        }),
    );
    assert_eq!(clone.state(), "Paused");
    assert!(
        clone.stderr().contains("vCPUs paused until resumed"),
        "{}",
        clone.stderr()
    );
    connect(peer, vm_sock);
    clone.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    (clone, from_original)
}

/// Sends `seqs` one at a time to the restored VM, each echoed before the next goes. Once the
/// first is echoed, everything that was in flight before it has been too (the guest takes
/// frames in order).
fn ping(peer: &UnixDatagram, collector: &Collector, seqs: std::ops::Range<u32>) {
    for seq in seqs {
        peer.send(&frame(seq)).expect("send after restore");
        collector.wait_for(seq);
    }
}

#[test]
fn frames_in_flight_at_a_snapshot_of_a_paused_vm_are_answered_once_by_the_restored_vm() {
    require_kvm();
    let scratch = Scratch::new("net-inflight-paused");
    let store = scratch.path("snapshots");
    let (vm_sock, peer_sock) = (scratch.path("vm.sock"), scratch.path("peer.sock"));
    let peer = peer_socket(&peer_sock);
    let mut vm = start_echo_vm(&scratch, &vm_sock, &peer_sock);
    connect(&peer, &vm_sock);
    let collector = Collector::start(&peer);

    // Answered before the snapshot: these must never be answered again.
    const WARM: u32 = 20;
    for seq in 0..WARM {
        peer.send(&frame(seq)).expect("send");
        collector.wait_for(seq);
    }
    // Paused, the VM takes frames into the guest's receive buffers (the device keeps
    // working), holds one more, and the rest wait in the VMM's socket until it is full.
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    peer.set_nonblocking(true).expect("nonblocking");
    let mut sent: Vec<u32> = Vec::new();
    let mut seq = WARM;
    let mut refused_since: Option<Instant> = None;
    while sent.len() < 200 {
        match peer.send(&frame(seq)) {
            Ok(_) => {
                sent.push(seq);
                seq += 1;
                refused_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    peer.set_nonblocking(false).expect("blocking");
    assert!(
        sent.len() > GUEST_RX_BUFFERS + 1,
        "only {} frames could be sent: none waits in the VMM's socket",
        sent.len()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(collector.count(), WARM as usize, "a paused VM answered");
    snapshot(&vm, &store, "inflight");

    // The original never runs again; a new VMM restores the snapshot on the same paths.
    let clone_scratch = Scratch::new("net-inflight-paused-clone");
    let (mut clone, from_original) = kill_and_restore(
        &mut vm,
        &peer,
        &collector,
        &store.join("inflight"),
        &vm_sock,
        &clone_scratch,
    );
    assert_eq!(from_original, WARM as usize);
    const AFTER: u32 = 100_000;
    ping(&peer, &collector, AFTER..AFTER + 10);
    let all = collector.seqs();
    let restored = &all[from_original..];
    let in_flight: Vec<u32> = restored.iter().copied().filter(|s| *s < AFTER).collect();
    // Every frame that reached the VMM before the snapshot (in guest memory, held by the
    // device, or waiting in its socket) is answered by the restored VM, once, in order.
    assert_eq!(
        in_flight, sent,
        "the restored VM's answers to the frames in flight"
    );
    assert!(
        counts(&all).values().all(|n| *n == 1),
        "answered twice: {all:?}"
    );
    peer.send(&stop_frame()).expect("stop");
    let serial = clone.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(
        stopped_count(&serial),
        WARM as usize + sent.len() + 10,
        "the guest's own count of echoes\n{serial}"
    );
}

#[test]
fn frames_in_flight_at_a_snapshot_of_a_running_vm_are_answered_once_across_the_cut() {
    require_kvm();
    let scratch = Scratch::new("net-inflight-running");
    let store = scratch.path("snapshots");
    let (vm_sock, peer_sock) = (scratch.path("vm.sock"), scratch.path("peer.sock"));
    let peer = peer_socket(&peer_sock);
    let mut vm = start_echo_vm(&scratch, &vm_sock, &peer_sock);
    connect(&peer, &vm_sock);
    let collector = Collector::start(&peer);

    // A sender keeps the VM busy (its socket and the guest's buffers full) while the
    // snapshot is taken, then stops.
    let stop = Arc::new(AtomicBool::new(false));
    let sent_so_far = Arc::new(AtomicU32::new(0));
    let sender = {
        let sock = peer.try_clone().expect("clone");
        let (stop, sent_so_far) = (stop.clone(), sent_so_far.clone());
        std::thread::spawn(move || {
            let mut seq: u32 = 0;
            while !stop.load(Ordering::Relaxed) && seq < 50_000 {
                sock.send(&frame(seq)).expect("send");
                seq += 1;
                sent_so_far.store(seq, Ordering::SeqCst);
            }
            seq
        })
    };
    collector.wait_for(200);
    let answered_before_request = collector.seqs();
    // These reached the VMM before the snapshot was asked for, so the snapshot holds them
    // (answered, in the guest, held by the device, or waiting in the VMM's socket).
    let sent_before_request = sent_so_far.load(Ordering::SeqCst) as usize;
    snapshot(&vm, &store, "inflight");
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender");

    let clone_scratch = Scratch::new("net-inflight-running-clone");
    let (mut clone, from_original) = kill_and_restore(
        &mut vm,
        &peer,
        &collector,
        &store.join("inflight"),
        &vm_sock,
        &clone_scratch,
    );
    const AFTER: u32 = 100_000;
    ping(&peer, &collector, AFTER..AFTER + 10);
    peer.send(&stop_frame()).expect("stop");
    let serial = clone.wait_serial("reprise-guest: done", Duration::from_secs(30));
    let all = collector.seqs();
    let restored: Vec<u32> = all[from_original..]
        .iter()
        .copied()
        .filter(|s| *s < AFTER)
        .collect();

    // The frames form one ordered stream. The snapshot holds a prefix of it (everything in
    // the guest, the device and the VMM's socket at that instant); the guest had answered a
    // shorter prefix, which its own counter in the snapshot records. The restored VM must
    // answer exactly the rest of the snapshot's prefix: the next frames in order, once each.
    let answered_before_cut = stopped_count(&serial) - 10 - restored.len();
    let expected: Vec<u32> = (answered_before_cut as u32..)
        .take(restored.len())
        .collect();
    assert_eq!(
        restored, expected,
        "the restored VM must continue the stream where the snapshot's guest left it \
         ({answered_before_cut} answered before the snapshot)"
    );
    assert!(
        !restored.is_empty(),
        "no frame was in flight at the snapshot; the test proves nothing"
    );
    assert!(
        answered_before_cut + restored.len() >= sent_before_request,
        "{sent_before_request} frames had reached the VMM before the snapshot, but only \
         {answered_before_cut} were answered before it and {} after the restore",
        restored.len()
    );
    assert!(
        (answered_before_request.len()..=from_original).contains(&answered_before_cut),
        "{answered_before_cut} answered before the snapshot, but the original sent {} \
         echoes before it was asked and {from_original} in all",
        answered_before_request.len()
    );
    // Nothing answered before the request is answered again.
    for seq in &answered_before_request {
        assert!(!restored.contains(seq), "frame {seq} was answered twice");
    }
    let last = restored.last().copied().unwrap_or(0);
    assert!(
        last < sent,
        "the restored VM answered frame {last}, never sent"
    );
    let after: Vec<u32> = all[from_original..]
        .iter()
        .copied()
        .filter(|s| *s >= AFTER)
        .collect();
    assert_eq!(after, (AFTER..AFTER + 10).collect::<Vec<_>>());
}
