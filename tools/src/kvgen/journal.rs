//! The JSON-lines journal of a run: every request, reply, loss and mismatch, with its time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::plan::{Planned, Sender};
use super::wire;
use super::KvgenError;

/// The JSON-lines journal.
pub(super) struct Journal {
    out: Option<(PathBuf, BufWriter<File>)>,
    start: Instant,
}

impl Journal {
    pub(super) fn open(path: Option<&Path>, start: Instant) -> Result<Self, KvgenError> {
        let out = match path {
            None => None,
            Some(p) => {
                let f = File::create(p).map_err(|e| KvgenError::File {
                    path: p.to_path_buf(),
                    detail: format!("cannot create the journal: {e}"),
                })?;
                Some((p.to_path_buf(), BufWriter::new(f)))
            }
        };
        Ok(Journal { out, start })
    }

    pub(super) fn t_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    pub(super) fn write(&mut self, event: serde_json::Value) -> Result<(), KvgenError> {
        if let Some((path, w)) = &mut self.out {
            serde_json::to_writer(&mut *w, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| KvgenError::File {
                    path: path.clone(),
                    detail: format!("cannot write the journal: {e}"),
                })?;
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<(), KvgenError> {
        if let Some((path, w)) = &mut self.out {
            w.flush().map_err(|e| KvgenError::File {
                path: path.clone(),
                detail: format!("cannot write the journal: {e}"),
            })?;
        }
        Ok(())
    }
}

/// The request as a JSON object for the journal.
pub(super) fn request_json(p: &Planned, client: SocketAddrV4) -> serde_json::Value {
    let mut v = json!({
        "seq": p.seq,
        "id": p.id,
        "client": client.to_string(),
        "trigger": p.sender == Sender::Trigger,
        "op": p.op.verb(),
    });
    if let Some(k) = p.op.key() {
        v["key"] = json!(k);
    }
    if let wire::Op::Put { value, .. } = &p.op {
        v["value"] = json!(value);
    }
    v
}
