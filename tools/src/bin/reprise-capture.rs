//! `reprise-capture`: inspect capture buffers (list, show, stats, verify, export to pcapng).

use std::process::ExitCode;

use clap::Parser;
use reprise_tools::capture_cli::{run, Cli};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Cli::parse()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("reprise-capture: {e}");
            ExitCode::from(2)
        }
    }
}
