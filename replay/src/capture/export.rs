//! Exporting a buffer's network events to pcapng: one interface per network source,
//! inbound (`NetRx`) and outbound (`NetTx`) marked in each packet's flags, timestamps in
//! wall-clock time (VM time mapped through each segment's anchor).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::reader::{CaptureReader, Problem, Query};
use crate::error::{CaptureError, Result};
use crate::event::{EventKind, KindClass, SourceId};
use crate::fsutil::fsync_dir;
use crate::pcapng::{PacketDirection, PcapngWriter};

/// What an export wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportSummary {
    /// Packets written.
    pub packets: u64,
    /// Of which inbound (to the guest).
    pub inbound: u64,
    /// Of which outbound (from the guest).
    pub outbound: u64,
    /// The interfaces, in pcapng interface id order.
    pub interfaces: Vec<String>,
    /// Problems met while reading (the export went on past them).
    pub problems: Vec<Problem>,
}

/// Writes the network events `query` selects from `reader` to `out` as pcapng. The file
/// appears under its name only once complete.
pub fn export_pcapng(reader: &CaptureReader, query: &Query, out: &Path) -> Result<ExportSummary> {
    let mut tmp_name = out
        .file_name()
        .ok_or_else(|| CaptureError::io(out, "name", std::io::ErrorKind::InvalidInput.into()))?
        .to_os_string();
    tmp_name.push(".partial");
    let tmp = out.with_file_name(tmp_name);
    let result = write_to(reader, query, &tmp);
    match result {
        Ok(summary) => {
            std::fs::rename(&tmp, out)
                .map_err(|e| CaptureError::io(out, "rename into place", e))?;
            fsync_dir(
                out.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            )?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_to(reader: &CaptureReader, query: &Query, path: &PathBuf) -> Result<ExportSummary> {
    let io = |e| CaptureError::io(path, "write", e);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| CaptureError::io(path, "create", e))?;
    let mut w = PcapngWriter::new(
        BufWriter::new(file),
        concat!("reprise-capture ", env!("CARGO_PKG_VERSION")),
    )
    .map_err(io)?;
    let mut summary = ExportSummary::default();
    let mut ifaces: BTreeMap<SourceId, u32> = BTreeMap::new();
    let buffer = reader.buffer_name().unwrap_or("capture").to_string();
    if let Some(h) = reader.latest_header() {
        for s in h.sources.iter().filter(|s| s.class == KindClass::Net) {
            let id = w
                .add_interface(&s.name, Some(&format!("{buffer}/{}", s.name)), s.mac)
                .map_err(io)?;
            ifaces.insert(s.id, id);
            summary.interfaces.push(s.name.clone());
        }
    }
    for item in reader.events(query)? {
        let r = match item {
            Ok(r) => r,
            Err(p) => {
                summary.problems.push(p);
                continue;
            }
        };
        let (frame, direction) = match &r.event.kind {
            EventKind::NetRx { frame } => (frame, PacketDirection::Inbound),
            EventKind::NetTx { frame } => (frame, PacketDirection::Outbound),
            _ => continue,
        };
        let iface = match ifaces.get(&r.event.source) {
            Some(i) => *i,
            None => {
                let name = r.event.source.to_string();
                let id = w.add_interface(&name, None, None).map_err(io)?;
                ifaces.insert(r.event.source, id);
                summary.interfaces.push(name);
                id
            }
        };
        let seg = &reader.segments()[r.segment];
        let ts = seg
            .header
            .as_ref()
            .map_or(r.event.vm_time_ns, |h| h.unix_ns_at(r.event.vm_time_ns));
        let comment = format!(
            "seq={} vm_time_ns={} progress={}",
            r.event.seq, r.event.vm_time_ns, r.event.progress
        );
        w.write_packet(iface, ts, frame, direction, Some(&comment))
            .map_err(io)?;
        summary.packets += 1;
        match direction {
            PacketDirection::Inbound => summary.inbound += 1,
            PacketDirection::Outbound => summary.outbound += 1,
        }
    }
    let out = w.finish().map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all()
        .map_err(|e| CaptureError::io(path, "fsync", e))?;
    Ok(summary)
}
