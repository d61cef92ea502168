//! The report: the replay suite's tables as Markdown.

use super::{ReplayBenchOptions, ReplayResults, SpeedRow};
use crate::bench::median;

fn med(xs: &[f64]) -> f64 {
    median(&mut xs.to_vec())
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// `median (min–max)` with `digits` decimals.
fn spread(xs: &[f64], digits: usize) -> String {
    let (lo, hi) = min_max(xs);
    format!("{:.digits$} ({lo:.digits$}–{hi:.digits$})", med(xs))
}

/// The distinct values of `xs`, joined.
fn distinct<T: ToString>(xs: &[T]) -> String {
    let mut v: Vec<String> = xs.iter().map(ToString::to_string).collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

fn wall(row: Option<&SpeedRow>) -> f64 {
    row.map_or(f64::NAN, |r| med(&r.wall_s))
}

/// Prints the captures, first-input, speed and check-overhead tables.
pub fn print_tables(res: &ReplayResults, opts: &ReplayBenchOptions) {
    let runs = opts.runs.max(1);
    println!("\n## Replay into clones: the kv service's captures, median of {runs} runs");
    println!(
        "\nCaptures: kv driven by kvgen through a TAP, then the trigger that crashes it; a \
         snapshot every {} ms. Answered/s: requests over the VM seconds from the first frame \
         to the last input.",
        opts.interval_ms
    );
    println!("\n| capture | offered/s | requests | answered/s | snapshots | VM s first snapshot → last input | VM s last snapshot → last input |");
    println!("|---|---|---|---|---|---|---|");
    for c in &res.captures {
        println!(
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} |",
            c.name,
            c.rate,
            c.requests,
            c.requests as f64 / c.traffic_s,
            c.snapshots,
            c.window_s,
            c.tail_s
        );
    }

    println!("\n### First replayed input: clone of the last snapshot before the crash, max speed");
    println!("ms from sending PUT /replay; median (min–max)\n");
    println!("| capture | snapshot | PUT /replay returns | first input delivered | GET /replay round trip µs |");
    println!("|---|---|---|---|---|");
    for l in &res.latency {
        println!(
            "| {} | {} | {} | {} | {:.0} |",
            l.capture,
            l.snapshot,
            spread(&l.put_ms, 2),
            spread(&l.first_ms, 2),
            med(&l.poll_us)
        );
    }

    println!("\n### Replay speed: clone of the first snapshot, the rest of the capture");
    println!("recorded s: VM time of the last input delivered − the snapshot's; wall s: PUT /replay sent → replay over; median (min–max); forced: inputs delivered because the guest went idle before producing the outputs the recording had by then\n");
    println!("| capture | speed | output check | recorded s | wall s | recorded s / wall s | PUT /replay ms | inputs | forced | outputs checked | divergences | end |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &res.speed {
        let capture = res
            .captures
            .get(r.variant.capture)
            .map_or("?", |c| c.name.as_str());
        let floats = |xs: &[u64]| xs.iter().map(|&x| x as f64).collect::<Vec<_>>();
        println!(
            "| {capture} | {} | {} | {:.3} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} |",
            r.variant.speed,
            if r.variant.check { "all" } else { "none" },
            med(&r.recorded_s),
            spread(&r.wall_s, 3),
            spread(&r.ratio, 2),
            med(&r.put_ms),
            med(&floats(&r.delivered)),
            med(&floats(&r.forced)),
            med(&floats(&r.checked)),
            distinct(&r.divergences),
            distinct(&r.states),
        );
    }

    let find = |check: bool| {
        res.speed.iter().find(|r| {
            r.variant.capture == 1 && r.variant.speed == "max" && r.variant.check == check
        })
    };
    let (on, off) = (wall(find(true)), wall(find(false)));
    println!("\n### Output-check overhead: busy capture, max speed");
    println!("| output check | wall s |\n|---|---|");
    println!("| all classes (default) | {on:.3} |\n| none (`check: []`) | {off:.3} |");
    println!("\nchecked / unchecked wall time: {:.3}", on / off);
}
