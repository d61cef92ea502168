//! A blocking client for the Reprise HTTP/JSON API on a Unix socket.
//!
//! [`request`] performs one exchange on a fresh connection (hyper's HTTP/1 client on a
//! current-thread tokio runtime) and returns the status and JSON body as they came.
//! [`Client`] wraps it with typed calls that turn error statuses into [`ClientError::Api`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vmm::api::routes::{ActionType, InstanceAction, VmStateChange, VmStatePatch};
use vmm::api::{
    DriveSnapshot, DriveStatus, InstanceInfo, RecordingStart, RecordingStatus, SnapshotInfo,
    SnapshotList, SnapshotLoad,
};
use vmm::config::{
    BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig, VmConfig,
};

/// How long one exchange may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest response body accepted, in bytes.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What went wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected to.
    #[error("cannot connect to the Reprise API socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The HTTP exchange failed (connection reset, malformed response, ...).
    #[error("the HTTP exchange over {path} failed: {source}")]
    Exchange {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The VMM did not answer in time.
    #[error("the VMM at {path} did not answer within {} s", timeout.as_secs())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The time waited.
        timeout: Duration,
    },
    /// The method is not a valid HTTP method.
    #[error("`{0}` is not a valid HTTP method")]
    InvalidMethod(String),
    /// The path cannot be sent as a request target.
    #[error("`{path}` is not a valid request path: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The response body is not JSON.
    #[error("the API answered HTTP {status} with a body that is not JSON: {detail}")]
    InvalidResponse {
        /// HTTP status of the response.
        status: u16,
        /// What was wrong with the body.
        detail: String,
    },
    /// The API answered with an error status.
    #[error("{message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The `fault_message` of the response (or a description of it if it has none).
        message: String,
    },
    /// A successful response did not have the expected shape.
    #[error("unexpected {what} from the API: {detail}")]
    Decode {
        /// What was expected.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The client's async runtime could not be created.
    #[error("cannot set up the API client: {0}")]
    Runtime(#[source] io::Error),
}

/// Sends one request to the API socket at `sock` and returns the response's status and JSON
/// body (`None` if the body is empty). Error statuses are returned, not turned into errors.
pub fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Option<Value>), ClientError> {
    let body = body.map(Value::to_string);
    send(sock, method, path, body.as_deref().map(str::as_bytes))
}

/// Like [`request`], but sends `body` exactly as given (as `application/json`), so that
/// malformed bodies can be sent too.
pub fn request_raw(
    sock: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Option<Value>), ClientError> {
    send(sock, method, path, Some(body))
}

/// Sends one request with an optional JSON body.
fn send(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Option<Value>), ClientError> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ClientError::InvalidMethod(method.to_string()))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "localhost");
    if body.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    let body = Bytes::copy_from_slice(body.unwrap_or_default());
    let http_request = builder
        .body(Full::new(body))
        .map_err(|e| ClientError::InvalidPath {
            path: path.to_string(),
            reason: e.to_string(),
        })?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    runtime.block_on(async {
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(sock, http_request)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                path: sock.to_path_buf(),
                timeout: REQUEST_TIMEOUT,
            }),
        }
    })
}

