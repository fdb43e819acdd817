//! Latency samples with percentiles, and number formatting for the summaries.

use std::time::Duration;

/// Latency samples, one per measured exchange.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples: Vec<Duration>,
}

/// Percentiles of a set of [`Latencies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The smallest.
    pub min: Duration,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
    /// The mean.
    pub mean: Duration,
}

impl Latencies {
    /// Adds a sample.
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Min, p50, p99, max and mean (nearest-rank percentiles), if there is
    /// any sample.
    pub fn summary(&self) -> Option<Summary> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let count = sorted.len();
        let rank = |p: f64| {
            let index = ((p / 100.0 * count as f64).ceil() as usize).clamp(1, count) - 1;
            sorted[index]
        };
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let total: Duration = sorted.iter().sum();
        Some(Summary { count, min, p50: rank(50.0), p99: rank(99.0), max, mean: total / count as u32 })
    }
}

/// A duration for people: `85 µs`, `1.24 ms`, `2.35 s`, `6.7 min`, `1.9 h`.
pub fn duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 10_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else if micros < 100_000.0 {
        format!("{:.1} ms", micros / 1e3)
    } else if micros < 1_000_000.0 {
        format!("{:.0} ms", micros / 1e3)
    } else if micros < 120e6 {
        format!("{:.2} s", micros / 1e6)
    } else if micros < 7_200e6 {
        format!("{:.1} min", micros / 60e6)
    } else {
        format!("{:.1} h", micros / 3_600e6)
    }
}

/// A count with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount of money: `$1,234.56`.
pub fn cents(c: u64) -> String {
    format!("${}.{:02}", count(c / 100), c % 100)
}

/// A ratio for people: `1,234×` or `3.4×`.
pub fn times(ratio: f64) -> String {
    if ratio >= 100.0 { format!("{}×", count(ratio.round() as u64)) } else { format!("{ratio:.1}×") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut latencies = Latencies::default();
        assert!(latencies.summary().is_none());
        for micros in 1..=200 {
            latencies.record(Duration::from_micros(micros));
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.p50, Duration::from_micros(100));
        assert_eq!(summary.p99, Duration::from_micros(198));
        assert_eq!((summary.min, summary.max), (Duration::from_micros(1), Duration::from_micros(200)));
        assert_eq!(summary.count, 200);
    }

    #[test]
    fn formatting() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(cents(123_456), "$1,234.56");
        assert_eq!(cents(5), "$0.05");
        assert_eq!(duration(Duration::from_micros(85)), "85 µs");
        assert_eq!(duration(Duration::from_micros(1_240)), "1.24 ms");
        assert_eq!(duration(Duration::from_micros(13_530)), "13.5 ms");
        assert_eq!(duration(Duration::from_millis(500)), "500 ms");
        assert_eq!(duration(Duration::from_millis(2_350)), "2.35 s");
        assert_eq!(duration(Duration::from_secs(402)), "6.7 min");
        assert_eq!(times(2_440.4), "2,440×");
        assert_eq!(times(3.42), "3.4×");
    }
}
