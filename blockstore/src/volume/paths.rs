//! Where a volume's files live: the volume directory, its store, and the store's layer files.

use std::path::{Path, PathBuf};

use super::error::VolumeError;

/// Longest volume or snapshot name.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` can name a volume or a snapshot: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with `.` or `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Whether `id` is a layer id: 32 lowercase hex digits.
pub fn valid_layer_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The paths of one volume, derived from its directory `<store>/volumes/<name>`.
#[derive(Debug, Clone)]
pub(crate) struct VolumePaths {
    /// The volume directory as the caller gave it (used in messages).
    pub dir: PathBuf,
    /// The volume name (the directory's last component).
    pub name: String,
    /// The store: the directory holding `volumes/` and `layers/`.
    pub store: PathBuf,
}

impl VolumePaths {
    /// Checks that `dir` is `<store>/volumes/<name>` with a valid name.
    pub fn new(dir: &Path) -> Result<Self, VolumeError> {
        let bad = |problem: String| VolumeError::invalid(dir, problem);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("the volume directory has no usable name".into()))?;
        if !valid_name(name) {
            return Err(bad(format!(
                "{name:?} is not a valid volume name (1-{MAX_NAME_LEN} of A-Z a-z 0-9 . _ -, \
                 not starting with . or -)"
            )));
        }
        let parent = dir.parent().unwrap_or(Path::new(""));
        let store = if parent.as_os_str().is_empty() || parent == Path::new(".") {
            // `dir` is a bare name: the current directory must be the store's `volumes`.
            let cwd_is_volumes = std::env::current_dir()
                .ok()
                .and_then(|d| d.file_name().map(|n| n == "volumes"))
                .unwrap_or(false);
            cwd_is_volumes.then(|| PathBuf::from(".."))
        } else if parent.file_name().map(|n| n == "volumes").unwrap_or(false) {
            match parent.parent() {
                Some(p) if !p.as_os_str().is_empty() => Some(p.to_path_buf()),
                _ => Some(PathBuf::from(".")),
            }
        } else {
            None
        };
        let store = store.ok_or_else(|| {
            bad(
                "a volume directory must be <store>/volumes/<name> (its parent directory must be \
                 called \"volumes\")"
                    .into(),
            )
        })?;
        Ok(VolumePaths {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            store,
        })
    }

    /// `<dir>/manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    /// `<dir>/manifest.json.tmp`, the next manifest while it is written.
    pub fn manifest_tmp(&self) -> PathBuf {
        self.dir.join("manifest.json.tmp")
    }

    /// `<dir>/lock`, the writer lock.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// `<store>/volumes`.
    pub fn volumes_dir(&self) -> PathBuf {
        self.store.join("volumes")
    }

    /// `<store>/layers`.
    pub fn layers_dir(&self) -> PathBuf {
        self.store.join("layers")
    }

    /// `<store>/layers/<id>.data`: the layer's chunk slots.
    pub fn layer_data(&self, id: &str) -> PathBuf {
        self.layers_dir().join(format!("{id}.data"))
    }

    /// `<store>/layers/<id>.index`: the layer's committed index.
    pub fn layer_index(&self, id: &str) -> PathBuf {
        self.layers_dir().join(format!("{id}.index"))
    }

    /// `<store>/layers/<id>.index.tmp`: the next index while it is written.
    pub fn layer_index_tmp(&self, id: &str) -> PathBuf {
        self.layers_dir().join(format!("{id}.index.tmp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("vm-1.disk_0"));
        assert!(!valid_name(""));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(129)));
        assert!(valid_layer_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_layer_id("0123456789ABCDEF0123456789abcdef"));
    }

    #[test]
    fn layout() {
        let p = VolumePaths::new(Path::new("/s/volumes/v")).unwrap();
        assert_eq!(p.store, Path::new("/s"));
        assert_eq!(p.layer_data("ab"), Path::new("/s/layers/ab.data"));
        let p = VolumePaths::new(Path::new("volumes/v")).unwrap();
        assert_eq!(p.layers_dir(), Path::new("./layers"));
        let err = VolumePaths::new(Path::new("/s/vols/v")).unwrap_err();
        assert!(err.to_string().contains("<store>/volumes/<name>"), "{err}");
    }
}
