//! The media pipeline: from a link to a stored audio file. URL rules
//! (`url_rules`), platform policy (`platform`), yt-dlp (`ytdlp`, kept loaded
//! by `warm`), MP4 files read and cut in-process (`mp4`), ffmpeg
//! (`ffmpeg`), and reading their failures (`classify`). Every program it
//! starts gets an environment built from an allow-list (`child_env`).
//! Which yt-dlp build a job runs depends on its platform (`builds`).

pub mod builds;
pub mod child_env;
pub mod classify;
pub mod egress;
pub mod ffmpeg;
pub mod lines;
pub mod mp4;
pub mod process;
pub mod process_tree;
pub mod proxy_fault;
pub mod strategy;
pub mod url_rules;
pub mod warm;
pub mod workdir;
pub mod ytdlp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    AudioFormat, AudioRow, AudioSource, ErrorCode, Job, JobError, MediaMeta, Platform,
    PlatformTable, Retry,
};
use crate::live::Live;
use crate::queue::worker::{JobContext, JobReport, Processor};
use crate::storage::{object_path, AudioStore};
use crate::sync::AbortOnDrop;
use url_rules::{JobUrl, UrlError, UrlPolicy};

/// `audio_files.file_size` is INTEGER (the old service's table).
const MAX_RECORDED_SIZE: u64 = i32::MAX as u64;

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
    pub strategies: strategy::StrategyOptions,
    pub pacing_max_wait: Duration,
    /// Reuse the audio of an earlier job for the same video and format.
    pub dedup: bool,
    /// Downloads run in children of the warm yt-dlp helper (see warm.rs).
    pub warm_ytdlp: bool,
    /// yt-dlp's cache (YouTube's player code, tokens), kept between jobs;
    /// None: `--no-cache-dir`.
    pub ytdlp_cache_dir: Option<PathBuf>,
    /// Where each platform's requests may leave from.
    pub egress: crate::domain::EgressPool,
}

impl PipelineConfig {
    pub fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_other: self.platforms.get(Platform::Other).enabled,
            allow_private: self.allow_private_urls,
            ..UrlPolicy::default()
        }
    }
}

pub struct MediaPipeline<S> {
    /// Reloadable (SIGHUP); each job reads one snapshot.
    config: Live<PipelineConfig>,
    storage: S,
    /// Downloads from `other` sites go through it (see egress.rs).
    guard: egress::EgressGuard,
    /// This process's folder in XTRACT_WORK_DIR (see workdir.rs).
    run_dir: workdir::RunDir,
    /// Ends, now and then, what daemons that died on this machine left.
    _sweeper: AbortOnDrop,
    /// yt-dlp kept loaded (see warm.rs).
    warm: warm::WarmYtdlp,
    /// Which yt-dlp build serves each platform (see builds.rs).
    builds: builds::Builds,
}

