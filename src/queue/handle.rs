//! What a job body may do to the queue: record what it learned about its
//! own job (the link's platform and canonical form, the video's facts, the
//! download's progress) and ask for audio an earlier job made of the same
//! video. Bound to one job and this worker: a body cannot complete, fail or
//! touch any other job (the executor writes the outcome).

use std::sync::Arc;

use uuid::Uuid;

use super::executor::LastWrite;
use super::Queue;
use crate::db::DbError;
use crate::domain::{AudioSource, MediaMeta, ReusableAudio};

#[derive(Clone)]
pub struct JobHandle {
    queue: Queue,
    id: Uuid,
    /// When a progress write last renewed the lease (the heartbeat skips
    /// its beat then).
    renewed: Arc<LastWrite>,
}

impl JobHandle {
    pub(super) fn new(queue: Queue, id: Uuid, renewed: Arc<LastWrite>) -> Self {
        JobHandle { queue, id, renewed }
    }

    /// What the URL rules found: the platform and the link's canonical form.
    pub async fn record_link(&self, platform: &str, canonical: &str) -> Result<(), DbError> {
        self.queue.set_link(self.id, platform, canonical).await
    }

    /// The video's title, uploader and length, on the job row.
    pub async fn record_media(&self, meta: &MediaMeta) -> Result<(), DbError> {
        self.queue.set_media(self.id, meta).await
    }

    /// A run of this job (a canary) starts on `build`.
    pub async fn run_build(&self, build: &str) -> Result<(), DbError> {
        self.queue.run_build(self.id, build).await
    }

    /// A yt-dlp run of this job on `platform` with build `build` ended: ok
    /// (`error_code` None) or with that code. The platform's health and the
    /// build's success rate are judged by these (ops/heal); the job's row
    /// names the build.
    pub async fn record_run(
        &self,
        platform: &str,
        build: &str,
        error_code: Option<&str>,
    ) -> Result<(), DbError> {
        self.queue
            .record_run(self.id, platform, build, error_code)
            .await
    }

    /// Download progress, 0-100; it renews the job's lease too.
    pub async fn progress(&self, percent: i16) -> Result<(), DbError> {
        if self.queue.set_progress(self.id, percent).await? {
            self.renewed.now();
        }
        Ok(())
    }

    /// The newest audio another job made of the same video, in the same
    /// format and bitrate.
    pub async fn find_reusable_audio(
        &self,
        canonical_url: &str,
        audio_format: &str,
        audio_bitrate_kbps: Option<i32>,
        audio_source: AudioSource,
    ) -> Result<Option<ReusableAudio>, DbError> {
        self.queue
            .find_reusable_audio(
                self.id,
                canonical_url,
                audio_format,
                audio_bitrate_kbps,
                audio_source,
            )
            .await
    }
}
