//! The table of named exports a server offers; changeable while the server runs.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use super::error::NbdError;
use super::export::SharedExport;

/// Longest export name the protocol allows, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// Named exports plus the export the empty name selects.
#[derive(Default)]
pub(crate) struct ExportTable {
    map: RwLock<BTreeMap<String, SharedExport>>,
    default: RwLock<Option<String>>,
}

impl ExportTable {
    /// Looks an export up by the name a client asked for and returns it with its
    /// canonical name. The empty name selects the export called "" if there is one, else
    /// the default export.
    pub fn find(&self, name: &str) -> Option<(String, SharedExport)> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get(name) {
            return Some((name.to_owned(), e.clone()));
        }
        if name.is_empty() {
            let default = self.default.read().unwrap_or_else(PoisonError::into_inner);
            let d = default.as_ref()?;
            return map.get(d).map(|e| (d.clone(), e.clone()));
        }
        None
    }

    /// Names of all exports, sorted.
    pub fn names(&self) -> Vec<String> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.keys().cloned().collect()
    }

    /// Adds or replaces an export; returns the one it replaced.
    pub fn insert(
        &self,
        name: String,
        export: SharedExport,
    ) -> Result<Option<SharedExport>, NbdError> {
        check_name(&name)?;
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        Ok(map.insert(name, export))
    }

    /// Removes an export. Connections already using it keep it until they end.
    pub fn remove(&self, name: &str) -> Option<SharedExport> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(name)
    }

    /// Sets the export that the empty name selects.
    pub fn set_default(&self, name: Option<String>) {
        *self.default.write().unwrap_or_else(PoisonError::into_inner) = name;
    }

    /// Whether an export of this exact name exists.
    pub fn contains(&self, name: &str) -> bool {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.contains_key(name)
    }
}

/// Checks that `name` can be carried by the protocol.
pub fn check_name(name: &str) -> Result<(), NbdError> {
    let reason = if name.len() > MAX_NAME_LEN {
        "longer than 4096 bytes"
    } else if name.contains('\0') {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    Err(NbdError::InvalidExportName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::nbd::MemExport;

    fn mem(size: usize) -> SharedExport {
        Arc::new(Mutex::new(MemExport::new(size)))
    }

    #[test]
    fn lookup_and_default() {
        let t = ExportTable::default();
        t.insert("a".into(), mem(512)).unwrap();
        t.insert("b".into(), mem(1024)).unwrap();
        assert!(t.find("a").is_some());
        assert!(t.find("").is_none());
        t.set_default(Some("b".into()));
        let (name, e) = t.find("").unwrap();
        assert_eq!(name, "b");
        assert_eq!(e.lock().unwrap().size(), 1024);
        t.insert(String::new(), mem(2048)).unwrap();
        assert_eq!(t.find("").unwrap().1.lock().unwrap().size(), 2048);
        assert_eq!(t.names(), vec!["", "a", "b"]);
        assert!(t.remove("a").is_some());
        assert!(t.find("a").is_none());
        assert!(!t.contains("a"));
    }

    #[test]
    fn rejects_bad_names() {
        assert!(check_name("x\0y").is_err());
        assert!(check_name(&"n".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
        let t = ExportTable::default();
        assert!(t.insert("bad\0".into(), mem(512)).is_err());
    }
}
