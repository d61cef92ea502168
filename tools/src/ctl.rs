//! `reprisectl`: runs one command-line request against a VMM's API socket.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use vmm::api::routes::{ActionType, VmStateChange};
use vmm::config::{BootSource, DriveConfig, DrivePatch, MachineConfig, NetConfig, SerialConfig};

use crate::api_client::{drive_path, Client, ClientError};

mod args;
mod replay;
mod show;

pub use args::{
    parse_byte_rate, parse_disk_size, parse_ops_rate, parse_size, Cli, Command, DriveAdd,
    DriveCommand, DriveLimits, DriveResize, LimitArgs, NetAdd, NetCommand, Rate, RecordingCommand,
    RecordingStartArgs, SnapshotCommand, SnapshotLoadArgs, StoreArgs, SOCK_ENV,
};
pub use replay::{ReplayCommand, ReplayRestartArgs, ReplayStartArgs, ReplayWhat, RunUntilArgs};
pub use show::{
    approx_bytes_text, bytes_text, config_summary, drive_status_text, limits_text,
    snapshot_info_text, snapshot_line, snapshot_list_text, snapshots_text, state_name, status_line,
    utc_time,
};

/// Why a `reprisectl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No socket was named.
    #[error("no API socket given: pass --sock PATH or set {SOCK_ENV}")]
    NoSocket,
    /// The API call failed (the message names the socket or carries the API's fault).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A path given on the command line cannot be made absolute.
    #[error("cannot use the path {path}: {source}")]
    Path {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The body of `raw` is not usable.
    #[error("the request body {origin} is not valid JSON: {detail}")]
    Body {
        /// Where the body came from.
        origin: String,
        /// What was wrong.
        detail: String,
    },
    /// The I/O limits given cannot be expressed to the API.
    #[error("invalid I/O limits: {0}")]
    Limits(String),
    /// Output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// A snapshot store could not be read or changed.
    #[error(transparent)]
    Store(#[from] vmm::snapshots::catalog::CatalogError),
}

/// Runs `cli`, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    let sock = cli.sock.clone();
    let client = || sock.clone().map(Client::new).ok_or(CtlError::NoSocket);
    if let Command::Snapshot(command) = cli.command {
        return snapshot(client, command, out);
    }
    let client = client()?;
    match cli.command {
        Command::Snapshot(_) => Ok(()),
        Command::Status { json } => {
            if json {
                print_json(out, &client.call("GET", "/", None)?)
            } else {
                print_line(out, &status_line(&client.instance_info()?))
            }
        }
        Command::Config { json } => {
            if json {
                print_json(out, &client.call("GET", "/vm/config", None)?)
            } else {
                print_line(out, &config_summary(&client.vm_config()?))
            }
        }
        Command::Start => Ok(client.action(ActionType::InstanceStart)?),
        Command::Stop => Ok(client.action(ActionType::InstanceStop)?),
        Command::Pause => Ok(client.set_vm_state(VmStateChange::Paused)?),
        Command::Resume => Ok(client.set_vm_state(VmStateChange::Resumed)?),
        Command::MachineConfig {
            vcpus,
            mem_mib,
            huge_pages,
        } => Ok(client.put_machine_config(&MachineConfig {
            vcpu_count: vcpus,
            mem_size_mib: mem_mib,
            huge_pages,
        })?),
        Command::BootSource {
            kernel,
            args,
            initrd,
        } => Ok(client.put_boot_source(&BootSource {
            kernel_image_path: absolute(&kernel)?,
            boot_args: args,
            initrd_path: initrd.as_deref().map(absolute).transpose()?,
        })?),
        Command::Drive(command) => drive(&client, command, out),
        Command::Recording(command) => recording(&client, command, out),
        Command::Replay(command) => replay::run(&client, command, out),
        Command::Net(NetCommand::Add(net)) => Ok(client.put_net(&NetConfig {
            iface_id: net.id,
            host_dev_name: net.tap,
            socket_path: net.socket.as_deref().map(absolute).transpose()?,
            peer_socket_path: net.peer.as_deref().map(absolute).transpose()?,
            guest_mac: net.mac,
            detached: false,
        })?),
        Command::Serial { output, input } => {
            Ok(client.put_serial(&SerialConfig { output, input })?)
        }
        Command::Raw { method, path, body } => {
            let body = body.map(|b| read_body(&b)).transpose()?;
            match client.call(&method, &path, body.as_ref())? {
                Some(value) => print_json(out, &Some(value)),
                None => Ok(()),
            }
        }
    }
}

