//! The command line of `reprisectl`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use super::replay::ReplayCommand;

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
    /// VM snapshot stores: list, show and delete snapshots (on the store directly, or
    /// through the VMM with --api), and load one into a VMM that has no VM yet.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Record what enters and leaves the guest into capture buffers.
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Replay a recording into a clone of one of its snapshots, drive the replay and see
    /// where the clone diverges.
    #[command(subcommand)]
    Replay(ReplayCommand),
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

/// `recording` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// Start recording (before start too: then from the first instruction). One buffer from
    /// the options, or any number from `--config FILE` (the `PUT /recording` body).
    Start(Box<RecordingStartArgs>),
    /// Show the recording's state (GET /recording).
    Status {
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Stop recording; everything recorded is flushed (DELETE /recording).
    Stop {
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

/// `recording start`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["config", "dir"])))]
pub struct RecordingStartArgs {
    /// A JSON file holding the whole request (`{"buffers": [...]}`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "name"])]
    pub config: Option<PathBuf>,
    /// The buffer's directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The buffer's name.
    #[arg(long, value_name = "NAME", default_value = "all")]
    pub name: String,
    /// Keep at least the last this many seconds of VM time.
    #[arg(long, value_name = "S")]
    pub window_secs: Option<u64>,
    /// Keep at most about this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Keep hashes of block data instead of the data.
    #[arg(long)]
    pub compact: bool,
    /// Drop events (counted in gap markers) rather than slow the guest when the disk lags.
    #[arg(long)]
    pub drop: bool,
    /// Only these classes: net, blk, serial (repeatable).
    #[arg(long = "class", value_name = "CLASS")]
    pub classes: Vec<String>,
    /// Only these devices (repeatable).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Only frames to or from this IPv4 address or prefix (repeatable).
    #[arg(long = "ip", value_name = "ADDR[/LEN]")]
    pub ipv4: Vec<String>,
    /// Only frames to or from this port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only frames of this protocol: arp, ipv4, icmp, tcp, udp (repeatable).
    #[arg(long = "protocol", value_name = "NAME")]
    pub protocols: Vec<String>,
}

/// `drive` subcommands.
#[derive(Debug, Subcommand)]
pub enum DriveCommand {
    /// Add or replace a block device backed by a raw image or, with --volume, a block-store
    /// volume (before start).
    Add(DriveAdd),
    /// Show a drive's backend, size, I/O limits and counters (GET /drives/ID).
    Status {
        /// Drive identifier.
        id: String,
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Change a drive's size while the VM runs; the guest is told at once.
    Resize(DriveResize),
    /// Replace a drive's I/O limits (all of them: limits not given are removed).
    Limits(DriveLimits),
    /// Take a snapshot of a drive's block-store volume while the VM runs, and show it.
    Snapshot {
        /// Drive identifier.
        id: String,
        /// Snapshot name: 1 to 64 characters from [A-Za-z0-9._-], not starting with `.`.
        #[arg(value_parser = parse_snapshot_name)]
        name: String,
        /// Print the API's JSON instead of a summary line.
        #[arg(long)]
        json: bool,
    },
    /// List the snapshots of a drive's block-store volume.
    Snapshots {
        /// Drive identifier.
        id: String,
        /// Print the API's JSON instead of one line per snapshot.
        #[arg(long)]
        json: bool,
    },
}

/// `drive add`.
#[derive(Debug, Args)]
pub struct DriveAdd {
    /// Drive identifier.
    pub id: String,
    /// Raw image file, or with --volume a block-store volume directory
    /// (`<store>/volumes/<name>`); a relative path is made absolute.
    pub path: PathBuf,
    /// PATH is a block-store volume directory, not a raw image.
    #[arg(long)]
    pub volume: bool,
    /// Refuse guest writes.
    #[arg(long)]
    pub read_only: bool,
    /// Open the image with O_DIRECT (raw images only).
    #[arg(long, conflicts_with = "volume")]
    pub direct: bool,
    /// I/O limits from the start.
    #[command(flatten, next_help_heading = LIMITS_HEADING)]
    pub limits: LimitArgs,
}

/// `drive resize`.
#[derive(Debug, Args)]
pub struct DriveResize {
    /// Drive identifier.
    pub id: String,
    /// New size in bytes, a multiple of 512; K, M, G and T (or KiB, MiB, GiB, TiB) multiply
    /// by powers of 1024.
    #[arg(value_parser = parse_disk_size)]
    pub size: u64,
    /// Permit a size smaller than the current one.
    #[arg(long)]
    pub allow_shrink: bool,
    /// When shrinking, data beyond the new size may be dropped.
    #[arg(long, requires = "allow_shrink")]
    pub discard_data: bool,
}

/// `drive limits`: give some limits, or --none.
#[derive(Debug, Args)]
#[command(
    override_usage = "reprisectl drive limits <ID> <--iops ...|--read-iops ...|\
    --write-iops ...|--bps ...|--read-bps ...|--write-bps ...|--none>"
)]
#[command(group(
    ArgGroup::new("any_limit")
        .args(["iops", "read_iops", "write_iops", "bps", "read_bps", "write_bps", "none"])
        .multiple(true)
        .required(true)
))]
pub struct DriveLimits {
    /// Drive identifier.
    pub id: String,
    /// The new limits.
    #[command(flatten, next_help_heading = LIMITS_HEADING)]
    pub limits: LimitArgs,
    /// Remove every limit.
    #[arg(long, conflicts_with_all = LIMIT_FLAGS)]
    pub none: bool,
}

