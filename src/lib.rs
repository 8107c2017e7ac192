//! xtract: turns social-media video links queued in a Supabase (PostgreSQL)
//! table into audio files.
//!
//! - [`queue`]: claiming, heartbeats, write-back, reaping, LISTEN.
//! - [`pipeline`]: URL rules, platform policy, yt-dlp, ffmpeg, error reading.
//! - [`storage`]: where audio files go.
//! - [`ops`]: configuration, the daemon's wiring, commands, local dev mode.
//! - [`db`]: connections and migrations (the SQL itself is in `sql/`).

pub mod db;
pub mod error;
pub mod live;
pub mod ops;
pub mod pipeline;
pub mod queue;
pub mod storage;

pub use error::{ErrorCode, JobError, Retry};
