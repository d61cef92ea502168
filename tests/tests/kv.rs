//! The test guest's `kv` workload end to end: a key-value service over UDP/IPv4 on
//! virtio-net, its data in an append-only log on virtio-blk, driven and checked by
//! `reprise-kvgen`. Each test puts the TAP device's host side (10.0.0.1 and 10.0.0.3) in
//! a network namespace of its own; the guest is 10.0.0.2, port 7000.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Duration;

use reprise_tests::netns::NetNs;
use reprise_tests::*;
use reprise_tools::kvgen::plan::{Mix, PlanSpec};
use reprise_tools::kvgen::{self, Config, Initial, Summary};
use serde_json::{json, Value};

const TAP: &str = "kvtap0";
const GUEST_MAC: &str = "06:00:ac:10:00:02";
const GUEST_MAC_BYTES: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x02];
const GUEST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7000);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const ALIAS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// A namespace holding the TAP with the host-side addresses.
fn network(tag: &str) -> NetNs {
    require_kvm();
    require_device("/dev/net/tun", "TUN/TAP");
    let ns = NetNs::new(tag);
    ns.add_tap(TAP, &["10.0.0.1/24", "10.0.0.3/24"]);
    ns
}

/// Boots the kv workload with `drive` inside `ns`; the serial log is `<run>.serial`.
fn boot(ns: &NetNs, scratch: &Scratch, run: &str, drive: Value, args: &str) -> Reprise {
    boot_with_api(ns, scratch, run, drive, args, None)
}

/// [`boot`], with the API on `api_sock` when given.
fn boot_with_api(
    ns: &NetNs,
    scratch: &Scratch,
    run: &str,
    drive: Value,
    args: &str,
    api_sock: Option<std::path::PathBuf>,
) -> Reprise {
    let serial = scratch.path(&format!("{run}.serial"));
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(),
                        "boot_args": format!("workload=kv kv.ip=10.0.0.2 kv.port=7000 {args}")},
        "drives": [drive],
        "network-interfaces": [{"iface_id": "net0", "host_dev_name": TAP, "guest_mac": GUEST_MAC}],
        "serial": {"output": format!("file:{}", serial.display())},
    });
    let path = scratch.path(&format!("{run}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).expect("json")).expect("write config");
    let mut cmd = ns.command(reprise_bin());
    cmd.arg("--config-file").arg(&path);
    if let Some(sock) = &api_sock {
        cmd.arg("--api-sock").arg(sock);
    }
    let mut vm = Reprise::spawn_command(cmd, api_sock, serial);
    vm.wait_serial("kv: ready ip=10.0.0.2 port=7000", Duration::from_secs(30));
    vm
}

fn raw_disk(scratch: &Scratch, mib: u64) -> Value {
    let path = scratch.path("disk.img");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(mib << 20))
        .expect("create disk image");
    json!({"drive_id": "d0", "path_on_host": path})
}

/// A generator run from 4 clients spread over both host addresses.
fn traffic(seed: u64, requests: u64, rate: u32) -> Config {
    Config {
        target: GUEST,
        sources: vec![HOST, ALIAS],
        port_base: 40000,
        trigger_source: None,
        plan: PlanSpec {
            seed,
            clients: 4,
            requests,
            keys: 200,
            key_prefix: "key-".into(),
            value_len: (4, 64),
            mix: Mix::default(),
            sweep: false,
            trigger_after: None,
            quit: true,
        },
        rate,
        window: 32,
        timeout: Duration::from_secs(5),
        journal: None,
        initial: Initial::Empty,
    }
}

fn drive(ns: &NetNs, cfg: &Config) -> Summary {
    let summary = ns
        .run(|| kvgen::run(cfg))
        .unwrap_or_else(|e| panic!("kvgen: {e}"));
    assert!(
        summary.passed(),
        "kvgen run failed: {:?}",
        Summary {
            state: Default::default(),
            ..summary
        }
    );
    summary
}

/// The numbers of `kv: loaded <keys> keys from <records> log records`.
fn loaded(serial: &str) -> (usize, usize) {
    let line = lines_with(serial, "kv: loaded ")
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no 'kv: loaded' line:\n{serial}"));
    let words: Vec<&str> = line.split(' ').collect();
    (
        words[2].parse().expect("key count"),
        words[5].parse().expect("record count"),
    )
}

fn journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect()
}

fn stop(vm: &mut Reprise) {
    let status = vm.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "reprise: {status}\n{}", vm.stderr());
    assert!(
        vm.serial().contains("reprise-guest: done"),
        "{}",
        vm.serial()
    );
}