/// Help heading of the limit flags.
const LIMITS_HEADING: &str = "I/O limits (token buckets; BURST defaults to one second's worth)";

/// The ids of the limit flags of [`LimitArgs`].
const LIMIT_FLAGS: [&str; 6] = [
    "iops",
    "read_iops",
    "write_iops",
    "bps",
    "read_bps",
    "write_bps",
];

/// A token bucket given on the command line: `RATE[:BURST]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Per second (> 0).
    pub rate: u64,
    /// Bucket size; `None` leaves it to the VMM (one second's worth).
    pub burst: Option<u64>,
}

/// I/O limit flags. Byte rates and bursts take K, M, G and T suffixes (powers of 1024).
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Operations per second, reads and writes together.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_ops_rate)]
    pub iops: Option<Rate>,
    /// Read operations per second.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_ops_rate)]
    pub read_iops: Option<Rate>,
    /// Write operations per second (discards count as writes).
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_ops_rate)]
    pub write_iops: Option<Rate>,
    /// Bytes per second, reads and writes together; K, M, G, T multiply by powers of 1024,
    /// e.g. 10M or 10M:20M.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_byte_rate)]
    pub bps: Option<Rate>,
    /// Bytes read per second.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_byte_rate)]
    pub read_bps: Option<Rate>,
    /// Bytes written per second.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_byte_rate)]
    pub write_bps: Option<Rate>,
}

impl LimitArgs {
    fn fields(&self) -> [(&'static str, Option<Rate>); 6] {
        [
            ("iops", self.iops),
            ("read_iops", self.read_iops),
            ("write_iops", self.write_iops),
            ("bps", self.bps),
            ("read_bps", self.read_bps),
            ("write_bps", self.write_bps),
        ]
    }

    /// Whether no limit was given.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, rate)| rate.is_none())
    }

    /// The limits as the API's `Limits` object (`{}` for none).
    pub fn to_json(&self) -> Value {
        let mut limits = Map::new();
        for (name, rate) in self.fields() {
            if let Some(Rate { rate, burst }) = rate {
                let bucket = match burst {
                    Some(burst) => json!({"rate": rate, "burst": burst}),
                    None => json!({"rate": rate}),
                };
                limits.insert(name.to_string(), bucket);
            }
        }
        Value::Object(limits)
    }
}

