//! What the bench needs to know of a capture: the VM time of each snapshot marker and of
//! the last input.

use std::collections::BTreeMap;
use std::path::Path;

use replay::capture::reader::{find_buffers, CaptureReader, Query};
use replay::{Direction, EventKind};

/// Snapshot markers and inputs of one capture.
#[derive(Debug, Clone, Default)]
pub struct CaptureFacts {
    /// VM time (ns) of each snapshot's marker, by snapshot id.
    pub snapshot_ns: BTreeMap<String, u64>,
    /// VM time (ns) of the first frame received (when the traffic began).
    pub first_frame_ns: Option<u64>,
    /// VM time (ns) of the last input.
    pub last_input_ns: u64,
}

impl CaptureFacts {
    /// Reads the first buffer of the recording in `dir`.
    pub fn read(dir: &Path) -> Result<CaptureFacts, String> {
        let buffer = find_buffers(dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no capture buffer in {}", dir.display()))?;
        let reader = CaptureReader::open(&buffer).map_err(|e| e.to_string())?;
        let mut facts = CaptureFacts::default();
        for r in reader
            .events(&Query::default())
            .map_err(|e| e.to_string())?
        {
            let e = r.map_err(|e| e.to_string())?.event;
            if let EventKind::SnapshotTaken { id } = &e.kind {
                facts.snapshot_ns.insert(id.clone(), e.vm_time_ns);
            } else if e.kind.direction() == Direction::Input {
                if matches!(e.kind, EventKind::NetRx { .. }) && facts.first_frame_ns.is_none() {
                    facts.first_frame_ns = Some(e.vm_time_ns);
                }
                facts.last_input_ns = e.vm_time_ns;
            }
        }
        Ok(facts)
    }

    /// The VM time of snapshot `id`'s marker.
    pub fn snapshot(&self, id: &str) -> Result<u64, String> {
        self.snapshot_ns
            .get(id)
            .copied()
            .ok_or_else(|| format!("the capture holds no marker of snapshot {id}"))
    }
}
