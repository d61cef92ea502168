//! `reprise-capture show`.

use std::io::Write;
use std::path::Path;

use super::args::FilterArgs;
use super::describe::{json, line};
use super::{one_buffer, report, CliError};

pub fn run(
    dir: &Path,
    filter: &FilterArgs,
    limit: Option<u64>,
    data: bool,
    as_json: bool,
) -> Result<i32, CliError> {
    let r = one_buffer(dir, filter.buffer.as_deref())?;
    let sources = r
        .latest_header()
        .map(|h| h.sources.clone())
        .unwrap_or_default();
    let query = filter.query(&sources)?;
    let mut errors = false;
    let mut shown = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !as_json {
        let _ = writeln!(
            out,
            "{:>8} {:>20} {:>10} {:<8} {:<16} detail",
            "seq", "VM time (s)", "progress", "source", "kind"
        );
    }
    for item in r.events(&query)? {
        match item {
            Ok(e) => {
                if limit.is_some_and(|l| shown >= l) {
                    break;
                }
                shown += 1;
                let text = if as_json {
                    serde_json::to_string(&json(&e, &sources, data))?
                } else {
                    line(&e, &sources)
                };
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(out, "{text}").is_err() {
                    return Ok(0);
                }
            }
            Err(p) => errors |= report(&p),
        }
    }
    Ok(i32::from(errors))
}
