//! The `reprise-capture` binary on captures written by the recorder: ls, show with
//! filters, stats, verify (clean and damaged), export-pcapng read back by tshark.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use replay::capture::{BufferConfig, ManualClock, Recorder};
use replay::{
    BlkData, BlkRequestType, EventKind, Filter, KindClass, SourceId, SourceInfo, SourceTable,
};
use serde_json::Value;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("reprise-capture-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An Ethernet + IPv4 + UDP frame (UDP checksum 0: none).
fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, dst[3], 2, 0, 0, 0, 0, src[3], 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

const GUEST: [u8; 4] = [10, 0, 0, 2];
const HOST: [u8; 4] = [10, 0, 0, 1];

/// Two buffers under `root`: `all` and `net` (network only); returns `root`.
fn make_capture(root: &Path) {
    let sources = SourceTable::new(vec![
        SourceInfo::net(0, "net0", Some([2, 0, 0, 0, 0, 2])),
        SourceInfo::blk(1, "blk0"),
        SourceInfo::serial(2, "serial"),
    ])
    .unwrap();
    let mut net = BufferConfig::new("net", root.join("net"));
    net.filter = Filter::classes(&[KindClass::Net]);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000_000));
    let rec = Recorder::start(
        sources,
        vec![BufferConfig::new("all", root.join("all")), net],
        clock.clone(),
        Arc::new(|_: &str| true),
    )
    .unwrap();
    for i in 0..20u16 {
        clock.set_vm_time_ns(u64::from(i) * 100_000_000);
        clock.set_progress(u64::from(i) * 7);
        let port = if i % 4 == 0 { 53 } else { 8000 + i };
        rec.record(
            SourceId(0),
            EventKind::net_rx(udp(HOST, port, GUEST, 9000, b"request")),
        );
        rec.record(
            SourceId(0),
            EventKind::net_tx(udp(GUEST, 9000, HOST, port, b"reply!")),
        );
        if i == 10 {
            rec.snapshot_taken("s10").unwrap();
        }
    }
    rec.record(
        SourceId(1),
        EventKind::BlkCompletion {
            request: BlkRequestType::Read,
            sector: 0,
            len: 512,
            status: 0,
            data: BlkData::Full(vec![0xab; 512]),
        },
    );
    rec.record(SourceId(1), EventKind::blk_write(8, vec![1; 512]));
    rec.record(
        SourceId(2),
        EventKind::SerialOut {
            bytes: b"hello\n".to_vec(),
        },
    );
    rec.stop().unwrap();
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reprise-capture"))
        .args(args)
        .output()
        .expect("run reprise-capture")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ls_show_stats_verify_export() {
    let tmp = TempDir::new("main");
    let root = tmp.0.join("capture");
    make_capture(&root);
    let root_s = root.to_str().unwrap();
    let all = root.join("all");
    let all_s = all.to_str().unwrap();

    // ls: both buffers, their snapshots.
    let ls: Value = serde_json::from_str(&ok(&["ls", root_s, "--json"])).unwrap();
    let ls = ls.as_array().unwrap();
    assert_eq!(ls.len(), 2);
    assert_eq!(ls[0]["buffer"], "all");
    assert_eq!(ls[0]["records"], 46);
    assert_eq!(ls[0]["snapshots"][0]["id"], "s10");
    assert_eq!(ls[0]["segments"].as_array().unwrap().len(), 2);
    assert_eq!(ls[0]["segments"][1]["start"], "snapshot s10");
    assert_eq!(ls[0]["segments"][1]["index"]["state"], "closed");
    assert_eq!(ls[1]["records"], 43);
    let text = ok(&["ls", root_s]);
    assert!(
        text.contains("snapshots: s10 (seq 23, 1.000000000)"),
        "{text}"
    );

    // show needs a buffer when there are several.
    let out = cli(&["show", root_s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--buffer"));
    let lines = ok(&[
        "show", root_s, "--buffer", "all", "--port", "53", "--kind", "net",
    ]);
    let rows: Vec<&str> = lines.lines().skip(1).collect();
    assert_eq!(rows.len(), 10, "{lines}");
    assert!(
        rows[0].contains("NetRx") && rows[0].contains("10.0.0.1:53 > 10.0.0.2:9000"),
        "{}",
        rows[0]
    );
    let outs = ok(&[
        "show",
        all_s,
        "--direction",
        "out",
        "--source",
        "serial",
        "--kind",
        "serial",
        "--json",
        "--data",
    ]);
    let v: Value = serde_json::from_str(outs.trim()).unwrap();
    assert_eq!(v["kind"], "SerialOut");
    assert_eq!(v["text"], "hello\n");
    assert_eq!(v["bytes"], "68656c6c6f0a");
    let ranged = ok(&[
        "show",
        all_s,
        "--from-time",
        "1.5",
        "--to-time",
        "1700ms",
        "--json",
    ]);
    let seqs: Vec<u64> = ranged
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [32, 33, 34, 35]);
    let snap = ok(&["show", all_s, "--from-snapshot", "s10", "--limit", "1"]);
    assert!(
        snap.lines().nth(1).unwrap().contains("snapshot s10"),
        "{snap}"
    );
    let out = cli(&["show", all_s, "--source", "nic9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source \"nic9\""));
    let out = cli(&["show", all_s, "--ip", "10.0.0.0/40"]);
    assert_eq!(out.status.code(), Some(2));

    // stats.
    let st: Value = serde_json::from_str(&ok(&["stats", all_s, "--json"])).unwrap();
    assert_eq!(st["events"], 46);
    assert_eq!(st["by_kind"]["NetRx"]["events"], 20);
    assert_eq!(st["by_source"]["blk0"]["events"], 2);
    assert_eq!(st["from_address"]["10.0.0.1"]["events"], 20);
    assert_eq!(st["by_protocol"]["udp"]["events"], 40);
    assert!(ok(&["stats", all_s]).contains("by source:"));

    // verify: clean, then damaged.
    assert!(ok(&["verify", root_s]).contains(": ok"));
    let seg = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let out = cli(&["verify", root_s]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("error: {}: offset", seg.display())),
        "{text}"
    );
    assert!(text.contains("DAMAGED"), "{text}");
    let v: Value = serde_json::from_slice(&cli(&["verify", all_s, "--json"]).stdout).unwrap();
    assert!(v[0]["errors"].as_u64().unwrap() >= 1);
    // show reads on past the damage, reporting it on stderr.
    let out = cli(&["show", all_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad record"));
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 40);

    // export-pcapng from the network buffer, read by tshark.
    let pcap = tmp.0.join("net.pcapng");
    let text = ok(&[
        "export-pcapng",
        root_s,
        pcap.to_str().unwrap(),
        "--buffer",
        "net",
        "--port",
        "53",
    ]);
    assert!(
        text.contains("wrote 10 packets (5 inbound, 5 outbound)"),
        "{text}"
    );
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.packet_flags_direction",
            "-e",
            "udp.srcport",
        ])
        .output()
        .expect("tshark could not run: install the Debian package tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], "0x00000001\t53");
    assert_eq!(rows[1], "0x00000002\t9000");
}
