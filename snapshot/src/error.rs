//! The errors of this crate: every one names the file (or snapshot) and what is wrong.

use std::io;
use std::path::PathBuf;

/// Why a snapshot file or directory could not be written, read or changed.
///
/// Errors about files carry the path; errors about store operations carry the snapshot id.
/// Nothing in this crate deletes or changes a file because it failed to read it.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A system call on a file failed.
    #[error("{}: {op}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`open`, `read`, `fsync`, ...).
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the expected magic bytes.
    #[error("{}: not a {expected} (bad magic)", .path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What the file should have been.
        expected: &'static str,
    },
    /// The file is of a format version this build does not read.
    #[error("{}: unsupported {what} version {found} (this build reads version {supported})", .path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Which format.
        what: &'static str,
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The file ends before the data it announces.
    #[error("{}: truncated at offset {offset}: {what}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing data starts.
        offset: u64,
        /// What is missing.
        what: String,
    },
    /// A length read from the file (or asked of a writer) exceeds a limit; nothing of that
    /// size was allocated.
    #[error("{}: {what} is {size} bytes, over the limit of {limit}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A checksum does not match the data it covers.
    #[error("{}: {what}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", .path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// What the checksum covers (e.g. `section "vcpu0"`, `block 3 of region 1`).
        what: String,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the data.
        computed: u32,
    },
    /// The file is structurally wrong in another way.
    #[error("{}: {problem}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A state file has no section of that name.
    #[error("{}: no section {section:?}", .path.display())]
    MissingSection {
        /// The file.
        path: PathBuf,
        /// The section asked for.
        section: String,
    },
    /// A section's payload does not decode as the type asked for.
    #[error("{}: section {section:?}: {problem}", .path.display())]
    BadSection {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A writer was given something it cannot store (a bad section name, a duplicate, a
    /// value that does not encode, source memory of the wrong size, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A memory layout is not valid (regions unaligned, overlapping, too many, too large).
    #[error("invalid memory layout: {0}")]
    InvalidLayout(String),
    /// A memory image does not have the layout the caller expects, or images of a chain do
    /// not belong together.
    #[error("{}: {problem}", .path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not match.
        problem: String,
    },
    /// No snapshot with that id.
    #[error("snapshot {id:?} not found")]
    NotFound {
        /// The id.
        id: String,
    },
    /// A snapshot (complete or half-written) with that id already exists.
    #[error("snapshot {id:?}: {problem}")]
    AlreadyExists {
        /// The id.
        id: String,
        /// What is in the way.
        problem: String,
    },
    /// The snapshot is the parent of diff snapshots, which would lose their memory.
    #[error(
        "snapshot {id:?} is needed by diff snapshot(s) {dependents:?}; consolidate them first"
    )]
    InUse {
        /// The id.
        id: String,
        /// The diff snapshots whose parent it is.
        dependents: Vec<String>,
    },
    /// A snapshot id that cannot be used as a directory name.
    #[error("invalid snapshot id {id:?}: {problem}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why.
        problem: String,
    },
    /// A diff snapshot's chain of parents cannot be followed to a full snapshot.
    #[error("snapshot {id:?}: broken chain: {problem}")]
    BrokenChain {
        /// The id.
        id: String,
        /// What is missing or wrong.
        problem: String,
    },
}

impl SnapshotError {
    /// An [`SnapshotError::Io`] error for `path`.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        SnapshotError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// A [`SnapshotError::Corrupt`] error for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        SnapshotError::Corrupt {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, SnapshotError>;
