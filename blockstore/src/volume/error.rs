//! The errors of volume operations. Every message starts with the volume (its directory),
//! names the file involved where there is one, and says what is wrong.

use std::io;
use std::path::{Path, PathBuf};

use crate::limits::LimitsError;

/// What went wrong with a volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A caller's argument cannot be used (size, offset, length, name, option).
    #[error("volume {}: {problem}", volume.display())]
    InvalidArgument {
        /// The volume directory.
        volume: PathBuf,
        /// What is wrong with the argument.
        problem: String,
    },
    /// An operating-system call on a file failed.
    #[error("volume {}: {op} {}: {source}", volume.display(), file.display())]
    Io {
        /// The volume directory.
        volume: PathBuf,
        /// The file (or directory) the call was about.
        file: PathBuf,
        /// What was being done ("read", "fsync", ...).
        op: &'static str,
        /// The error from the system.
        #[source]
        source: io::Error,
    },
    /// A file of the volume is damaged: bad checksum, truncated, inconsistent, missing.
    #[error("volume {}: {}: {problem}", volume.display(), file.display())]
    Corrupt {
        /// The volume directory.
        volume: PathBuf,
        /// The damaged file.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file is in a format or version this build does not know.
    #[error("volume {}: {}: {problem}", volume.display(), file.display())]
    Unsupported {
        /// The volume directory.
        volume: PathBuf,
        /// The file.
        file: PathBuf,
        /// What is not supported.
        problem: String,
    },
    /// `create` or `clone` into a directory that already holds a volume.
    #[error("volume {}: already exists ({} is present)", volume.display(), file.display())]
    AlreadyExists {
        /// The volume directory.
        volume: PathBuf,
        /// Its manifest.
        file: PathBuf,
    },
    /// There is no volume in this directory.
    #[error("volume {}: not found ({} does not exist)", volume.display(), file.display())]
    NotFound {
        /// The volume directory.
        volume: PathBuf,
        /// The manifest that was looked for.
        file: PathBuf,
    },
    /// Another writer holds the volume.
    #[error("volume {}: already open for writing by {holder} (lock file {})", volume.display(), file.display())]
    Locked {
        /// The volume directory.
        volume: PathBuf,
        /// The lock file.
        file: PathBuf,
        /// Who holds it: "pid N" when the lock file says so.
        holder: String,
    },
    /// A change was asked of a read-only volume or snapshot view.
    #[error("volume {}: {what}: the volume is open read-only", volume.display())]
    ReadOnly {
        /// The volume directory.
        volume: PathBuf,
        /// The refused operation.
        what: String,
    },
    /// `snapshot` with a name already taken.
    #[error("volume {}: {}: a snapshot named {snapshot:?} already exists", volume.display(), file.display())]
    SnapshotExists {
        /// The volume directory.
        volume: PathBuf,
        /// The manifest listing the snapshot.
        file: PathBuf,
        /// The name.
        snapshot: String,
    },
    /// A snapshot name that the volume does not have.
    #[error("volume {}: {}: no snapshot named {snapshot:?} (snapshots: {available})", volume.display(), file.display())]
    SnapshotNotFound {
        /// The volume directory.
        volume: PathBuf,
        /// The manifest that was searched.
        file: PathBuf,
        /// The name asked for.
        snapshot: String,
        /// The names that exist, for the message.
        available: String,
    },
    /// A shrink that would lose data the caller did not agree to lose.
    #[error(
        "volume {}: shrinking to {new_size} bytes would drop data at byte {offset} (chunk {chunk}); \
         nothing was changed (pass discard_data to drop it)",
        volume.display()
    )]
    WouldDropData {
        /// The volume directory.
        volume: PathBuf,
        /// The size asked for.
        new_size: u64,
        /// First byte offset beyond the new size that holds data.
        offset: u64,
        /// The chunk holding it.
        chunk: u64,
    },
    /// Chunk data that does not match its checksum.
    #[error(
        "volume {}: {}: chunk {chunk} (slot {slot}) fails its checksum: stored crc32 {expected:08x}, data has {actual:08x}",
        volume.display(), file.display()
    )]
    ChecksumMismatch {
        /// The volume directory.
        volume: PathBuf,
        /// The layer data file.
        file: PathBuf,
        /// The chunk number in the volume.
        chunk: u64,
        /// The slot in the layer data file.
        slot: u64,
        /// The checksum the index records.
        expected: u32,
        /// The checksum of the data read.
        actual: u32,
    },
    /// `repair` found damage it cannot fix without losing data.
    #[error("volume {}: cannot be repaired safely: {problems}", volume.display())]
    Unrepairable {
        /// The volume directory.
        volume: PathBuf,
        /// The problems, one per `; `.
        problems: String,
    },
    /// I/O limits that cannot be used.
    #[error("volume {}: {source}", volume.display())]
    Limits {
        /// The volume directory.
        volume: PathBuf,
        /// The problem with the limits.
        #[source]
        source: LimitsError,
    },
}

impl VolumeError {
    /// The volume directory the error is about.
    pub fn volume(&self) -> &Path {
        match self {
            VolumeError::InvalidArgument { volume, .. }
            | VolumeError::Io { volume, .. }
            | VolumeError::Corrupt { volume, .. }
            | VolumeError::Unsupported { volume, .. }
            | VolumeError::AlreadyExists { volume, .. }
            | VolumeError::NotFound { volume, .. }
            | VolumeError::Locked { volume, .. }
            | VolumeError::ReadOnly { volume, .. }
            | VolumeError::SnapshotExists { volume, .. }
            | VolumeError::SnapshotNotFound { volume, .. }
            | VolumeError::WouldDropData { volume, .. }
            | VolumeError::ChecksumMismatch { volume, .. }
            | VolumeError::Unrepairable { volume, .. }
            | VolumeError::Limits { volume, .. } => volume,
        }
    }

    pub(crate) fn io(volume: &Path, file: &Path, op: &'static str, source: io::Error) -> Self {
        VolumeError::Io {
            volume: volume.to_path_buf(),
            file: file.to_path_buf(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(volume: &Path, file: &Path, problem: impl Into<String>) -> Self {
        VolumeError::Corrupt {
            volume: volume.to_path_buf(),
            file: file.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn invalid(volume: &Path, problem: impl Into<String>) -> Self {
        VolumeError::InvalidArgument {
            volume: volume.to_path_buf(),
            problem: problem.into(),
        }
    }
}
