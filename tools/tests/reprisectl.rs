//! The `reprisectl` binary against the real API server with a mock VMM.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Call, Fixture, TempDir};
use serde_json::{json, Value};
use vmm::config::{BootSource, DriveConfig, MachineConfig, NetConfig};

fn reprisectl(sock: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reprisectl"));
    command.env_remove("REPRISE_API_SOCK").stdin(Stdio::null());
    if let Some(sock) = sock {
        command.arg("--sock").arg(sock);
    }
    command.args(args).output().expect("run reprisectl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed and returns its standard output.
fn ok(fixture: &Fixture, args: &[&str]) -> String {
    let output = reprisectl(Some(&fixture.sock), args);
    assert!(
        output.status.success(),
        "reprisectl {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn configure_start_pause_resume_stop() {
    let fixture = Fixture::new();
    assert_eq!(
        ok(&fixture, &["status"]),
        "test-vm: Not started [reprise 9.9.9]\n"
    );

    assert_eq!(
        ok(
            &fixture,
            &["machine-config", "--vcpus", "2", "--mem-mib", "256"]
        ),
        ""
    );
    ok(
        &fixture,
        &[
            "boot-source",
            "--kernel",
            "guest.elf",
            "--args",
            "-v console=ttyS0",
            "--initrd",
            "/i",
        ],
    );
    ok(
        &fixture,
        &[
            "drive",
            "add",
            "root",
            "/img/root.raw",
            "--read-only",
            "--direct",
        ],
    );
    ok(
        &fixture,
        &[
            "net",
            "add",
            "eth0",
            "--tap",
            "tap7",
            "--mac",
            "02:00:00:00:00:07",
        ],
    );
    ok(
        &fixture,
        &[
            "net",
            "add",
            "eth1",
            "--socket",
            "a.sock",
            "--peer",
            "/run/b.sock",
        ],
    );

    let cwd = std::env::current_dir().unwrap();
    let calls = fixture.mock.calls();
    assert_eq!(
        calls[0],
        Call::MachineConfig(MachineConfig {
            vcpu_count: 2,
            mem_size_mib: 256,
            huge_pages: false
        })
    );
    assert_eq!(
        calls[1],
        Call::BootSource(BootSource {
            kernel_image_path: cwd.join("guest.elf"),
            boot_args: Some("-v console=ttyS0".into()),
            initrd_path: Some(PathBuf::from("/i")),
        })
    );
    assert_eq!(
        calls[2],
        Call::Drive(DriveConfig {
            drive_id: "root".into(),
            path_on_host: Some(PathBuf::from("/img/root.raw")),
            volume_path: None,
            is_read_only: true,
            io_direct: true,
            limits: None,
        })
    );
    assert_eq!(
        calls[3],
        Call::Net(NetConfig {
            iface_id: "eth0".into(),
            host_dev_name: Some("tap7".into()),
            socket_path: None,
            peer_socket_path: None,
            guest_mac: Some("02:00:00:00:00:07".into()),
            detached: false,
        })
    );
    assert!(matches!(&calls[4], Call::Net(n) if n.socket_path == Some(cwd.join("a.sock"))));

    let summary = ok(&fixture, &["config"]);
    assert!(
        summary.starts_with("machine: 2 vCPUs, 256 MiB\n"),
        "{summary}"
    );
    assert!(
        summary.contains("drive root: /img/root.raw (read-only, O_DIRECT)"),
        "{summary}"
    );
    assert!(
        summary.contains("net eth0: TAP tap7, MAC 02:00:00:00:00:07"),
        "{summary}"
    );

    let config: Value = serde_json::from_str(&ok(&fixture, &["config", "--json"])).unwrap();
    assert_eq!(config["machine-config"]["vcpu_count"], json!(2));
    assert_eq!(
        config["network-interfaces"][1]["peer_socket_path"],
        json!("/run/b.sock")
    );

    ok(&fixture, &["start"]);
    ok(&fixture, &["pause"]);
    assert_eq!(
        ok(&fixture, &["status"]),
        "test-vm: Paused [reprise 9.9.9]\n"
    );
    ok(&fixture, &["resume"]);
    ok(&fixture, &["stop"]);
    let status: Value = serde_json::from_str(&ok(&fixture, &["status", "--json"])).unwrap();
    assert_eq!(status["state"], json!("Stopped"));
    assert_eq!(
        ok(&fixture, &["status"]),
        "test-vm: Stopped (stopped by the API) [reprise 9.9.9]\n"
    );
    assert_eq!(
        fixture.mock.calls()[5..],
        [Call::Start, Call::Pause, Call::Resume, Call::Stop]
    );
}

#[test]
fn api_errors_print_the_fault_and_status() {
    let fixture = Fixture::new();
    let output = reprisectl(Some(&fixture.sock), &["pause"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: ") && message.trim_end().ends_with("(HTTP 409)"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());

    let output = reprisectl(
        Some(&fixture.sock),
        &["machine-config", "--vcpus", "99", "--mem-mib", "64"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: vcpu_count 99 is out of range (HTTP 400)\n"
    );
}

#[test]
fn connection_errors_name_the_socket() {
    let dir = TempDir::new("ctl");
    let sock = dir.0.join("absent.sock");
    let output = reprisectl(Some(&sock), &["status"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&sock.display().to_string()),
        "{}",
        stderr(&output)
    );

    let output = reprisectl(None, &["status"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("REPRISE_API_SOCK"));
}

#[test]
fn the_socket_can_come_from_the_environment() {
    let fixture = Fixture::new();
    let output = Command::new(env!("CARGO_BIN_EXE_reprisectl"))
        .env("REPRISE_API_SOCK", &fixture.sock)
        .arg("status")
        .output()
        .expect("run reprisectl");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("test-vm: "));
}

#[test]
fn raw_requests() {
    let fixture = Fixture::new();
    let info: Value = serde_json::from_str(&ok(&fixture, &["raw", "GET", "/"])).unwrap();
    assert_eq!(info["app_name"], json!("reprise"));

    assert_eq!(
        ok(
            &fixture,
            &[
                "raw",
                "PUT",
                "/machine-config",
                r#"{"vcpu_count": 4, "mem_size_mib": 32}"#
            ]
        ),
        ""
    );
    let body_file = fixture.dir.0.join("body.json");
    std::fs::write(&body_file, r#"{"action_type": "InstanceStart"}"#).unwrap();
    ok(
        &fixture,
        &[
            "raw",
            "put",
            "/actions",
            &format!("@{}", body_file.display()),
        ],
    );
    assert_eq!(fixture.mock.calls().len(), 2);

    let output = reprisectl(Some(&fixture.sock), &["raw", "GET", "/nowhere"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("(HTTP 404)"));

    let output = reprisectl(
        Some(&fixture.sock),
        &["raw", "PUT", "/actions", "{not json"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not valid JSON"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fixture.mock.calls().len(), 2, "nothing was sent");
}

#[test]
fn usage_errors_exit_2() {
    let fixture = Fixture::new();
    for args in [
        &["net", "add", "eth0"][..],
        &[
            "net", "add", "eth0", "--tap", "t", "--socket", "/a", "--peer", "/b",
        ],
        &["machine-config", "--vcpus", "2"],
        &["machine-config", "--vcpus", "300", "--mem-mib", "64"],
        &["frobnicate"],
    ] {
        assert_eq!(
            reprisectl(Some(&fixture.sock), args).status.code(),
            Some(2),
            "{args:?}"
        );
    }
    assert!(fixture.mock.calls().is_empty());
}

/// Runs a command that must fail with `code` and returns its standard error.
fn fails(fixture: &Fixture, code: i32, args: &[&str]) -> String {
    let output = reprisectl(Some(&fixture.sock), args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "reprisectl {args:?}: {}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty(), "{args:?}");
    stderr(&output)
}

#[test]
fn drive_add_volumes_and_limits() {
    let fixture = Fixture::new();
    ok(
        &fixture,
        &[
            "drive",
            "add",
            "data",
            "vol/data",
            "--volume",
            "--iops",
            "100:10",
            "--read-iops",
            "80",
            "--write-iops",
            "20:40",
            "--bps",
            "8M:16M",
            "--read-bps",
            "4M",
            "--write-bps",
            "2048K",
        ],
    );
    ok(&fixture, &["drive", "add", "root", "/img/root.raw"]);
    let cwd = std::env::current_dir().unwrap();
    let calls = fixture.mock.calls();
    let Call::Drive(data) = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(data.path_on_host, None);
    assert_eq!(data.volume_path, Some(cwd.join("vol/data")));
    assert!(!data.io_direct && !data.is_read_only);
    assert_eq!(
        serde_json::to_value(data.limits).unwrap(),
        json!({
            "iops": {"rate": 100, "burst": 10},
            "read_iops": {"rate": 80, "burst": 0},
            "write_iops": {"rate": 20, "burst": 40},
            "bps": {"rate": 8 << 20, "burst": 16 << 20},
            "read_bps": {"rate": 4 << 20, "burst": 0},
            "write_bps": {"rate": 2 << 20, "burst": 0},
        })
    );
    assert_eq!(
        calls[1],
        Call::Drive(DriveConfig {
            drive_id: "root".into(),
            path_on_host: Some(PathBuf::from("/img/root.raw")),
            volume_path: None,
            is_read_only: false,
            io_direct: false,
            limits: None,
        })
    );
    let summary = ok(&fixture, &["config"]);
    let volume = cwd.join("vol/data");
    assert!(
        summary.contains(&format!(
            "drive data: volume {} (limits iops 100/s burst 10, read_iops 80/s, \
             write_iops 20/s burst 40, bps 8 MiB/s burst 16 MiB, read_bps 4 MiB/s, \
             write_bps 2 MiB/s)\n",
            volume.display()
        )),
        "{summary}"
    );
    assert!(summary.contains("drive root: /img/root.raw\n"), "{summary}");

    for args in [
        &["drive", "add", "d", "/v", "--volume", "--direct"][..],
        &["drive", "add", "d", "/i", "--iops", "0"],
        &["drive", "add", "d", "/i", "--bps", "1X"],
        &["drive", "add", "d", "/i", "--iops", "1K"],
    ] {
        fails(&fixture, 2, args);
    }
    assert_eq!(fixture.mock.calls().len(), 2);
}

#[test]
fn drive_status_summaries_and_json() {
    let fixture = Fixture::new();
    ok(
        &fixture,
        &[
            "drive",
            "add",
            "root",
            "/img/root.raw",
            "--read-only",
            "--iops",
            "50",
        ],
    );
    assert_eq!(
        ok(&fixture, &["drive", "status", "root"]),
        "drive root: raw /img/root.raw, 1 GiB (1073741824 bytes), read-only\n\
         limits: iops 50/s\n\
         counters: none (the VM has not started)\n"
    );
    ok(&fixture, &["start"]);
    let status: Value =
        serde_json::from_str(&ok(&fixture, &["drive", "status", "root", "--json"])).unwrap();
    assert_eq!(status["backend"], json!("raw"));
    assert_eq!(status["limits"], json!({"iops": {"rate": 50, "burst": 0}}));
    assert_eq!(status["counters"]["requests"], json!(10));
    let text = ok(&fixture, &["drive", "status", "root"]);
    assert!(
        text.ends_with(
            "counters: 10 requests (6 reads, 4 writes), 24576 bytes read, 16384 bytes written, \
             0 I/O errors, throttled 2 times\n"
        ),
        "{text}"
    );

    let message = fails(&fixture, 1, &["drive", "status", "nope"]);
    assert_eq!(message, "error: there is no drive `nope` (HTTP 404)\n");
}

#[test]
fn drive_resize_and_limits() {
    let fixture = Fixture::new();
    ok(&fixture, &["drive", "add", "root", "/img/root.raw"]);
    let message = fails(&fixture, 1, &["drive", "resize", "root", "2G"]);
    assert!(message.ends_with("(HTTP 409)\n"), "{message}");

    ok(
        &fixture,
        &["drive", "limits", "root", "--write-bps", "1M:4M"],
    );
    assert!(ok(&fixture, &["drive", "status", "root"])
        .contains("limits: write_bps 1 MiB/s burst 4 MiB\n"));

    ok(&fixture, &["start"]);
    assert_eq!(ok(&fixture, &["drive", "resize", "root", "2G"]), "");
    assert!(ok(&fixture, &["drive", "status", "root"]).contains(", 2 GiB (2147483648 bytes),"));
    let message = fails(&fixture, 1, &["drive", "resize", "root", "1M"]);
    assert!(
        message.contains("allow_shrink") && message.ends_with("(HTTP 400)\n"),
        "{message}"
    );
    ok(
        &fixture,
        &[
            "drive",
            "resize",
            "root",
            "1M",
            "--allow-shrink",
            "--discard-data",
        ],
    );
    ok(&fixture, &["drive", "limits", "root", "--iops", "7"]);
    assert!(ok(&fixture, &["drive", "status", "root"]).contains("limits: iops 7/s\n"));
    ok(&fixture, &["drive", "limits", "root", "--none"]);
    assert!(ok(&fixture, &["drive", "status", "root"]).contains("limits: none\n"));

    let patches: Vec<Value> = fixture
        .mock
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::PatchDrive(patch) => Some(serde_json::to_value(patch).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        patches,
        [
            json!({"drive_id": "root", "size_bytes": 2u64 << 30, "allow_shrink": false, "discard_data": false}),
            json!({"drive_id": "root", "allow_shrink": false, "discard_data": false,
                   "limits": {"write_bps": {"rate": 1 << 20, "burst": 4 << 20}}}),
            json!({"drive_id": "root", "size_bytes": 2u64 << 30, "allow_shrink": false, "discard_data": false}),
            json!({"drive_id": "root", "size_bytes": 1 << 20, "allow_shrink": false, "discard_data": false}),
            json!({"drive_id": "root", "size_bytes": 1 << 20, "allow_shrink": true, "discard_data": true}),
            json!({"drive_id": "root", "allow_shrink": false, "discard_data": false,
                   "limits": {"iops": {"rate": 7}}}),
            json!({"drive_id": "root", "allow_shrink": false, "discard_data": false, "limits": {}}),
        ]
        .map(|mut patch| {
            // The mock records the decoded patch: buckets carry their (default) burst.
            if let Some(iops) = patch.pointer_mut("/limits/iops") {
                iops["burst"] = json!(0);
            }
            patch
        })
    );

    let calls = fixture.mock.calls().len();
    for args in [
        &["drive", "limits", "root"][..],
        &["drive", "limits", "root", "--none", "--iops", "1"],
        &["drive", "resize", "root", "1000"],
        &["drive", "resize", "root", "1G", "--discard-data"],
        &["drive", "resize", "root", "1.5G"],
    ] {
        fails(&fixture, 2, args);
    }
    assert_eq!(fixture.mock.calls().len(), calls, "nothing was sent");
}

#[test]
fn drive_snapshots() {
    let fixture = Fixture::new();
    ok(
        &fixture,
        &["drive", "add", "data", "/store/volumes/data", "--volume"],
    );
    ok(&fixture, &["drive", "add", "root", "/img/root.raw"]);
    let message = fails(&fixture, 1, &["drive", "snapshot", "data", "base"]);
    assert!(message.ends_with("(HTTP 409)\n"), "{message}");

    ok(&fixture, &["start"]);
    assert_eq!(
        ok(&fixture, &["drive", "snapshots", "data"]),
        "drive data has no snapshots\n"
    );
    assert_eq!(
        ok(&fixture, &["drive", "snapshot", "data", "base"]),
        "drive data: snapshot base, 1 GiB, taken 2023-11-14T22:13:20Z\n"
    );
    let second: Value = serde_json::from_str(&ok(
        &fixture,
        &["drive", "snapshot", "data", "v1.0", "--json"],
    ))
    .unwrap();
    assert_eq!(
        second,
        json!({"name": "v1.0", "created": 1_700_000_001, "size_bytes": 1 << 30})
    );
    assert_eq!(
        ok(&fixture, &["drive", "snapshots", "data"]),
        "base: 1 GiB, taken 2023-11-14T22:13:20Z\n\
         v1.0: 1 GiB, taken 2023-11-14T22:13:21Z\n"
    );
    let list: Value =
        serde_json::from_str(&ok(&fixture, &["drive", "snapshots", "data", "--json"])).unwrap();
    assert_eq!(list[1], second);
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    let message = fails(&fixture, 1, &["drive", "snapshot", "data", "base"]);
    assert!(
        message.contains("already") && message.ends_with("(HTTP 400)\n"),
        "{message}"
    );
    let message = fails(&fixture, 1, &["drive", "snapshot", "root", "s"]);
    assert!(message.contains("raw image"), "{message}");
    let message = fails(&fixture, 1, &["drive", "snapshots", "nope"]);
    assert!(message.ends_with("(HTTP 404)\n"), "{message}");

    let calls = fixture.mock.calls().len();
    for name in [".hidden", "a/b", "a b", ""] {
        let message = fails(&fixture, 2, &["drive", "snapshot", "data", name]);
        assert!(message.contains("snapshot name"), "{name:?}: {message}");
    }
    assert_eq!(fixture.mock.calls().len(), calls, "nothing was sent");
}

/// Writes snapshot `id` into `store` (a diff of `parent` if given), holding one page of data.
fn write_vm_snapshot(store: &Path, id: &str, parent: Option<&str>, created: u64) {
    use snapshot::{DirtyBitmap, MemoryLayout, NewSnapshot, SnapshotStore, StateWriter};
    let store = SnapshotStore::open(store).unwrap();
    let layout = MemoryLayout::new(&[(0, 1 << 20)]).unwrap();
    let mut memory = vec![0u8; 1 << 20];
    memory[4096..8192].fill(0x5a);
    let config = serde_json::to_value(vmm::config::VmConfig::default()).unwrap();
    let new = NewSnapshot {
        id: id.into(),
        created,
        vm_config: config,
        volumes: vec![],
    };
    let mut pending = store.begin(new).unwrap();
    pending.write_state(&StateWriter::new()).unwrap();
    match parent {
        None => {
            pending.write_full_memory(&layout, &[&memory]).unwrap();
        }
        Some(p) => {
            let mut dirty = DirtyBitmap::new(&layout);
            dirty.set(0, 1).unwrap();
            pending
                .write_diff_memory(p, &layout, &dirty, &[&memory])
                .unwrap();
        }
    }
    pending.commit().unwrap();
}

#[test]
fn vm_snapshots_offline_and_through_the_api() {
    let fixture = Fixture::new();
    let store = fixture.dir.0.join("snaps");
    let dir = store.to_str().unwrap();
    // No store yet: offline and API answers alike, and nothing is created.
    let message = fails(&fixture, 1, &["snapshot", "list", "--dir", dir]);
    assert!(message.contains("no snapshot store"), "{message}");
    let message = fails(&fixture, 1, &["snapshot", "list", "--dir", dir, "--api"]);
    assert!(
        message.contains("no snapshot store") && message.contains("HTTP 404"),
        "{message}"
    );
    assert!(!store.exists());

    write_vm_snapshot(&store, "base", None, 1_700_000_000_000);
    write_vm_snapshot(&store, "d1", Some("base"), 1_700_000_001_000);
    std::fs::create_dir(store.join("cut.tmp")).unwrap();
    let text = "base: full, taken 2023-11-14T22:13:20Z, 4.0 KiB of memory, no volumes\n\
                d1: diff of base, taken 2023-11-14T22:13:21Z, 4.0 KiB of memory, no volumes\n\
                ignored cut.tmp: a half-written snapshot (its writer stopped before it was \
                complete) (safe to remove)\n";
    // Offline needs no socket at all.
    let offline = reprisectl(None, &["snapshot", "list", "--dir", dir]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_eq!(stdout(&offline), text);
    assert_eq!(
        ok(&fixture, &["snapshot", "list", "--dir", dir, "--api"]),
        text
    );
    let json_offline: Value =
        serde_json::from_str(&ok(&fixture, &["snapshot", "list", "--dir", dir, "--json"])).unwrap();
    let json_api: Value = serde_json::from_str(&ok(
        &fixture,
        &["snapshot", "list", "--dir", dir, "--json", "--api"],
    ))
    .unwrap();
    assert_eq!(json_offline, json_api);
    assert_eq!(json_api["snapshots"][1]["parent"], json!("base"));
    assert_eq!(json_api["ignored"][0]["partial"], json!(true));

    let shown = ok(&fixture, &["snapshot", "show", "--dir", dir, "d1", "--api"]);
    assert!(shown.contains("chain: base -> d1"), "{shown}");
    assert!(shown.contains("dependents: none"), "{shown}");
    let shown: Value = serde_json::from_str(&ok(
        &fixture,
        &["snapshot", "show", "--dir", dir, "base", "--json"],
    ))
    .unwrap();
    assert_eq!(shown["dependents"], json!(["d1"]));
    assert_eq!(shown["manifest"]["kind"], json!("full"));

    // A parent is refused while its diff exists, through either path.
    let message = fails(&fixture, 1, &["snapshot", "delete", "--dir", dir, "base"]);
    assert!(message.contains("d1"), "{message}");
    let message = fails(
        &fixture,
        1,
        &["snapshot", "delete", "--dir", dir, "base", "--api"],
    );
    assert!(
        message.contains("d1") && message.contains("HTTP 409"),
        "{message}"
    );
    assert_eq!(
        ok(
            &fixture,
            &["snapshot", "delete", "--dir", dir, "d1", "--api"]
        ),
        format!("deleted snapshot d1 from {dir}\n")
    );
    ok(&fixture, &["snapshot", "delete", "--dir", dir, "base"]);
    let message = fails(
        &fixture,
        1,
        &["snapshot", "delete", "--dir", dir, "base", "--api"],
    );
    assert!(message.contains("HTTP 404"), "{message}");
    let message = fails(&fixture, 1, &["snapshot", "show", "--dir", dir, "../x"]);
    assert!(message.contains("invalid snapshot id"), "{message}");
    assert_eq!(
        ok(&fixture, &["snapshot", "list", "--dir", dir]),
        format!(
            "no snapshots in {dir}\nignored cut.tmp: a half-written snapshot (its writer stopped \
             before it was complete) (safe to remove)\n"
        )
    );
    // --api without a socket is a clear error.
    let output = reprisectl(None, &["snapshot", "list", "--dir", dir, "--api"]);
    assert!(
        stderr(&output).contains("no API socket"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn load_a_snapshot_through_the_api() {
    let fixture = Fixture::new();
    ok(
        &fixture,
        &[
            "snapshot",
            "load",
            "snaps/base",
            "--paused",
            "--vm-id",
            "clone1",
            "--net",
            "net0=dgram:clone.sock:/run/peer.sock,mac=02:00:00:00:00:09",
            "--net",
            "net1=detach",
        ],
    );
    let cwd = std::env::current_dir().unwrap();
    let Some(Call::LoadSnapshot(load)) = fixture.mock.calls().pop() else {
        panic!("no load");
    };
    assert_eq!(load.snapshot_path, cwd.join("snaps/base"));
    assert!(!load.resume);
    assert_eq!(load.vm_id.as_deref(), Some("clone1"));
    assert_eq!(
        load.network_overrides[0].socket_path,
        Some(cwd.join("clone.sock"))
    );
    assert_eq!(
        load.network_overrides[0].guest_mac.as_deref(),
        Some("02:00:00:00:00:09")
    );
    assert!(load.network_overrides[1].detach);
    assert_eq!(
        ok(&fixture, &["status"]),
        "test-vm: Paused [reprise 9.9.9]\n"
    );
    let message = fails(&fixture, 1, &["snapshot", "load", "/snaps/base"]);
    assert!(message.contains("HTTP 409"), "{message}");
    let message = fails(
        &fixture,
        2,
        &["snapshot", "load", "/s", "--net", "net0=bridge:x"],
    );
    assert!(message.contains("unknown backend"), "{message}");
}
