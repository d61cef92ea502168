//! `reprise`: one VMM process per guest, driven by an HTTP API on a Unix socket and/or a
//! configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use vmm::api::{server, VmmControl};
use vmm::config::VmConfig;
use vmm::controller::Vmm;
use vmm::event_loop::EventLoop;
use vmm::supervisor::{self, Outcome};

/// Reprise virtual machine monitor.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Serve the HTTP API on this Unix socket.
    #[arg(long)]
    api_sock: Option<PathBuf>,
    /// Configure (and start) the VM from this JSON file.
    #[arg(long, conflicts_with = "restore")]
    config_file: Option<PathBuf>,
    /// Restore and run the VM saved in this snapshot directory (`<store>/<id>`).
    #[arg(long)]
    restore: Option<PathBuf>,
    /// With --restore: serial output instead of the saved one (stdout, null, file:PATH,
    /// socket:PATH), e.g. for clones running side by side.
    #[arg(long, requires = "restore")]
    serial_output: Option<String>,
    /// With --restore: serial input instead of the saved one (socket:PATH).
    #[arg(long, requires = "restore")]
    serial_input: Option<String>,
    /// With --restore: attach a network interface to something other than what was saved
    /// (repeatable): IFACE=detach (no backend: sent frames are dropped, nothing arrives),
    /// IFACE=tap:NAME[,mac=MAC] or IFACE=dgram:LOCAL_PATH:PEER_PATH[,mac=MAC].
    #[arg(long = "net", value_name = "IFACE=SPEC", requires = "restore", value_parser = parse_net)]
    nets: Vec<vmm::snapshots::net_overrides::NetOverride>,
    /// Start as a replaying clone described by this JSON file (the body of `PUT /replay`:
    /// capture_dir, snapshot_dir, snapshot_id or before, selection, filters, speed, ...).
    #[arg(long, conflicts_with_all = ["restore", "config_file"])]
    replay: Option<PathBuf>,
    /// Serve the gdb remote protocol on this Unix socket (`target remote PATH` in gdb).
    #[arg(long, conflicts_with = "gdb_tcp")]
    gdb_socket: Option<PathBuf>,
    /// Serve the gdb remote protocol on this TCP address, e.g. 127.0.0.1:1234.
    #[arg(long)]
    gdb_tcp: Option<std::net::SocketAddr>,
    /// Instance identifier reported by `GET /`.
    #[arg(long, default_value = "reprise")]
    id: String,
    /// Log level: error, warn, info, debug, trace (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn parse_net(spec: &str) -> Result<vmm::snapshots::net_overrides::NetOverride, String> {
    vmm::snapshots::net_overrides::NetOverride::parse(spec)
}

fn load_config(path: &PathBuf) -> Result<VmConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

fn run(args: Args) -> Result<ExitCode, String> {
    if args.api_sock.is_none()
        && args.config_file.is_none()
        && args.restore.is_none()
        && args.replay.is_none()
    {
        return Err(
            "give --api-sock PATH, --config-file FILE, --restore DIR or --replay FILE".into(),
        );
    }
    if args.restore.is_none() {
        // A new VM needs KVM's supported CPUID (a restored one brings its own): fetch it
        // while the rest starts.
        vmm::arch::cpuid::prefetch_supported();
    }
    if vmm::vstate::vm::host_is_pvm() {
        log::info!(
            "host KVM is PVM: guest kernel-mode code is emulated (slow, and some instructions \
             cannot run there); guest user-mode code runs natively"
        );
    }
    let term = supervisor::install_term_handler().map_err(|e| format!("signals: {e}"))?;
    let events = EventLoop::start().map_err(|e| e.to_string())?;
    let vm_id = args.id.clone();
    let vmm = Arc::new(Vmm::new(args.id, events).map_err(|e| e.to_string())?);
    vmm.set_self(Arc::downgrade(&vmm));
    vmm::snapshots::schedule::spawn(Arc::downgrade(&vmm), vmm.scheduler.clone())
        .map_err(|e| format!("cannot start the snapshot thread: {e}"))?;
    let gdb = match (&args.gdb_socket, args.gdb_tcp) {
        (Some(path), _) => Some(vmm::gdb::GdbEndpoint::Unix(path.clone())),
        (None, Some(addr)) => Some(vmm::gdb::GdbEndpoint::Tcp(addr)),
        (None, None) => None,
    };
    if let Some(endpoint) = gdb {
        vmm.start_gdb_server(endpoint).map_err(|e| e.message)?;
    }
    let api = match &args.api_sock {
        Some(path) => Some(
            server::start(path, vmm.clone() as Arc<dyn VmmControl>)
                .map_err(|e| format!("API socket {}: {e}", path.display()))?,
        ),
        None => None,
    };
    if let Some(path) = &args.config_file {
        let config = load_config(path)?;
        vmm.set_config(config).map_err(|e| e.message)?;
        vmm.start().map_err(|e| e.message)?;
    }
    if let Some(dir) = &args.restore {
        let options = vmm::snapshots::restore::RestoreOptions {
            serial_output: args.serial_output.clone(),
            serial_input: args.serial_input.clone(),
            nets: args.nets.clone(),
            paused: false,
            replay: None,
        };
        let (config, running) =
            vmm::snapshots::restore::restore(dir, &vm_id, &options).map_err(|e| e.to_string())?;
        vmm.start_restored(config, running, false)
            .map_err(|e| e.message)?;
    }
    if let Some(path) = &args.replay {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read replay file {}: {e}", path.display()))?;
        let request: vmm::api::ReplayStart = serde_json::from_str(&text)
            .map_err(|e| format!("replay file {}: {e}", path.display()))?;
        vmm.start_replay(request).map_err(|e| e.message)?;
    }
    let outcome = supervisor::run(&vmm, &term, api.is_none());
    if let Some(api) = api {
        api.shutdown();
    }
    Ok(match outcome {
        Outcome::Terminated => ExitCode::SUCCESS,
        Outcome::VmStopped(reason) if reason.is_clean() => ExitCode::SUCCESS,
        Outcome::VmStopped(reason) => {
            eprintln!("reprise: {reason}");
            ExitCode::FAILURE
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::new()
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| args.log_level.clone()))
        // gdbstub logs every packet it does not implement at info level.
        .filter_module("gdbstub", log::LevelFilter::Warn)
        .format_timestamp_micros()
        .init();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reprise: {e}");
            ExitCode::FAILURE
        }
    }
}
