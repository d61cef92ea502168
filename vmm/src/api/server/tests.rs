//! The server over a real Unix socket, against the mock controller, spoken to with raw
//! HTTP/1.1 so that malformed and unusual requests can be sent too.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::api::routes::mock::{Call, MockControl};

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reprise-api-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("api.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    control: Arc<MockControl>,
    server: Option<ApiServer>,
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new();
        let control = Arc::new(MockControl::default());
        let server = start(&dir.socket(), control.clone()).expect("server starts");
        Fixture {
            control,
            server: Some(server),
            dir,
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(&self.dir.socket())
    }

    /// One request on a fresh connection.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> RawResponse {
        let mut conn = self.connect();
        conn.send(method, path, body);
        conn.response()
    }
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    fn fault(&self) -> String {
        self.json()["fault_message"]
            .as_str()
            .expect("fault_message")
            .to_string()
    }
}

/// A client connection speaking raw HTTP/1.1.
struct Conn {
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn new(path: &Path) -> Self {
        let stream = UnixStream::connect(path).expect("connect to the API socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a timeout");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("write to the API socket");
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&str>) {
        self.write(&raw_request(method, path, body));
    }

    fn response(&mut self) -> RawResponse {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read the status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read a header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header has a colon");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("numeric Content-Length"))
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("read the body");
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// Whether the server has closed the connection.
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

fn raw_request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    request.into_bytes()
}

#[test]
fn every_route_on_one_keep_alive_connection() {
    let fixture = Fixture::new();
    let mut conn = fixture.connect();
    let mut exchange = |method: &str, path: &str, body: Option<&str>| {
        conn.send(method, path, body);
        conn.response()
    };

    let response = exchange("GET", "/", None);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["state"], json!("Not started"));

    let response = exchange(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count": 2, "mem_size_mib": 512}"#),
    );
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    let response = exchange("GET", "/machine-config", None);
    assert_eq!(
        response.json(),
        json!({"vcpu_count": 2, "mem_size_mib": 512, "huge_pages": false})
    );

    let boot = r#"{"kernel_image_path": "/guest/kernel", "boot_args": "console=ttyS0"}"#;
    assert_eq!(exchange("PUT", "/boot-source", Some(boot)).status, 204);
    let drive = r#"{"drive_id": "root", "path_on_host": "/guest/root.img", "io_direct": true}"#;
    assert_eq!(exchange("PUT", "/drives/root", Some(drive)).status, 204);
    let net = r#"{"iface_id": "eth0", "socket_path": "/run/a", "peer_socket_path": "/run/b"}"#;
    assert_eq!(
        exchange("PUT", "/network-interfaces/eth0", Some(net)).status,
        204
    );

    let config = exchange("GET", "/vm/config", None).json();
    assert_eq!(config["boot-source"]["boot_args"], json!("console=ttyS0"));
    assert_eq!(config["drives"][0]["io_direct"], json!(true));
    assert_eq!(
        config["network-interfaces"][0]["peer_socket_path"],
        json!("/run/b")
    );