#[test]
fn replies_are_right_and_the_data_survive_a_restart() {
    let ns = network("kv-restart");
    let scratch = Scratch::new("kv-restart");
    let volume = scratch.path("store").join("volumes").join("kv");
    volume_tool(&["create", volume.to_str().expect("utf-8"), "--size", "32M"]);
    let vol = json!({"drive_id": "d0", "volume_path": volume});
    // Small log halves and larger values: the run compacts the log at least once.
    let args = "kv.log_kib=256 kv.report=500";
    let mut vm = boot(&ns, &scratch, "first", vol.clone(), args);
    assert!(vm
        .serial()
        .contains("kv: formatted a new log at sector 2048"));
    assert_eq!(loaded(&vm.serial()), (0, 0));

    let mut cfg = traffic(11, 3000, 500);
    cfg.plan.value_len = (150, 250);
    let journal_path = scratch.path("first.jsonl");
    cfg.journal = Some(journal_path.clone());
    let first = drive(&ns, &cfg);
    assert_eq!((first.sent, first.replies, first.lost), (3001, 3001, 0));
    assert_eq!(first.verified, 3001);
    stop(&mut vm);
    let serial = vm.serial();
    assert!(serial.contains("kv: compacted "), "{serial}");
    assert!(serial.contains("kv: stopped requests=3001 "), "{serial}");
    assert_eq!(lines_with(&serial, "kv: requests=").len(), 6, "{serial}");

    // Every request and reply is in the journal, requests with their client.
    let events = journal(&journal_path);
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(
        (count("request"), count("reply"), count("lost")),
        (3001, 3001, 0)
    );
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some(json!("summary"))
    );
    for e in events.iter().filter(|e| e["event"] == "request") {
        let client = e["client"].as_str().expect("client");
        assert!(
            client.starts_with("10.0.0.1:4000") || client.starts_with("10.0.0.3:4000"),
            "{e}"
        );
    }

    // Restarted on the same volume, the guest reloads the log and serves the same data.
    let state = first.state.clone();
    let mut vm = boot(&ns, &scratch, "second", vol, args);
    let (keys, records) = loaded(&vm.serial());
    assert_eq!(keys, state.present.len(), "{}", vm.serial());
    assert!(records >= keys);
    let mut cfg = traffic(12, 500, 500);
    cfg.plan.sweep = true;
    cfg.initial = Initial::State(state);
    let second = drive(&ns, &cfg);
    assert_eq!(second.verified, 200 + 500 + 1);
    stop(&mut vm);
}

#[test]
fn the_trigger_sequence_crashes_the_service() {
    let ns = network("kv-trigger");
    let scratch = Scratch::new("kv-trigger");
    let disk = raw_disk(&scratch, 16);
    let mut vm = boot(&ns, &scratch, "first", disk.clone(), "");

    // Through the command-line tool, as a demo would run it.
    let journal_path = scratch.path("trigger.jsonl");
    let out = ns
        .command(binary("reprise-tools", "reprise-kvgen"))
        .args([
            "--source",
            "10.0.0.1",
            "--source",
            "10.0.0.3",
            "--seed",
            "5",
            "--requests",
            "1000",
            "--rate",
            "300",
            "--trigger-after",
            "300",
            "--trigger-source",
            "10.0.0.3:41000",
            "--timeout-ms",
            "3000",
            "--json",
            "--journal",
        ])
        .arg(&journal_path)
        .output()
        .expect("run reprise-kvgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reprise-kvgen: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("--json summary");
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(summary["sent"], 303);
    assert_eq!(summary["lost"], 1);
    assert_eq!(
        summary["trigger"],
        json!({"client": "10.0.0.3:41000", "sent": true, "blob_stored": true,
               "note_stored": true, "crashed": true})
    );

    let serial = vm.wait_serial("kv: panic: ", Duration::from_secs(10));
    let panic = lines_with(&serial, "reprise-guest: FATAL kv: panic: log record ")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no panic line:\n{serial}"))
        .to_string();
    // 16-byte header + 12-byte key + 256-byte value.
    assert!(
        panic.contains(
            "of generation 0 (key 'trigger:blob', 284 bytes) fails its checksum: stored "
        ),
        "{panic}"
    );
    let status = vm.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        vm.stderr().contains("the guest requested a reset"),
        "{}",
        vm.stderr()
    );

    // The journal tells the trigger client apart by address and port.
    let events = journal(&journal_path);
    let requests: Vec<&Value> = events.iter().filter(|e| e["event"] == "request").collect();
    assert_eq!(requests.len(), 303);
    for (i, r) in requests.iter().enumerate() {
        let trigger = i >= 300;
        assert_eq!(r["trigger"], trigger, "{r}");
        assert_eq!(r["client"] == "10.0.0.3:41000", trigger, "{r}");
    }
    assert_eq!(requests[300]["key"], "trigger:blob");
    assert_eq!(requests[300]["value"].as_str().map(str::len), Some(256));
    assert_eq!(requests[302]["op"], "GET");

    // Restarted, the guest stops loading at the short record: the blob and the note
    // written over it are gone.
    let mut vm = boot(&ns, &scratch, "second", disk, "");
    let serial = vm.serial();
    let end = lines_with(&serial, "kv: log ends at record ");
    assert!(
        end.len() == 1 && end[0].ends_with("): bad checksum"),
        "{serial}"
    );
    let replies = ns.run(|| {
        exchange(
            HOST,
            &["1 GET trigger:blob", "2 GET trigger:note", "3 QUIT"],
        )
    });
    assert_eq!(replies, ["1 NOT_FOUND", "2 NOT_FOUND", "3 OK"]);
    stop(&mut vm);
}

