//! `reprisectl replay`: start a clone that replays a recording, drive it, and report on it
//! (the `/replay` routes).

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use vmm::api::{
    NetOverride, ReplayPatch, ReplayRestart, ReplayRunState, ReplayRunUntil, ReplayStart,
    ReplayStep,
};

use super::{absolute, print_json, print_line, CtlError};
use crate::api_client::Client;

/// `replay` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Restore a snapshot as a clone and replay a capture into it, in a VMM where nothing
    /// was configured (PUT /replay).
    Start(Box<ReplayStartArgs>),
    /// Show the replay's state, position, checks, timing and first divergence (GET /replay).
    Status {
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Hold the replay and pause the clone.
    Pause,
    /// Run the replay on (a pending step or run-until target is dropped).
    Resume,
    /// Change the replay's pace from the next input on.
    Speed {
        /// `max`, `step` (hold; go on with `replay step`), or a factor from 0.1 to 100
        /// (`2` or `2x`: twice as fast as recorded).
        #[arg(value_parser = parse_speed)]
        speed: String,
    },
    /// Deliver N more inputs, then hold the replay.
    Step {
        /// Inputs to deliver.
        #[arg(default_value_t = 1, value_parser = parse_events)]
        events: u64,
    },
    /// Run the replay until an input, a time or the next divergence, then hold it.
    RunUntil(RunUntilArgs),
    /// Tear the clone down and clone again, changing what is given (the rest stays as in
    /// the running replay).
    Restart(Box<ReplayRestartArgs>),
    /// List the first divergences between the clone and the recording.
    Divergences {
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// List the events the replay injected, dropped or changed.
    Injections {
        /// Print the API's JSON instead of one line per event.
        #[arg(long)]
        json: bool,
    },
}

/// `replay start`.
#[derive(Debug, Args)]
pub struct ReplayStartArgs {
    /// The recording's directory, or one buffer's; a relative path is made absolute.
    #[arg(long, value_name = "DIR")]
    pub capture: PathBuf,
    /// The snapshot store the recording's snapshots are in; a relative path is made
    /// absolute.
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: PathBuf,
    /// Where to start, and which inputs to replay.
    #[command(flatten)]
    pub what: ReplayWhat,
    /// Seeded, reproducible faults in the clone's frames and block requests, e.g.
    /// `seed=7,drop=0.05` (keys: seed, drop, dup, corrupt, delay, reorder, extra,
    /// blk-error, blk-error-sectors, blk-latency).
    #[arg(long, value_name = "SPEC", value_parser = parse_entropy)]
    pub entropy: Option<String>,
    /// Also check every block completion against the recording.
    #[arg(long)]
    pub strict: bool,
    /// Hold the replay and pause the clone at the first divergence.
    #[arg(long)]
    pub until_divergence: bool,
    /// Leave the clone paused and the replay held (go on with `replay resume`, `step` or
    /// `run-until`).
    #[arg(long)]
    pub paused: bool,
    /// Leave the clone paused and the replay held until a debugger attaches (the VMM
    /// needs `--gdb-socket`/`--gdb-tcp` or `PUT /debugger`) and continues.
    #[arg(long)]
    pub wait_for_debugger: bool,
    /// Compare only these output classes (repeatable; default all).
    #[arg(long = "check", value_name = "CLASS", value_parser = ["net", "blk", "serial"])]
    pub checks: Vec<String>,
    /// Name of the clone, for its volume clones (default: the instance id).
    #[arg(long, value_name = "ID")]
    pub vm_id: Option<String>,
    /// The clone's console output instead of the saved one: stdout, null or file:PATH.
    #[arg(long, value_name = "OUT")]
    pub serial_output: Option<String>,
    /// Also attach an interface to a host backend, to poke the clone by hand (repeatable):
    /// IFACE=tap:NAME[,mac=MAC] or IFACE=dgram:LOCAL_PATH:PEER_PATH[,mac=MAC].
    #[arg(long = "live-net", value_name = "IFACE=SPEC", value_parser = parse_live_net)]
    pub live_nets: Vec<NetOverride>,
}

/// The snapshot, buffer, selection, rules and speed of `replay start` and `replay restart`.
#[derive(Debug, Args)]
pub struct ReplayWhat {
    /// Start from this snapshot (default for start: the capture's last).
    #[arg(long, value_name = "ID", conflicts_with = "before")]
    pub snapshot: Option<String>,
    /// Start from the last snapshot taken at or before this VM time, e.g. 12s or 1500ms.
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub before: Option<String>,
    /// The buffer to play, when the recording has several.
    #[arg(long, value_name = "NAME")]
    pub buffer: Option<String>,
    /// The part of the capture after the snapshot: all (default), seq:A-B, time:A-B,
    /// duration:D, percent:A-B, first-third, middle-third or last-third.
    #[arg(long, value_name = "SEL", value_parser = parse_selection)]
    pub select: Option<String>,
    /// An include/exclude rule for the inputs (repeatable), e.g. "exclude src-ip=10.0.0.3"
    /// or "include class=net port=53".
    #[arg(long = "filter", value_name = "RULE")]
    pub filters: Vec<String>,
    /// `max` (default), `step`, or a factor from 0.1 to 100.
    #[arg(long, value_name = "S", value_parser = parse_speed)]
    pub speed: Option<String>,
}

/// `replay run-until`: exactly one target.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .args(["event", "time", "divergence"])
        .required(true)
))]
pub struct RunUntilArgs {
    /// Hold when input K is next (K inputs behind).
    #[arg(long, value_name = "K")]
    pub event: Option<u64>,
    /// Hold before the first input recorded this long or more after the snapshot, e.g. 2s.
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub time: Option<String>,
    /// Hold at the next divergence.
    #[arg(long)]
    pub divergence: bool,
}

