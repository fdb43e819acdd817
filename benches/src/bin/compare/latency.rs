//! Latency percentiles of a set of samples, shared by the pinned cases,
//! the unpinned children and the report.

use std::time::Duration;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

impl Latency {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        // Nearest rank.
        let at = |p: f64| micros(samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]);
        Self { p50: at(0.50), p99: at(0.99) }
    }
}