#[test]
fn a_long_random_run_does_not_crash() {
    let ns = network("kv-long");
    let scratch = Scratch::new("kv-long");
    let disk = raw_disk(&scratch, 16);
    let mut vm = boot(&ns, &scratch, "run", disk, "kv.log_kib=256 kv.report=5000");
    // Closed loop (each request after the previous reply), 8 clients, values up to the
    // longest that is stored correctly, many compactions.
    let mut cfg = traffic(99, 20_000, 0);
    cfg.plan.clients = 8;
    cfg.plan.keys = 500;
    cfg.plan.value_len = (0, 255);
    cfg.plan.mix = Mix {
        put: 45,
        get: 35,
        del: 20,
    };
    let s = drive(&ns, &cfg);
    assert_eq!((s.sent, s.replies, s.verified), (20_001, 20_001, 20_001));
    stop(&mut vm);
    let serial = vm.serial();
    assert!(!serial.contains("FATAL"), "{serial}");
    assert!(lines_with(&serial, "kv: compacted ").len() >= 3, "{serial}");
    assert_eq!(lines_with(&serial, "kv: requests=").len(), 4, "{serial}");
}

#[test]
fn bad_frames_are_dropped_and_other_traffic_ignored() {
    let ns = network("kv-frames");
    let scratch = Scratch::new("kv-frames");
    let disk = raw_disk(&scratch, 16);
    let mut vm = boot(&ns, &scratch, "run", disk, "");
    let tap_mac = ns
        .command("cat")
        .arg(format!("/sys/class/net/{TAP}/address"))
        .output();
    let tap_mac = parse_mac(&String::from_utf8_lossy(
        &tap_mac.expect("read TAP MAC").stdout,
    ));

    let replies = ns.run(|| {
        // First a normal request: the host resolves the guest's MAC through ARP.
        let first = exchange(HOST, &["1 PUT good v"]);
        let neigh = ns
            .command("ip")
            .args(["neigh", "show", "10.0.0.2"])
            .output();
        let neigh = String::from_utf8_lossy(&neigh.expect("ip neigh").stdout).into_owned();
        assert!(neigh.contains(GUEST_MAC), "{neigh}");
        let port = 45000;
        let frames = [
            // A bad IPv4 header checksum, a bad UDP checksum, another UDP port,
            // another IP address: none may be served.
            udp_frame(
                tap_mac,
                GUEST.ip(),
                7000,
                port,
                b"2 PUT bad1 v",
                Corrupt::Ip,
            ),
            udp_frame(
                tap_mac,
                GUEST.ip(),
                7000,
                port,
                b"3 PUT bad2 v",
                Corrupt::Udp,
            ),
            udp_frame(
                tap_mac,
                GUEST.ip(),
                7001,
                port,
                b"4 PUT bad3 v",
                Corrupt::None,
            ),
            udp_frame(
                tap_mac,
                &Ipv4Addr::new(10, 0, 0, 9),
                7000,
                port,
                b"5 PUT bad4 v",
                Corrupt::None,
            ),
        ];
        let sock = UdpSocket::bind(SocketAddrV4::new(HOST, port)).expect("bind");
        send_raw(TAP, &frames);
        let mut rest = vec![first[0].clone()];
        rest.extend(exchange_on(
            &sock,
            &[
                "6 GET bad1",
                "7 GET bad2",
                "8 GET bad3",
                "9 GET bad4",
                "10 GET good",
                "11 QUIT",
            ],
        ));
        rest
    });
    assert_eq!(
        replies,
        [
            "1 OK",
            "6 NOT_FOUND",
            "7 NOT_FOUND",
            "8 NOT_FOUND",
            "9 NOT_FOUND",
            "10 OK v",
            "11 OK"
        ]
    );
    stop(&mut vm);
    let serial = vm.serial();
    let mac = tap_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    for why in ["bad IPv4 header checksum", "bad UDP checksum"] {
        assert!(
            serial.contains(&format!("kv: dropped a frame from {mac}: {why}")),
            "{serial}"
        );
    }
    assert!(serial.contains("kv: stopped requests=7 keys=1"), "{serial}");
}

