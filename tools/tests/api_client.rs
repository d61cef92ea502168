//! The API client against the real server (with a mock VMM) and against fake servers that
//! misbehave.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use common::{Call, Fixture, TempDir, COUNTERS, DRIVE_SIZE, FIRST_SNAPSHOT_TIME};
use reprise_tools::api_client::{request, request_raw, Client, ClientError};
use serde_json::json;
use vmm::api::routes::{ActionType, VmStateChange};
use vmm::api::{DriveSnapshot, VmState};
use vmm::config::{DriveConfig, DrivePatch, MachineConfig};

#[test]
fn raw_requests_return_status_and_body() {
    let fixture = Fixture::new();
    let (status, body) = request(&fixture.sock, "GET", "/", None).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.unwrap()["state"], json!("Not started"));

    let config = json!({"vcpu_count": 3, "mem_size_mib": 128});
    assert_eq!(
        request(&fixture.sock, "put", "/machine-config", Some(&config)).unwrap(),
        (204, None)
    );

    let (status, body) = request(
        &fixture.sock,
        "PUT",
        "/machine-config",
        Some(&json!({"vcpus": 1})),
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.unwrap()["fault_message"]
        .as_str()
        .unwrap()
        .contains("unknown field `vcpus`"));

    let (status, _) = request(&fixture.sock, "DELETE", "/vm", None).unwrap();
    assert_eq!(status, 405);

    let (status, body) = request_raw(
        &fixture.sock,
        "PUT",
        "/machine-config",
        b"{\"vcpu_count\": 1,",
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.unwrap()["fault_message"]
        .as_str()
        .unwrap()
        .contains("line 1"));
    let body = br#"{"output": "null"}"#;
    assert_eq!(
        request_raw(&fixture.sock, "PUT", "/serial", body).unwrap(),
        (204, None)
    );
    assert!(
        fixture.mock.calls().len() == 2,
        "the machine config and the serial console"
    );
}

#[test]
fn typed_calls_drive_the_whole_lifecycle() {
    let fixture = Fixture::new();
    let client = Client::new(&fixture.sock);
    assert_eq!(client.socket_path(), fixture.sock);
    let machine = MachineConfig {
        vcpu_count: 2,
        mem_size_mib: 64,
        huge_pages: true,
    };
    client.put_machine_config(&machine).unwrap();
    assert_eq!(client.machine_config().unwrap(), machine);
    let drive = DriveConfig {
        drive_id: "odd id/1".into(),
        path_on_host: Some(PathBuf::from("/img")),
        volume_path: None,
        is_read_only: false,
        io_direct: false,
        limits: None,
    };
    client.put_drive(&drive).unwrap();
    assert_eq!(client.vm_config().unwrap().drives, vec![drive.clone()]);

    client.action(ActionType::InstanceStart).unwrap();
    client.set_vm_state(VmStateChange::Paused).unwrap();
    assert_eq!(client.instance_info().unwrap().state, VmState::Paused);
    client.set_vm_state(VmStateChange::Resumed).unwrap();
    client.action(ActionType::InstanceStop).unwrap();
    assert_eq!(client.instance_info().unwrap().state, VmState::Stopped);
    assert_eq!(
        fixture.mock.calls(),
        vec![
            Call::MachineConfig(machine),
            Call::Drive(drive),
            Call::Start,
            Call::Pause,
            Call::Resume,
            Call::Stop
        ]
    );
}

#[test]
fn error_statuses_become_api_errors() {
    let fixture = Fixture::new();
    let client = Client::new(&fixture.sock);
    let error = client.set_vm_state(VmStateChange::Paused).unwrap_err();
    match &error {
        ClientError::Api { status, message } => {
            assert_eq!(*status, 409);
            assert!(message.contains("NotStarted"), "{message}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(error.to_string().ends_with("(HTTP 409)"));

    let error = client.call("GET", "/nope", None).unwrap_err();
    assert!(
        matches!(error, ClientError::Api { status: 404, .. }),
        "{error}"
    );
}

#[test]
fn connection_errors_name_the_socket() {
    let dir = TempDir::new("client");
    let sock = dir.0.join("nobody.sock");
    let error = Client::new(&sock).instance_info().unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }));
    assert!(
        error.to_string().contains(&sock.display().to_string()),
        "{error}"
    );
}