impl<S: AudioStore> MediaPipeline<S> {
    /// Call from within the tokio runtime (the egress guard starts here).
    pub fn new(config: Live<PipelineConfig>, storage: S) -> std::io::Result<Self> {
        let work_dir = config.get().work_dir.clone();
        let run_dir = workdir::RunDir::create(&work_dir)?;
        let sweeper = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(workdir::SWEEP_EVERY).await;
                let dir = work_dir.clone();
                let _ = tokio::task::spawn_blocking(move || workdir::sweep(&dir)).await;
            }
        }));
        let live = config.clone();
        let guard = egress::EgressGuard::start(Arc::new(move |ip| {
            live.get().allow_private_urls || !url_rules::is_forbidden_ip(ip)
        }))?;
        let warm = warm::WarmYtdlp::new(run_dir.path());
        Ok(MediaPipeline {
            config,
            storage,
            guard,
            run_dir,
            _sweeper: sweeper,
            warm,
            builds: builds::Builds::new(),
        })
    }

    /// Runs each platform's jobs on the builds `builds` names (ops/heal
    /// keeps it up to date); without it, every job runs XTRACT_YTDLP.
    pub fn with_builds(mut self, builds: builds::Builds) -> Self {
        self.builds = builds;
        self
    }

    /// The yt-dlp build for `job`, a link of `platform`.
    fn build_for(&self, c: &PipelineConfig, job: &Job, platform: Platform) -> Arc<builds::Build> {
        self.builds
            .get()
            .choose(platform, job.ytdlp_canary.as_deref())
            .unwrap_or_else(|| {
                Arc::new(builds::Build::program(
                    &c.ytdlp,
                    c.strategies.can_impersonate,
                ))
            })
    }

    /// Records what yt-dlp did for the platform's health (ops/heal): one
    /// row per run that reached a platform. Not a turn that never came (a
    /// deferral), not a local link, not `other` (the generic extractor
    /// reads any page: no build is better at it).
    async fn record_run(
        &self,
        ctx: &JobContext,
        link: &JobUrl,
        build: &builds::Build,
        result: &Result<ytdlp::Download, JobError>,
    ) {
        if link.platform == Platform::Other || is_local(link) {
            return;
        }
        let code = match result {
            Ok(_) => None,
            Err(e) if e.retry == Retry::Defer => return,
            Err(e) => Some(e.code.as_str()),
        };
        if let Err(e) = ctx
            .job
            .record_run(link.platform.as_str(), &build.name, code)
            .await
        {
            tracing::debug!("could not record the yt-dlp run: {e}");
        }
        self.builds.ran().notify_one();
    }

    /// Download, extract, store. The job's temporary directory is removed
    /// when this returns, whatever happened.
    async fn run(
        &self,
        c: &PipelineConfig,
        job: &Job,
        link: &JobUrl,
        ctx: &JobContext,
    ) -> Result<AudioRow, JobError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("job-{}-", job.id))
            .tempdir_in(self.run_dir.path())
            .map_err(|e| {
                JobError::internal(format!(
                    "cannot create a work directory in {}: {e}",
                    self.run_dir.path().display()
                ))
            })?;
        let build = self.build_for(c, job, link.platform);
        if job.ytdlp_canary.is_some() {
            // The verdict on a canary counts only for the build it ran on
            // (ops/heal), known even when the run never ends.
            if let Err(e) = ctx.job.run_build(&build.name).await {
                tracing::debug!("could not name the canary's build: {e}");
            }
        }
        let download = self
            .download(c, link, job.audio_source, dir.path(), ctx, &build)
            .await;
        self.record_run(ctx, link, &build, &download).await;
        let download = download?;
        record_media(ctx, &download.meta).await;
        let cancel = &ctx.cancel;
        let size = download.path.metadata().map(|m| m.len()).unwrap_or(0);
        if size > c.limits.max_filesize_bytes {
            return Err(ytdlp::too_large(c.limits));
        }
        // MP4 files (most of what platforms serve) are read in-process;
        // anything else goes to ffprobe.
        let probe = match mp4::probe(&download.path) {
            Some(probe) => probe,
            None => ffmpeg::probe(&c.ffprobe, &download.path, cancel).await?,
        };
        let duration = probe.duration_secs.or(download.meta.duration);
        if duration.is_some_and(|d| d > c.limits.max_duration.as_secs_f64()) {
            return Err(ytdlp::too_long(c.limits));
        }
        let (format, bitrate) = audio_choice(c, job);
        let cover = thumbnail_beside(&download.path);
        // The song's title and artist for its sound, the post's otherwise.
        let (title, artist) = download.meta.labels(job.audio_source);
        let tags = ffmpeg::Tags {
            title: title.as_deref(),
            artist: artist.as_deref(),
            cover: cover.as_deref(),
        };
        let audio = ffmpeg::extract(
            &c.ffmpeg,
            &download.path,
            &probe,
            format,
            bitrate,
            tags,
            dir.path(),
            cancel,
        )
        .await?;
        if audio.size > MAX_RECORDED_SIZE {
            // A size the audio row could not hold: refuse before storing.
            return Err(JobError::new(
                ErrorCode::TooLarge,
                None,
                format!(
                    "the audio is {} bytes; audio_files.file_size (INTEGER) holds at most {MAX_RECORDED_SIZE}",
                    audio.size
                ),
            )
            .with_message("This audio file is too large to store: the limit is 2 GB."));
        }
        let path = object_path(job.user_id, job.id, audio.plan.ext);
        self.clear_other_formats(job, audio.plan.ext).await;
        let stored = self
            .storage
            .put(&path, &audio.path, audio.plan.content_type)
            .await?;
        Ok(AudioRow {
            filename: file_name(title.as_deref(), job, audio.plan.ext),
            file_url: stored.url,
            file_size: stored.size as i64,
            duration_secs: duration,
            storage_path: stored.path,
            content_type: audio.plan.content_type.to_string(),
            audio_format: format.as_str().to_string(),
            audio_bitrate_kbps: bitrate.map(|b| b as i32),
            reused_from_job_id: None,
            title,
            uploader: artist,
            platform: Some(link.platform.as_str().to_string()),
            source_url: Some(job.original_url.clone()),
            thumbnail_url: download.meta.thumbnail.clone(),
        })
    }

    /// The audio of an earlier job for the same video, copied for this job.
    /// Most trouble (nothing found, copy failed) means: download as usual.
    /// A copy the bucket's size limit refuses fails the job as an upload of
    /// the same bytes would: downloading again cannot make it smaller.
    async fn reuse(
        &self,
        c: &PipelineConfig,
        job: &Job,
        link: &JobUrl,
        ctx: &JobContext,
    ) -> Result<Option<AudioRow>, JobError> {
        let (format, bitrate) = audio_choice(c, job);
        let format = format.as_str();
        let bitrate = bitrate.map(|b| b as i32);
        let earlier = match ctx
            .job
            .find_reusable_audio(&link.canonical, format, bitrate, job.audio_source)
            .await
        {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::debug!("looking for reusable audio: {e}");
                return Ok(None);
            }
        };
        // Rows xtract wrote carry their size; without one, download.
        let Some(size) = earlier
            .file_size
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
        else {
            return Ok(None);
        };
        let ext = earlier.storage_path.rsplit('.').next().unwrap_or("m4a");
        let path = object_path(job.user_id, job.id, ext);
        self.clear_other_formats(job, ext).await;
        let stored = match self.storage.copy(&earlier.storage_path, &path, size).await {
            Ok(stored) => stored,
            Err(e) if e.code == ErrorCode::TooLarge => return Err(e),
            Err(e) => {
                tracing::info!(
                    "could not reuse the audio of job {}: {}",
                    earlier.job_id,
                    e.detail
                );
                return Ok(None);
            }
        };
        record_media(ctx, &earlier.media).await;
        tracing::info!(reused_from = %earlier.job_id, "same video already converted; reused its audio");
        Ok(Some(AudioRow {
            filename: earlier.filename,
            file_url: stored.url,
            file_size: stored.size as i64,
            duration_secs: earlier.duration_secs,
            storage_path: stored.path,
            content_type: earlier.content_type.unwrap_or_default(),
            audio_format: format.to_string(),
            audio_bitrate_kbps: bitrate,
            reused_from_job_id: Some(earlier.job_id),
            title: earlier.title.or(earlier.media.title.clone()),
            uploader: earlier.uploader.or(earlier.media.uploader.clone()),
            platform: Some(link.platform.as_str().to_string()),
            source_url: Some(job.original_url.clone()),
            thumbnail_url: earlier.thumbnail_url,
        }))
    }

    /// A retried job overwrites its own object, but only one of the same
    /// extension: an earlier attempt that stored another format (`original`
    /// picks the container from the codec the strategy got; a reload may
    /// change the format) would be left behind. First attempts have nothing
    /// to clear.
    async fn clear_other_formats(&self, job: &Job, keep: &str) {
        if job.attempts > 1 {
            self.delete_job_objects(job, Some(keep)).await;
        }
    }

    /// Deletes whatever this job may have stored, in every format but `keep`.
    async fn delete_job_objects(&self, job: &Job, keep: Option<&str>) {
        for ext in ffmpeg::EXTENSIONS.iter().filter(|e| Some(**e) != keep) {
            let path = object_path(job.user_id, job.id, ext);
            if let Err(e) = self.storage.delete(&path).await {
                tracing::warn!("could not delete {path}: {e}");
            }
        }
    }

    /// Tries the platform's strategies in order, each in its own folder and
    /// each paced, until one downloads the video.
    async fn download(
        &self,
        c: &PipelineConfig,
        link: &JobUrl,
        source: AudioSource,
        dir: &Path,
        ctx: &JobContext,
        build: &builds::Build,
    ) -> Result<ytdlp::Download, JobError> {
        let platform = link.platform;
        let policy = c.platforms.get(platform);
        let pacer = &ctx.pacer;
        // The egresses this platform may leave through (domain/egress_pool.rs).
        let egresses = c.egress.for_platform(platform);
        let keys: Vec<&str> = egresses.iter().map(|e| e.key.as_str()).collect();
        let Some(&machine) = egresses.first() else {
            // The claim passes over such jobs; the platform the insert
            // trigger guessed may differ from the one the link turned out
            // to have (it is corrected now), or a reload removed the egress.
            tracing::warn!(
                "no egress of this daemon may serve {platform}; the job waits for another daemon"
            );
            return Err(JobError {
                detail: format!("no egress of this daemon serves {platform}"),
                ..JobError::defer(platform, Duration::from_secs(60))
            });
        };
        // Local links (tests, demos) are not a platform to be polite to.
        let paced = !is_local(link);
        let (progress, writer) = progress_reporter(ctx);
        let mut last: Option<JobError> = None;
        let mut tried = 0;
        if c.warm_ytdlp && paced {
            // Before the first turn is taken (see WarmYtdlp::ready).
            self.warm.ready(&build.program).await;
        }
        // What the build can do decides the strategies (impersonation).
        let options = strategy::StrategyOptions {
            can_impersonate: build.can_impersonate,
            ..c.strategies.clone()
        };
        let strategies = strategy::strategies(platform, &options, source);
        for (i, s) in strategies.iter().enumerate() {
            if let Some(prev) = &last {
                if !strategy::next_may_help(prev.code, s) {
                    continue;
                }
            }
            let (egress, gate) = if paced {
                let key = pacer
                    .wait_turn(platform, policy, &keys, c.pacing_max_wait, &ctx.cancel)
                    .await?;
                // yt-dlp's first request waits for the platform's spacing
                // (Pacer::go), not only its start.
                let gate: warm::Gate = {
                    let (pacer, key, interval) = (pacer.clone(), key.clone(), policy.min_interval);
                    Arc::new(move || {
                        let (pacer, key) = (pacer.clone(), key.clone());
                        Box::pin(async move { pacer.go(platform, &key, interval).await })
                    })
                };
                (c.egress.get(platform, &key).unwrap_or(machine), Some(gate))
            } else {
                (machine, None)
            };
            let run_dir = dir.join(format!("s{i}"));
            std::fs::create_dir_all(&run_dir)
                .map_err(|e| JobError::internal(format!("work directory: {e}")))?;
            // The operator's options for this platform first: the strategy's
            // and ours come later and win where they overlap (yt-dlp keeps
            // the last value). The private options file is read before the
            // whole command line, so a `--proxy` of the operator's would
            // win over the guard's or the egress's: it is refused for
            // `other` and with an egress pool (domain/egress_pool.rs).
            let mut extra = policy.ytdlp_args.clone();
            extra.extend(s.extra_args.iter().cloned());
            extra.extend([
                "--ffmpeg-location".to_string(),
                c.ffmpeg.display().to_string(),
            ]);
            if let Some(n) = link.item {
                extra.extend(["--playlist-items".to_string(), ytdlp::playlist_items(n)]);
            }
            match &c.ytdlp_cache_dir {
                // yt-dlp writes each entry to a temporary file and renames
                // it: jobs and daemons can share the folder.
                Some(dir) => extra.extend(["--cache-dir".to_string(), dir.display().to_string()]),
                None => extra.push("--no-cache-dir".to_string()),
            }
            // Sites we know nothing about may redirect anywhere: every
            // request of theirs passes the guard.
            let pass = (platform == Platform::Other).then(|| self.guard.pass());
            // The egress's proxy, for platforms (`other` has the guard).
            let proxy = egress.proxy.as_ref().filter(|_| pass.is_none());
            let proxy_url = pass
                .as_ref()
                .map(|p| p.proxy_url())
                .or(proxy.map(|p| p.expose()));
            if let Some(url) = proxy_url {
                // A pass or a proxy's credentials: never on a command line
                // (also the path a warm yt-dlp must honour).
                let private =
                    ytdlp::private_options(&run_dir, &[("--proxy", url)]).map_err(|e| {
                        JobError::internal(format!(
                            "cannot write the download's private options: {e}"
                        ))
                    })?;
                extra.extend(private);
            }
            if let Some(cookies) = &s.cookies {
                // yt-dlp rewrites its cookie file: every run gets a copy.
                let copy = run_dir.join("cookies.txt");
                std::fs::copy(cookies, &copy).map_err(|e| {
                    JobError::internal(format!("cannot copy the {platform} cookie file: {e}"))
                })?;
                extra.extend(["--cookies".to_string(), copy.display().to_string()]);
            }
            tried += 1;
            let result = ytdlp::download(
                &build.program,
                c.warm_ytdlp.then_some(&self.warm),
                link.for_ytdlp(),
                &run_dir,
                s.format,
                &extra,
                platform,
                c.limits,
                &ctx.cancel,
                Some(progress.clone()),
                gate,
            )
            .await;
            let e = match result {
                Ok(download) => {
                    tracing::info!(strategy = s.name, egress = %egress.key, "downloaded");
                    // The writer may be asleep between updates: stop it and
                    // record the end ourselves.
                    drop(writer);
                    if let Err(e) = ctx.job.progress(100).await {
                        tracing::debug!("could not record the progress: {e}");
                    }
                    return Ok(download);
                }
                // What yt-dlp printed may name the proxy with its password.
                Err(e) => match proxy {
                    Some(p) => {
                        let message = p.scrub(&e.message);
                        let detail = p.scrub(&e.detail);
                        JobError {
                            message,
                            detail,
                            ..e
                        }
                    }
                    None => e,
                },
            };
            if let Some(refused) = pass.as_ref().and_then(|p| p.refused()) {
                // The site sent yt-dlp to our own network: no strategy
                // will make that right.
                return Err(JobError::new(
                    ErrorCode::InvalidUrl,
                    None,
                    format!(
                        "the egress guard refused a request to {refused}; yt-dlp said: {}",
                        e.detail
                    ),
                )
                .with_message(UrlError::PrivateAddress.to_string()));
            }
            tracing::info!(strategy = s.name, egress = %egress.key, code = %e.code, detail = %e.detail, "download strategy failed");
            // A proxy that is down or refuses us fails every job sent
            // through it: treated as the platform pushing back on that
            // egress (proxy_fault.rs).
            let fault = match proxy {
                Some(p) => proxy_fault::proxy_fault(p, &e).await.map(|why| (p, why)),
                None => None,
            };
            let (e, cooldown) = match fault {
                Some((p, why)) => {
                    let why = p.scrub(&format!("{why}: {} {p}", egress.key));
                    let e = JobError {
                        detail: format!("{why}; yt-dlp said: {}", e.detail),
                        retry: Retry::Cooldown,
                        ..JobError::new(ErrorCode::Network, Some(platform), "")
                    };
                    (e, proxy_fault::PROXY_DOWN_COOLDOWN)
                }
                None => (e, policy.cooldown),
            };
            // A login wall stands in front of logged-out requests only:
            // the operator's signed-in session is worth its request before
            // the platform is paused.
            let signed_in_left = strategies[i + 1..].iter().any(|n| n.cookies.is_some());
            if e.retry == Retry::Cooldown && e.code == ErrorCode::LoginRequired && signed_in_left {
                last = Some(e);
                continue;
            }
            if e.retry == Retry::Cooldown {
                // Every daemon on this egress holds off the platform; its
                // other egresses go on.
                if let Err(db) = pacer
                    .pause(platform, &egress.key, cooldown, &e.detail)
                    .await
                {
                    tracing::warn!("could not record the {platform} pause: {db}");
                }
                // With other egresses the job goes back at once, its
                // attempt not spent: the claim takes it while one of them
                // is not paused, through the one free first. Alone, it
                // waits out the pause.
                let again = if keys.len() > 1 {
                    Duration::ZERO
                } else {
                    cooldown
                };
                return Err(e.with_retry_after(again));
            }
            if matches!(e.code, ErrorCode::TooLong | ErrorCode::TooLarge) {
                return Err(e);
            }
            last = Some(e);
        }
        let last =
            last.unwrap_or_else(|| JobError::internal("no download strategy for this platform"));
        if source == AudioSource::Sound && last.code == ErrorCode::NoFormats {
            // yt-dlp found the post but no format `audio`: the post names no
            // sound of its own. Not the post's audio instead: the user asked
            // for the song.
            return Err(
                JobError::new(ErrorCode::NoAudio, Some(platform), last.detail).with_message(
                    "This post has no separate sound to download. Ask for the post's audio instead.",
                ),
            );
        }
        if tried > 1 {
            let message = format!("All download strategies failed: {}", last.message);
            Err(last.with_message(message))
        } else {
            Err(last)
        }
    }
}

