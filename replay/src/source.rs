//! The table naming the devices events come from, carried in every segment header.

use std::collections::BTreeSet;

use crate::error::{CaptureError, Result};
use crate::event::{KindClass, SourceId};
use crate::limits::{MAX_NAME_BYTES, MAX_SOURCES};

/// One device the VMM records.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SourceInfo {
    /// Its id in events.
    pub id: SourceId,
    /// Its name (`net0`, `blk0`, `serial`): printable, at most
    /// [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES) bytes.
    pub name: String,
    /// What kind of device it is.
    pub class: KindClass,
    /// The guest MAC address, for network devices (put into pcapng exports).
    pub mac: Option<[u8; 6]>,
}

impl SourceInfo {
    /// A network device.
    pub fn net(id: u16, name: &str, mac: Option<[u8; 6]>) -> SourceInfo {
        SourceInfo {
            id: SourceId(id),
            name: name.to_string(),
            class: KindClass::Net,
            mac,
        }
    }

    /// A block device.
    pub fn blk(id: u16, name: &str) -> SourceInfo {
        SourceInfo {
            id: SourceId(id),
            name: name.to_string(),
            class: KindClass::Blk,
            mac: None,
        }
    }

    /// A console.
    pub fn serial(id: u16, name: &str) -> SourceInfo {
        SourceInfo {
            id: SourceId(id),
            name: name.to_string(),
            class: KindClass::Serial,
            mac: None,
        }
    }
}

/// The devices of a recording, by id.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SourceTable {
    sources: Vec<SourceInfo>,
}

impl SourceTable {
    /// A table of `sources`: ids and names must be unique, names non-empty, printable and
    /// short, and [`SourceId::RECORDER`] is reserved.
    pub fn new(sources: Vec<SourceInfo>) -> Result<SourceTable> {
        let bad = |problem: String| CaptureError::InvalidConfig {
            buffer: "*".to_string(),
            problem,
        };
        if sources.len() > MAX_SOURCES {
            return Err(bad(format!(
                "{} sources, over the limit of {MAX_SOURCES}",
                sources.len()
            )));
        }
        for (i, s) in sources.iter().enumerate() {
            check_name(&s.name).map_err(|p| bad(format!("source name {:?}: {p}", s.name)))?;
            if s.id == SourceId::RECORDER {
                return Err(bad(format!(
                    "source {:?}: id {} is reserved for the recorder",
                    s.name, s.id.0
                )));
            }
            if s.class == KindClass::Marker {
                return Err(bad(format!(
                    "source {:?}: class marker is reserved",
                    s.name
                )));
            }
            if sources[..i]
                .iter()
                .any(|o| o.id == s.id || o.name == s.name)
            {
                return Err(bad(format!(
                    "source {:?} (id {}) is listed twice",
                    s.name, s.id.0
                )));
            }
        }
        Ok(SourceTable { sources })
    }

    /// The sources, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &SourceInfo> {
        self.sources.iter()
    }

    /// The number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The source with id `id`.
    pub fn get(&self, id: SourceId) -> Option<&SourceInfo> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The source named `name`.
    pub fn by_name(&self, name: &str) -> Option<&SourceInfo> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The ids of the sources named `names`; an unknown name is an error naming it and the
    /// sources there are.
    pub fn ids_of(&self, names: &[String]) -> std::result::Result<BTreeSet<SourceId>, String> {
        names
            .iter()
            .map(|name| {
                self.by_name(name).map(|s| s.id).ok_or_else(|| {
                    let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                    format!("no source {name:?} (sources: {})", known.join(", "))
                })
            })
            .collect()
    }

    /// A display name for `id`: its name, `recorder`, or `source#N` if unknown.
    pub fn name_of(&self, id: SourceId) -> String {
        match self.get(id) {
            Some(s) => s.name.clone(),
            None => id.to_string(),
        }
    }
}

/// Checks a buffer or source name: non-empty, at most
/// [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES), printable ASCII without spaces.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("longer than {MAX_NAME_BYTES} bytes"));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only printable ASCII without spaces is allowed".to_string());
    }
    Ok(())
}
