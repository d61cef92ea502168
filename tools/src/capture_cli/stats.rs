//! `reprise-capture stats`.

use std::collections::BTreeMap;
use std::path::Path;

use replay::frame::FrameInfo;
use replay::EventKind;
use serde::Serialize;

use super::args::FilterArgs;
use super::describe::seconds;
use super::{one_buffer, print_json, report, CliError};

/// Events and payload bytes.
#[derive(Default, Serialize, Clone, Copy)]
struct Count {
    events: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.events += 1;
        self.bytes += bytes as u64;
    }
}

#[derive(Default, Serialize)]
struct Stats {
    buffer: Option<String>,
    events: u64,
    bytes: u64,
    first_vm_time_ns: Option<u64>,
    last_vm_time_ns: Option<u64>,
    duration_s: f64,
    events_per_s: f64,
    bytes_per_s: f64,
    by_kind: BTreeMap<String, Count>,
    by_source: BTreeMap<String, Count>,
    /// Frames sent from each MAC / IP address (as source).
    from_address: BTreeMap<String, Count>,
    /// Frames sent to each MAC / IP address (as destination).
    to_address: BTreeMap<String, Count>,
    by_protocol: BTreeMap<String, Count>,
    lost_events: u64,
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn print_table(title: &str, m: &BTreeMap<String, Count>, secs: f64) {
    if m.is_empty() {
        return;
    }
    println!("{title}:");
    let mut rows: Vec<(&String, &Count)> = m.iter().collect();
    rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    for (k, c) in rows {
        println!(
            "  {k:<24} {:>10} events {:>14} bytes {:>12.1} B/s",
            c.events,
            c.bytes,
            rate(c.bytes, secs)
        );
    }
}

pub fn run(dir: &Path, filter: &FilterArgs, json: bool) -> Result<i32, CliError> {
    let r = one_buffer(dir, filter.buffer.as_deref())?;
    let sources = r
        .latest_header()
        .map(|h| h.sources.clone())
        .unwrap_or_default();
    let query = filter.query(&sources)?;
    let mut s = Stats {
        buffer: r.buffer_name().map(str::to_string),
        ..Stats::default()
    };
    let mut errors = false;
    for item in r.events(&query)? {
        let e = match item {
            Ok(e) => e.event,
            Err(p) => {
                errors |= report(&p);
                continue;
            }
        };
        let bytes = e.kind.payload_len();
        s.events += 1;
        s.bytes += bytes as u64;
        s.first_vm_time_ns.get_or_insert(e.vm_time_ns);
        s.last_vm_time_ns = Some(e.vm_time_ns);
        s.by_kind
            .entry(e.kind.name().to_string())
            .or_default()
            .add(bytes);
        s.by_source
            .entry(sources.name_of(e.source))
            .or_default()
            .add(bytes);
        if let EventKind::Gap { lost_events, .. } = e.kind {
            s.lost_events += lost_events;
        }
        if let Some(frame) = e.kind.frame() {
            let f = FrameInfo::parse(frame);
            if let Some(m) = f.src_mac {
                s.from_address.entry(m.to_string()).or_default().add(bytes);
            }
            if let Some(m) = f.dst_mac {
                s.to_address.entry(m.to_string()).or_default().add(bytes);
            }
            if let Some(a) = f.src_ip {
                s.from_address.entry(a.to_string()).or_default().add(bytes);
            }
            if let Some(a) = f.dst_ip {
                s.to_address.entry(a.to_string()).or_default().add(bytes);
            }
            let proto = f.protocol.map_or("unknown".to_string(), |p| p.to_string());
            s.by_protocol.entry(proto).or_default().add(bytes);
        }
    }
    if let (Some(a), Some(b)) = (s.first_vm_time_ns, s.last_vm_time_ns) {
        s.duration_s = b.saturating_sub(a) as f64 / 1e9;
    }
    s.events_per_s = rate(s.events, s.duration_s);
    s.bytes_per_s = rate(s.bytes, s.duration_s);
    if json {
        print_json(&s)?;
        return Ok(i32::from(errors));
    }
    println!(
        "buffer {}: {} events, {} payload bytes over {:.3} s of VM time ({} .. {})",
        s.buffer.as_deref().unwrap_or("?"),
        s.events,
        s.bytes,
        s.duration_s,
        s.first_vm_time_ns.map(seconds).unwrap_or_default(),
        s.last_vm_time_ns.map(seconds).unwrap_or_default(),
    );
    println!(
        "rates: {:.1} events/s, {:.1} B/s; events lost (gaps): {}",
        s.events_per_s, s.bytes_per_s, s.lost_events
    );
    print_table("by kind", &s.by_kind, s.duration_s);
    print_table("by source", &s.by_source, s.duration_s);
    print_table("by protocol", &s.by_protocol, s.duration_s);
    print_table("from address", &s.from_address, s.duration_s);
    print_table("to address", &s.to_address, s.duration_s);
    Ok(i32::from(errors))
}
