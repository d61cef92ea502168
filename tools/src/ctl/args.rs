//! The command line of `reprisectl`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Environment variable naming the API socket when `--sock` is not given.
pub const SOCK_ENV: &str = "REPRISE_API_SOCK";

/// Control a running Reprise VMM through its API socket.
#[derive(Debug, Parser)]
#[command(name = "reprisectl", version)]
pub struct Cli {
    /// Path of the VMM's API socket (`reprise --api-sock PATH`).
    #[arg(long, global = true, env = SOCK_ENV, value_name = "PATH")]
    pub sock: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the instance's identity and lifecycle state (GET /).
    Status {
        /// Print the API's JSON instead of a summary line.
        #[arg(long)]
        json: bool,
    },
    /// Show the VM configuration (GET /vm/config).
    Config {
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Boot the configured VM.
    Start,
    /// Stop the VM for good.
    Stop,
    /// Pause the vCPUs.
    Pause,
    /// Resume paused vCPUs.
    Resume,
    /// Set the vCPU count and memory size (before start).
    MachineConfig {
        /// Number of vCPUs.
        #[arg(long, value_name = "N")]
        vcpus: u8,
        /// Guest memory in MiB.
        #[arg(long, value_name = "M")]
        mem_mib: u64,
        /// Back guest memory with 2 MiB huge pages.
        #[arg(long)]
        huge_pages: bool,
    },
    /// Set the kernel, its command line and an initrd (before start).
    BootSource {
        /// Kernel image (a PVH ELF); a relative path is made absolute.
        #[arg(long, value_name = "PATH")]
        kernel: PathBuf,
        /// Kernel command line.
        #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
        args: Option<String>,
        /// Initrd; a relative path is made absolute.
        #[arg(long, value_name = "PATH")]
        initrd: Option<PathBuf>,
    },
    /// Block devices.
    #[command(subcommand)]
    Drive(DriveCommand),
    /// Set where the serial console's output goes and its input comes from (before start).
    Serial {
        /// `stdout`, `null`, `file:PATH` or `socket:PATH` (default: stdout).
        #[arg(long, value_name = "SPEC")]
        output: Option<String>,
        /// `socket:PATH`: clients of this Unix stream socket type into the console.
        #[arg(long, value_name = "SPEC")]
        input: Option<String>,
    },
    /// Network interfaces.
    #[command(subcommand)]
    Net(NetCommand),
    /// Send any request and print the JSON answer.
    Raw {
        /// HTTP method, e.g. GET, PUT, PATCH.
        method: String,
        /// Request path, e.g. /vm/config.
        path: String,
        /// JSON body; `@FILE` reads it from a file and `-` from standard input.
        body: Option<String>,
    },
}

/// `drive` subcommands.
#[derive(Debug, Subcommand)]
pub enum DriveCommand {
    /// Add or replace a block device backed by a raw image (before start).
    Add(DriveAdd),
}

/// `drive add`.
#[derive(Debug, Args)]
pub struct DriveAdd {
    /// Drive identifier.
    pub id: String,
    /// Raw image file; a relative path is made absolute.
    pub path: PathBuf,
    /// Refuse guest writes.
    #[arg(long)]
    pub read_only: bool,
    /// Open the image with O_DIRECT.
    #[arg(long)]
    pub direct: bool,
}

/// `net` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Add or replace a network interface (before start): give --tap NAME, or --socket PATH
    /// with --peer PATH (Unix datagram sockets, one frame per datagram).
    Add(NetAdd),
}

/// `net add`: give `--tap NAME`, or `--socket PATH` with `--peer PATH`.
#[derive(Debug, Args)]
pub struct NetAdd {
    /// Interface identifier.
    pub id: String,
    /// Host TAP device name.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["socket", "peer"], required_unless_present = "socket")]
    pub tap: Option<String>,
    /// Unix datagram socket the VMM binds; a relative path is made absolute.
    #[arg(long, value_name = "PATH", requires = "peer")]
    pub socket: Option<PathBuf>,
    /// The peer's datagram socket; a relative path is made absolute.
    #[arg(long, value_name = "PATH", requires = "socket")]
    pub peer: Option<PathBuf>,
    /// Guest MAC address, `aa:bb:cc:dd:ee:ff`.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn net_add_needs_exactly_one_backend() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["reprisectl", "net", "add", "eth0"], args].concat())
        };
        assert!(parse(&["--tap", "tap0"]).is_ok());
        assert!(parse(&["--socket", "/a", "--peer", "/b"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--socket", "/a"]).is_err());
        assert!(parse(&["--peer", "/b"]).is_err());
        assert!(parse(&["--tap", "t", "--socket", "/a", "--peer", "/b"]).is_err());
    }

    #[test]
    fn sock_is_global() {
        let cli = Cli::try_parse_from(["reprisectl", "status", "--sock", "/s"]).unwrap();
        assert_eq!(cli.sock, Some(PathBuf::from("/s")));
    }
}