/// The `PUT /recording` body `args` describe.
fn recording_request(args: &RecordingStartArgs) -> Result<Value, CtlError> {
    if let Some(file) = &args.config {
        return read_body(&format!("@{}", file.display()));
    }
    let dir = args.dir.as_deref().map(absolute).transpose()?;
    let mut buffer = json!({
        "name": args.name,
        "dir": dir,
        "filter": {
            "classes": args.classes,
            "sources": args.sources,
            "ipv4": args.ipv4,
            "ports": args.ports,
            "protocols": args.protocols,
        },
    });
    if let Some(w) = args.window_secs {
        buffer["window_secs"] = json!(w);
    }
    if let Some(b) = args.max_bytes {
        buffer["max_bytes"] = json!(b);
    }
    if args.compact {
        buffer["block_data"] = json!("compact");
    }
    if args.drop {
        buffer["overflow"] = json!("drop");
    }
    Ok(json!({ "buffers": [buffer] }))
}

/// One line per buffer of a recording's state.
fn recording_text(status: &Value) -> String {
    let mut lines = vec![format!(
        "recording: {}",
        if status["recording"] == json!(true) {
            "running"
        } else {
            "stopped"
        }
    )];
    for b in status["buffers"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {} ({}): {} events, {} bytes in {} segments, {} dropped",
            b["name"].as_str().unwrap_or("?"),
            b["dir"].as_str().unwrap_or("?"),
            b["events"],
            b["bytes"],
            b["segments"],
            b["dropped_events"],
        ));
    }
    lines.join("\n")
}

/// Runs a `recording` subcommand.
fn recording(
    client: &Client,
    command: RecordingCommand,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let (method, json_out) = match &command {
        RecordingCommand::Start(args) => {
            let body = recording_request(args)?;
            client.call("PUT", "/recording", Some(&body))?;
            return Ok(());
        }
        RecordingCommand::Status { json } => ("GET", *json),
        RecordingCommand::Stop { json } => ("DELETE", *json),
    };
    let status = client.call(method, "/recording", None)?;
    if json_out {
        print_json(out, &status)
    } else {
        print_line(out, &recording_text(&status.unwrap_or(Value::Null)))
    }
}

/// Runs a `drive` subcommand.
fn drive(client: &Client, command: DriveCommand, out: &mut dyn Write) -> Result<(), CtlError> {
    match command {
        DriveCommand::Add(add) => {
            let path = absolute(&add.path)?;
            let (path_on_host, volume_path) = if add.volume {
                (None, Some(path))
            } else {
                (Some(path), None)
            };
            let limits = if add.limits.is_empty() {
                None
            } else {
                Some(limits(&add.limits)?)
            };
            Ok(client.put_drive(&DriveConfig {
                drive_id: add.id,
                path_on_host,
                volume_path,
                is_read_only: add.read_only,
                io_direct: add.direct,
                limits,
            })?)
        }
        DriveCommand::Status { id, json } => {
            if json {
                print_json(out, &client.call("GET", &drive_path(&id), None)?)
            } else {
                print_line(out, &drive_status_text(&client.drive_status(&id)?))
            }
        }
        DriveCommand::Resize(resize) => Ok(client.patch_drive(&DrivePatch {
            drive_id: resize.id,
            size_bytes: Some(resize.size),
            allow_shrink: resize.allow_shrink,
            discard_data: resize.discard_data,
            limits: None,
        })?),
        DriveCommand::Limits(set) => Ok(client.patch_drive(&DrivePatch {
            drive_id: set.id,
            size_bytes: None,
            allow_shrink: false,
            discard_data: false,
            // `--none` leaves the flags empty, which is `{}`: no limits.
            limits: Some(limits(&set.limits)?),
        })?),
        DriveCommand::Snapshot { id, name, json } => {
            let snapshot = client.snapshot_drive(&id, &name)?;
            if json {
                print_json(out, &serde_json::to_value(&snapshot).ok())
            } else {
                let line = format!(
                    "drive {id}: snapshot {}, {}, taken {}",
                    snapshot.name,
                    bytes_text(snapshot.size_bytes),
                    utc_time(snapshot.created)
                );
                print_line(out, &line)
            }
        }
        DriveCommand::Snapshots { id, json } => {
            if json {
                let path = format!("{}/snapshots", drive_path(&id));
                print_json(out, &client.call("GET", &path, None)?)
            } else {
                print_line(out, &snapshots_text(&id, &client.drive_snapshots(&id)?))
            }
        }
    }
}