/// Parses a count with an optional K, M, G or T suffix (also KiB, MiB, GiB, TiB; any case),
/// each a power of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("`{text}` is not a number (like 512, 64K or 10M)"));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => {
            return Err(format!(
                "`{text}` has an unknown suffix `{suffix}`: use K, M, G or T (powers of 1024)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a disk size: [`parse_size`], positive and a multiple of 512.
pub fn parse_disk_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size == 0 || !size.is_multiple_of(512) {
        return Err(format!(
            "{text} ({size} bytes) is not a positive multiple of 512 bytes"
        ));
    }
    Ok(size)
}

fn parse_rate(text: &str, number: fn(&str) -> Result<u64, String>) -> Result<Rate, String> {
    let (rate, burst) = match text.split_once(':') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (text, None),
    };
    let rate = number(rate)?;
    if rate == 0 {
        return Err("the rate must be at least 1 per second".to_string());
    }
    let burst = burst.map(number).transpose()?;
    Ok(Rate { rate, burst })
}

/// Parses `RATE[:BURST]` of operations: plain numbers.
pub fn parse_ops_rate(text: &str) -> Result<Rate, String> {
    parse_rate(text, |n| {
        n.parse()
            .map_err(|_| format!("`{n}` is not a whole number of operations"))
    })
}

/// Parses `RATE[:BURST]` of bytes: [`parse_size`] numbers.
pub fn parse_byte_rate(text: &str) -> Result<Rate, String> {
    parse_rate(text, parse_size)
}

/// Checks a snapshot name as the API does.
pub fn parse_snapshot_name(text: &str) -> Result<String, String> {
    if vmm::api::routes::is_valid_snapshot_name(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a snapshot name: use 1 to {} characters from [A-Za-z0-9._-], \
             not starting with `.`",
            vmm::api::routes::MAX_SNAPSHOT_NAME_LEN
        ))
    }
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List the snapshots of a store, and what in it is not a usable snapshot.
    List {
        /// Where to look.
        #[command(flatten)]
        store: StoreArgs,
        /// Print the API's JSON instead of one line per snapshot.
        #[arg(long)]
        json: bool,
    },
    /// Show a snapshot's manifest, the chain a restore reads, and what depends on it.
    Show {
        /// Where to look.
        #[command(flatten)]
        store: StoreArgs,
        /// Snapshot id.
        id: String,
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot no diff snapshot depends on (its volume snapshots are kept).
    Delete {
        /// Where to look.
        #[command(flatten)]
        store: StoreArgs,
        /// Snapshot id.
        id: String,
    },
    /// Restore a snapshot into the VMM at --sock, which must have no VM yet
    /// (PUT /snapshot/load).
    Load(SnapshotLoadArgs),
}

/// The store a `snapshot` subcommand looks at.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The snapshot store's directory; a relative path is made absolute.
    #[arg(long, value_name = "STORE")]
    pub dir: PathBuf,
    /// Ask the VMM at --sock instead of reading the store directly.
    #[arg(long)]
    pub api: bool,
}

/// `snapshot load`.
#[derive(Debug, Args)]
pub struct SnapshotLoadArgs {
    /// The snapshot's directory (`STORE/ID`); a relative path is made absolute.
    pub path: PathBuf,
    /// Leave the VM paused (resume it with `reprisectl resume`).
    #[arg(long)]
    pub paused: bool,
    /// Name for the restored VM's volume clones (default: the instance id).
    #[arg(long, value_name = "ID")]
    pub vm_id: Option<String>,
    /// Serial output instead of the saved one: stdout, null, file:PATH or socket:PATH.
    #[arg(long, value_name = "SPEC")]
    pub serial_output: Option<String>,
    /// Serial input instead of the saved one: socket:PATH.
    #[arg(long, value_name = "SPEC")]
    pub serial_input: Option<String>,
    /// Attach an interface to something other than what was saved (repeatable):
    /// IFACE=detach, IFACE=tap:NAME[,mac=MAC] or IFACE=dgram:LOCAL_PATH:PEER_PATH[,mac=MAC].
    #[arg(long = "net", value_name = "IFACE=SPEC", value_parser = parse_net_override)]
    pub nets: Vec<vmm::api::NetOverride>,
}

