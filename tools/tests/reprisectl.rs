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
            path_on_host: PathBuf::from("/img/root.raw"),
            is_read_only: true,
            io_direct: true,
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