/// Connects, sends `http_request`, and reads the whole response.
async fn exchange(
    sock: &Path,
    http_request: Request<Full<Bytes>>,
) -> Result<(u16, Option<Value>), ClientError> {
    let exchange_error = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Exchange {
        path: sock.to_path_buf(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(sock)
        .await
        .map_err(|source| ClientError::Connect {
            path: sock.to_path_buf(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| exchange_error(e.into()))?;
    let driver = tokio::spawn(connection);

    let result = async {
        let response = sender
            .send_request(http_request)
            .await
            .map_err(|e| exchange_error(e.into()))?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(exchange_error)?
            .to_bytes();
        Ok((status, bytes))
    }
    .await;
    driver.abort();
    let (status, bytes) = result?;

    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((status, None));
    }
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok((status, Some(value))),
        Err(e) => Err(ClientError::InvalidResponse {
            status,
            detail: format!(
                "{e}; it begins {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            ),
        }),
    }
}

/// Typed calls on one VMM's API socket.
#[derive(Debug, Clone)]
pub struct Client {
    sock: PathBuf,
}

impl Client {
    /// A client for the API socket at `sock` (nothing is connected yet).
    pub fn new(sock: impl Into<PathBuf>) -> Self {
        Client { sock: sock.into() }
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.sock
    }

    /// Sends a request and returns the JSON body of a 2xx response; any other status becomes
    /// [`ClientError::Api`] with the response's `fault_message`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let (status, value) = request(&self.sock, method, path, body)?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(ClientError::Api {
                status,
                message: fault_message(value),
            })
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &'static str) -> Result<T, ClientError> {
        decode(self.call("GET", path, None)?, what)
    }

    fn send<T: Serialize>(&self, method: &str, path: &str, body: &T) -> Result<(), ClientError> {
        let body = serde_json::to_value(body).map_err(|e| ClientError::Decode {
            what: "request body",
            detail: e.to_string(),
        })?;
        self.call(method, path, Some(&body)).map(drop)
    }

    /// `GET /`.
    pub fn instance_info(&self) -> Result<InstanceInfo, ClientError> {
        self.get("/", "instance information")
    }

    /// `GET /vm/config`.
    pub fn vm_config(&self) -> Result<VmConfig, ClientError> {
        self.get("/vm/config", "VM configuration")
    }

    /// `GET /machine-config`.
    pub fn machine_config(&self) -> Result<MachineConfig, ClientError> {
        self.get("/machine-config", "machine configuration")
    }

    /// `PUT /machine-config`.
    pub fn put_machine_config(&self, config: &MachineConfig) -> Result<(), ClientError> {
        self.send("PUT", "/machine-config", config)
    }

    /// `PUT /boot-source`.
    pub fn put_boot_source(&self, boot: &BootSource) -> Result<(), ClientError> {
        self.send("PUT", "/boot-source", boot)
    }

    /// `PUT /drives/{drive_id}`.
    pub fn put_drive(&self, drive: &DriveConfig) -> Result<(), ClientError> {
        self.send("PUT", &drive_path(&drive.drive_id), drive)
    }

    /// `GET /drives/{drive_id}`.
    pub fn drive_status(&self, drive_id: &str) -> Result<DriveStatus, ClientError> {
        self.get(&drive_path(drive_id), "drive status")
    }

    /// `PATCH /drives/{drive_id}`: resize and/or change the I/O limits.
    pub fn patch_drive(&self, patch: &DrivePatch) -> Result<(), ClientError> {
        self.send("PATCH", &drive_path(&patch.drive_id), patch)
    }

    /// `PUT /drives/{drive_id}/snapshots/{snapshot_name}` (with no body).
    pub fn snapshot_drive(&self, drive_id: &str, name: &str) -> Result<DriveSnapshot, ClientError> {
        let value = self.call("PUT", &snapshot_path(drive_id, name), None)?;
        decode(value, "drive snapshot")
    }

    /// `GET /drives/{drive_id}/snapshots`.
    pub fn drive_snapshots(&self, drive_id: &str) -> Result<Vec<DriveSnapshot>, ClientError> {
        self.get(
            &format!("{}/snapshots", drive_path(drive_id)),
            "list of drive snapshots",
        )
    }

    /// `PUT /network-interfaces/{iface_id}`.
    pub fn put_net(&self, net: &NetConfig) -> Result<(), ClientError> {
        self.send(
            "PUT",
            &format!("/network-interfaces/{}", encode_path_segment(&net.iface_id)),
            net,
        )
    }

    /// `PUT /serial`.
    pub fn put_serial(&self, serial: &SerialConfig) -> Result<(), ClientError> {
        self.send("PUT", "/serial", serial)
    }

    /// `PUT /actions {"action_type": ...}`.
    pub fn action(&self, action_type: ActionType) -> Result<(), ClientError> {
        self.send("PUT", "/actions", &InstanceAction { action_type })
    }

    /// `PATCH /vm {"state": ...}`.
    pub fn set_vm_state(&self, state: VmStateChange) -> Result<(), ClientError> {
        self.send("PATCH", "/vm", &VmStatePatch { state })
    }

    /// `PUT /snapshot/load`.
    pub fn load_snapshot(&self, load: &SnapshotLoad) -> Result<(), ClientError> {
        self.send("PUT", "/snapshot/load", load)
    }

    /// `PUT /recording`: start recording (before `InstanceStart`: from the first
    /// instruction).
    pub fn start_recording(&self, start: &RecordingStart) -> Result<(), ClientError> {
        self.send("PUT", "/recording", start)
    }

    /// `GET /recording`.
    pub fn recording_status(&self) -> Result<RecordingStatus, ClientError> {
        self.get("/recording", "recording status")
    }

    /// `DELETE /recording`: stop recording; the final status.
    pub fn stop_recording(&self) -> Result<RecordingStatus, ClientError> {
        decode(self.call("DELETE", "/recording", None)?, "recording status")
    }

    /// `GET /snapshots?snapshot_dir=STORE`.
    pub fn list_snapshots(&self, store: &Path) -> Result<SnapshotList, ClientError> {
        self.get(&store_snapshots_path(store, None), "list of snapshots")
    }

    /// `GET /snapshots/{id}?snapshot_dir=STORE`.
    pub fn snapshot_info(&self, store: &Path, id: &str) -> Result<SnapshotInfo, ClientError> {
        self.get(&store_snapshots_path(store, Some(id)), "snapshot")
    }

    /// `DELETE /snapshots/{id}?snapshot_dir=STORE`.
    pub fn delete_snapshot(&self, store: &Path, id: &str) -> Result<(), ClientError> {
        self.call("DELETE", &store_snapshots_path(store, Some(id)), None)
            .map(drop)
    }
}

