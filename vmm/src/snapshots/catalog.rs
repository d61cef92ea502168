//! Looking at a snapshot store from outside a VM: listing its snapshots (and what it
//! ignores), showing one with its chain, deleting one nothing depends on.
//!
//! The API (`GET /snapshots`, `GET|DELETE /snapshots/{id}`) and `reprisectl snapshot`
//! (offline, on the store directly) both use these, so they answer alike. Nothing here
//! creates a store: a missing directory is reported, not made.

use std::path::Path;

use serde::{Deserialize, Serialize};
use snapshot::{Manifest, SnapshotError, SnapshotKind, SnapshotStore, VolumeSnapshot};

/// One complete snapshot in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Its id (its directory's name).
    pub id: String,
    /// `full` or `diff`.
    pub kind: SnapshotKind,
    /// The snapshot a diff applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub created: u64,
    /// Bytes of guest memory data stored (zero pages are holes in the image).
    pub memory_bytes: u64,
    /// Length of the memory image file (holes included).
    pub memory_file_bytes: u64,
    /// The volume snapshots taken with it.
    pub volumes: Vec<VolumeSnapshot>,
}

impl From<&Manifest> for SnapshotSummary {
    fn from(m: &Manifest) -> Self {
        SnapshotSummary {
            id: m.id.clone(),
            kind: m.kind,
            parent: m.parent.clone(),
            created: m.created,
            memory_bytes: m.memory.data_bytes,
            memory_file_bytes: m.memory.file_bytes,
            volumes: m.volumes.clone(),
        }
    }
}

/// An entry of the store's directory that is not a usable snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredEntry {
    /// The entry's name.
    pub name: String,
    /// Why it is not a snapshot.
    pub reason: String,
    /// Whether it is a half-written (`*.tmp`) directory left by a writer that stopped.
    pub partial: bool,
}

/// Body of `GET /snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// The complete snapshots, oldest first.
    pub snapshots: Vec<SnapshotSummary>,
    /// Everything else in the store's directory, with the reason.
    pub ignored: Vec<IgnoredEntry>,
}

/// Body of `GET /snapshots/{snapshot_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The snapshot's manifest as stored.
    pub manifest: Manifest,
    /// What restoring it reads: its newest full ancestor first, itself last.
    pub chain: Vec<String>,
    /// The diff snapshots whose parent it is (it cannot be deleted while there are any).
    pub dependents: Vec<String>,
}

/// Why a store could not be read or changed, by the kind of answer it deserves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The store or the snapshot does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be honoured in the store's current state (a snapshot others
    /// depend on, an unreadable snapshot, a broken chain).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (an invalid id, a store path that is not a directory).
    #[error("{0}")]
    Invalid(String),
    /// Reading or changing the store failed.
    #[error("{0}")]
    Failed(String),
}

