//! CPU sampling: per-thread CPU time of the VMM from `/proc`, and waiting for the machine
//! to be quiet before a run.

use std::time::{Duration, Instant};

/// Samples the CPU time of a process's threads every few milliseconds while it runs, so
/// that threads that end before the process (the vCPUs, the capture writers) are counted.
pub(super) struct CpuSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::collections::BTreeMap<(u32, String), f64>>>,
}

impl CpuSampler {
    pub(super) fn start(pid: u32) -> CpuSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = std::collections::BTreeMap::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (tid, name, secs) in thread_cpu(pid) {
                    last.insert((tid, name), secs);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            last
        });
        CpuSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// CPU seconds per thread name (threads of the same name added up).
    pub(super) fn stop(&mut self) -> std::collections::BTreeMap<String, f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let per_tid = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let mut out = std::collections::BTreeMap::new();
        for ((_, name), secs) in per_tid {
            *out.entry(name).or_insert(0.0) += secs;
        }
        out
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// CPU time (user + system, seconds) of each thread of process `pid`: id, name, time.
fn thread_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, the fields after it do not.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let tid = stat[..open].trim().parse().unwrap_or(0);
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the comm.
        let get = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out.push((tid, name, (get(11) + get(12)) / ticks));
    }
    out
}
/// Busy and total CPU time of the machine so far, in ticks (`/proc/stat`).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Busy share of the machine's CPUs above which it does not count as quiet.
pub(super) const QUIET_BUSY: f64 = 0.15;

/// Waits up to `max` for a quarter second in which less than [`QUIET_BUSY`] of the
/// machine's CPU time was busy; returns whether it came (true when `max` is zero).
pub(super) fn wait_for_quiet(max: Duration) -> bool {
    if max.is_zero() {
        return true;
    }
    let deadline = Instant::now() + max;
    loop {
        let Some(a) = cpu_ticks() else {
            return true;
        };
        std::thread::sleep(Duration::from_millis(250));
        let Some(b) = cpu_ticks() else {
            return true;
        };
        let (busy, total) = (b.0 - a.0, b.1 - a.1);
        if total > 0 && (busy as f64) < QUIET_BUSY * total as f64 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}