/// Parses `--net` as `reprise --restore` does.
pub fn parse_net_override(text: &str) -> Result<vmm::api::NetOverride, String> {
    vmm::api::NetOverride::parse(text)
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
    fn snapshot_commands() {
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["reprisectl", "snapshot"], args].concat());
        assert!(parse(&["list", "--dir", "/s"]).is_ok());
        assert!(parse(&["list"]).is_err(), "--dir is required");
        assert!(parse(&["show", "--dir", "/s", "base", "--json", "--api"]).is_ok());
        assert!(
            parse(&["delete", "--dir", "/s"]).is_err(),
            "an id is required"
        );
        let cli = parse(&["load", "/s/base", "--net", "net0=detach", "--paused"]).unwrap();
        match cli.command {
            Command::Snapshot(SnapshotCommand::Load(load)) => {
                assert!(load.paused && load.nets[0].detach);
            }
            other => panic!("{other:?}"),
        }
        let e = parse(&["load", "/s/base", "--net", "net0=tap:t,mac=zz"]).unwrap_err();
        assert!(e.to_string().contains("zz"), "{e}");
    }

    #[test]
    fn recording_commands() {
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["reprisectl", "recording"], args].concat());
        let cli = parse(&[
            "start",
            "--dir",
            "/c",
            "--class",
            "net",
            "--ip",
            "10.0.0.7",
            "--compact",
        ])
        .unwrap();
        match cli.command {
            Command::Recording(RecordingCommand::Start(a)) => {
                assert_eq!(a.name, "all");
                assert!(a.compact && !a.drop);
                assert_eq!(
                    (a.classes, a.ipv4),
                    (vec!["net".to_string()], vec!["10.0.0.7".to_string()])
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["start"]).is_err(),
            "a directory or a config file is required"
        );
        assert!(parse(&["start", "--config", "/f", "--dir", "/c"]).is_err());
        assert!(parse(&["start", "--port", "http"]).is_err());
        assert!(parse(&["status", "--json"]).is_ok());
        assert!(parse(&["stop"]).is_ok());
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

    fn drive(args: &[&str]) -> Result<DriveCommand, clap::Error> {
        let cli = Cli::try_parse_from([&["reprisectl", "drive"], args].concat())?;
        match cli.command {
            Command::Drive(command) => Ok(command),
            other => panic!("not a drive command: {other:?}"),
        }
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("16777215T"), Ok(16777215 << 40));
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5G").unwrap_err().contains("suffix"));
        assert!(parse_size("1KB").unwrap_err().contains("suffix"));
        assert!(parse_size("1 K").is_err());

        assert_eq!(parse_disk_size("1G"), Ok(1 << 30));
        assert_eq!(parse_disk_size("1536"), Ok(1536));
        assert!(parse_disk_size("1000")
            .unwrap_err()
            .contains("multiple of 512"));
        assert!(parse_disk_size("0").is_err());
    }

    #[test]
    fn rates_and_bursts() {
        assert_eq!(
            parse_ops_rate("100"),
            Ok(Rate {
                rate: 100,
                burst: None
            })
        );
        assert_eq!(
            parse_ops_rate("100:10"),
            Ok(Rate {
                rate: 100,
                burst: Some(10)
            })
        );
        assert!(parse_ops_rate("1K").is_err(), "operations take no suffix");
        assert!(parse_ops_rate("0").unwrap_err().contains("at least 1"));
        assert!(parse_ops_rate("5:").is_err());
        assert!(parse_ops_rate(":5").is_err());
        assert!(parse_ops_rate("1:2:3").is_err());
        assert_eq!(
            parse_byte_rate("10M:20M"),
            Ok(Rate {
                rate: 10 << 20,
                burst: Some(20 << 20)
            })
        );
        assert_eq!(
            parse_byte_rate("4096:0"),
            Ok(Rate {
                rate: 4096,
                burst: Some(0)
            })
        );
    }

    #[test]
    fn drive_add_with_a_volume_and_limits() {
        let DriveCommand::Add(add) = drive(&[
            "add",
            "data",
            "/store/volumes/data",
            "--volume",
            "--iops",
            "100:10",
            "--write-bps",
            "1M",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert!(add.volume && !add.direct && !add.read_only);
        assert_eq!(
            add.limits.to_json(),
            json!({"iops": {"rate": 100, "burst": 10}, "write_bps": {"rate": 1048576}})
        );
        let DriveCommand::Add(add) = drive(&["add", "root", "r.img"]).unwrap() else {
            panic!("not add")
        };
        assert!(add.limits.is_empty());
        assert_eq!(add.limits.to_json(), json!({}));
        assert!(
            drive(&["add", "d", "/v", "--volume", "--direct"]).is_err(),
            "O_DIRECT is for raw images"
        );
        assert!(drive(&["add", "d", "/i", "--bps", "fast"]).is_err());
        assert!(drive(&["add", "d"]).is_err());
    }

    #[test]
    fn drive_limits_needs_limits_or_none() {
        let DriveCommand::Limits(limits) =
            drive(&["limits", "root", "--read-iops", "5", "--bps", "1G:2G"]).unwrap()
        else {
            panic!("not limits")
        };
        assert!(!limits.none);
        assert_eq!(
            limits.limits.to_json(),
            json!({"read_iops": {"rate": 5}, "bps": {"rate": 1u64 << 30, "burst": 2u64 << 30}})
        );
        let DriveCommand::Limits(limits) = drive(&["limits", "root", "--none"]).unwrap() else {
            panic!("not limits")
        };
        assert!(limits.none && limits.limits.is_empty());
        assert!(drive(&["limits", "root"]).is_err(), "nothing to set");
        assert!(drive(&["limits", "root", "--none", "--iops", "1"]).is_err());
        assert!(drive(&["limits", "root", "--iops", "0"]).is_err());
    }

    #[test]
    fn drive_resize_sizes_and_flags() {
        let DriveCommand::Resize(resize) = drive(&["resize", "root", "2G"]).unwrap() else {
            panic!("not resize")
        };
        assert_eq!(resize.size, 2 << 30);
        assert!(!resize.allow_shrink && !resize.discard_data);
        let DriveCommand::Resize(resize) =
            drive(&["resize", "root", "512", "--allow-shrink", "--discard-data"]).unwrap()
        else {
            panic!("not resize")
        };
        assert_eq!(resize.size, 512);
        assert!(resize.allow_shrink && resize.discard_data);
        assert!(drive(&["resize", "root", "1G", "--discard-data"]).is_err());
        assert!(drive(&["resize", "root", "1000"]).is_err());
        assert!(drive(&["resize", "root"]).is_err());
    }

    #[test]
    fn drive_snapshot_names_are_checked() {
        assert!(matches!(
            drive(&["snapshot", "data", "v1.0"]).unwrap(),
            DriveCommand::Snapshot { name, json: false, .. } if name == "v1.0"
        ));
        for bad in [".hidden", "a/b", "a b", ""] {
            assert!(drive(&["snapshot", "data", bad]).is_err(), "{bad:?}");
        }
        assert!(drive(&["snapshot", "data", &"x".repeat(65)]).is_err());
        assert!(matches!(
            drive(&["snapshots", "data", "--json"]).unwrap(),
            DriveCommand::Snapshots { json: true, .. }
        ));
        assert!(matches!(
            drive(&["status", "data"]).unwrap(),
            DriveCommand::Status { json: false, .. }
        ));
    }

    #[test]
    fn sock_is_global() {
        let cli = Cli::try_parse_from(["reprisectl", "status", "--sock", "/s"]).unwrap();
        assert_eq!(cli.sock, Some(PathBuf::from("/s")));
    }
}
