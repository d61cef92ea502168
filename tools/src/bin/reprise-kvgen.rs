//! `reprise-kvgen`: drive the test guest's `kv` workload (a key-value service over
//! UDP) through a TAP device with seeded PUT/GET/DEL traffic from several clients,
//! journal every request and reply, and check every reply against a model of the
//! store.
//!
//! Exit status: 0 if every reply was right and none went missing (in `--trigger-after`
//! mode: and the trigger sequence crashed the service), 1 if not, 2 on usage or setup
//! errors.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reprise_tools::kvgen::plan::{Mix, PlanSpec};
use reprise_tools::kvgen::{self, Config, Initial, Summary};

/// Seeded traffic for the test guest's kv service, checked against a model of the store.
#[derive(Debug, Parser)]
#[command(name = "reprise-kvgen", version)]
struct Cli {
    /// The service's address.
    #[arg(long, default_value = "10.0.0.2:7000")]
    target: SocketAddrV4,
    /// Source address of the random clients (repeat to spread them over several; each
    /// must be configured on an interface, e.g. the TAP's host side).
    #[arg(long = "source", default_value = "10.0.0.1")]
    sources: Vec<Ipv4Addr>,
    /// Random clients; client i sends from port PORT_BASE + i.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Source port of client 0.
    #[arg(long, default_value_t = 40000)]
    port_base: u16,
    /// Requests per second (0: each request waits for the previous reply).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Most requests awaiting a reply at once.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Random requests to send.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Seed: the same seed and options give the same requests in the same order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Size of the key space (keys are PREFIX00000, PREFIX00001, ...).
    #[arg(long, default_value_t = 200)]
    keys: u32,
    /// Prefix of the keys.
    #[arg(long, default_value = "key-")]
    key_prefix: String,
    /// Lengths of random values, MIN-MAX (at most 256; 256 triggers the service's bug).
    #[arg(long, default_value = "4-64", value_parser = parse_range)]
    value_len: (usize, usize),
    /// Operation mix as relative weights, e.g. put=40,get=40,del=20.
    #[arg(long, default_value = "put=40,get=40,del=20", value_parser = parse_mix)]
    mix: Mix,
    /// First GET every key of the key space (checks a reloaded store against --state-in).
    #[arg(long)]
    sweep: bool,
    /// After this many random requests, send the sequence that crashes the service from
    /// the trigger client, and end the run.
    #[arg(long)]
    trigger_after: Option<u64>,
    /// Address of the trigger client [default: the first source, port PORT_BASE + 1000].
    #[arg(long)]
    trigger_source: Option<SocketAddrV4>,
    /// End with QUIT, which stops the service (not in trigger mode).
    #[arg(long)]
    quit: bool,
    /// Milliseconds to wait for a reply before counting a request as lost.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Write every request, reply, loss and mismatch, and the summary, as JSON lines.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// The store's expected content at the start, as written by --state-out [default:
    /// empty].
    #[arg(long, conflicts_with = "unknown_start")]
    state_in: Option<PathBuf>,
    /// Assume nothing about the store's content at the start.
    #[arg(long)]
    unknown_start: bool,
    /// Write the expected content of the store at the end.
    #[arg(long)]
    state_out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let n = |t: &str| t.trim().parse::<usize>().map_err(|e| format!("{t:?}: {e}"));
    Ok((n(lo)?, n(hi)?))
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut mix = Mix {
        put: 0,
        get: 0,
        del: 0,
    };
    for part in s.split(',') {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|e| format!("{part:?}: {e}"))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "put" => mix.put = weight,
            "get" => mix.get = weight,
            "del" => mix.del = weight,
            other => return Err(format!("unknown operation {other:?} (put, get, del)")),
        }
    }
    Ok(mix)
}

fn print_summary(s: &Summary) {
    println!(
        "sent {} of {} requests in {:.2} s ({:.0}/s): {} replies, {} lost, {} unexpected",
        s.sent, s.planned, s.elapsed_s, s.sent_per_s, s.replies, s.lost, s.unexpected
    );
    let mut statuses: Vec<_> = s.statuses.iter().collect();
    statuses.sort();
    let statuses: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "replies: {}; verified {}, unverified {}, mismatches {}",
        statuses.join(" "),
        s.verified,
        s.unverified,
        s.mismatches.len()
    );
    println!(
        "latency: p50 {} us, p99 {} us, max {} us",
        s.latency.p50_us, s.latency.p99_us, s.latency.max_us
    );
    for m in s.mismatches.iter().take(20) {
        println!(
            "MISMATCH seq={} from {}: {:?} expected {:?}, got {:?}",
            m.seq, m.client, m.request, m.expected, m.got
        );
    }
    if s.mismatches.len() > 20 {
        println!("... {} more mismatches", s.mismatches.len() - 20);
    }
    if let Some(t) = &s.trigger {
        println!(
            "trigger from {}: sent={} blob_stored={} note_stored={} crashed={}",
            t.client, t.sent, t.blob_stored, t.note_stored, t.crashed
        );
    }
    println!("{}", if s.passed() { "PASSED" } else { "FAILED" });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let initial = if cli.unknown_start {
        Initial::Unknown
    } else if let Some(p) = &cli.state_in {
        match kvgen::read_state(p) {
            Ok(s) => Initial::State(s),
            Err(e) => {
                eprintln!("reprise-kvgen: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Initial::Empty
    };
    let cfg = Config {
        target: cli.target,
        sources: cli.sources,
        port_base: cli.port_base,
        trigger_source: cli.trigger_source,
        plan: PlanSpec {
            seed: cli.seed,
            clients: cli.clients,
            requests: cli.requests,
            keys: cli.keys,
            key_prefix: cli.key_prefix,
            value_len: cli.value_len,
            mix: cli.mix,
            sweep: cli.sweep,
            trigger_after: cli.trigger_after,
            quit: cli.quit,
        },
        rate: cli.rate,
        window: cli.window,
        timeout: Duration::from_millis(cli.timeout_ms),
        journal: cli.journal,
        initial,
    };
    let summary = match kvgen::run(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reprise-kvgen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(p) = &cli.state_out {
        if let Err(e) = kvgen::write_state(p, &summary.state) {
            eprintln!("reprise-kvgen: {e}");
            return ExitCode::from(2);
        }
    }
    if cli.json {
        let mut v = serde_json::to_value(&summary).unwrap_or_default();
        v["passed"] = serde_json::json!(summary.passed());
        println!("{v}");
    } else {
        print_summary(&summary);
    }
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