/// What a job that asks for the sound of a post that is not TikTok's hears
/// (the insert refuses it with the same words: sql/016).
const SOUND_ONLY_ON_TIKTOK: &str =
    "Only TikTok posts have a separate sound to download; for this link, ask for the post's audio.";

/// The job's format and bitrate: the user's choice at insert (checked by
/// the database), else the daemon's default format and no bitrate.
fn audio_choice(c: &PipelineConfig, job: &Job) -> (AudioFormat, Option<u32>) {
    let format = match job.audio_format.as_deref().map(str::parse::<AudioFormat>) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            tracing::warn!("the job's audio_format: {e}; using the default");
            c.audio_format
        }
        None => c.audio_format,
    };
    let bitrate = job
        .audio_bitrate_kbps
        .and_then(|b| u32::try_from(b).ok())
        .filter(|_| format != AudioFormat::Original);
    (format, bitrate)
}

/// The thumbnail yt-dlp wrote beside the download (`--write-thumbnail`),
/// if it did: the file's cover.
fn thumbnail_beside(download: &Path) -> Option<PathBuf> {
    let dir = download.parent()?;
    ["jpg", "jpeg", "png", "webp"]
        .iter()
        .map(|ext| dir.join(format!("source.{ext}")))
        .find(|p| p.is_file() && p != download)
}

