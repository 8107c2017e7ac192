//! The media pipeline: from a link to a stored audio file. URL rules
//! (`url_rules`), platform policy (`platform`), yt-dlp (`ytdlp`), ffmpeg
//! (`ffmpeg`), and reading their failures (`classify`).

pub mod classify;
pub mod ffmpeg;
pub mod platform;
pub mod process;
pub mod url_rules;
pub mod ytdlp;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

pub use ffmpeg::AudioFormat;
pub use platform::{Platform, PlatformPolicy, PlatformTable};

use crate::error::{ErrorCode, JobError};
use crate::queue::worker::{JobContext, JobReport, Processor};
use crate::queue::{AudioRow, Job};
use crate::storage::{object_path, AudioStore};
use url_rules::{JobUrl, UrlError, UrlPolicy};

/// yt-dlp's format choice: audio-only when the site offers it (AAC first, as
/// it copies into m4a), else the best muxed file.
pub const AUDIO_FORMAT_SELECTOR: &str = "ba[ext=m4a]/ba/b";

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub ytdlp: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub work_dir: PathBuf,
    pub allow_private_urls: bool,
    pub platforms: PlatformTable,
    pub audio_format: AudioFormat,
    pub limits: ytdlp::Limits,
}

impl PipelineConfig {
    pub fn from_config(c: &crate::ops::config::Config) -> Self {
        PipelineConfig {
            ytdlp: c.ytdlp.clone(),
            ffmpeg: c.ffmpeg.clone(),
            ffprobe: c.ffprobe.clone(),
            work_dir: c.work_dir.clone(),
            allow_private_urls: c.allow_private_urls,
            platforms: c.platforms.clone(),
            audio_format: c.audio_format,
            limits: ytdlp::Limits {
                max_duration: c.max_duration,
                max_filesize_bytes: c.max_filesize_bytes,
            },
        }
    }

    fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_other: self.platforms.get(Platform::Other).enabled,
            allow_private: self.allow_private_urls,
            ..UrlPolicy::default()
        }
    }
}

pub struct MediaPipeline<S> {
    config: PipelineConfig,
    storage: S,
}

impl<S: AudioStore> MediaPipeline<S> {
    pub fn new(config: PipelineConfig, storage: S) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.work_dir)?;
        Ok(MediaPipeline { config, storage })
    }

    /// Download, extract, store. The job's temporary directory is removed
    /// when this returns, whatever happened.
    async fn run(
        &self,
        job: &Job,
        link: &JobUrl,
        cancel: &CancellationToken,
    ) -> Result<AudioRow, JobError> {
        let c = &self.config;
        let dir = tempfile::Builder::new()
            .prefix(&format!("job-{}-", job.id))
            .tempdir_in(&c.work_dir)
            .map_err(|e| {
                JobError::internal(format!(
                    "cannot create a work directory in {}: {e}",
                    c.work_dir.display()
                ))
            })?;

        let download = ytdlp::download(
            &c.ytdlp,
            link.url.as_str(),
            dir.path(),
            AUDIO_FORMAT_SELECTOR,
            &[],
            link.platform,
            c.limits,
            cancel,
            None,
        )
        .await?;
        let size = download.path.metadata().map(|m| m.len()).unwrap_or(0);
        if size > c.limits.max_filesize_bytes {
            return Err(ytdlp::too_large(c.limits));
        }
        let probe = ffmpeg::probe(&c.ffprobe, &download.path, cancel).await?;
        let duration = probe.duration_secs.or(download.meta.duration);
        if duration.is_some_and(|d| d > c.limits.max_duration.as_secs_f64()) {
            return Err(ytdlp::too_long(c.limits));
        }
        let audio = ffmpeg::extract(
            &c.ffmpeg,
            &download.path,
            &probe,
            c.audio_format,
            dir.path(),
            cancel,
        )
        .await?;
        let path = object_path(job.user_id, job.id, audio.plan.ext);
        let stored = self
            .storage
            .put(&path, &audio.path, audio.plan.content_type)
            .await?;
        Ok(AudioRow {
            file_name: file_name(download.meta.title.as_deref(), job, audio.plan.ext),
            file_url: stored.url,
            file_size: stored.size as i64,
            duration_secs: duration,
            storage_path: stored.path,
            content_type: audio.plan.content_type.to_string(),
        })
    }
}

impl<S: AudioStore> Processor for MediaPipeline<S> {
    async fn process(&self, job: &Job, ctx: &JobContext) -> JobReport {
        let policy = self.config.url_policy();
        let link = match url_rules::parse_job_url(&job.original_url, &policy) {
            Ok(link) => link,
            Err(e) => {
                return JobReport {
                    platform: None,
                    result: Err(url_error(e)),
                }
            }
        };
        let platform = link.platform;
        tracing::Span::current().record("platform", platform.as_str());
        if let Err(e) = ctx.queue.set_platform(job.id, platform.as_str()).await {
            tracing::debug!("could not record the platform: {e}");
        }
        let result = async {
            url_rules::check_resolved_host(&link, &policy)
                .await
                .map_err(url_error)?;
            self.run(job, &link, &ctx.cancel).await
        }
        .await
        .map(Some);
        JobReport {
            platform: Some(platform),
            result,
        }
    }

    async fn discard(&self, _job: &Job, audio: &AudioRow) {
        if let Err(e) = self.storage.delete(&audio.storage_path).await {
            tracing::warn!("could not delete {}: {e}", audio.storage_path);
        }
    }
}

fn url_error(e: UrlError) -> JobError {
    let code = match e {
        UrlError::UnsupportedSite => ErrorCode::UnsupportedUrl,
        _ => ErrorCode::InvalidUrl,
    };
    JobError::new(code, None, format!("URL rejected: {e:?}")).with_message(e.to_string())
}

/// A file name a person recognises: the video's title, made safe.
fn file_name(title: Option<&str>, job: &Job, ext: &str) -> String {
    let cleaned: String = title
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .chars()
        .take(120)
        .collect();
    if cleaned.is_empty() {
        format!("{}.{ext}", job.id)
    } else {
        format!("{cleaned}.{ext}")
    }
}
