//! Boots the test guest under QEMU's microvm (the reference VMM) and checks every
//! workload's output. Needs `qemu-system-x86_64` (Debian `qemu-system-x86`, which
//! `.ci/run` installs) and `/dev/kvm`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reprise_guest_image::{dirty_checksum, guest_elf, pattern_bytes};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A scratch directory unique to one test.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("reprise-guest-qemu-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn qemu(smp: u32, append: &str, extra: &[String]) -> Child {
    Command::new("qemu-system-x86_64")
        .args([
            "-M",
            "microvm,acpi=off",
            "-accel",
            "kvm",
            "-cpu",
            "host,-arch-capabilities",
        ])
        .args([
            "-m",
            "128",
            "-smp",
            &smp.to_string(),
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-global", "virtio-mmio.force-legacy=false"])
        .arg("-kernel")
        .arg(guest_elf())
        .args(["-append", append])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 runs")
}

/// Wait for QEMU to exit (the guest resets at the end) and return what is left
/// of its output.
fn finish(mut child: Child) -> String {
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("guest did not finish in {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    out
}

fn run(smp: u32, append: &str, extra: &[String]) -> String {
    finish(qemu(smp, append, extra))
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

fn assert_common(out: &str) {
    let l = lines(out);
    assert_eq!(l[0], "reprise-guest 0.1 booted", "{out}");
    assert!(l[1].starts_with("cmdline: "), "{out}");
    assert_eq!(l[2], "mem: 127 MiB", "{out}");
    assert_eq!(*l.last().unwrap(), "reprise-guest: done", "{out}");
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn hello_single_and_smp() {
    let out = run(1, "workload=hello", &[]);
    assert_common(&out);
    assert_eq!(lines(&out).len(), 4, "{out}");

    let out = run(2, "workload=hello cpus=2", &[]);
    assert_common(&out);
    assert!(out.contains("\ncpus: 2\ncpu1: apic=1 running\n"), "{out}");
}

#[test]
fn blk_writes_the_pattern() {
    let dir = scratch("blk");
    let img = dir.join("d0.img");
    let ro = dir.join("d1.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    let ro_data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&ro, &ro_data).unwrap();
    let extra: Vec<String> = [
        "-drive".into(),
        format!(
            "id=d0,file={},format=raw,if=none,discard=unmap",
            img.display()
        ),
        "-device".into(),
        "virtio-blk-device,drive=d0,serial=disk0".into(),
        "-drive".into(),
        format!("id=d1,file={},format=raw,if=none,readonly=on", ro.display()),
        "-device".into(),
        "virtio-blk-device,drive=d1".into(),
    ]
    .into();
    let out = run(
        1,
        "workload=blk seed=3 blk.sector=2048 blk.sectors=300",
        &extra,
    );
    assert_common(&out);

    let (start, len) = (2048 * 512, 300 * 512);
    let pattern = pattern_bytes(3, start as u64, len);
    let disk = std::fs::read(&img).unwrap();
    // The last 8 sectors were discarded (punched) after the verify.
    assert_eq!(disk[start..start + len - 4096], pattern[..len - 4096]);
    assert!(disk[start + len - 4096..start + len]
        .iter()
        .all(|&b| b == 0));
    let expected = [
        "blk0: id=disk0 capacity=16384 ro=0".to_string(),
        format!("blk0: read crc32={:08x}", crc32(&vec![0; len])),
        "blk0: write ok".into(),
        "blk0: flush ok".into(),
        format!("blk0: verify ok crc32={:08x}", crc32(&pattern)),
        "blk0: discard ok".into(),
        "blk1: id= capacity=8192 ro=1".into(),
        format!(
            "blk1: read crc32={:08x}",
            crc32(&ro_data[start..start + len])
        ),
        "blk1: write refused status=1".into(),
        "blk: done".into(),
    ];
    for line in expected {
        assert!(
            out.contains(&format!("\n{line}\n")),
            "missing {line:?} in\n{out}"
        );
    }
    assert_eq!(std::fs::read(&ro).unwrap(), ro_data);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn blk_bench_reports() {
    let dir = scratch("bench");
    let img = dir.join("d0.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    let extra: Vec<String> = [
        "-drive".into(),
        format!("id=d0,file={},format=raw,if=none", img.display()),
        "-device".into(),
        "virtio-blk-device,drive=d0".into(),
    ]
    .into();
    let out = run(
        1,
        "workload=blk blk.bench=1 blk.bench_mib=2 blk.bench_ops=50",
        &extra,
    );
    assert_common(&out);
    assert!(out.contains("\ntsc: khz="), "{out}");
    for (name, bytes, ops) in [
        ("seq-write", 2 << 20, 16),
        ("seq-read", 2 << 20, 16),
        ("rand-write", 50 * 4096, 50),
        ("rand-read", 50 * 4096, 50),
    ] {
        let prefix = format!("\nbench: blk {name} bytes={bytes} ops={ops} cycles=");
        assert!(out.contains(&prefix), "missing {prefix:?} in\n{out}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn net_echo_swaps_macs() {
    let dir = scratch("net");
    let (guest_sock, host_sock) = (dir.join("g.sock"), dir.join("h.sock"));
    let host = UnixDatagram::bind(&host_sock).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let extra: Vec<String> = [
        "-netdev".into(),
        format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            guest_sock.display(),
            host_sock.display()
        ),
        "-device".into(),
        "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56".into(),
    ]
    .into();
    let mut child = qemu(2, "workload=net-echo cpus=2", &extra);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut head = String::new();
    while !head.contains("net-echo: ready") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "{head}");
    }
    assert!(
        head.contains("net-echo: ready mac=52:54:00:12:34:56\n"),
        "{head}"
    );

    let guest_mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let host_mac = [0x02, 0, 0, 0, 0, 1];
    for i in 0..20usize {
        let payload: Vec<u8> = (0..60 + i * 70).map(|b| (b + i) as u8).collect();
        let frame = [&guest_mac[..], &host_mac, &[0x08, 0x00], &payload].concat();
        if i % 5 == 0 {
            // Let the guest fall asleep, so the device interrupt must wake it.
            std::thread::sleep(Duration::from_millis(20));
        }
        host.send_to(&frame, &guest_sock).unwrap();
        let mut buf = [0u8; 2048];
        let n = host.recv(&mut buf).unwrap();
        let expected = [&host_mac[..], &guest_mac, &[0x08, 0x00], &payload].concat();
        assert_eq!(&buf[..n], &expected[..], "frame {i}");
    }
    let stop = [&guest_mac[..], &host_mac, &[0x88, 0xb5], b"STOP", &[0; 42]].concat();
    host.send_to(&stop, &guest_sock).unwrap();

    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    finish(child);
    let out = head + &rest;
    assert_common(&out);
    assert!(out.contains("\nnet-echo: stopped frames=20\n"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dirty_checksums_match() {
    let out = run(
        1,
        "workload=dirty dirty.mib=4 dirty.rate=2000 dirty.seconds=3",
        &[],
    );
    assert_common(&out);
    for s in 1..=3u64 {
        let writes = 2000 * s;
        let line = format!(
            "dirty: second={s} writes={writes} checksum={:016x}",
            dirty_checksum(4, writes)
        );
        assert!(
            out.contains(&format!("\n{line}\n")),
            "missing {line:?} in\n{out}"
        );
    }

    let out = run(
        1,
        "workload=dirty dirty.mib=2 dirty.rate=0 dirty.seconds=1",
        &[],
    );
    assert_common(&out);
    let line = lines(&out)
        .into_iter()
        .find(|l| l.starts_with("dirty: second=1 "))
        .unwrap();
    let writes: u64 = line.split(' ').nth(2).unwrap()["writes=".len()..]
        .parse()
        .unwrap();
    assert!(
        line.ends_with(&format!("checksum={:016x}", dirty_checksum(2, writes))),
        "{line}"
    );
}

#[test]
fn ticks_count() {
    let out = run(
        1,
        "workload=ticks ticks.hz=200 ticks.every=100 ticks.total=300",
        &[],
    );
    assert_common(&out);
    assert!(
        out.contains("\nticks: n=100\nticks: n=200\nticks: n=300\nticks: done\n"),
        "{out}"
    );
}

#[test]
fn fault_is_reported() {
    let out = run(1, "workload=fault", &[]);
    let last = lines(&out).pop().unwrap();
    assert!(
        last.starts_with("reprise-guest: EXCEPTION vector=e error=5 rip="),
        "{out}"
    );
    assert!(last.ends_with(" cr2=100000"), "{out}");
}

/// Internet checksum (RFC 1071) over `data`, from the partial sum `initial`.
fn inet_sum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in data.chunks(2) {
        sum += u64::from(pair[0]) << 8 | pair.get(1).map_or(0, |&b| u64::from(b));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Partial sum of the UDP pseudo-header for `src`, `dst` and a `len`-byte datagram.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], len: usize) -> u32 {
    let w = |a: [u8; 4], i: usize| u32::from(u16::from_be_bytes([a[i], a[i + 1]]));
    w(src, 0) + w(src, 2) + w(dst, 0) + w(dst, 2) + 17 + len as u32
}

#[test]
fn kv_answers_arp_and_udp() {
    let dir = scratch("kv");
    let img = dir.join("d0.img");
    std::fs::write(&img, vec![0u8; 16 << 20]).unwrap();
    let (guest_sock, host_sock) = (dir.join("g.sock"), dir.join("h.sock"));
    let host = UnixDatagram::bind(&host_sock).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let extra: Vec<String> = [
        "-drive".into(),
        format!("id=d0,file={},format=raw,if=none", img.display()),
        "-device".into(),
        "virtio-blk-device,drive=d0".into(),
        "-netdev".into(),
        format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            guest_sock.display(),
            host_sock.display()
        ),
        "-device".into(),
        "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56".into(),
    ]
    .into();
    let mut child = qemu(1, "workload=kv kv.ip=192.168.7.2 kv.port=7000", &extra);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut head = String::new();
    while !head.contains("kv: ready") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "{head}");
    }
    assert!(
        head.contains("kv: loaded 0 keys from 0 log records\n"),
        "{head}"
    );
    assert!(
        head.contains("kv: ready ip=192.168.7.2 port=7000 mac=52:54:00:12:34:56\n"),
        "{head}"
    );
    let guest_mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let host_mac = [0x02, 0, 0, 0, 0, 1];
    let (guest_ip, host_ip) = ([192, 168, 7, 2], [192, 168, 7, 1]);
    let mut buf = [0u8; 2048];

    // ARP: who has 192.168.7.2?
    let arp_req = [
        &[0xff; 6][..],
        &host_mac,
        &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1],
        &host_mac,
        &host_ip,
        &[0; 6],
        &guest_ip,
    ]
    .concat();
    host.send_to(&arp_req, &guest_sock).unwrap();
    let n = host.recv(&mut buf).unwrap();
    let arp_reply = [
        &host_mac[..],
        &guest_mac,
        &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2],
        &guest_mac,
        &guest_ip,
        &host_mac,
        &host_ip,
    ]
    .concat();
    assert_eq!(&buf[..n], &arp_reply[..]);

    let exchange = |request: &[u8]| -> Vec<u8> {
        let udp_len = 8 + request.len();
        let mut ip = vec![0x45, 0, 0, 0, 0, 7, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&host_ip);
        ip.extend_from_slice(&guest_ip);
        let sum = inet_sum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut udp = [
            &40000u16.to_be_bytes()[..],
            &7000u16.to_be_bytes(),
            &(udp_len as u16).to_be_bytes(),
            &[0, 0],
            request,
        ]
        .concat();
        let sum = inet_sum(&udp, pseudo_sum(host_ip, guest_ip, udp_len));
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let frame = [&guest_mac[..], &host_mac, &[0x08, 0x00], &ip, &udp].concat();
        host.send_to(&frame, &guest_sock).unwrap();
        let mut buf = [0u8; 2048];
        let n = host.recv(&mut buf).unwrap();
        let f = &buf[..n];
        assert_eq!(
            &f[..14],
            &[&host_mac[..], &guest_mac, &[0x08, 0x00]].concat()[..]
        );
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(inet_sum(ip, 0), 0, "IPv4 header checksum");
        assert_eq!(
            (&ip[12..16], &ip[16..20], ip[9]),
            (&guest_ip[..], &host_ip[..], 17)
        );
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let udp = &f[34..14 + total];
        assert_eq!(&udp[..4], &[0x1b, 0x58, 0x9c, 0x40], "ports 7000 -> 40000");
        assert_eq!(
            inet_sum(udp, pseudo_sum(guest_ip, host_ip, udp.len())),
            0,
            "UDP checksum"
        );
        udp[8..].to_vec()
    };
    assert_eq!(exchange(b"1 PUT k hello world"), b"1 OK");
    assert_eq!(exchange(b"2 GET k"), b"2 OK hello world");
    assert_eq!(exchange(b"3 DEL nothing"), b"3 NOT_FOUND");
    assert_eq!(exchange(b"4 QUIT"), b"4 OK");

    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    finish(child);
    let out = head + &rest;
    assert_common(&out);
    assert!(out.contains("\nkv: stopped requests=4 keys=1\n"), "{out}");
    // The record is on the disk: PUT of "k" at the log's start (sector 2049).
    let disk = std::fs::read(&img).unwrap();
    let rec = &disk[2049 * 512..2049 * 512 + 16 + 1 + 11];
    assert_eq!(&rec[..4], &[0xa7, 1, 1, 11]);
    assert_eq!(&rec[16..], b"khello world");
    std::fs::remove_dir_all(dir).unwrap();
}
