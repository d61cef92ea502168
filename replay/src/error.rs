//! The errors of this crate: each names the buffer or file and what went wrong.

use std::io;
use std::path::PathBuf;

/// Why a capture could not be started, written, read or exported.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A system call on a file or directory failed.
    #[error("{}: {op}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`open`, `write`, `fsync`, ...).
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
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A checksum does not match the data it covers.
    #[error("{}: offset {offset}: {what}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", .path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Where the checksummed data starts.
        offset: u64,
        /// What the checksum covers.
        what: &'static str,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the data.
        computed: u32,
    },
    /// The file ends before the data it must hold.
    #[error("{}: cut short at offset {offset}: {what}", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing data starts.
        offset: u64,
        /// What is missing.
        what: String,
    },
    /// The file is structurally wrong (a length over a limit, a bad field).
    #[error("{}: offset {offset}: {problem}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A capture buffer's configuration cannot be used.
    #[error("capture buffer {buffer:?}: {problem}")]
    InvalidConfig {
        /// The buffer's name.
        buffer: String,
        /// What is wrong.
        problem: String,
    },
    /// A buffer directory holds something the recorder refuses to continue from.
    #[error("{}: cannot record here: {problem}", .path.display())]
    DirNotUsable {
        /// The directory.
        path: PathBuf,
        /// Why.
        problem: String,
    },
    /// A buffer's writer thread could not write what was recorded.
    #[error("capture buffer {buffer:?}: {problem}")]
    WriterFailed {
        /// The buffer's name.
        buffer: String,
        /// What failed (the first error since the last successful flush).
        problem: String,
    },
    /// A capture has no segment starting at that snapshot.
    #[error("{}: no segment starts at snapshot {id:?}", .dir.display())]
    UnknownSnapshot {
        /// The buffer directory.
        dir: PathBuf,
        /// The snapshot id.
        id: String,
    },
    /// The recorder was stopped; nothing more is recorded.
    #[error("the recorder is stopped")]
    Stopped,
    /// A text filter or range could not be parsed.
    #[error("invalid {what} {text:?}: {problem}")]
    Parse {
        /// What was being parsed (`MAC address`, `IPv4 prefix`, ...).
        what: &'static str,
        /// The text.
        text: String,
        /// Why it is not valid.
        problem: String,
    },
}

impl CaptureError {
    /// A [`CaptureError::Io`] error for `path`.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        CaptureError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// A [`CaptureError::Corrupt`] error for `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, problem: impl Into<String>) -> Self {
        CaptureError::Corrupt {
            path: path.into(),
            offset,
            problem: problem.into(),
        }
    }

    /// A [`CaptureError::Parse`] error.
    pub fn parse(what: &'static str, text: &str, problem: impl Into<String>) -> Self {
        CaptureError::Parse {
            what,
            text: text.to_string(),
            problem: problem.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CaptureError>;