/// `replay restart`.
#[derive(Debug, Args)]
pub struct ReplayRestartArgs {
    /// What to change.
    #[command(flatten)]
    pub what: ReplayWhat,
    /// Drop every include/exclude rule.
    #[arg(long, conflicts_with = "filters")]
    pub no_filters: bool,
    /// Another fault-injection plan (see `replay start --entropy`).
    #[arg(long, value_name = "SPEC", value_parser = parse_entropy)]
    pub entropy: Option<String>,
    /// Inject no faults.
    #[arg(long, conflicts_with = "entropy")]
    pub no_entropy: bool,
    /// Leave the new clone paused and its replay held.
    #[arg(long)]
    pub paused: bool,
}

/// Parses a number of inputs to step: at least 1.
pub fn parse_events(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("step at least 1 input".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of inputs")),
    }
}

/// Checks a speed as the VMM does.
pub fn parse_speed(text: &str) -> Result<String, String> {
    replay::player::Speed::from_str(text).map(|_| text.to_string())
}

/// Checks a duration (`500ms`, `2s`, `1m30s`) as the VMM does.
pub fn parse_duration(text: &str) -> Result<String, String> {
    replay::player::parse_duration_ns(text).map(|_| text.to_string())
}

/// Checks a selection's syntax as the VMM does.
pub fn parse_selection(text: &str) -> Result<String, String> {
    replay::player::Selection::from_str(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a fault-injection plan as the VMM does.
pub fn parse_entropy(text: &str) -> Result<String, String> {
    replay::player::EntropySpec::from_str(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// Parses `--live-net` as `snapshot load --net`, refusing `detach`.
pub fn parse_live_net(text: &str) -> Result<NetOverride, String> {
    let net = NetOverride::parse(text)?;
    if net.detach {
        return Err(format!(
            "{text}: a live interface needs a backend (tap:NAME or dgram:LOCAL:PEER)"
        ));
    }
    Ok(net)
}

/// `value` as JSON without its null fields: what the request leaves unset.
fn body<T: Serialize>(value: &T) -> Value {
    let mut body = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    body
}

/// The `PUT /replay` body `args` describe.
pub fn start_request(args: &ReplayStartArgs) -> Result<Value, CtlError> {
    let live_nets = args
        .live_nets
        .iter()
        .cloned()
        .map(|mut n| {
            n.socket_path = n.socket_path.as_deref().map(absolute).transpose()?;
            n.peer_socket_path = n.peer_socket_path.as_deref().map(absolute).transpose()?;
            Ok(n)
        })
        .collect::<Result<Vec<_>, CtlError>>()?;
    let what = &args.what;
    Ok(body(&ReplayStart {
        capture_dir: absolute(&args.capture)?,
        buffer: what.buffer.clone(),
        snapshot_dir: absolute(&args.snapshot_dir)?,
        snapshot_id: what.snapshot.clone(),
        before: what.before.clone(),
        selection: what.select.clone(),
        filters: what.filters.clone(),
        speed: what.speed.clone(),
        entropy: args.entropy.clone(),
        strict: args.strict,
        until_divergence: args.until_divergence,
        paused: args.paused,
        wait_for_debugger: args.wait_for_debugger,
        check: (!args.checks.is_empty()).then(|| args.checks.clone()),
        vm_id: args.vm_id.clone(),
        serial_output: args.serial_output.clone(),
        live_nets,
    }))
}

/// The `PUT /replay/restart` body `args` describe: only what changes.
pub fn restart_request(args: &ReplayRestartArgs) -> Value {
    let what = &args.what;
    let filters = if args.no_filters {
        Some(Vec::new())
    } else {
        (!what.filters.is_empty()).then(|| what.filters.clone())
    };
    let entropy = if args.no_entropy {
        Some(String::new())
    } else {
        args.entropy.clone()
    };
    body(&ReplayRestart {
        snapshot_id: what.snapshot.clone(),
        before: what.before.clone(),
        buffer: what.buffer.clone(),
        selection: what.select.clone(),
        filters,
        speed: what.speed.clone(),
        entropy,
        paused: args.paused.then_some(true),
    })
}

/// The `PUT /replay/run-until` body: the one target given.
pub fn run_until_request(args: &RunUntilArgs) -> Value {
    let mut until = body(&ReplayRunUntil {
        event: args.event,
        time: args.time.clone(),
        divergence: args.divergence,
    });
    if !args.divergence {
        if let Some(fields) = until.as_object_mut() {
            fields.remove("divergence");
        }
    }
    until
}

/// The method, path and body of a request that changes the replay; `None` for the
/// subcommands that only read.
pub fn change_request(command: &ReplayCommand) -> Result<Option<(&str, &str, Value)>, CtlError> {
    let patch = |state, speed: Option<&str>| {
        body(&ReplayPatch {
            state,
            speed: speed.map(str::to_string),
        })
    };
    Ok(Some(match command {
        ReplayCommand::Start(args) => ("PUT", "/replay", start_request(args)?),
        ReplayCommand::Pause => (
            "PATCH",
            "/replay",
            patch(Some(ReplayRunState::Paused), None),
        ),
        ReplayCommand::Resume => (
            "PATCH",
            "/replay",
            patch(Some(ReplayRunState::Running), None),
        ),
        ReplayCommand::Speed { speed } => ("PATCH", "/replay", patch(None, Some(speed))),
        ReplayCommand::Step { events } => {
            ("PUT", "/replay/step", body(&ReplayStep { events: *events }))
        }
        ReplayCommand::RunUntil(args) => ("PUT", "/replay/run-until", run_until_request(args)),
        ReplayCommand::Restart(args) => ("PUT", "/replay/restart", restart_request(args)),
        ReplayCommand::Status { .. }
        | ReplayCommand::Divergences { .. }
        | ReplayCommand::Injections { .. } => return Ok(None),
    }))
}

/// Runs a `replay` subcommand.
pub fn run(client: &Client, command: ReplayCommand, out: &mut dyn Write) -> Result<(), CtlError> {
    if let Some((method, path, body)) = change_request(&command)? {
        client.call(method, path, Some(&body))?;
        return Ok(());
    }
    let (path, json_out, summary): (_, _, fn(&Value) -> String) = match command {
        ReplayCommand::Status { json } => ("/replay", json, status_text),
        ReplayCommand::Divergences { json } => ("/replay/divergences", json, divergences_text),
        ReplayCommand::Injections { json } => ("/replay/injections", json, injections_text),
        _ => return Ok(()),
    };
    let answer = client.call("GET", path, None)?;
    if json_out {
        print_json(out, &answer)
    } else {
        print_line(out, &summary(&answer.unwrap_or(Value::Null)))
    }
}

/// A string field, or `?`.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// A number field, or `?`.
fn number(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        _ => "?".to_string(),
    }
}

/// Nanoseconds as milliseconds.
fn ms(ns: &Value) -> String {
    match ns.as_i64() {
        Some(ns) => format!("{:.3} ms", ns as f64 / 1e6),
        None => "? ms".to_string(),
    }
}

/// `#INDEX (seq SEQ) SOURCE: WHAT` for a `Delivered`.
fn input_text(input: &Value) -> String {
    format!(
        "#{} (seq {}) {}: {}",
        number(&input["index"]),
        number(&input["seq"]),
        text(&input["source"]),
        text(&input["what"])
    )
}

/// A divergence: a summary line, then what was expected and produced and the detail,
/// indented by `indent`.
fn divergence_lines(d: &Value, indent: &str) -> Vec<String> {
    let mut head = format!("{} on {}", text(&d["kind"]), text(&d["source"]));
    if d["output_index"].is_number() {
        head.push_str(&format!(" at output {}", number(&d["output_index"])));
    }
    if d["seq"].is_number() {
        head.push_str(&format!(" (seq {})", number(&d["seq"])));
    }
    let mut lines = vec![head];
    for (label, key) in [("expected:", "expected"), ("actual:  ", "actual")] {
        let value = d[key].as_str().unwrap_or("(nothing)");
        lines.push(format!("{indent}{label} {value}"));
    }
    if let Some(detail) = d["detail"].as_str() {
        lines.extend(
            detail
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{indent}{l}")),
        );
    }
    lines
}

/// A few lines summarising `GET /replay`.
pub fn status_text(status: &Value) -> String {
    let mut state = format!("replay: {}", text(&status["state"]));
    if let Some(why) = status["paused_by"].as_str() {
        state.push_str(&format!(" ({why})"));
    }
    let mut position = format!(
        "  position {}/{}",
        number(&status["position"]),
        number(&status["total"])
    );
    if status["next"].is_object() {
        position.push_str(&format!(", next {}", input_text(&status["next"])));
    }
    let check = &status["check"];
    let drift = &status["drift"];
    let mut lines = vec![
        state,
        format!(
            "  snapshot {}, buffer {}, selection {}, speed {}",
            text(&status["snapshot"]),
            text(&status["buffer"]),
            text(&status["selection"]),
            text(&status["speed"])
        ),
        position,
        format!(
            "  inputs: {} delivered, {} filtered; {} injected",
            number(&status["delivered"]),
            number(&status["filtered"]),
            number(&status["injected"])
        ),
        format!(
            "  checks: {} of {} expected outputs checked, {} matched, {} divergences",
            number(&check["checked"]),
            number(&check["expected"]),
            number(&check["matched"]),
            number(&check["divergences"])
        ),
        format!(
            "  drift: last {}, latest {}, earliest {}, {} forced",
            ms(&drift["last_ns"]),
            ms(&drift["max_late_ns"]),
            ms(&drift["max_early_ns"]),
            number(&drift["forced"])
        ),
    ];
    if status["first_divergence"].is_object() {
        let mut divergence = divergence_lines(&status["first_divergence"], "    ");
        divergence[0] = format!("  first divergence: {}", divergence[0]);
        lines.extend(divergence);
    }
    for mismatch in status["block_mismatches"].as_array().into_iter().flatten() {
        lines.push(format!("  block mismatch: {}", text(mismatch)));
    }
    if status["guest_stopped"].is_object() {
        let stop = &status["guest_stopped"];
        let after = match &stop["after"] {
            input @ Value::Object(_) => format!("after input {}", input_text(input)),
            _ => "before any input".to_string(),
        };
        lines.push(format!(
            "  guest stopped: {} ({after})",
            text(&stop["reason"])
        ));
    }
    lines.join("\n")
}

/// Each divergence of `GET /replay/divergences`, numbered.
pub fn divergences_text(list: &Value) -> String {
    let divergences = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if divergences.is_empty() {
        return "no divergences".to_string();
    }
    let mut lines = Vec::new();
    for (i, d) in divergences.iter().enumerate() {
        let mut block = divergence_lines(d, "    ");
        block[0] = format!("{}. {}", i + 1, block[0]);
        lines.extend(block);
    }
    lines.join("\n")
}

/// One line per event of `GET /replay/injections`.
pub fn injections_text(list: &Value) -> String {
    let events = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if events.is_empty() {
        return "no injected events".to_string();
    }
    events
        .iter()
        .map(|e| {
            format!(
                "{} #{}: {}",
                text(&e["stream"]),
                number(&e["position"]),
                text(&e["what"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<ReplayCommand, clap::Error> {
        let cli = Cli::try_parse_from([&["reprisectl", "replay"], args].concat())?;
        match cli.command {
            Command::Replay(command) => Ok(command),
            other => panic!("not a replay command: {other:?}"),
        }
    }

    /// The request a command line sends, checked to be a valid body of type `T`.
    fn request<T: DeserializeOwned>(args: &[&str]) -> (String, String, Value, T) {
        let command = parse(args).unwrap();
        let (method, path, body) = change_request(&command).unwrap().expect("a change");
        let typed = serde_json::from_value(body.clone()).expect("the API accepts the body");
        (method.to_string(), path.to_string(), body, typed)
    }

    #[test]
    fn start_sends_only_what_is_given() {
        let (method, path, body, start) =
            request::<ReplayStart>(&["start", "--capture", "/c", "--snapshot-dir", "/s"]);
        assert_eq!((method.as_str(), path.as_str()), ("PUT", "/replay"));
        assert_eq!(body, json!({"capture_dir": "/c", "snapshot_dir": "/s"}));
        assert_eq!(start.check, None);

        let (_, _, body, _) = request::<ReplayStart>(&[
            "start",
            "--capture",
            "rec",
            "--snapshot-dir",
            "/s",
            "--before",
            "12s",
            "--buffer",
            "client7",
            "--select",
            "time:1s-5s",
            "--filter",
            "exclude src-ip=10.0.0.3",
            "--filter",
            "!class=serial",
            "--speed",
            "2x",
            "--entropy",
            "seed=7,drop=0.05",
            "--strict",
            "--until-divergence",
            "--paused",
            "--check",
            "net",
            "--check",
            "serial",
            "--vm-id",
            "clone1",
            "--serial-output",
            "null",
            "--live-net",
            "net0=dgram:/run/a:/run/b",
        ]);
        let capture = std::path::absolute("rec").unwrap();
        assert_eq!(
            body,
            json!({
                "capture_dir": capture,
                "buffer": "client7",
                "snapshot_dir": "/s",
                "before": "12s",
                "selection": "time:1s-5s",
                "filters": ["exclude src-ip=10.0.0.3", "!class=serial"],
                "speed": "2x",
                "entropy": "seed=7,drop=0.05",
                "strict": true,
                "until_divergence": true,
                "paused": true,
                "check": ["net", "serial"],
                "vm_id": "clone1",
                "serial_output": "null",
                "live_nets": [{
                    "iface_id": "net0",
                    "socket_path": "/run/a",
                    "peer_socket_path": "/run/b",
                }],
            })
        );
    }

    #[test]
    fn start_arguments_are_checked() {
        let start = |extra: &[&str]| {
            parse(&[&["start", "--capture", "/c", "--snapshot-dir", "/s"], extra].concat())
        };
        assert!(start(&["--snapshot", "s1"]).is_ok());
        assert!(start(&["--snapshot", "s1", "--before", "3s"]).is_err());
        assert!(start(&["--before", "soon"]).is_err());
        assert!(start(&["--speed", "1000"]).is_err());
        assert!(start(&["--select", "middle"]).is_err());
        assert!(start(&["--entropy", "drop=2"]).is_err());
        assert!(start(&["--check", "marker"]).is_err());
        assert!(start(&["--live-net", "net0=detach"]).is_err());
        assert!(parse(&["start", "--capture", "/c"]).is_err());
    }

    #[test]
    fn pause_resume_and_speed_patch_the_replay() {
        let (method, path, body, _) = request::<ReplayPatch>(&["pause"]);
        assert_eq!(
            (method.as_str(), path.as_str(), body),
            ("PATCH", "/replay", json!({"state": "paused"}))
        );
        let (_, _, body, _) = request::<ReplayPatch>(&["resume"]);
        assert_eq!(body, json!({"state": "running"}));
        let (_, _, body, _) = request::<ReplayPatch>(&["speed", "0.5"]);
        assert_eq!(body, json!({"speed": "0.5"}));
        assert!(parse(&["speed", "warp"]).is_err());
        assert!(parse(&["speed"]).is_err());
    }

    #[test]
    fn step_and_run_until() {
        let (method, path, body, _) = request::<ReplayStep>(&["step"]);
        assert_eq!(
            (method.as_str(), path.as_str(), body),
            ("PUT", "/replay/step", json!({"events": 1}))
        );
        let (_, _, body, _) = request::<ReplayStep>(&["step", "25"]);
        assert_eq!(body, json!({"events": 25}));
        assert!(parse(&["step", "0"]).is_err());

        let (method, path, body, _) = request::<ReplayRunUntil>(&["run-until", "--event", "40"]);
        assert_eq!(
            (method.as_str(), path.as_str(), body),
            ("PUT", "/replay/run-until", json!({"event": 40}))
        );
        let (_, _, body, _) = request::<ReplayRunUntil>(&["run-until", "--time", "2.5s"]);
        assert_eq!(body, json!({"time": "2.5s"}));
        let (_, _, body, _) = request::<ReplayRunUntil>(&["run-until", "--divergence"]);
        assert_eq!(body, json!({"divergence": true}));
        assert!(parse(&["run-until"]).is_err(), "a target is required");
        assert!(parse(&["run-until", "--event", "4", "--divergence"]).is_err());
        assert!(parse(&["run-until", "--time", "later"]).is_err());
    }

    #[test]
    fn restart_sends_only_the_changes() {
        let (method, path, body, _) = request::<ReplayRestart>(&["restart"]);
        assert_eq!(
            (method.as_str(), path.as_str(), body),
            ("PUT", "/replay/restart", json!({}))
        );
        let (_, _, body, restart) = request::<ReplayRestart>(&[
            "restart",
            "--snapshot",
            "s2",
            "--select",
            "seq:100-200",
            "--filter",
            "exclude port=53",
            "--speed",
            "step",
            "--entropy",
            "seed=1,blk-error=0.1",
            "--buffer",
            "all",
            "--paused",
        ]);
        assert_eq!(
            body,
            json!({
                "snapshot_id": "s2",
                "buffer": "all",
                "selection": "seq:100-200",
                "filters": ["exclude port=53"],
                "speed": "step",
                "entropy": "seed=1,blk-error=0.1",
                "paused": true,
            })
        );
        assert_eq!(restart.before, None);
        let (_, _, body, _) = request::<ReplayRestart>(&[
            "restart",
            "--before",
            "8s",
            "--no-filters",
            "--no-entropy",
        ]);
        assert_eq!(body, json!({"before": "8s", "filters": [], "entropy": ""}));
        assert!(parse(&["restart", "--snapshot", "a", "--before", "1s"]).is_err());
        assert!(parse(&["restart", "--filter", "exclude port=53", "--no-filters"]).is_err());
        assert!(parse(&["restart", "--entropy", "seed=1", "--no-entropy"]).is_err());
    }

    #[test]
    fn reading_commands_send_nothing() {
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["divergences"],
            &["injections", "--json"],
        ] {
            assert!(change_request(&parse(args).unwrap()).unwrap().is_none());
        }
    }

    fn delivered(index: u64) -> replay::player::status::Delivered {
        replay::player::status::Delivered {
            index,
            seq: 100 + index,
            recorded_vm_time_ns: 2_000_000_000,
            clone_vm_time_ns: 2_000_400_000,
            source: "net0".into(),
            what: "udp 10.0.0.7:5000 > 10.0.0.2:53".into(),
        }
    }

    fn divergence() -> replay::player::Divergence {
        replay::player::Divergence {
            kind: "mismatch",
            output_index: Some(7),
            seq: Some(112),
            recorded_vm_time_ns: Some(2_011_000_000),
            clone_vm_time_ns: 2_011_500_000,
            source: "net0".into(),
            expected: Some("80 bytes".into()),
            actual: Some("96 bytes".into()),
            detail: "at byte 42:\n  expected 00 01\n  actual   00 02\n".into(),
        }
    }

    #[test]
    fn status_summary() {
        let status = replay::player::ReplayStatus {
            state: replay::player::ReplayState::Paused,
            paused_by: Some("divergence".into()),
            snapshot: "s3".into(),
            buffer: "all".into(),
            selection: "all".into(),
            speed: "max".into(),
            position: 12,
            total: 40,
            next: Some(delivered(12)),
            delivered: 12,
            filtered: 3,
            injected: 1,
            check: replay::player::CheckSummary {
                expected: 30,
                checked: 8,
                matched: 7,
                divergences: 1,
            },
            first_divergence: Some(divergence()),
            block_mismatches: vec![],
            drift: replay::player::status::Drift {
                last_ns: 250_000,
                max_late_ns: 1_200_000,
                max_early_ns: -3_000_000,
                forced: 2,
            },
            guest_stopped: Some(replay::player::status::GuestStop {
                reason: "guest reset".into(),
                after: Some(delivered(11)),
            }),
            last_delivered: vec![delivered(11)],
        };
        let text = status_text(&serde_json::to_value(&status).unwrap());
        let expected = "\
replay: paused (divergence)
  snapshot s3, buffer all, selection all, speed max
  position 12/40, next #12 (seq 112) net0: udp 10.0.0.7:5000 > 10.0.0.2:53
  inputs: 12 delivered, 3 filtered; 1 injected
  checks: 8 of 30 expected outputs checked, 7 matched, 1 divergences
  drift: last 0.250 ms, latest 1.200 ms, earliest -3.000 ms, 2 forced
  first divergence: mismatch on net0 at output 7 (seq 112)
    expected: 80 bytes
    actual:   96 bytes
    at byte 42:
      expected 00 01
      actual   00 02
  guest stopped: guest reset (after input #11 (seq 111) net0: udp 10.0.0.7:5000 > 10.0.0.2:53)";
        assert_eq!(text, expected);

        let running = replay::player::ReplayStatus {
            state: replay::player::ReplayState::Running,
            paused_by: None,
            next: None,
            first_divergence: None,
            guest_stopped: None,
            ..status
        };
        let text = status_text(&serde_json::to_value(&running).unwrap());
        assert!(text.starts_with("replay: running\n"), "{text}");
        assert!(!text.contains("divergence:") && !text.contains("guest stopped"));
        assert!(text.contains("position 12/40\n"), "{text}");
    }

    #[test]
    fn divergence_and_injection_lists() {
        assert_eq!(divergences_text(&json!([])), "no divergences");
        let unexpected = replay::player::Divergence {
            kind: "unexpected",
            output_index: None,
            seq: None,
            recorded_vm_time_ns: None,
            expected: None,
            detail: String::new(),
            ..divergence()
        };
        let list = serde_json::to_value(vec![divergence(), unexpected]).unwrap();
        let text = divergences_text(&list);
        assert!(text.starts_with("1. mismatch on net0 at output 7 (seq 112)\n"));
        assert!(text
            .ends_with("2. unexpected on net0\n    expected: (nothing)\n    actual:   96 bytes"));

        assert_eq!(injections_text(&json!([])), "no injected events");
        let list = json!([
            {"stream": "net", "position": 3, "what": "drop"},
            {"stream": "blk:root", "position": 4, "what": "blk#4 io-error sector 2048"},
        ]);
        assert_eq!(
            injections_text(&list),
            "net #3: drop\nblk:root #4: blk#4 io-error sector 2048"
        );
    }
}
