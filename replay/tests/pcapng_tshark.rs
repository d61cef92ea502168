//! pcapng export read back by the real `tshark`: frame count, interfaces, direction,
//! payloads, timestamps and comments.

mod common;

use std::process::Command;

use common::*;
use replay::capture::export::export_pcapng;
use replay::capture::reader::{CaptureReader, Query};
use replay::capture::BufferConfig;
use replay::{Clock, EventKind, SourceId};

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark could not run ({e}): install the Debian package tshark")
        });
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tshark_reads_the_export() {
    let tmp = TempDir::new("pcapng");
    let dir = tmp.join("b");
    let clock = clock();
    let rec = start(vec![BufferConfig::new("all", &dir)], &clock);
    let mut sent = Vec::new();
    for i in 0..10u16 {
        clock.set_vm_time_ns(u64::from(i) * 1_500_000_000);
        let to_guest = i % 2 == 0;
        let payload = format!("packet {i}").into_bytes();
        let f = udp(to_guest, 1000 + i, 2000, &payload);
        let (source, kind) = if i == 7 {
            (NET1, EventKind::net_tx(f.clone()))
        } else if to_guest {
            (NET0, EventKind::net_rx(f.clone()))
        } else {
            (NET0, EventKind::net_tx(f.clone()))
        };
        rec.record(SourceId(source), kind);
        // Events that are not frames are left out of the export.
        rec.record(SourceId(SERIAL), EventKind::SerialOut { bytes: vec![b'.'] });
        sent.push((source, to_guest && i != 7, payload, clock.vm_time_ns()));
        if i == 4 {
            rec.snapshot_taken("mid").unwrap();
        }
    }
    rec.stop().unwrap();

    let out = tmp.join("cap.pcapng");
    let r = CaptureReader::open(&dir).unwrap();
    let summary = export_pcapng(&r, &Query::default(), &out).unwrap();
    assert_eq!(summary.packets, 10);
    assert_eq!((summary.inbound, summary.outbound), (5, 5));
    assert_eq!(summary.interfaces, ["net0", "net1"]);
    assert!(!tmp.join("cap.pcapng.partial").exists());

    let out_s = out.to_str().unwrap();
    let text = tshark(&[
        "-r",
        out_s,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.packet_flags_direction",
        "-e",
        "udp.srcport",
        "-e",
        "udp.payload",
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.comment",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    for (i, (line, (source, inbound, payload, vm))) in lines.iter().zip(&sent).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(
            f[0],
            if *source == NET0 { "net0" } else { "net1" },
            "{line}"
        );
        assert_eq!(
            f[1],
            if *inbound { "0x00000001" } else { "0x00000002" },
            "direction of {line}"
        );
        assert_eq!(f[2], (1000 + i).to_string());
        assert_eq!(f[3], hex(payload));
        // Wall time: the recording's start plus VM time (no pause in this run).
        let want = (START_UNIX_NS + vm) as f64 / 1e9;
        let got: f64 = f[4].parse().unwrap();
        assert!((got - want).abs() < 1e-6, "time {got} vs {want}");
        assert!(f[5].starts_with("seq="), "{line}");
    }

    // Filtering the export by source and direction.
    let q = Query {
        filter: replay::Filter {
            sources: Some([SourceId(NET0)].into()),
            direction: Some(replay::Direction::Input),
            ..replay::Filter::default()
        },
        ..Query::default()
    };
    let out2 = tmp.join("rx.pcapng");
    let s = export_pcapng(&r, &q, &out2).unwrap();
    assert_eq!(s.packets, 5);
    let text = tshark(&[
        "-r",
        out2.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "udp.srcport",
    ]);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["1000", "1002", "1004", "1006", "1008"]
    );
}
