//! Appending records to one segment file and keeping its index.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::header::SegmentHeader;
use super::format::index::{IndexEntry, IndexSummary, SegmentIndex, ENTRY_EVERY_BYTES};
use super::format::record::frame_record;
use super::format::{index_path, segment_path};
use crate::error::{CaptureError, Result};
use crate::fsutil::{fsync_dir, write_atomically};
use crate::limits::MAX_WRITE_BYTES;

/// Where one record of a batch starts, relative to the batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordMeta {
    pub seq: u64,
    pub next_seq: u64,
    pub vm_time_ns: u64,
    pub offset: u64,
    pub payload_bytes: u64,
}

/// Framed records ready to append.
#[derive(Default)]
pub(crate) struct Batch {
    pub bytes: Vec<u8>,
    pub records: Vec<RecordMeta>,
}

impl Batch {
    /// Appends a record with `payload`.
    pub fn push(
        &mut self,
        seq: u64,
        next_seq: u64,
        vm_time_ns: u64,
        payload: &[u8],
        payload_bytes: u64,
    ) {
        self.records.push(RecordMeta {
            seq,
            next_seq,
            vm_time_ns,
            offset: self.bytes.len() as u64,
            payload_bytes,
        });
        frame_record(&mut self.bytes, payload);
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// An open segment.
pub(crate) struct SegmentWriter {
    file: File,
    path: PathBuf,
    index_path: PathBuf,
    pub header: SegmentHeader,
    len: u64,
    index: SegmentIndex,
    last_entry_offset: u64,
    unsynced: bool,
    index_dirty: bool,
}

impl SegmentWriter {
    /// Creates the segment for `header` in `dir` and writes its header. A file of that name
    /// must not exist.
    pub fn create(dir: &Path, header: SegmentHeader) -> Result<SegmentWriter> {
        let path = segment_path(dir, header.first_seq);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| CaptureError::io(&path, "create", e))?;
        let bytes = header.encode();
        file.write_all_at(&bytes, 0)
            .map_err(|e| CaptureError::io(&path, "write header", e))?;
        fsync_dir(dir)?;
        let index = SegmentIndex {
            first_seq: header.first_seq,
            covered_bytes: bytes.len() as u64,
            ..SegmentIndex::default()
        };
        Ok(SegmentWriter {
            file,
            index_path: index_path(&path),
            path,
            header,
            len: bytes.len() as u64,
            index,
            last_entry_offset: 0,
            unsynced: true,
            index_dirty: true,
        })
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Records appended.
    pub fn records(&self) -> u64 {
        self.index.summary.records
    }

    /// The summary of what was appended.
    pub fn summary(&self) -> IndexSummary {
        self.index.summary
    }

    /// Appends `batch`. On error the file may end inside a record; the caller stops using
    /// this segment.
    pub fn append(&mut self, batch: &Batch) -> Result<()> {
        let mut done = 0;
        while done < batch.bytes.len() {
            let n = (batch.bytes.len() - done).min(MAX_WRITE_BYTES);
            self.file
                .write_all_at(&batch.bytes[done..done + n], self.len + done as u64)
                .map_err(|e| CaptureError::io(&self.path, "write", e))?;
            done += n;
        }
        let s = &mut self.index.summary;
        for r in &batch.records {
            let offset = self.len + r.offset;
            if s.records == 0 {
                s.first_vm_ns = r.vm_time_ns;
            }
            s.records += 1;
            s.last_seq = r.seq;
            s.next_seq = r.next_seq;
            s.last_vm_ns = r.vm_time_ns;
            if self.index.entries.is_empty() || offset - self.last_entry_offset >= ENTRY_EVERY_BYTES
            {
                self.index.entries.push(IndexEntry {
                    seq: r.seq,
                    vm_time_ns: r.vm_time_ns,
                    offset,
                });
                self.last_entry_offset = offset;
            }
        }
        self.len += batch.bytes.len() as u64;
        self.index.covered_bytes = self.len;
        self.unsynced = true;
        self.index_dirty = true;
        Ok(())
    }

    /// Makes what was appended durable, then rewrites the index to cover it.
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| CaptureError::io(&self.path, "fsync", e))?;
            self.unsynced = false;
        }
        if self.index_dirty {
            write_atomically(&self.index_path, &self.index.encode())?;
            self.index_dirty = false;
        }
        Ok(())
    }

    /// Syncs and writes the final index (marked closed).
    pub fn close(mut self) -> Result<()> {
        self.index.closed = true;
        self.index_dirty = true;
        self.sync()
    }
}
