//! Replay of console input and of network frames into clones, with faults injected on
//! block requests: `net-echo` on a datagram NIC, and `blk-rounds` driven from the console.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use reprise_tests::*;
use reprise_tools::demo_replay::clone_and_replay;
use reprise_tools::vmm_process::Vmm;
use serde_json::{json, Value};

const GUEST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x02];
const HOST_MAC: [u8; 6] = [0x06, 0x00, 0xac, 0x10, 0x00, 0x01];

fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = [GUEST_MAC, HOST_MAC].concat();
    f.extend_from_slice(&[0x88, 0xb6]);
    f.extend((0..len - 14).map(|i| (i as u32 ^ seq.wrapping_mul(31)) as u8));
    f
}

fn ended(v: &Value) -> bool {
    v["state"] == "guest-stopped" || v["state"] == "finished"
}

fn replay(
    scratch: &Scratch,
    name: &str,
    capture: &std::path::Path,
    store: &std::path::Path,
    extra: Value,
) -> (Vmm, Value) {
    let mut body = json!({"capture_dir": capture, "snapshot_dir": store, "snapshot_id": "mid",
                          "serial_output": format!("file:{}", scratch.path(&format!("{name}.serial")).display())});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    clone_and_replay(&scratch.path(""), name, body, ended).expect("replay")
}

#[test]
fn net_echo_replays_without_divergence_at_1x_and_max() {
    require_kvm();
    let scratch = Scratch::new("replay-echo");
    let (store, capture) = (scratch.path("store"), scratch.path("capture"));
    let host = scratch.path("host.sock");
    let vm_sock = scratch.path("vm.sock");
    let sock = UnixDatagram::bind(&host).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let vm = Reprise::with_api(&scratch);
    vm.configure_guest(64, "workload=net-echo", json!([]), None);
    vm.api_ok(
        "PUT",
        "/network-interfaces/net0",
        json!({"iface_id": "net0", "socket_path": vm_sock, "peer_socket_path": host,
               "guest_mac": "06:00:ac:10:00:02"}),
    );
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "main", "dir": capture}]}),
    );
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    let mut vm = vm;
    vm.wait_serial("net-echo: ready", Duration::from_secs(30));
    let mut buf = [0u8; 2048];
    for i in 0..300u32 {
        if i == 100 {
            let (code, reply) = vm.api(
                "PUT",
                "/snapshot/create",
                Some(json!({"snapshot_dir": store, "snapshot_id": "mid"})),
            );
            assert_eq!(code, 201, "{reply:?}");
        }
        let f = frame(64 + (i as usize * 13) % 1400, i);
        sock.send_to(&f, &vm_sock).expect("send");
        let n = sock.recv(&mut buf).expect("echo");
        assert_eq!(n, f.len());
    }
    let mut stop = [GUEST_MAC, HOST_MAC].concat();
    stop.extend_from_slice(&[0x88, 0xb5]);
    stop.extend_from_slice(b"STOP");
    stop.resize(60, 0);
    sock.send_to(&stop, &vm_sock).expect("send stop");
    vm.wait_serial("reprise-guest: done", Duration::from_secs(10));

    for speed in ["1", "max"] {
        let (_clone, status) = replay(
            &scratch,
            &format!("echo-{speed}"),
            &capture,
            &store,
            json!({"speed": speed}),
        );
        assert_eq!(status["state"], "guest-stopped", "{speed}: {status}");
        assert_eq!(status["total"], 201, "{status}");
        assert_eq!(status["delivered"], 201, "{status}");
        assert_eq!(status["check"]["divergences"], 0, "{speed}: {status}");
        assert_eq!(
            status["check"]["matched"], status["check"]["checked"],
            "{status}"
        );
        let serial =
            std::fs::read_to_string(scratch.path(&format!("echo-{speed}.serial"))).unwrap();
        assert!(serial.contains("net-echo: stopped frames=300"), "{serial}");
    }
}

#[test]
fn console_input_replays_and_an_injected_block_error_is_reported_by_the_guest() {
    require_kvm();
    let scratch = Scratch::new("replay-blk");
    let (store, capture) = (scratch.path("store"), scratch.path("capture"));
    let volume = scratch.path("v").join("volumes").join("disk");
    std::fs::create_dir_all(volume.parent().unwrap()).unwrap();
    volume_tool(&["create", volume.to_str().unwrap(), "--size", "8M"]);
    let input = scratch.path("in.sock");
    let mut vm = Reprise::with_api(&scratch);
    vm.configure_guest(
        64,
        "workload=blk-rounds blk.wait=1 blk.sector=2048 blk.sectors=64",
        json!([{"drive_id": "d0", "volume_path": volume}]),
        Some(&input),
    );
    vm.api_ok(
        "PUT",
        "/recording",
        json!({"buffers": [{"name": "main", "dir": capture}]}),
    );
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    vm.wait_serial("blk-rounds: round=0 done", Duration::from_secs(30));
    let (code, reply) = vm.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": store, "snapshot_id": "mid"})),
    );
    assert_eq!(code, 201, "{reply:?}");
    let mut console = connect_unix(&input);
    console.write_all(b"next\n").unwrap();
    vm.wait_serial("blk-rounds: round=1 done", Duration::from_secs(30));
    console.write_all(b"quit\n").unwrap();
    vm.wait_serial("reprise-guest: done", Duration::from_secs(30));

    // Faithful: the typed lines arrive, the same blocks are written.
    let (_c, status) = replay(&scratch, "plain", &capture, &store, json!({"strict": true}));
    assert_eq!(status["state"], "guest-stopped", "{status}");
    assert_eq!(status["check"]["divergences"], 0, "{status}");
    assert_eq!(status["block_mismatches"], json!([]), "{status}");
    let serial = std::fs::read_to_string(scratch.path("plain.serial")).unwrap();
    assert!(serial.contains("blk-rounds: round=1 done"), "{serial}");

    // An I/O error injected on sector 2048: the guest reports that sector.
    let (clone, status) = replay(
        &scratch,
        "faulty",
        &capture,
        &store,
        json!({"entropy": "seed=1,blk-error-sectors=2048"}),
    );
    assert_eq!(status["state"], "guest-stopped", "{status}");
    let serial = std::fs::read_to_string(scratch.path("faulty.serial")).unwrap();
    assert!(
        serial.contains("blk-rounds: write of sector 2048 failed status=1"),
        "{serial}"
    );
    let injected = clone.get("/replay/injections").unwrap();
    assert!(
        injected
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["what"].as_str().unwrap().contains("io-error sector 2048")),
        "{injected}"
    );
    assert!(
        status["check"]["divergences"].as_u64().unwrap() > 0,
        "{status}"
    );
}
