//! Limits enforced on everything read from capture files (checked before anything of that
//! size is allocated) and on what the recorder accepts.

/// Largest record payload (one encoded event). An event that would encode larger is not
/// stored; a `Gap` marker with reason `TooLarge` takes its place.
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// Largest segment header.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Most sources in a source table.
pub const MAX_SOURCES: usize = 4096;
/// Longest buffer or source name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest snapshot id carried in a header or a marker, in bytes.
pub const MAX_SNAPSHOT_ID_BYTES: usize = 256;
/// Longest description of an injected event, in bytes.
pub const MAX_INJECTED_BYTES: usize = 1024;
/// Largest index file.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Largest payload a single write issues (records straddle writes when batches are larger).
pub const MAX_WRITE_BYTES: usize = 256 << 10;
