//! The VM-state file: named sections of postcard-encoded state, each checksummed.
//!
//! # Format (version 1, all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `RPRSTATE` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | number of sections (≤ [`MAX_SECTIONS`]) |
//! | 16 | 8 | length of the whole file, trailer included (≤ [`MAX_STATE_FILE_BYTES`]) |
//! | 24 | … | sections, back to back |
//! | end − 4 | 4 | CRC32 of every byte before it |
//!
//! A section is `name length: u16` (1..=[`MAX_SECTION_NAME_BYTES`]), the UTF-8 name,
//! `payload length: u64`, `CRC32: u32` of the name length, name, payload length and payload,
//! then the payload: one value encoded with `postcard`.
//!
//! Reading treats the file as untrusted: its size is checked against the limit before it is
//! read, every length is checked against the bytes actually present before it is used, every
//! section's checksum and the whole-file checksum are verified, and a value is decoded only
//! when asked for, into the type the caller names, with no bytes left over. A section's
//! checksum is verified before the whole file's, so that damage inside a section is reported
//! as damage to that section.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Decoder, Encoder};
use crate::error::{Result, SnapshotError};
use crate::fsutil;
use crate::limits::{MAX_SECTIONS, MAX_SECTION_NAME_BYTES, MAX_STATE_FILE_BYTES};

/// The first bytes of a state file.
pub const STATE_MAGIC: [u8; 8] = *b"RPRSTATE";
/// The state-file format version written and read by this build.
pub const STATE_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;
const TRAILER_LEN: usize = 4;
const WHAT: &str = "Reprise VM-state file";

/// Collects sections and writes a state file.
#[derive(Debug, Default)]
pub struct StateWriter {
    sections: Vec<(String, Vec<u8>)>,
    names: HashSet<String>,
    size: u64,
}

impl StateWriter {
    /// An empty state file.
    pub fn new() -> Self {
        StateWriter {
            size: (HEADER_LEN + TRAILER_LEN) as u64,
            ..Default::default()
        }
    }

    /// Adds section `name` holding `value` encoded with postcard.
    ///
    /// Fails on an empty, over-long or duplicate name, a value that does not encode, or
    /// when the file would exceed the size or section-count limits.
    pub fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        let payload = postcard::to_stdvec(value).map_err(|e| {
            SnapshotError::InvalidInput(format!("section {name:?}: cannot encode: {e}"))
        })?;
        self.put_raw(name, payload)
    }

    /// Adds section `name` holding `payload` as it is.
    pub fn put_raw(&mut self, name: &str, payload: Vec<u8>) -> Result<()> {
        if name.is_empty() || name.len() > MAX_SECTION_NAME_BYTES {
            return Err(SnapshotError::InvalidInput(format!(
                "section name {name:?} must be 1 to {MAX_SECTION_NAME_BYTES} bytes long"
            )));
        }
        if self.names.contains(name) {
            return Err(SnapshotError::InvalidInput(format!(
                "section {name:?} added twice"
            )));
        }
        if self.sections.len() >= MAX_SECTIONS {
            return Err(SnapshotError::InvalidInput(format!(
                "section {name:?}: a state file holds at most {MAX_SECTIONS} sections"
            )));
        }
        let size = self.size + section_header_len(name) as u64 + payload.len() as u64;
        if size > MAX_STATE_FILE_BYTES {
            return Err(SnapshotError::InvalidInput(format!(
                "section {name:?}: the state file would be {size} bytes, over the limit of {MAX_STATE_FILE_BYTES}"
            )));
        }
        self.size = size;
        self.names.insert(name.to_string());
        self.sections.push((name.to_string(), payload));
        Ok(())
    }

    /// The names of the sections added so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|(n, _)| n.as_str())
    }

    /// The size of the file this writer would write.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether no section was added.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// The encoded file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.buf.reserve(self.size as usize);
        e.bytes(&STATE_MAGIC);
        e.u32(STATE_VERSION);
        e.u32(self.sections.len() as u32);
        e.u64(self.size);
        for (name, payload) in &self.sections {
            let start = e.buf.len();
            e.u16(name.len() as u16);
            e.bytes(name.as_bytes());
            e.u64(payload.len() as u64);
            let mut h = crc32fast::Hasher::new();
            h.update(&e.buf[start..]);
            h.update(payload);
            e.u32(h.finalize());
            e.bytes(payload);
        }
        let crc = crc32fast::hash(&e.buf);
        e.u32(crc);
        debug_assert_eq!(e.buf.len() as u64, self.size);
        e.buf
    }

    /// Writes the file to `path`: under a temporary name, flushed, then renamed into place.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        fsutil::write_atomically(path, &self.to_bytes())
    }
}

fn section_header_len(name: &str) -> usize {
    2 + name.len() + 8 + 4
}

/// A state file read and checked; values are decoded by [`StateFile::get`].
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    data: Vec<u8>,
    sections: Vec<(String, Range<usize>)>,
}

impl StateFile {
    /// Reads and checks the state file at `path`.
    pub fn read(path: &Path) -> Result<StateFile> {
        let data = fsutil::read_limited(path, MAX_STATE_FILE_BYTES, "state file")?;
        StateFile::from_bytes(data, path)
    }

