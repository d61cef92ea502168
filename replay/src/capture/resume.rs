//! Taking up a buffer directory that already holds segments: where seqs continue, and what
//! retention needs to know about the old segments.

use std::path::{Path, PathBuf};

use super::format::{index_path, segment_path};
use super::reader::CaptureReader;
use super::retention::SegmentSpan;
use crate::error::{CaptureError, Result};

/// A segment on disk, as the writer tracks it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    pub path: PathBuf,
    pub span: SegmentSpan,
    pub records: u64,
}

/// The segments already in `dir` (those with a readable header) and the seq to continue
/// from. A leftover segment holding no complete record where the next one must go (a crash
/// right after creating it) is removed.
pub(crate) fn load_existing(dir: &Path) -> Result<(Vec<SegmentMeta>, u64)> {
    let reader = CaptureReader::open(dir)?;
    let next_seq = reader.next_seq();
    let mut metas = Vec::new();
    for seg in reader.segments() {
        let Some(h) = &seg.header else {
            continue;
        };
        if seg.name_seq == next_seq && seg.records == 0 {
            continue;
        }
        metas.push(SegmentMeta {
            path: seg.path.clone(),
            span: SegmentSpan {
                start: h.start.clone(),
                session: h.session_unix_ns,
                first_vm_ns: seg.first_vm_ns,
                last_vm_ns: seg.last_vm_ns,
                bytes: seg.file_len,
            },
            records: seg.records,
        });
    }
    let path = segment_path(dir, next_seq);
    if path.exists() {
        let holds_records = reader
            .segments()
            .iter()
            .any(|s| s.path == path && s.records > 0);
        if holds_records {
            return Err(CaptureError::DirNotUsable {
                path: dir.to_path_buf(),
                problem: format!(
                    "{} holds records although seqs end before it",
                    path.display()
                ),
            });
        }
        std::fs::remove_file(&path).map_err(|e| CaptureError::io(&path, "remove", e))?;
        let idx = index_path(&path);
        if idx.exists() {
            std::fs::remove_file(&idx).map_err(|e| CaptureError::io(&idx, "remove", e))?;
        }
    }
    Ok((metas, next_seq))
}