/// Opens the store at `dir`, which must exist.
fn open(dir: &Path) -> Result<SnapshotStore, CatalogError> {
    if dir.as_os_str().is_empty() {
        return Err(CatalogError::Invalid(
            "snapshot_dir is empty: name the snapshot store's directory".into(),
        ));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CatalogError::Invalid(format!(
                "snapshot store {} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CatalogError::NotFound(format!(
                "there is no snapshot store at {}",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(CatalogError::Failed(format!(
                "cannot use the snapshot store {}: {e}",
                dir.display()
            )))
        }
    }
    SnapshotStore::open(dir).map_err(|e| CatalogError::Failed(e.to_string()))
}

fn check_id(id: &str) -> Result<(), CatalogError> {
    snapshot::manifest::validate_id(id).map_err(|e| CatalogError::Invalid(e.to_string()))
}

/// The snapshots of the store at `dir` and what it ignores.
pub fn list(dir: &Path) -> Result<SnapshotList, CatalogError> {
    let listing = open(dir)?
        .list()
        .map_err(|e| CatalogError::Failed(e.to_string()))?;
    Ok(SnapshotList {
        snapshots: listing
            .snapshots
            .iter()
            .map(SnapshotSummary::from)
            .collect(),
        ignored: listing
            .ignored
            .into_iter()
            .map(|i| IgnoredEntry {
                name: i.name,
                reason: i.reason,
                partial: i.partial,
            })
            .collect(),
    })
}

/// Snapshot `id` of the store at `dir`: its manifest, chain and dependents.
pub fn info(dir: &Path, id: &str) -> Result<SnapshotInfo, CatalogError> {
    check_id(id)?;
    let listing = open(dir)?
        .list()
        .map_err(|e| CatalogError::Failed(e.to_string()))?;
    let Some(manifest) = listing.get(id) else {
        return Err(match listing.ignored.iter().find(|i| i.name == id) {
            Some(ignored) => CatalogError::Conflict(format!(
                "snapshot {id:?} in {} is not usable: {}",
                dir.display(),
                ignored.reason
            )),
            None => {
                CatalogError::NotFound(format!("there is no snapshot {id:?} in {}", dir.display()))
            }
        });
    };
    let chain = listing
        .chain(id)
        .map_err(|e| CatalogError::Conflict(e.to_string()))?;
    Ok(SnapshotInfo {
        manifest: manifest.clone(),
        chain,
        dependents: listing.dependents(id),
    })
}

/// Deletes snapshot `id` of the store at `dir`, unless diff snapshots depend on it. Its
/// volume snapshots (`vm-<id>` of each volume) are left to the volumes' owner.
pub fn delete(dir: &Path, id: &str) -> Result<(), CatalogError> {
    check_id(id)?;
    let store = open(dir)?;
    store.delete(id).map_err(|e| match e {
        SnapshotError::NotFound { .. } => {
            CatalogError::NotFound(format!("there is no snapshot {id:?} in {}", dir.display()))
        }
        SnapshotError::InUse { .. } | SnapshotError::InvalidInput(_) => {
            CatalogError::Conflict(format!("cannot delete: {e}"))
        }
        SnapshotError::InvalidId { .. } => CatalogError::Invalid(e.to_string()),
        other => CatalogError::Failed(format!("deleting snapshot {id:?} failed: {other}")),
    })?;
    log::info!("deleted snapshot {id} from {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use snapshot::{MemoryLayout, NewSnapshot, StateWriter};
    use vmm_sys_util::tempdir::TempDir;

    use super::*;

    /// Writes snapshot `id` (a diff of `parent` if given) with one page of data.
    fn take(store: &SnapshotStore, id: &str, parent: Option<&str>, created: u64) {
        let layout = MemoryLayout::new(&[(0, 1 << 20)]).unwrap();
        let mut memory = vec![0u8; 1 << 20];
        memory[4096..8192].fill(created as u8 | 1);
        let new = NewSnapshot {
            id: id.into(),
            created,
            vm_config: serde_json::json!({}),
            volumes: vec![VolumeSnapshot {
                drive_id: "root".into(),
                volume_path: "/store/volumes/root".into(),
                snapshot_name: format!("vm-{id}"),
            }],
        };
        let mut pending = store.begin(new).unwrap();
        pending.write_state(&StateWriter::new()).unwrap();
        match parent {
            None => {
                pending.write_full_memory(&layout, &[&memory]).unwrap();
            }
            Some(p) => {
                let mut dirty = snapshot::DirtyBitmap::new(&layout);
                dirty.set(0, 1).unwrap();
                pending
                    .write_diff_memory(p, &layout, &dirty, &[&memory])
                    .unwrap();
            }
        }
        pending.commit().unwrap();
    }

    #[test]
    fn list_show_and_delete() {
        let dir = TempDir::new_with_prefix("/tmp/reprise-catalog").unwrap();
        let root = dir.as_path().join("store");
        assert!(matches!(list(&root), Err(CatalogError::NotFound(m)) if m.contains("store")));
        assert!(!root.exists(), "listing does not create the store");
        let store = SnapshotStore::open(&root).unwrap();
        take(&store, "base", None, 1000);
        take(&store, "d1", Some("base"), 2000);
        std::fs::create_dir(root.join("junk.tmp")).unwrap();

        let listed = list(&root).unwrap();
        let ids: Vec<&str> = listed.snapshots.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["base", "d1"]);
        let d1 = &listed.snapshots[1];
        assert_eq!(d1.kind, SnapshotKind::Diff);
        assert_eq!(d1.parent.as_deref(), Some("base"));
        assert_eq!(d1.created, 2000);
        assert_eq!(d1.memory_bytes, 4096);
        assert_eq!(d1.volumes[0].snapshot_name, "vm-d1");
        assert_eq!(listed.ignored.len(), 1);
        assert_eq!(listed.ignored[0].name, "junk.tmp");
        assert!(listed.ignored[0].partial);

        let shown = info(&root, "d1").unwrap();
        assert_eq!(shown.chain, ["base", "d1"]);
        assert_eq!(shown.manifest.id, "d1");
        assert_eq!(info(&root, "base").unwrap().dependents, ["d1"]);
        assert!(matches!(
            info(&root, "nope"),
            Err(CatalogError::NotFound(_))
        ));
        assert!(matches!(
            info(&root, "junk.tmp"),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(info(&root, "../x"), Err(CatalogError::Invalid(_))));

        match delete(&root, "base") {
            Err(CatalogError::Conflict(m)) => assert!(m.contains("d1"), "{m}"),
            other => panic!("deleting a parent: {other:?}"),
        }
        assert!(matches!(
            delete(&root, "nope"),
            Err(CatalogError::NotFound(_))
        ));
        delete(&root, "d1").unwrap();
        delete(&root, "base").unwrap();
        assert!(list(&root).unwrap().snapshots.is_empty());
    }

    #[test]
    fn unreadable_snapshots_are_reported_not_deleted() {
        let dir = TempDir::new_with_prefix("/tmp/reprise-catalog").unwrap();
        let root = dir.as_path();
        let store = SnapshotStore::open(root).unwrap();
        take(&store, "s", None, 1000);
        std::fs::write(root.join("s/manifest.json"), b"{").unwrap();
        match info(root, "s") {
            Err(CatalogError::Conflict(m)) => assert!(m.contains("not usable"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(delete(root, "s"), Err(CatalogError::Conflict(_))));
        assert!(root.join("s/state.bin").exists());
        let file = root.join("s/state.bin");
        assert!(matches!(list(&file), Err(CatalogError::Invalid(_))));
    }
}
