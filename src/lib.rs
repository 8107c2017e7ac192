//! xtract: turns social-media video links queued in a Supabase (PostgreSQL)
//! table into audio files.
//!
//! - [`domain`]: the shared words (platform, format, job, audio row, job
//!   error); imports nothing of ours.
//! - [`queue`]: the job queue on PostgreSQL: claim, execute, write back,
//!   rescue, listen; all SQL behind it.
//! - [`pipeline`]: from a link to an audio file: URL rules, yt-dlp, ffmpeg,
//!   error reading.
//! - [`storage`]: where audio files go.
//! - [`ops`]: configuration, the daemon's wiring, commands, local dev mode.
//! - [`db`]: connections and migrations (the SQL itself is in `sql/`).
//! - [`metrics`]: the daemon's one set of counters (Prometheus).

pub mod db;
pub mod domain;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod queue;
pub mod settings;
pub mod storage;
pub mod sync;

pub use domain::{ErrorCode, JobError, Retry};

/// The unit tests' property settings: `default` cases per property, or
/// PROPTEST_CASES for longer local runs; no failure files in the tree.
#[cfg(test)]
pub(crate) fn proptest_config(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
