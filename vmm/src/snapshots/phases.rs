//! Timing of the steps of a snapshot or a restore, for the debug log.

use std::time::Instant;

/// Elapsed time of each step since the previous one.
pub struct Phases {
    last: Instant,
    marks: Vec<(&'static str, u64)>,
}

impl Phases {
    /// Starts timing at `start`.
    pub fn new(start: Instant) -> Self {
        Phases {
            last: start,
            marks: Vec::new(),
        }
    }

    /// Ends the step `name` now.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.marks
            .push((name, now.duration_since(self.last).as_micros() as u64));
        self.last = now;
    }

    /// The steps and their durations, for a log line.
    pub fn report(&self) -> String {
        let parts: Vec<String> = self
            .marks
            .iter()
            .map(|(n, us)| format!("{n} {us} us"))
            .collect();
        parts.join(", ")
    }
}
