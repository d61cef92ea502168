//! Lean requests over a VMM's API socket for timing and tight polling: plain HTTP/1.1 on a
//! fresh connection each, without the async client's per-request runtime.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// `method path` with an optional JSON `body` on the API at `sock`: the reply's JSON body
/// (`Null` when empty), or an error unless the status is 2xx.
pub(super) fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let fail = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = UnixStream::connect(sock).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(fail)?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut message = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        message.push_str("Content-Type: application/json\r\n");
    }
    message.push_str("\r\n");
    message.push_str(&body);
    stream.write_all(message.as_bytes()).map_err(fail)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(fail)?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no end of headers in the reply"))?;
    let head = String::from_utf8_lossy(&reply[..split]);
    let content = &reply[split + 4..];
    if !head.starts_with("HTTP/1.1 2") {
        return Err(format!(
            "{method} {path}: {} {}",
            head.lines().next().unwrap_or_default(),
            String::from_utf8_lossy(content)
        ));
    }
    if content.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(content).map_err(|e| format!("{method} {path}: {e}"))
}

/// `GET path`.
pub(super) fn get(sock: &Path, path: &str) -> Result<Value, String> {
    request(sock, "GET", path, None)
}
