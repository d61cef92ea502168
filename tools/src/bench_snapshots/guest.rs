//! What the test guest's `dirty` workload reports: the gaps it saw in its loop, parsed for
//! both VMMs' drivers.

use std::time::{Duration, Instant};

use super::err;
use crate::guest_run::GuestProcess;

pub(super) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|f| f.strip_prefix(key))
}

/// How long after the VMM answered the guest's report of a pause may arrive.
const GAP_REPORT_GRACE: Duration = Duration::from_millis(50);

/// The gap the guest reported for a pause that the host saw last `host_ms` and that ended by
/// `answered`, in ms; 0 if the guest reported none (the pause was below its threshold).
///
/// The guest prints its report as soon as it runs again, so it is among the `dirty-gap`
/// lines that arrived by `answered` + [`GAP_REPORT_GRACE`]; before it may come reports of
/// the host's scheduling noise from between the request and the pause. The first report of
/// at least half the host's figure is taken (the guest cannot see a pause much shorter than
/// it was: at most one tick less); if there is none, the longest one, so that a guest that
/// saw much less than the host claims shows as such.
pub(super) fn gap_ms(lines: &[(Instant, String)], answered: Instant, host_ms: f64) -> f64 {
    let reports: Vec<f64> = lines
        .iter()
        .filter(|(at, _)| *at <= answered + GAP_REPORT_GRACE)
        .filter_map(|(_, l)| l.strip_prefix("dirty-gap: us="))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|us| us / 1e3)
        .collect();
    reports
        .iter()
        .copied()
        .find(|&ms| ms >= host_ms / 2.0)
        .unwrap_or_else(|| reports.iter().copied().fold(0.0, f64::max))
}

/// Waits until the guest has run two seconds; returns its longest gap in the second one, ms.
pub(super) fn warm_up(p: &mut GuestProcess) -> Result<f64, String> {
    p.wait_line("dirty: second=2 ", Duration::from_secs(60))
        .map_err(err)?;
    let line = p.output.last().cloned().unwrap_or_default();
    field(&line, "max_gap_us=")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|us| us / 1e3)
        .ok_or_else(|| format!("no max_gap_us in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(at: Instant, texts: &[(u64, &str)]) -> Vec<(Instant, String)> {
        texts
            .iter()
            .map(|&(ms, t)| (at + Duration::from_millis(ms), t.to_string()))
            .collect()
    }

    #[test]
    fn the_pause_report_is_picked_over_noise_before_and_after_it() {
        let t = Instant::now();
        let l = lines(
            t,
            &[
                (1, "dirty-gap: us=4100"),
                (2, "dirty: second=3 writes=1 checksum=0 max_gap_us=4100"),
                (20, "dirty-gap: us=15200"),
                (200, "dirty-gap: us=30000"),
            ],
        );
        assert_eq!(gap_ms(&l, t + Duration::from_millis(25), 14.0), 15.2);
        // Reports that came well after the answer are not about this pause.
        assert_eq!(gap_ms(&l[..1], t + Duration::from_millis(25), 14.0), 4.1);
        assert_eq!(gap_ms(&l[3..], t, 14.0), 0.0);
        assert_eq!(gap_ms(&[], t, 14.0), 0.0);
    }
}
