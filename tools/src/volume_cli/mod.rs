//! `reprise-volume`: block-store volumes for humans — create, inspect, snapshot, clone,
//! resize, limit, import/export raw images, check, and serve over NBD.

pub mod nbd_export;
pub mod size;
pub mod transfer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blockstore::limits::{Bucket, Limits};
use blockstore::nbd::NbdServer;
use blockstore::volume::{CreateOptions, ResizeOptions, Volume};
use clap::{Args, Parser, Subcommand};

use self::nbd_export::VolumeExport;
use self::size::{human, parse_size};

/// Block-store volumes: a volume is a directory `<store>/volumes/<name>`; its layers live in
/// `<store>/layers/` and are shared with its clones.
#[derive(Parser, Debug)]
#[command(name = "reprise-volume", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty (sparse) volume.
    Create {
        /// Volume directory, e.g. store/volumes/db.
        volume: PathBuf,
        /// Size (multiple of 512; K/M/G/T suffixes).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Chunk size (power of two, 4K..4M; default 64K).
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<u64>,
    },
    /// Show a volume: size, layers, snapshots, limits, space used.
    Info {
        /// Volume directory.
        volume: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Take a point-in-time snapshot (the volume must not be open by a VMM; use the VMM's API then).
    Snapshot {
        /// Volume directory.
        volume: PathBuf,
        /// Snapshot name.
        name: String,
    },
    /// List snapshots.
    Snapshots {
        /// Volume directory.
        volume: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot (data other snapshots or clones need is kept).
    DeleteSnapshot {
        /// Volume directory.
        volume: PathBuf,
        /// Snapshot name.
        name: String,
    },
    /// Create a copy-on-write clone of a snapshot (works while the source is in use).
    Clone {
        /// Source volume directory.
        source: PathBuf,
        /// Snapshot of the source.
        snapshot: String,
        /// New volume directory.
        target: PathBuf,
    },
    /// Grow (or, explicitly, shrink) a volume.
    Resize {
        /// Volume directory.
        volume: PathBuf,
        /// New size (K/M/G/T suffixes).
        #[arg(value_parser = parse_size)]
        size: u64,
        /// Permit a smaller size.
        #[arg(long)]
        allow_shrink: bool,
        /// With --allow-shrink: drop data beyond the new size.
        #[arg(long)]
        discard_data: bool,
    },
    /// Set the volume's stored I/O limits (applied when a VMM attaches it).
    Limits(LimitArgs),
    /// Create a volume from a raw image.
    ImportRaw {
        /// Raw image file.
        image: PathBuf,
        /// New volume directory.
        volume: PathBuf,
        /// Chunk size (default 64K).
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Write a volume (or a snapshot) to a raw image.
    ExportRaw {
        /// Volume directory.
        volume: PathBuf,
        /// Raw image to create.
        image: PathBuf,
        /// Export this snapshot instead of the current contents.
        #[arg(long)]
        snapshot: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a volume's manifest, layer indexes and (with --data) every chunk checksum.
    Check {
        /// Volume directory.
        volume: PathBuf,
        /// Verify every chunk's checksum too.
        #[arg(long)]
        data: bool,
        /// Fix what can be fixed without losing data.
        #[arg(long)]
        repair: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Serve volumes over NBD until interrupted. Each VOLUME is a directory, optionally
    /// `DIR@SNAPSHOT`; the export name is the volume name (`name@snapshot` for snapshots).
    ServeNbd {
        /// Volumes to export.
        #[arg(required = true)]
        volumes: Vec<String>,
        /// Unix socket to listen on.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// TCP address to listen on (loopback unless --allow-remote).
        #[arg(long)]
        tcp: Option<SocketAddr>,
        /// Permit a non-loopback TCP address.
        #[arg(long)]
        allow_remote: bool,
        /// Export read-only.
        #[arg(long)]
        read_only: bool,
    },
}

/// Limit flags: RATE or RATE:BURST (K/M/G suffixes for bytes).
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Volume directory.
    pub volume: PathBuf,
    /// Operations/s, reads and writes together.
    #[arg(long, value_parser = parse_bucket)]
    pub iops: Option<Bucket>,
    /// Read operations/s.
    #[arg(long, value_parser = parse_bucket)]
    pub read_iops: Option<Bucket>,
    /// Write operations/s.
    #[arg(long, value_parser = parse_bucket)]
    pub write_iops: Option<Bucket>,
    /// Bytes/s, reads and writes together.
    #[arg(long, value_parser = parse_bucket)]
    pub bps: Option<Bucket>,
    /// Bytes read/s.
    #[arg(long, value_parser = parse_bucket)]
    pub read_bps: Option<Bucket>,
    /// Bytes written/s.
    #[arg(long, value_parser = parse_bucket)]
    pub write_bps: Option<Bucket>,
    /// Remove every limit.
    #[arg(long)]
    pub none: bool,
}

/// Parses `RATE` or `RATE:BURST`.
pub fn parse_bucket(text: &str) -> Result<Bucket, String> {
    let (rate, burst) = match text.split_once(':') {
        Some((r, b)) => (parse_size(r)?, parse_size(b)?),
        None => (parse_size(text)?, 0),
    };
    if rate == 0 {
        return Err(format!("{text:?}: the rate must be at least 1"));
    }
    Ok(Bucket { rate, burst })
}

fn chunk(option: Option<u64>) -> Result<u32, String> {
    let c = option.unwrap_or(u64::from(CreateOptions::default().chunk_size));
    u32::try_from(c).map_err(|_| format!("chunk size {c} is too large"))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn open_export(spec: &str, read_only: bool) -> Result<(String, VolumeExport), String> {
    let (dir, snapshot) = match spec.rsplit_once('@') {
        Some((d, s)) if !s.is_empty() && !s.contains('/') => (d, Some(s)),
        _ => (spec, None),
    };
    let dir = Path::new(dir);
    let volume = match snapshot {
        Some(s) => Volume::open_snapshot(dir, s),
        None if read_only => Volume::open_read_only(dir),
        None => Volume::open(dir),
    }
    .map_err(|e| e.to_string())?;
    let name = match snapshot {
        Some(s) => format!("{}@{s}", volume.name()),
        None => volume.name().to_string(),
    };
    Ok((name, VolumeExport(volume)))
}

fn serve(
    volumes: &[String],
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    allow_remote: bool,
    read_only: bool,
) -> Result<(), String> {
    if socket.is_none() && tcp.is_none() {
        return Err("give --socket PATH and/or --tcp 127.0.0.1:PORT".into());
    }
    let mut builder = NbdServer::builder().allow_remote(allow_remote);
    let mut names = Vec::new();
    let mut exports = Vec::new();
    for spec in volumes {
        let (name, export) = open_export(spec, read_only)?;
        let export = Arc::new(Mutex::new(export));
        builder = builder.export(&name, export.clone());
        exports.push(export);
        names.push(name);
    }
    if let [only] = names.as_slice() {
        builder = builder.default_export(only);
    }
    if let Some(path) = &socket {
        builder = builder.unix_socket(path);
    }
    if let Some(addr) = tcp {
        builder = builder.tcp(addr);
    }
    let server = builder.start().map_err(|e| e.to_string())?;
    if let Some(path) = &socket {
        for n in &names {
            println!("serving nbd+unix:///{n}?socket={}", path.display());
        }
    }
    for addr in server.tcp_addrs() {
        for n in &names {
            println!("serving nbd://{addr}/{n}");
        }
    }
    wait_for_termination();
    server.shutdown();
    // Writes a client did not flush still become durable on an orderly stop.
    for export in exports {
        let mut e = export.lock().unwrap_or_else(|p| p.into_inner());
        if !e.0.read_only() {
            e.0.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_termination() {
    let mut set: libc::sigset_t = unsafe_sigset();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `set` is a valid, initialised signal set.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    // SAFETY: blocks the two signals in this thread so that sigwait receives them.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let mut sig = 0;
    // SAFETY: waits for one of the blocked signals; `sig` receives its number.
    unsafe { libc::sigwait(&set, &mut sig) };
}

fn unsafe_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, String> {
    match cli.command {
        Command::Create {
            volume,
            size,
            chunk_size,
        } => {
            let v = Volume::create(
                &volume,
                &CreateOptions {
                    size,
                    chunk_size: chunk(chunk_size)?,
                },
            )
            .map_err(|e| e.to_string())?;
            println!(
                "created {} ({}, chunk {})",
                volume.display(),
                human(v.size()),
                human(u64::from(v.chunk_size()))
            );
        }
        Command::Info { volume, json } => {
            let info = Volume::open_read_only(&volume)
                .map_err(|e| e.to_string())?
                .info();
            if json {
                print_json(&info)?;
            } else {
                println!("volume {} ({})", info.name, info.dir.display());
                println!(
                    "  size {} ({} bytes), chunk {}",
                    human(info.size),
                    info.size,
                    human(u64::from(info.chunk_size))
                );
                println!(
                    "  allocated {} in {} chunks",
                    human(info.allocated_bytes),
                    info.allocated_chunks
                );
                println!("  layers ({}), bottom to top:", info.layers.len());
                for l in &info.layers {
                    let head = if l.head { " (head)" } else { "" };
                    println!(
                        "    {}{head}: {} data chunks, {} zero chunks, {} on disk",
                        l.id,
                        l.data_chunks,
                        l.zero_chunks,
                        human(l.bytes_on_disk)
                    );
                }
                println!(
                    "  snapshots: {}",
                    info.snapshots
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if !info.limits.is_unlimited() {
                    println!(
                        "  limits: {}",
                        serde_json::to_string(&info.limits).unwrap_or_default()
                    );
                }
            }
        }
        Command::Snapshot { volume, name } => {
            let s = Volume::open(&volume)
                .map_err(|e| e.to_string())?
                .snapshot(&name)
                .map_err(|e| e.to_string())?;
            println!(
                "snapshot {} of {} ({})",
                s.name,
                volume.display(),
                human(s.size)
            );
        }
        Command::Snapshots { volume, json } => {
            let list = Volume::open_read_only(&volume)
                .map_err(|e| e.to_string())?
                .snapshots();
            if json {
                print_json(&list)?;
            } else {
                for s in list {
                    println!("{}\t{}\t{}", s.name, s.created, human(s.size));
                }
            }
        }
        Command::DeleteSnapshot { volume, name } => {
            Volume::open(&volume)
                .map_err(|e| e.to_string())?
                .delete_snapshot(&name)
                .map_err(|e| e.to_string())?;
            println!("deleted snapshot {name} of {}", volume.display());
        }
        Command::Clone {
            source,
            snapshot,
            target,
        } => {
            let v = Volume::clone_from_snapshot(&source, &snapshot, &target)
                .map_err(|e| e.to_string())?;
            println!(
                "cloned {}@{snapshot} to {} ({})",
                source.display(),
                target.display(),
                human(v.size())
            );
        }
        Command::Resize {
            volume,
            size,
            allow_shrink,
            discard_data,
        } => {
            let mut v = Volume::open(&volume).map_err(|e| e.to_string())?;
            v.resize(
                size,
                &ResizeOptions {
                    allow_shrink,
                    discard_data,
                },
            )
            .map_err(|e| e.to_string())?;
            println!("{} is now {}", volume.display(), human(v.size()));
        }
        Command::Limits(args) => {
            let limits = if args.none {
                Limits::default()
            } else {
                Limits {
                    iops: args.iops,
                    read_iops: args.read_iops,
                    write_iops: args.write_iops,
                    bps: args.bps,
                    read_bps: args.read_bps,
                    write_bps: args.write_bps,
                }
            };
            let mut v = Volume::open(&args.volume).map_err(|e| e.to_string())?;
            v.set_limits(limits).map_err(|e| e.to_string())?;
            println!(
                "limits of {}: {}",
                args.volume.display(),
                serde_json::to_string(&limits).unwrap_or_default()
            );
        }
        Command::ImportRaw {
            image,
            volume,
            chunk_size,
            quiet,
        } => {
            let stats = transfer::import_raw(&image, &volume, chunk(chunk_size)?, !quiet)?;
            println!(
                "imported {} into {} ({} of data)",
                image.display(),
                volume.display(),
                human(stats.written)
            );
        }
        Command::ExportRaw {
            volume,
            image,
            snapshot,
            quiet,
        } => {
            let stats = transfer::export_raw(&volume, snapshot.as_deref(), &image, !quiet)?;
            println!(
                "exported {} to {} ({} of data)",
                volume.display(),
                image.display(),
                human(stats.written)
            );
        }
        Command::Check {
            volume,
            data,
            repair,
            json,
        } => {
            let repaired = if repair {
                Some(Volume::repair(&volume).map_err(|e| e.to_string())?)
            } else {
                None
            };
            // After a repair, check again: the verdict is about the volume as it is now.
            let report = Volume::check(&volume, data).map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({"repair": repaired, "check": report}))?;
            } else {
                for r in repaired.iter().flat_map(|r| &r.repaired) {
                    println!("repaired: {r}");
                }
                for p in &report.problems {
                    let fix = if p.repairable {
                        " (repairable with --repair)"
                    } else {
                        ""
                    };
                    println!("problem: {}: {}{fix}", p.file.display(), p.problem);
                }
                let verdict = if report.is_clean() {
                    "clean"
                } else {
                    "PROBLEMS FOUND"
                };
                println!(
                    "{}: {} layers checked, {} chunks verified, {verdict}",
                    volume.display(),
                    report.layers_checked,
                    report.chunks_verified
                );
            }
            return Ok(if report.is_clean() { 0 } else { 1 });
        }
        Command::ServeNbd {
            volumes,
            socket,
            tcp,
            allow_remote,
            read_only,
        } => {
            serve(&volumes, socket, tcp, allow_remote, read_only)?;
        }
    }
    Ok(0)
}
