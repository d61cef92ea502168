//! `reprise-capture export-pcapng`.

use std::path::Path;

use replay::capture::export::export_pcapng;

use super::args::FilterArgs;
use super::{one_buffer, print_json, report, CliError};

pub fn run(dir: &Path, out: &Path, filter: &FilterArgs, json: bool) -> Result<i32, CliError> {
    let r = one_buffer(dir, filter.buffer.as_deref())?;
    let sources = r
        .latest_header()
        .map(|h| h.sources.clone())
        .unwrap_or_default();
    let query = filter.query(&sources)?;
    let summary = export_pcapng(&r, &query, out)?;
    let mut errors = false;
    for p in &summary.problems {
        errors |= report(p);
    }
    if json {
        print_json(&summary)?;
    } else {
        println!(
            "wrote {} packets ({} inbound, {} outbound) on {} interfaces ({}) to {}",
            summary.packets,
            summary.inbound,
            summary.outbound,
            summary.interfaces.len(),
            summary.interfaces.join(", "),
            out.display()
        );
    }
    Ok(i32::from(errors))
}