/// Sends each request from `source` (any port) and returns the replies, in order.
fn exchange(source: Ipv4Addr, requests: &[&str]) -> Vec<String> {
    let sock = UdpSocket::bind(SocketAddrV4::new(source, 0)).expect("bind");
    exchange_on(&sock, requests)
}

fn exchange_on(sock: &UdpSocket, requests: &[&str]) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    requests
        .iter()
        .map(|r| {
            sock.send_to(r.as_bytes(), GUEST).expect("send");
            let (n, from) = sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no reply to {r:?}: {e}"));
            assert_eq!(from, std::net::SocketAddr::V4(GUEST));
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect()
}

fn parse_mac(s: &str) -> [u8; 6] {
    let bytes: Vec<u8> = s
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("MAC byte"))
        .collect();
    bytes.try_into().expect("6-byte MAC")
}

#[derive(Clone, Copy, PartialEq)]
enum Corrupt {
    None,
    Ip,
    Udp,
}

/// An Ethernet frame carrying UDP from 10.0.0.1:`sport` to `dst`:`dport`.
fn udp_frame(
    src_mac: [u8; 6],
    dst: &Ipv4Addr,
    dport: u16,
    sport: u16,
    payload: &[u8],
    corrupt: Corrupt,
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut f = Vec::new();
    f.extend_from_slice(&GUEST_MAC_BYTES);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&HOST.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = inet_checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    if corrupt == Corrupt::Ip {
        ip[10] ^= 0x5a;
    }
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&HOST.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let mut sum = inet_checksum(&pseudo, 0);
    if sum == 0 {
        sum = 0xffff;
    }
    if corrupt == Corrupt::Udp {
        sum ^= 0x0101;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

fn inet_checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&b| u64::from(b));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends raw Ethernet frames out of interface `ifname` (of the calling thread's
/// namespace), towards the VMM attached to the TAP.
fn send_raw(ifname: &str, frames: &[Vec<u8>]) {
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
    addr.sll_halen = 6;
    for f in frames {
        // SAFETY: `f` and `addr` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
}

/// The UDP payload of an Ethernet/IPv4/UDP frame, with its source and destination.
fn udp_of(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = frame.get(14 + ihl..)?;
    let ip = |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let len = usize::from(port(4));
    Some((
        SocketAddrV4::new(ip(26), port(0)),
        SocketAddrV4::new(ip(30), port(2)),
        udp.get(8..len)?,
    ))
}

#[test]
fn recorded_kv_traffic_is_every_request_received_and_every_reply_sent_in_order() {
    let ns = network("kv-record");
    let scratch = Scratch::new("kv-record");
    let sock = scratch.path("api.sock");
    let vm = boot_with_api(&ns, &scratch, "rec", raw_disk(&scratch, 16), "", Some(sock));
    let capture = scratch.path("capture");
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [
            {"name": "all", "dir": capture.join("all")},
            {"name": "alias", "dir": capture.join("alias"),
             "filter": {"classes": ["net"], "ipv4": ["10.0.0.3"], "protocols": ["udp"]}}
        ]}),
    );
    let journal_path = scratch.path("rec.jsonl");
    let mut cfg = traffic(21, 600, 400);
    cfg.journal = Some(journal_path.clone());
    let summary = drive(&ns, &cfg);
    assert_eq!(summary.lost, 0);
    // The generator's QUIT ends the guest; the VM stopping stops the recording.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while vm.state() != "Stopped" {
        assert!(std::time::Instant::now() < deadline, "the VM did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }

    // What the generator sent and received, in its order.
    let journal = journal(&journal_path);
    let sent: Vec<(String, u64)> = journal
        .iter()
        .filter(|e| e["event"] == "request")
        .map(|e| {
            (
                e["client"].as_str().expect("client").to_string(),
                e["id"].as_u64().expect("id"),
            )
        })
        .collect();
    let received: Vec<(String, String)> = journal
        .iter()
        .filter(|e| e["event"] == "reply")
        .map(|e| {
            (
                e["client"].as_str().expect("client").to_string(),
                e["reply"].as_str().expect("reply").to_string(),
            )
        })
        .collect();
    // What the capture says the guest received and sent on UDP port 7000.
    let read = |dir: &Path| -> Vec<replay::Event> {
        let reader = replay::capture::reader::CaptureReader::open(dir).expect("capture");
        reader
            .events(&Default::default())
            .expect("events")
            .map(|r| r.unwrap_or_else(|p| panic!("capture problem: {p}")).event)
            .collect()
    };
    let events = read(&capture.join("all"));
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for e in &events {
        match &e.kind {
            replay::EventKind::NetRx { frame } => {
                if let Some((from, to, payload)) = udp_of(frame) {
                    if to == GUEST {
                        let text = String::from_utf8_lossy(payload);
                        let id: u64 = text
                            .split(' ')
                            .next()
                            .and_then(|w| w.parse().ok())
                            .expect("request id");
                        requests.push((from.to_string(), id));
                    }
                }
            }
            replay::EventKind::NetTx { frame } => {
                if let Some((from, to, payload)) = udp_of(frame) {
                    if from == GUEST {
                        replies.push((
                            to.to_string(),
                            String::from_utf8_lossy(payload).into_owned(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(requests.len(), sent.len(), "requests received vs sent");
    assert!(
        requests == sent,
        "the guest received the requests in another order or form"
    );
    // Exported as pcapng and read by tshark: the same frames, directions and payloads.
    let pcap = scratch.path("kv.pcapng");
    let reader =
        replay::capture::reader::CaptureReader::open(&capture.join("all")).expect("capture");
    let summary = replay::capture::export::export_pcapng(&reader, &Default::default(), &pcap)
        .expect("export");
    let frames: Vec<(bool, &[u8])> = events
        .iter()
        .filter_map(|e| match &e.kind {
            replay::EventKind::NetRx { frame } => Some((true, frame.as_slice())),
            replay::EventKind::NetTx { frame } => Some((false, frame.as_slice())),
            _ => None,
        })
        .collect();
    assert_eq!(summary.packets as usize, frames.len());
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().expect("utf-8"),
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "frame.packet_flags_direction",
            "-e",
            "udp.payload",
            "-e",
            "frame.len",
        ])
        .output()
        .expect("tshark (Debian package tshark) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        frames.len(),
        "tshark read another number of frames"
    );
    for (line, (inbound, frame)) in lines.iter().zip(&frames) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(
            f[0],
            if *inbound { "0x00000001" } else { "0x00000002" },
            "direction: {line}"
        );
        assert_eq!(f[2], frame.len().to_string(), "{line}");
        if let Some((_, _, payload)) = udp_of(frame) {
            let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(f[1].replace(':', ""), hex, "{line}");
        }
    }
    assert_eq!(replies.len(), received.len(), "replies sent vs received");
    // Replies reach the generator through one socket per client, read by threads of their
    // own: their order holds per client (each socket is one stream), not across clients.
    let per_client = |list: &[(String, String)]| {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (client, text) in list {
            m.entry(client.clone()).or_default().push(text.clone());
        }
        m
    };
    assert!(
        per_client(&replies) == per_client(&received),
        "the replies recorded differ from those received"
    );
    // The filtered buffer holds exactly the frames to or from 10.0.0.3, and markers.
    let alias = read(&capture.join("alias"));
    let frames: Vec<&replay::Event> = alias.iter().filter(|e| e.kind.frame().is_some()).collect();
    let expected = events
        .iter()
        .filter(|e| {
            e.kind
                .frame()
                .and_then(udp_of)
                .is_some_and(|(from, to, _)| *from.ip() == ALIAS || *to.ip() == ALIAS)
        })
        .count();
    assert!(expected > 0);
    assert_eq!(frames.len(), expected);
    assert!(alias
        .iter()
        .all(|e| e.kind.frame().is_some() || e.kind.class() == replay::KindClass::Marker));
}