/// `/snapshots[/{id}]?snapshot_dir=STORE`, encoded.
pub fn store_snapshots_path(store: &Path, id: Option<&str>) -> String {
    let mut path = "/snapshots".to_string();
    if let Some(id) = id {
        path.push('/');
        path.push_str(&encode_path_segment(id));
    }
    format!(
        "{path}?snapshot_dir={}",
        encode_path_segment(&store.to_string_lossy())
    )
}

/// Decodes the body of a successful response as a `T`, described as `what` in errors.
fn decode<T: DeserializeOwned>(value: Option<Value>, what: &'static str) -> Result<T, ClientError> {
    let value = value.ok_or(ClientError::Decode {
        what,
        detail: "the response has no body".into(),
    })?;
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        what,
        detail: e.to_string(),
    })
}

/// `/drives/{drive_id}`, encoded.
pub fn drive_path(drive_id: &str) -> String {
    format!("/drives/{}", encode_path_segment(drive_id))
}

/// `/drives/{drive_id}/snapshots/{name}`, encoded.
pub fn snapshot_path(drive_id: &str, name: &str) -> String {
    format!(
        "{}/snapshots/{}",
        drive_path(drive_id),
        encode_path_segment(name)
    )
}

/// The `fault_message` of an error response, or a description of the body if it has none.
fn fault_message(body: Option<Value>) -> String {
    match body {
        Some(Value::Object(mut fields)) => match fields.remove("fault_message") {
            Some(Value::String(message)) => message,
            _ => format!(
                "the API answered with an error and no fault_message: {}",
                Value::Object(fields)
            ),
        },
        Some(other) => format!("the API answered with an error: {other}"),
        None => "the API answered with an error and no explanation".to_string(),
    }
}

/// Percent-encodes a path segment: everything but `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("root_1-a.b~"), "root_1-a.b~");
        assert_eq!(encode_path_segment("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn drive_paths_are_encoded() {
        assert_eq!(drive_path("root"), "/drives/root");
        assert_eq!(drive_path("a/b"), "/drives/a%2Fb");
        assert_eq!(snapshot_path("a b", "v1.0"), "/drives/a%20b/snapshots/v1.0");
    }

    #[test]
    fn store_paths_are_encoded() {
        assert_eq!(
            store_snapshots_path(Path::new("/var/snaps"), None),
            "/snapshots?snapshot_dir=%2Fvar%2Fsnaps"
        );
        assert_eq!(
            store_snapshots_path(Path::new("/a b+c"), Some("s.1")),
            "/snapshots/s.1?snapshot_dir=%2Fa%20b%2Bc"
        );
    }

    #[test]
    fn fault_messages_are_extracted() {
        let body = serde_json::json!({"fault_message": "no such drive"});
        assert_eq!(fault_message(Some(body)), "no such drive");
        assert!(fault_message(None).contains("no explanation"));
        assert!(fault_message(Some(serde_json::json!([1]))).contains("[1]"));
    }

    #[test]
    fn bad_methods_and_paths_fail_before_connecting() {
        let sock = Path::new("/nonexistent/reprise.sock");
        assert!(matches!(
            request(sock, "GE T", "/", None),
            Err(ClientError::InvalidMethod(_))
        ));
        assert!(matches!(
            request(sock, "GET", "/a b", None),
            Err(ClientError::InvalidPath { .. })
        ));
        match request(sock, "GET", "/", None) {
            Err(e @ ClientError::Connect { .. }) => {
                assert!(e.to_string().contains("/nonexistent/reprise.sock"))
            }
            other => panic!("expected a connection error, got {other:?}"),
        }
    }
}
