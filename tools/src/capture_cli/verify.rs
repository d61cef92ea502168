//! `reprise-capture verify`.

use std::path::Path;

use replay::capture::reader::{CaptureReader, Severity};
use serde_json::json;

use super::{buffers, print_json, CliError};

pub fn run(dir: &Path, as_json: bool) -> Result<i32, CliError> {
    let mut out = Vec::new();
    let mut errors = 0;
    for d in buffers(dir)? {
        let r = CaptureReader::open(&d)?;
        let v = r.verify()?;
        errors += v.errors();
        let warnings = v.problems.len() - v.errors();
        if as_json {
            out.push(json!({
                "buffer": r.buffer_name(),
                "dir": d,
                "segments": v.segments,
                "records": v.records,
                "errors": v.errors(),
                "warnings": warnings,
                "problems": v.problems,
            }));
            continue;
        }
        for p in &v.problems {
            println!("{p}");
        }
        let verdict = if v.errors() > 0 {
            "DAMAGED"
        } else if v.problems.iter().any(|p| p.severity == Severity::Warning) {
            "ok (with warnings)"
        } else {
            "ok"
        };
        println!(
            "buffer {} ({}): {} segments, {} records, {} errors, {warnings} warnings: {verdict}",
            r.buffer_name().unwrap_or("?"),
            d.display(),
            v.segments,
            v.records,
            v.errors(),
        );
    }
    if as_json {
        print_json(&out)?;
    }
    Ok(i32::from(errors > 0))
}