/// Shows the video's title, uploader and length on the job row (best
/// effort: the job goes on without it).
async fn record_media(ctx: &JobContext, meta: &MediaMeta) {
    if let Err(e) = ctx.job.record_media(meta).await {
        tracing::debug!("could not record the media facts: {e}");
    }
}

/// Reports download progress to the job row, at most once a second.
fn progress_reporter(ctx: &JobContext) -> (ytdlp::ProgressFn, AbortOnDrop) {
    let (tx, mut rx) = tokio::sync::watch::channel(0f32);
    let handle = ctx.job.clone();
    let writer = tokio::spawn(async move {
        let mut written = -1i16;
        while rx.changed().await.is_ok() {
            let percent = (*rx.borrow_and_update()).clamp(0.0, 100.0) as i16;
            if percent != written {
                if handle.progress(percent).await.is_ok() {
                    written = percent;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let report: ytdlp::ProgressFn = Arc::new(move |p| {
        let _ = tx.send(p);
    });
    (report, AbortOnDrop(writer))
}

/// A link to this machine or its private network (only accepted with
/// XTRACT_ALLOW_PRIVATE_URLS).
fn is_local(link: &JobUrl) -> bool {
    match link.url.host() {
        Some(url::Host::Ipv4(ip)) => url_rules::is_forbidden_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => url_rules::is_forbidden_ip(ip.into()),
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        None => false,
    }
}

impl<S: AudioStore> Processor for MediaPipeline<S> {
    async fn process(&self, job: &Job, ctx: &JobContext) -> JobReport {
        let c = self.config.get();
        let policy = c.url_policy();
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
        if let Err(e) = ctx
            .job
            .record_link(platform.as_str(), &link.canonical)
            .await
        {
            tracing::debug!("could not record the platform: {e}");
        }
        let result = async {
            // `enabled = false` in the platform file: the operator has turned
            // this platform off. (For `other` the URL rules decide: they
            // also take local links in test and demo mode.)
            if platform != Platform::Other && !c.platforms.get(platform).enabled {
                return Err(JobError::new(
                    ErrorCode::UnsupportedUrl,
                    Some(platform),
                    format!("{platform} is disabled in the platform table"),
                )
                .with_message(format!(
                    "{} links are not accepted at the moment.",
                    platform.display_name()
                )));
            }
            url_rules::check_resolved_host(&link, &policy)
                .await
                .map_err(url_error)?;
            if job.audio_source == AudioSource::Sound && platform != Platform::TikTok {
                // The insert refuses these (sql/016); a row written
                // around it still gets a clear answer, not the video's
                // audio under the song's name.
                return Err(JobError::new(
                    ErrorCode::NoAudio,
                    Some(platform),
                    format!("audio_source 'sound' asked for a {platform} link"),
                )
                .with_message(SOUND_ONLY_ON_TIKTOK));
            }
            if c.dedup {
                if let Some(audio) = self.reuse(&c, job, &link, ctx).await? {
                    return Ok(audio);
                }
            }
            self.run(&c, job, &link, ctx).await
        }
        .await
        .map(Some);
        JobReport {
            platform: Some(platform),
            result,
        }
    }

    async fn discard(&self, job: &Job, audio: Option<&AudioRow>) {
        match audio {
            Some(a) => {
                if let Err(e) = self.storage.delete(&a.storage_path).await {
                    tracing::warn!("could not delete {}: {e}", a.storage_path);
                }
            }
            // Stopped at an unknown point: any format it may have stored.
            None => self.delete_job_objects(job, None).await,
        }
    }
}

fn url_error(e: UrlError) -> JobError {
    let code = match e {
        UrlError::UnsupportedSite => ErrorCode::UnsupportedUrl,
        // A failed lookup may be the resolver's passing trouble: retried
        // with backoff, and after the last attempt the user reads why.
        UrlError::HostNotFound => ErrorCode::Network,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_does_not_resolve_is_retried_and_other_link_faults_are_not() {
        let lookup = url_error(UrlError::HostNotFound);
        assert_eq!(
            (lookup.code, lookup.retry),
            (ErrorCode::Network, Retry::Backoff)
        );
        assert_eq!(lookup.message, "The site in this link could not be found.");
        let private = url_error(UrlError::PrivateAddress);
        assert_eq!(
            (private.code, private.retry),
            (ErrorCode::InvalidUrl, Retry::Never)
        );
        let site = url_error(UrlError::UnsupportedSite);
        assert_eq!(site.code, ErrorCode::UnsupportedUrl);
    }
}