    /// Checks a state file held in memory; `path` is used in error messages.
    pub fn from_bytes(data: Vec<u8>, path: impl Into<PathBuf>) -> Result<StateFile> {
        let path = path.into();
        let sections = parse(&data, &path)?;
        Ok(StateFile {
            path,
            data,
            sections,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The section names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|(n, _)| n.as_str())
    }

    /// Whether there is a section `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.sections.iter().any(|(n, _)| n == name)
    }

    /// The payload of section `name`, as stored.
    pub fn get_raw(&self, name: &str) -> Result<&[u8]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| &self.data[r.clone()])
            .ok_or_else(|| SnapshotError::MissingSection {
                path: self.path.clone(),
                section: name.to_string(),
            })
    }

    /// Decodes section `name` as a `T`; the payload must be exactly one `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let payload = self.get_raw(name)?;
        let bad = |problem: String| SnapshotError::BadSection {
            path: self.path.clone(),
            section: name.to_string(),
            problem,
        };
        let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|e| {
            bad(format!(
                "does not decode as {}: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes left over after decoding a {}",
                rest.len(),
                std::any::type_name::<T>()
            )));
        }
        Ok(value)
    }
}

fn parse(data: &[u8], path: &Path) -> Result<Vec<(String, Range<usize>)>> {
    if data.len() > MAX_STATE_FILE_BYTES as usize {
        return Err(SnapshotError::TooLarge {
            path: path.into(),
            what: "state file".into(),
            size: data.len() as u64,
            limit: MAX_STATE_FILE_BYTES,
        });
    }
    let n = data.len().min(STATE_MAGIC.len());
    if data[..n] != STATE_MAGIC[..n] {
        return Err(SnapshotError::BadMagic {
            path: path.into(),
            expected: WHAT,
        });
    }
    let mut d = Decoder::new(data, 0, path);
    d.bytes(STATE_MAGIC.len(), "magic")?;
    let version = d.u32("format version")?;
    if version != STATE_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.into(),
            what: "state file",
            found: version.into(),
            supported: STATE_VERSION.into(),
        });
    }
    let count = d.u32("section count")? as usize;
    let file_len = d.u64("file length")?;
    if count > MAX_SECTIONS {
        return Err(SnapshotError::corrupt(
            path,
            format!("{count} sections, over the limit of {MAX_SECTIONS}"),
        ));
    }
    if file_len > data.len() as u64 {
        return Err(SnapshotError::Truncated {
            path: path.into(),
            offset: data.len() as u64,
            what: format!("the file ends there but its header says it is {file_len} bytes long"),
        });
    }
    if file_len < data.len() as u64 {
        return Err(SnapshotError::corrupt(
            path,
            format!(
                "{} bytes follow the end given by the header ({file_len})",
                data.len() as u64 - file_len
            ),
        ));
    }
    let body = &data[..data.len() - TRAILER_LEN.min(data.len())];
    let mut d = Decoder::new(body, 0, path);
    d.bytes(HEADER_LEN, "header")?;
    let mut sections: Vec<(String, Range<usize>)> = Vec::with_capacity(count);
    let mut names = HashSet::with_capacity(count);
    for i in 0..count {
        let start = d.offset();
        let label = |name: &str| format!("section {i} ({name:?})");
        let name_len = d.u16("section name length")? as usize;
        if name_len == 0 || name_len > MAX_SECTION_NAME_BYTES {
            return Err(SnapshotError::corrupt(
                path,
                format!("section {i} at offset {start}: name length {name_len} is not within 1..={MAX_SECTION_NAME_BYTES}"),
            ));
        }
        let raw_name = d.bytes(name_len, "section name")?;
        let name = String::from_utf8_lossy(raw_name).into_owned();
        let payload_len = d.u64("section length")?;
        let stored_crc = d.u32("section checksum")?;
        if payload_len > d.remaining() as u64 {
            return Err(SnapshotError::corrupt(
                path,
                format!(
                    "{}: its length {payload_len} runs past the end of the file (offset {})",
                    label(&name),
                    d.offset()
                ),
            ));
        }
        let header = &body[start as usize..d.offset() as usize - 4];
        let payload_start = d.offset() as usize;
        let payload = d.bytes(payload_len as usize, "section payload")?;
        let mut h = crc32fast::Hasher::new();
        h.update(header);
        h.update(payload);
        let computed = h.finalize();
        if computed != stored_crc {
            return Err(SnapshotError::Checksum {
                path: path.into(),
                what: label(&name),
                stored: stored_crc,
                computed,
            });
        }
        if std::str::from_utf8(raw_name).is_err() {
            return Err(SnapshotError::corrupt(
                path,
                format!("{}: name is not UTF-8", label(&name)),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(SnapshotError::corrupt(
                path,
                format!("{} appears twice", label(&name)),
            ));
        }
        sections.push((name, payload_start..payload_start + payload_len as usize));
    }
    if d.remaining() != 0 {
        return Err(SnapshotError::corrupt(
            path,
            format!(
                "{} unexpected bytes after the last section (offset {})",
                d.remaining(),
                d.offset()
            ),
        ));
    }
    let mut t = Decoder::new(&data[body.len()..], body.len() as u64, path);
    let stored = t.u32("file checksum")?;
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(SnapshotError::Checksum {
            path: path.into(),
            what: "whole file".into(),
            stored,
            computed,
        });
    }
    Ok(sections)
}
