//! A minimal QMP (QEMU Machine Protocol) client for the benchmarks: JSON objects, one per
//! line, over QEMU's `-qmp unix:PATH,server=on,wait=off` socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A QMP session in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events received while waiting for command replies, oldest first.
    events: Vec<Value>,
}

fn io_err(what: &str, e: std::io::Error) -> String {
    format!("QMP {what}: {e}")
}

impl Qmp {
    /// Connects to `path` (retrying until it accepts or `timeout` passes), reads the
    /// greeting and enters command mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("QMP socket {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_micros(500)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| io_err("socket", e))?;
        let writer = stream.try_clone().map_err(|e| io_err("socket", e))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected QMP greeting {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| io_err("read", e))?;
        if n == 0 {
            return Err("QEMU closed the QMP connection".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP sent {line:?}: {e}"))
    }

    /// Runs `command` with `arguments`; returns its `return` value, or its error as text.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| io_err("write", e))?;
        loop {
            let reply = self.read()?;
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                return Err(format!("QMP {command}: {e}"));
            }
            if reply.get("event").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// Waits for an event named `name` for which `accept` holds (events already received
    /// count); returns its `data`.
    pub fn wait_event(
        &mut self,
        name: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let matches = |e: &Value| e["event"] == name && accept(&e["data"]);
        if let Some(i) = self.events.iter().position(matches) {
            return Ok(self.events.remove(i)["data"].clone());
        }
        loop {
            let e = self.read()?;
            if matches(&e) {
                return Ok(e["data"].clone());
            }
            if e.get("event").is_some() {
                self.events.push(e);
            }
        }
    }

    /// Forgets events received so far.
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// The run state `query-status` reports (`running`, `paused`, `inmigrate`, ...).
    pub fn status(&mut self) -> Result<String, String> {
        let s = self.execute("query-status", None)?;
        Ok(s["status"].as_str().unwrap_or("?").to_string())
    }
}
