//! A job as the queue hands it to its body, and the audio row it leaves.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::media::MediaMeta;

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub user_id: Uuid,
    pub original_url: String,
    /// Including the current one.
    pub attempts: i32,
    pub platform: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Seconds from when the job became ready to its claim.
    pub waited_secs: f64,
    /// Platform pauses this job has waited out.
    pub pauses: i32,
    /// The user's choice at insert (`m4a`, `mp3`, `opus`, `original`);
    /// None: the daemon's default.
    pub audio_format: Option<String>,
    /// The user's choice of bitrate (kb/s), for encoded formats.
    pub audio_bitrate_kbps: Option<i32>,
    /// The post's own audio, or its sound (TikTok).
    pub audio_source: super::media::AudioSource,
    /// The egress this attempt's latest request went out through, once
    /// the run is over (the worker sets it from the job's pacer, for the
    /// metrics); None before, and when no request left.
    pub egress: Option<String>,
    /// A new yt-dlp build this job is re-run on before its platform
    /// switches to it (ops/heal): set on a job that failed on the
    /// platform's build.
    pub ytdlp_canary: Option<String>,
}

/// The `audio_files` row a finished job writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioRow {
    /// `audio_files.filename`: a name a person recognises.
    pub filename: String,
    pub file_url: String,
    pub file_size: i64,
    pub duration_secs: Option<f64>,
    pub storage_path: String,
    pub content_type: String,
    pub audio_format: String,
    /// The bitrate the job asked for (None: the default).
    pub audio_bitrate_kbps: Option<i32>,
    /// Set when the audio was copied from an earlier job's.
    pub reused_from_job_id: Option<Uuid>,
    /// What the app shows beside the file.
    pub title: Option<String>,
    pub uploader: Option<String>,
    pub platform: Option<String>,
    pub source_url: Option<String>,
    pub thumbnail_url: Option<String>,
}

/// An earlier job's audio that a new job for the same video can reuse.
#[derive(Debug, Clone)]
pub struct ReusableAudio {
    pub job_id: Uuid,
    pub storage_path: String,
    pub filename: String,
    pub file_size: Option<i64>,
    pub duration_secs: Option<f64>,
    pub content_type: Option<String>,
    pub thumbnail_url: Option<String>,
    /// The title and artist the earlier audio row carries.
    pub title: Option<String>,
    pub uploader: Option<String>,
    /// What yt-dlp said about the video back then.
    pub media: MediaMeta,
}
