//! Volumes, layers, snapshots, clones and resize.
//!
//! A volume is a virtual block device of a fixed (but changeable) size, stored as a small
//! manifest plus data in fixed-size chunks held in a chain of layers:
//!
//! ```text
//! <store>/volumes/<name>/manifest.json   size, chunk size, chain of layer ids, snapshots
//! <store>/volumes/<name>/lock            the writer lock (holder's pid inside)
//! <store>/layers/<id>.data               a layer's chunk slots
//! <store>/layers/<id>.index              a layer's index: chunk -> slot + crc32, or zero
//! ```
//!
//! The last layer of a chain is the writable *head*; the others are *frozen*: immutable,
//! addressed by id and shared by every volume (clone) and snapshot whose chain includes them.
//! Unwritten chunks take no space and read as zeros; discard frees chunks (or hides lower
//! layers' chunks with a tombstone).
//!
//! - Snapshot: flush, freeze the head, start a new empty head: no data copied.
//! - Clone: a new volume whose chain is a snapshot's layers plus its own head; writes go
//!   copy-on-write at chunk granularity.
//! - Delete snapshot: merges layers no longer needed apart, then deletes layer files no
//!   manifest names and no one has open.
//! - Crash safety: the manifest and each index are replaced atomically; data is written to
//!   new slots and made durable before the index naming them is committed, so a crash leaves
//!   the volume as of its last completed flush. Opening repairs what a crash left behind.
//! - Reads use a chunk map built at open: one lookup per chunk whatever the chain's depth.
//!
//! Designed for what comes next (mirrors, migration, split/combine, export): frozen layers
//! never change and are named by id, so they can be copied or exported as they are; the
//! manifest and the index carry version fields.

mod check;
mod chunk_map;
mod error;
mod fsutil;
mod gc;
mod handle;
mod head;
mod info;
mod io;
mod layer_file;
mod layer_index;
mod lock;
mod manifest;
mod open;
mod paths;
mod reclaim;
mod settings;
mod snapshots;

pub use check::{CheckProblem, CheckReport};
pub use error::VolumeError;
pub use gc::GcReport;
pub use handle::{CreateOptions, IoStats, ResizeOptions, Volume, DEFAULT_CHUNK_SIZE};
pub use info::{LayerInfo, VolumeInfo};
pub use io::SECTOR_SIZE;
pub use layer_index::{INDEX_MAGIC, INDEX_VERSION};
pub use manifest::{
    Origin, MANIFEST_FORMAT, MANIFEST_VERSION, MAX_CHUNK_SIZE, MAX_LAYERS, MAX_MANIFEST_BYTES,
    MAX_SNAPSHOTS, MAX_VOLUME_SIZE, MIN_CHUNK_SIZE,
};
pub use paths::valid_name;
pub use snapshots::SnapshotInfo;