/// Runs a `snapshot` subcommand: on the store directly, or through the VMM's API (`--api`,
/// and always for `load`). `client` gives the API client (or fails without a socket).
fn snapshot(
    client: impl Fn() -> Result<Client, CtlError>,
    command: SnapshotCommand,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    use vmm::snapshots::catalog;
    match command {
        SnapshotCommand::List { store, json } => {
            let dir = absolute(&store.dir)?;
            let list = if store.api {
                client()?.list_snapshots(&dir)?
            } else {
                catalog::list(&dir)?
            };
            if json {
                print_json(out, &serde_json::to_value(&list).ok())
            } else {
                print_line(out, &snapshot_list_text(&dir, &list))
            }
        }
        SnapshotCommand::Show { store, id, json } => {
            let dir = absolute(&store.dir)?;
            let info = if store.api {
                client()?.snapshot_info(&dir, &id)?
            } else {
                catalog::info(&dir, &id)?
            };
            if json {
                print_json(out, &serde_json::to_value(&info).ok())
            } else {
                print_line(out, &snapshot_info_text(&info))
            }
        }
        SnapshotCommand::Delete { store, id } => {
            let dir = absolute(&store.dir)?;
            if store.api {
                client()?.delete_snapshot(&dir, &id)?;
            } else {
                catalog::delete(&dir, &id)?;
            }
            print_line(
                out,
                &format!("deleted snapshot {id} from {}", dir.display()),
            )
        }
        SnapshotCommand::Load(load) => {
            let nets = load
                .nets
                .into_iter()
                .map(|mut n| {
                    n.socket_path = n.socket_path.as_deref().map(absolute).transpose()?;
                    n.peer_socket_path = n.peer_socket_path.as_deref().map(absolute).transpose()?;
                    Ok(n)
                })
                .collect::<Result<Vec<_>, CtlError>>()?;
            Ok(client()?.load_snapshot(&vmm::api::SnapshotLoad {
                snapshot_path: absolute(&load.path)?,
                vm_id: load.vm_id,
                serial_output: load.serial_output,
                serial_input: load.serial_input,
                network_overrides: nets,
                resume: !load.paused,
            })?)
        }
    }
}

/// The API's `Limits` for the limit flags given.
fn limits<T: DeserializeOwned>(args: &LimitArgs) -> Result<T, CtlError> {
    serde_json::from_value(args.to_json()).map_err(|e| CtlError::Limits(e.to_string()))
}

/// Makes a path given on the command line absolute, since the VMM's working directory is
/// not ours. Symbolic links are kept as they are.
fn absolute(path: &Path) -> Result<PathBuf, CtlError> {
    std::path::absolute(path).map_err(|source| CtlError::Path {
        path: path.to_path_buf(),
        source,
    })
}

/// The JSON body of `raw`: literal text, `@FILE`, or `-` for standard input.
fn read_body(arg: &str) -> Result<Value, CtlError> {
    let (origin, text) = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CtlError::Body {
                origin: "from standard input".into(),
                detail: e.to_string(),
            })?;
        ("from standard input".to_string(), text)
    } else if let Some(file) = arg.strip_prefix('@') {
        let origin = format!("in {file}");
        let text = std::fs::read_to_string(file).map_err(|e| CtlError::Body {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        (origin, text)
    } else {
        ("argument".to_string(), arg.to_string())
    };
    serde_json::from_str(&text).map_err(|e| CtlError::Body {
        origin,
        detail: e.to_string(),
    })
}

fn print_line(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    writeln!(out, "{text}").map_err(CtlError::Output)
}

fn print_json(out: &mut dyn Write, value: &Option<Value>) -> Result<(), CtlError> {
    let text = match value {
        Some(value) => serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
        None => "null".to_string(),
    };
    print_line(out, &text)
}
