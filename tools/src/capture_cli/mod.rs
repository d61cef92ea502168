//! `reprise-capture`: inspect capture buffers written by the recorder — list segments and
//! snapshots, show and count events with filters, verify checksums and indexes, export
//! network events to pcapng.

mod args;
mod describe;
mod export;
mod ls;
mod show;
mod stats;
mod verify;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use replay::capture::reader::{find_buffers, CaptureReader, Problem, Severity};
use replay::CaptureError;

pub use args::{FilterArgs, TimeArg};

/// Inspect capture buffers. DIR is a buffer directory, or a directory holding several
/// (one per buffer).
#[derive(Parser, Debug)]
#[command(name = "reprise-capture", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List buffers, their segments (seq and time ranges, start reason, index state) and
    /// the snapshots segments start at.
    Ls {
        /// Buffer directory or a directory of buffers.
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show events, one per line.
    Show {
        /// Buffer directory (or a directory of buffers with --buffer).
        dir: PathBuf,
        /// Which events.
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// Include payloads (frames, console bytes, block data) as hex.
        #[arg(long)]
        data: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Count events and bytes per kind, source and address, with rates.
    Stats {
        /// Buffer directory (or a directory of buffers with --buffer).
        dir: PathBuf,
        /// Which events.
        #[command(flatten)]
        filter: FilterArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check headers, record checksums, indexes and seq continuity; exits 1 on errors.
    Verify {
        /// Buffer directory or a directory of buffers.
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write network events to a pcapng file (one interface per NIC, direction flags,
    /// wall-clock timestamps).
    ExportPcapng {
        /// Buffer directory (or a directory of buffers with --buffer).
        dir: PathBuf,
        /// The pcapng file to write.
        out: PathBuf,
        /// Which events.
        #[command(flatten)]
        filter: FilterArgs,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading or writing a capture failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The arguments do not select something that exists.
    #[error("{0}")]
    Usage(String),
    /// Output could not be encoded.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs a command; returns the exit code (0, or 1 when errors were found in the data).
pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Ls { dir, json } => ls::run(&dir, json),
        Command::Show {
            dir,
            filter,
            limit,
            data,
            json,
        } => show::run(&dir, &filter, limit, data, json),
        Command::Stats { dir, filter, json } => stats::run(&dir, &filter, json),
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::ExportPcapng {
            dir,
            out,
            filter,
            json,
        } => export::run(&dir, &out, &filter, json),
    }
}

/// The buffer directories under `dir` (at least one).
fn buffers(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let found = find_buffers(dir)?;
    if found.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: no capture segments here or in its subdirectories",
            dir.display()
        )));
    }
    Ok(found)
}

/// The one buffer a command works on: `dir` itself, or the one `--buffer` names.
fn one_buffer(dir: &Path, name: Option<&str>) -> Result<CaptureReader, CliError> {
    let found = buffers(dir)?;
    let mut readers = Vec::new();
    for d in found {
        readers.push(CaptureReader::open(&d)?);
    }
    let label = |r: &CaptureReader| {
        r.buffer_name()
            .map(str::to_string)
            .unwrap_or_else(|| r.dir().display().to_string())
    };
    match name {
        Some(n) => {
            let names: Vec<String> = readers.iter().map(label).collect();
            readers
                .into_iter()
                .find(|r| r.buffer_name() == Some(n) || r.dir().file_name().is_some_and(|f| f == n))
                .ok_or_else(|| {
                    CliError::Usage(format!("no buffer {n:?} (buffers: {})", names.join(", ")))
                })
        }
        None if readers.len() == 1 => Ok(readers.remove(0)),
        None => Err(CliError::Usage(format!(
            "{} holds several buffers ({}): choose one with --buffer",
            dir.display(),
            readers.iter().map(label).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Prints a problem met while reading to stderr; returns whether it is an error.
fn report(p: &Problem) -> bool {
    eprintln!("reprise-capture: {p}");
    p.severity == Severity::Error
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