    assert_eq!(
        exchange(
            "PUT",
            "/actions",
            Some(r#"{"action_type": "InstanceStart"}"#)
        )
        .status,
        204
    );
    assert_eq!(
        exchange("PATCH", "/vm", Some(r#"{"state": "Paused"}"#)).status,
        204
    );
    assert_eq!(exchange("GET", "/", None).json()["state"], json!("Paused"));
    assert_eq!(
        exchange("PATCH", "/vm", Some(r#"{"state": "Resumed"}"#)).status,
        204
    );
    assert_eq!(
        exchange(
            "PUT",
            "/actions",
            Some(r#"{"action_type": "InstanceStop"}"#)
        )
        .status,
        204
    );
    let info = exchange("GET", "/", None).json();
    assert_eq!(info["state"], json!("Stopped"));
    assert_eq!(info["exit_reason"], json!("stopped by the API"));

    let calls = fixture.control.calls();
    assert_eq!(calls.len(), 8);
    assert_eq!(
        calls[4..],
        [Call::Start, Call::Pause, Call::Resume, Call::Stop]
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let fixture = Fixture::new();
    let mut conn = fixture.connect();
    let mut batch = raw_request("GET", "/", None);
    batch.extend(raw_request(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count": 4, "mem_size_mib": 64}"#),
    ));
    batch.extend(raw_request("GET", "/nowhere", None));
    batch.extend(raw_request("GET", "/machine-config", None));
    conn.write(&batch);
    assert_eq!(conn.response().status, 200);
    assert_eq!(conn.response().status, 204);
    assert_eq!(conn.response().status, 404);
    assert_eq!(conn.response().json()["vcpu_count"], json!(4));
}

#[test]
fn drive_routes_over_http() {
    let fixture = Fixture::new();
    let mut conn = fixture.connect();
    let mut exchange = |method: &str, path: &str, body: Option<&str>| {
        conn.send(method, path, body);
        conn.response()
    };
    let drive = r#"{"drive_id": "data", "volume_path": "/store/volumes/data",
                    "limits": {"iops": {"rate": 100}}}"#;
    assert_eq!(exchange("PUT", "/drives/data", Some(drive)).status, 204);
    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(exchange("PUT", "/actions", Some(start)).status, 204);

    let response = exchange("GET", "/drives/data", None);
    assert_eq!(response.status, 200);
    let status = response.json();
    assert_eq!(status["backend"], json!("volume"));
    assert_eq!(status["limits"], json!({"iops": {"rate": 100, "burst": 0}}));

    let patch = r#"{"drive_id": "data", "size_bytes": 2147483648, "limits": {}}"#;
    let response = exchange("PATCH", "/drives/data", Some(patch));
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());

    // No body and no Content-Type at all, then an explicit empty object.
    let response = exchange("PUT", "/drives/data/snapshots/first", None);
    assert_eq!(response.status, 201);
    assert_eq!(
        response.json(),
        json!({"name": "first", "created": 1_700_000_000u64, "size_bytes": 2147483648u64})
    );
    let response = exchange("PUT", "/drives/data/snapshots/second", Some("{}"));
    assert_eq!(response.status, 201);

    let response = exchange("GET", "/drives/data/snapshots", None);
    assert_eq!(response.status, 200);
    let names: Vec<Value> = response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("first"), json!("second")]);

    let response = exchange("PUT", "/drives/data/snapshots/.x", None);
    assert_eq!(response.status, 400);
    assert!(
        response.fault().contains("snapshot_name"),
        "{}",
        response.fault()
    );
    let response = exchange("GET", "/drives/nope", None);
    assert_eq!(response.status, 404);
    assert_eq!(
        fixture.control.calls()[2..],
        [
            Call::DriveStatus("data".into()),
            Call::PatchDrive(serde_json::from_str(patch).unwrap()),
            Call::SnapshotDrive("data".into(), "first".into()),
            Call::SnapshotDrive("data".into(), "second".into()),
            Call::DriveSnapshots("data".into()),
            Call::DriveStatus("nope".into()),
        ]
    );
}

#[test]
fn bad_bodies_are_400_with_serde_explanations() {
    let fixture = Fixture::new();
    let response = fixture.request("PUT", "/machine-config", Some(r#"{"vcpu_count": 2"#));
    assert_eq!(response.status, 400);
    assert!(
        response.fault().contains("line 1 column"),
        "{}",
        response.fault()
    );

    let response = fixture.request(
        "PUT",
        "/drives/d",
        Some(r#"{"drive_id": "d", "path_on_host": "/x", "cache": 1}"#),
    );
    assert_eq!(response.status, 400);
    assert!(
        response.fault().contains("unknown field `cache`"),
        "{}",
        response.fault()
    );

    let response = fixture.request(
        "PUT",
        "/drives/d",
        Some(r#"{"drive_id": "d", "path_on_host": "/x", "is_read_only": "yes"}"#),
    );
    assert_eq!(response.status, 400);
    let fault = response.fault();
    assert!(
        fault.contains("is_read_only") && fault.contains("expected a boolean"),
        "{fault}"
    );

    let response = fixture.request("PATCH", "/vm", Some(""));
    assert_eq!(response.status, 400);
    assert!(response.fault().contains("missing request body"));
    assert!(fixture.control.calls().is_empty());
}

#[test]
fn controller_errors_pass_through_with_their_status() {
    let fixture = Fixture::new();
    let response = fixture.request(
        "PUT",
        "/machine-config",
        Some(r#"{"vcpu_count": 33, "mem_size_mib": 64}"#),
    );
    assert_eq!(response.status, 400);
    assert!(response.fault().contains("vcpu_count 33 is out of range"));

    let response = fixture.request("PATCH", "/vm", Some(r#"{"state": "Resumed"}"#));
    assert_eq!(response.status, 409);
    assert!(
        response.fault().contains("NotStarted"),
        "{}",
        response.fault()
    );

    fixture
        .control
        .fail_next(ApiError::internal("the kernel image could not be loaded"));
    let response = fixture.request(
        "PUT",
        "/actions",
        Some(r#"{"action_type": "InstanceStart"}"#),
    );
    assert_eq!(response.status, 500);
    assert_eq!(response.fault(), "the kernel image could not be loaded");
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let fixture = Fixture::new();
    let response = fixture.request("GET", "/nothing-here", None);
    assert_eq!(response.status, 404);
    assert!(response.fault().contains("/nothing-here"));

    let response = fixture.request("POST", "/machine-config", Some("{}"));
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, PUT"));

    let response = fixture.request("DELETE", "/drives/root", None);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, PATCH, PUT"));

    let response = fixture.request("DELETE", "/drives/root/snapshots/s1", None);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("PUT"));

    let response = fixture.request("GET", "/machine-config?verbose=1", None);
    assert_eq!(
        response.status, 200,
        "a query string does not change the route"
    );
}

#[test]
fn non_json_content_type_is_415() {
    let fixture = Fixture::new();
    let mut conn = fixture.connect();
    let body = r#"{"action_type": "InstanceStart"}"#;
    conn.write(
        format!(
            "PUT /actions HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let response = conn.response();
    assert_eq!(response.status, 415);
    assert!(response.fault().contains("application/json"));
    assert!(fixture.control.calls().is_empty());
}

#[test]
fn chunked_bodies_are_accepted() {
    let fixture = Fixture::new();
    let mut conn = fixture.connect();
    conn.write(
        b"PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
          10\r\n{\"action_type\": \r\n10\r\n\"InstanceStart\"}\r\n0\r\n\r\n",
    );
    assert_eq!(conn.response().status, 204);
    assert_eq!(fixture.control.calls(), vec![Call::Start]);
}

#[test]
fn oversized_bodies_are_413() {
    let fixture = Fixture::new();
    let padding = " ".repeat(MAX_BODY_BYTES);
    let body = format!(r#"{{"vcpu_count": 1, {padding} "mem_size_mib": 64}}"#);
    let mut conn = fixture.connect();
    conn.send("PUT", "/machine-config", Some(&body));
    let response = conn.response();
    assert_eq!(response.status, 413);
    assert!(response.fault().contains(&MAX_BODY_BYTES.to_string()));
    // The body was read to its end, so the connection is still usable.
    conn.send("GET", "/", None);
    assert_eq!(conn.response().status, 200);

    // A huge declared length is refused at once and the connection is closed.
    let mut conn = fixture.connect();
    conn.write(b"PUT /boot-source HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n{");
    let response = conn.response();
    assert_eq!(response.status, 413);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.is_closed());
    assert!(fixture.control.calls().is_empty());
}

#[test]
fn garbage_does_not_stop_the_server() {
    let fixture = Fixture::new();
    let garbage: &[&[u8]] = &[
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"act",
        b"PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
    ];
    for bytes in garbage {
        let mut conn = fixture.connect();
        conn.write(bytes);
        // Half-close our side so that truncated requests end, then drain whatever comes back.
        let _ = conn.reader.get_ref().shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = conn.reader.read_to_end(&mut sink);
    }
    // A connection that goes away mid-request.
    drop({
        let mut conn = fixture.connect();
        conn.write(b"PUT /machine-config HTTP/1.1\r\nContent-Le");
        conn
    });
    assert_eq!(fixture.request("GET", "/", None).status, 200);
    assert!(fixture.control.calls().is_empty());
}

#[test]
fn a_panicking_controller_gets_500_and_the_server_goes_on() {
    let fixture = Fixture::new();
    fixture.control.panic_next();
    let response = fixture.request("GET", "/", None);
    assert_eq!(response.status, 500);
    assert!(response.fault().contains("GET /"));
    assert_eq!(fixture.request("GET", "/", None).status, 200);
}

#[test]
fn shutdown_closes_connections_and_removes_the_socket() {
    let mut fixture = Fixture::new();
    let path = fixture.dir.socket();
    let mut idle = fixture.connect();
    let server = fixture.server.take().expect("server is running");
    assert_eq!(server.socket_path(), path);
    server.shutdown();
    assert!(!path.exists(), "the socket file is removed");
    assert!(idle.is_closed(), "open connections are closed");
    assert!(UnixStream::connect(&path).is_err());
}

#[test]
fn drop_cleans_up_too() {
    let dir = TempDir::new();
    let path = dir.socket();
    drop(start(&path, Arc::new(MockControl::default())).expect("server starts"));
    assert!(!path.exists());
}

#[test]
fn stale_sockets_are_replaced_and_other_files_are_not() {
    let dir = TempDir::new();
    let path = dir.socket();
    drop(UnixListener::bind(&path).expect("bind a socket"));
    assert!(path.exists(), "a stale socket file is left behind");
    let server =
        start(&path, Arc::new(MockControl::default())).expect("a stale socket is replaced");

    let error = start(&path, Arc::new(MockControl::default())).expect_err("the socket is in use");
    assert!(matches!(error, ApiServerError::InUse { .. }), "{error}");
    server.shutdown();

    std::fs::write(&path, b"precious").expect("write a regular file");
    let error =
        start(&path, Arc::new(MockControl::default())).expect_err("a regular file is refused");
    assert!(
        matches!(error, ApiServerError::NotASocket { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&path.display().to_string()));
    assert_eq!(
        std::fs::read(&path).expect("the file is untouched"),
        b"precious"
    );

    let error = start(
        &dir.0.join("missing/dir/api.sock"),
        Arc::new(MockControl::default()),
    )
    .expect_err("a missing directory is an error");
    assert!(matches!(error, ApiServerError::Bind { .. }), "{error}");
}
