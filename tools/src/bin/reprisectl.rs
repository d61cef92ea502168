//! `reprisectl`: control a running Reprise VMM through its API socket.
//!
//! Exit status: 0 on success, 1 if the request failed (the API's `fault_message` and HTTP
//! status, or what went wrong reaching the socket, are printed to stderr), 2 on usage errors.

use std::process::ExitCode;

use clap::Parser;
use reprise_tools::ctl::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match ctl::run(cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