/// Serves one connection with a canned answer (or none) on a fresh socket.
fn fake_server(dir: &TempDir, answer: &'static [u8]) -> (PathBuf, std::thread::JoinHandle<()>) {
    let sock = dir.0.join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        let _ = reader.get_mut().write_all(answer);
    });
    (sock, thread)
}

#[test]
fn non_json_answers_are_reported() {
    let dir = TempDir::new("client");
    let (sock, thread) = fake_server(&dir, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let error = request(&sock, "GET", "/", None).unwrap_err();
    thread.join().unwrap();
    assert!(
        matches!(error, ClientError::InvalidResponse { status: 200, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("hello"));
}

#[test]
fn a_server_that_hangs_up_is_an_exchange_error() {
    let dir = TempDir::new("client");
    let (sock, thread) = fake_server(&dir, b"");
    let error = request(&sock, "GET", "/", None).unwrap_err();
    thread.join().unwrap();
    assert!(matches!(error, ClientError::Exchange { .. }), "{error}");
    assert!(error.to_string().contains(&sock.display().to_string()));
}

#[test]
fn error_answers_without_a_fault_message_are_described() {
    let dir = TempDir::new("client");
    let (sock, thread) = fake_server(
        &dir,
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    );
    let error = Client::new(&sock).call("GET", "/", None).unwrap_err();
    thread.join().unwrap();
    assert!(
        matches!(error, ClientError::Api { status: 502, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("no explanation"));
}

#[test]
fn typed_drive_calls() {
    let fixture = Fixture::new();
    let client = Client::new(&fixture.sock);
    let drive: DriveConfig = serde_json::from_value(json!({
        "drive_id": "vol 1",
        "volume_path": "/store/volumes/v1",
        "limits": {"read_bps": {"rate": 1048576, "burst": 2097152}}
    }))
    .unwrap();
    client.put_drive(&drive).unwrap();
    let status = client.drive_status("vol 1").unwrap();
    assert_eq!(status.backend, "volume");
    assert_eq!(status.path, "/store/volumes/v1");
    assert_eq!(status.capacity_bytes, DRIVE_SIZE);
    assert_eq!(Some(status.limits), drive.limits);
    assert_eq!(status.counters, None);

    let error = client.drive_snapshots("vol 1").unwrap_err();
    assert!(
        matches!(error, ClientError::Api { status: 409, .. }),
        "{error}"
    );
    client.action(ActionType::InstanceStart).unwrap();
    assert_eq!(
        client.drive_status("vol 1").unwrap().counters,
        Some(COUNTERS)
    );

    let patch = DrivePatch {
        drive_id: "vol 1".into(),
        size_bytes: Some(DRIVE_SIZE * 2),
        allow_shrink: false,
        discard_data: false,
        limits: Some(Default::default()),
    };
    client.patch_drive(&patch).unwrap();
    let status = client.drive_status("vol 1").unwrap();
    assert_eq!(status.capacity_bytes, DRIVE_SIZE * 2);
    assert!(status.limits.is_unlimited());

    let snapshot = client.snapshot_drive("vol 1", "first").unwrap();
    assert_eq!(
        snapshot,
        DriveSnapshot {
            name: "first".into(),
            created: FIRST_SNAPSHOT_TIME,
            size_bytes: DRIVE_SIZE * 2,
        }
    );
    assert_eq!(client.drive_snapshots("vol 1").unwrap(), vec![snapshot]);
    let error = client.snapshot_drive("vol 1", ".x").unwrap_err();
    assert!(
        matches!(error, ClientError::Api { status: 400, .. }),
        "{error}"
    );
    let error = client.drive_status("nope").unwrap_err();
    assert!(
        matches!(error, ClientError::Api { status: 404, .. }),
        "{error}"
    );

    assert_eq!(
        fixture.mock.calls()[1..],
        [
            Call::Start,
            Call::PatchDrive(patch),
            Call::SnapshotDrive("vol 1".into(), "first".into()),
        ]
    );
}
