//! A `reprise` process driven over its API socket, for the demo, benches and tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api_client::request;

/// One API call to the VMM at `sock`; the reply body, or an error naming the call unless
/// it succeeded.
pub fn api(sock: &Path, method: &str, path: &str, body: Value) -> Result<Option<Value>, String> {
    let body = (!body.is_null()).then_some(body);
    match request(sock, method, path, body.as_ref()) {
        Ok((status, reply)) if status < 300 => Ok(reply),
        Ok((status, reply)) => Err(format!("{method} {path}: {status} {reply:?}")),
        Err(e) => Err(format!("{method} {path}: {e}")),
    }
}

/// A VMM process driven over its API socket, killed when dropped.
pub struct Vmm {
    child: Child,
    sock: PathBuf,
}

impl Vmm {
    /// Starts `cmd` (a `reprise` command) with its API on `sock`.
    pub fn spawn(mut cmd: Command, sock: PathBuf, id: &str) -> Result<Vmm, String> {
        let _ = std::fs::remove_file(&sock);
        let child = cmd
            .args(["--log-level", "warn", "--id", id, "--api-sock"])
            .arg(&sock)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("start reprise: {e}"))?;
        let vmm = Vmm { child, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !vmm.sock.exists() {
            if Instant::now() > deadline {
                return Err("the API socket never appeared".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(vmm)
    }

    /// One API call; an error unless it succeeds.
    pub fn call(&self, method: &str, path: &str, body: Value) -> Result<Option<Value>, String> {
        api(&self.sock, method, path, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.call("GET", path, Value::Null)?
            .ok_or_else(|| format!("GET {path}: no body"))
    }

    /// Polls `GET path` until `done` holds for the reply.
    pub fn wait(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get(path)?;
            if done(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("GET {path}: still {v} after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the file at `log` holds `needle`; returns its text.
pub fn wait_for(log: &Path, needle: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no {needle:?} in {} after {timeout:?}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
