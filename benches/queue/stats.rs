//! Percentiles and the one-line summaries every section prints, computed
//! the same way for xtract and graphile-worker.

use std::time::Duration;

/// Milliseconds, sorted.
#[derive(Clone, Debug, Default)]
pub struct Ms(Vec<f64>);

impl Ms {
    pub fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Ms(values)
    }

    pub fn of(durations: &[Duration]) -> Self {
        Self::new(durations.iter().map(|d| d.as_secs_f64() * 1e3).collect())
    }

    /// Several rounds as one sample.
    pub fn pooled(rounds: &[Ms]) -> Self {
        Self::new(rounds.iter().flat_map(|m| m.0.iter().copied()).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn p(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0[((self.0.len() - 1) as f64 * q).round() as usize]
    }

    pub fn p50(&self) -> f64 {
        self.p(0.5)
    }

    pub fn p90(&self) -> f64 {
        self.p(0.9)
    }

    /// `p50 1.23 ms, p90 2.34 ms, p99 3.45 ms (n=200)`
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (n={})",
            self.p50(),
            self.p90(),
            self.p(0.99),
            self.len()
        )
    }
}

/// The median of a few repeated timings, in ms.
pub fn median_ms(durations: &[Duration]) -> f64 {
    Ms::of(durations).p50()
}

/// One line saying what the machine was doing: the figures of a shared
/// machine mean little without it.
pub fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = avg.split_whitespace().take(3).collect();
    format!(
        "load average {} on {} cores",
        avg.join(" "),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    )
}
