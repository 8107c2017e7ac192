//! The worker loop: claims jobs while it has free slots, runs each with a
//! heartbeat, and writes the outcome back. It sleeps until a notification,
//! a finished job, the next retry time or the fallback poll, whichever comes
//! first, and reaps jobs of workers that died.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::notifier::{backoff, CancelRegistry};
use super::{AudioRow, Job, Queue};
use crate::db::{is_connection_error, DbError};
use crate::error::{ErrorCode, JobError, Retry};
use crate::live::Live;
use crate::ops::metrics::{Metrics, OutcomeLabels, PlatformLabel};
use crate::pipeline::{Platform, PlatformTable};

/// What a job body reports back.
pub struct JobReport {
    /// The platform the job's URL belongs to, once known: it decides the
    /// attempts and the cooldown.
    pub platform: Option<Platform>,
    /// The audio row to write (None for a body that stores nothing).
    pub result: Result<Option<AudioRow>, JobError>,
}

/// What a job body gets besides the job.
pub struct JobContext {
    pub queue: Queue,
    /// Cancelled when the job must stop (operator cancel, lost lease). The
    /// body's future is dropped then too; the token lets it stop children
    /// promptly.
    pub cancel: CancellationToken,
}

/// The body of a job: the media pipeline in production, a no-op in the
/// queue benchmark.
pub trait Processor: Send + Sync + 'static {
    fn process(&self, job: &Job, ctx: &JobContext) -> impl Future<Output = JobReport> + Send;

    /// Undo what `process` stored for a job an operator cancelled while it
    /// was ours: `audio` when the upload had finished, None when the cancel
    /// stopped the job at some unknown point (remove whatever it may have
    /// stored). Never called for a job another worker took over: every
    /// attempt of a job writes the same object, which is theirs now.
    fn discard(&self, _job: &Job, _audio: Option<&AudioRow>) -> impl Future<Output = ()> + Send {
        async {}
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub heartbeat_interval: Duration,
    pub shutdown_grace: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A job that hit a platform pause this often fails (a private post can
    /// look like a rate limit, and pauses spend no attempts).
    pub max_pauses: i32,
    /// Reloadable (SIGHUP).
    pub platforms: Live<PlatformTable>,
    /// Return once no job is pending or processing.
    pub exit_when_idle: bool,
}

/// How the daemon asks the worker to stop: first stop claiming, then, after
/// the grace period, stop running jobs and put them back.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub stop_claiming: CancellationToken,
    pub stop_jobs: CancellationToken,
}

#[derive(Default, Debug)]
pub struct WorkerStats {
    /// Jobs running now.
    pub running: AtomicU64,
    /// Turns of the worker loop: the watchdog checks that it moves.
    pub loop_turns: AtomicU64,
    pub claimed: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub released: AtomicU64,
    pub deferred: AtomicU64,
    pub cancelled: AtomicU64,
    pub reaped: AtomicU64,
}

pub struct Worker<P> {
    shared: Arc<Shared<P>>,
    wake: Arc<Notify>,
}

struct Shared<P> {
    queue: Queue,
    processor: P,
    settings: WorkerSettings,
    cancels: CancelRegistry,
    stats: Arc<WorkerStats>,
    metrics: Arc<Metrics>,
    /// Cancelled when even pending write-backs must give up (the database
    /// stayed away through the whole shutdown).
    abandon_writes: CancellationToken,
}

// One value per running job, moved once: its size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Finished(JobReport),
    Cancelled,
    Interrupted,
}

impl<P: Processor> Worker<P> {
    pub fn new(
        queue: Queue,
        processor: P,
        settings: WorkerSettings,
        wake: Arc<Notify>,
        cancels: CancelRegistry,
        metrics: Arc<Metrics>,
    ) -> Self {
        Worker {
            shared: Arc::new(Shared {
                queue,
                processor,
                settings,
                cancels,
                stats: Arc::default(),
                metrics,
                abandon_writes: CancellationToken::new(),
            }),
            wake,
        }
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.shared.stats.clone()
    }

    /// Runs until `shutdown.stop_claiming` (or, with `exit_when_idle`, until
    /// there is no work), then drains the running jobs.
    pub async fn run(self, shutdown: Shutdown) {
        let s = &self.shared.settings;
        let slots = Arc::new(Semaphore::new(s.concurrency));
        let mut running = JoinSet::new();
        let mut reap_timer = tokio::time::interval(s.poll_interval);
        reap_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut db_delays = backoff();

        while !shutdown.stop_claiming.is_cancelled() {
            self.shared.stats.loop_turns.fetch_add(1, Ordering::Relaxed);
            self.shared
                .stats
                .running
                .store(running.len() as u64, Ordering::Relaxed);
            self.shared.metrics.running.set(running.len() as i64);
            let mut wait = s.poll_interval;
            let free = slots.available_permits();
            if free > 0 {
                match self.shared.queue.claim(free).await {
                    Ok(jobs) => {
                        db_delays = backoff();
                        let got = jobs.len();
                        for job in jobs {
                            let permit = slots.clone().try_acquire_owned().expect("a free slot");
                            self.spawn_job(&mut running, job, permit, &shutdown);
                        }
                        if got == free {
                            continue; // maybe more are ready
                        }
                        if got == 0 && running.is_empty() && s.exit_when_idle && self.idle().await {
                            break;
                        }
                        wait = self.until_next_retry(wait).await;
                    }
                    Err(e) => {
                        wait = db_delays.next().unwrap_or(Duration::from_secs(5));
                        tracing::warn!(
                            "cannot claim jobs ({e}); trying again in {:.1}s",
                            wait.as_secs_f64()
                        );
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {
                    while running.try_join_next().is_some() {}
                }
                _ = reap_timer.tick() => self.reap().await,
                _ = shutdown.stop_claiming.cancelled() => {}
            }
        }
        self.drain(running, &shutdown).await;
    }

    /// Lets running jobs finish within the grace period, then stops them
    /// (they put themselves back to pending).
    async fn drain(&self, mut running: JoinSet<()>, shutdown: &Shutdown) {
        if running.is_empty() {
            return;
        }
        tracing::info!(
            jobs = running.len(),
            "waiting up to {:.0}s for running jobs",
            self.shared.settings.shutdown_grace.as_secs_f64()
        );
        let all_done = async { while running.join_next().await.is_some() {} };
        tokio::pin!(all_done);
        tokio::select! {
            _ = &mut all_done => return,
            _ = tokio::time::sleep(self.shared.settings.shutdown_grace) => {}
            _ = shutdown.stop_jobs.cancelled() => {}
        }
        tracing::info!("grace period over: stopping running jobs and releasing them");
        shutdown.stop_jobs.cancel();
        // Give write-backs a last chance to reach the database.
        tokio::select! {
            _ = &mut all_done => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                self.shared.abandon_writes.cancel();
                all_done.await;
            }
        }
    }

    async fn idle(&self) -> bool {
        matches!(self.shared.queue.active_count().await, Ok(0))
    }

    /// Shortens the sleep when a retry falls due before the next poll.
    async fn until_next_retry(&self, wait: Duration) -> Duration {
        match self.shared.queue.next_run_after().await {
            Ok(Some(at)) => {
                let until = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                // A ready job we could not claim is locked by another
                // claimer right now: look again shortly, not in a busy loop.
                until.clamp(Duration::from_millis(50), wait)
            }
            _ => wait,
        }
    }

    async fn reap(&self) {
        let s = &self.shared.settings;
        let message = crate::error::ErrorCode::WorkerLost.user_message(None);
        match self
            .shared
            .queue
            .reap(s.lease, &s.platforms.get().max_attempts_json(), &message)
            .await
        {
            Ok(reaped) => {
                for (id, status) in &reaped {
                    tracing::warn!(job_id = %id, "worker of job stopped heart-beating; job is now {status}");
                }
                self.shared
                    .stats
                    .reaped
                    .fetch_add(reaped.len() as u64, Ordering::Relaxed);
                self.shared.metrics.reaped.inc_by(reaped.len() as u64);
            }
            Err(e) => tracing::debug!("reaper: {e}"),
        }
    }

    fn spawn_job(
        &self,
        running: &mut JoinSet<()>,
        job: Job,
        permit: OwnedSemaphorePermit,
        shutdown: &Shutdown,
    ) {
        self.shared.stats.claimed.fetch_add(1, Ordering::Relaxed);
        self.shared
            .metrics
            .claimed
            .get_or_create(&PlatformLabel {
                platform: job.platform.as_deref().unwrap_or("unknown").into(),
            })
            .inc();
        self.shared
            .metrics
            .pickup_latency
            .observe(job.waited_secs.max(0.0));
        let shared = self.shared.clone();
        let stop_jobs = shutdown.stop_jobs.clone();
        let span = tracing::info_span!("job", job_id = %job.id, platform = tracing::field::Empty);
        running.spawn(
            async move {
                shared.execute(job, stop_jobs).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

impl<P: Processor> Shared<P> {
    async fn execute(&self, job: Job, stop_jobs: CancellationToken) {
        let cancel = self.cancels.register(job.id);
        let heartbeat = tokio::spawn(heartbeat(
            self.queue.clone(),
            job.id,
            self.settings.heartbeat_interval,
            cancel.clone(),
        ));
        let ctx = JobContext {
            queue: self.queue.clone(),
            cancel: cancel.clone(),
        };
        tracing::info!(attempt = job.attempts, url = %job.original_url, "job started");
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            biased;
            _ = stop_jobs.cancelled() => Outcome::Interrupted,
            _ = cancel.cancelled() => Outcome::Cancelled,
            report = self.processor.process(&job, &ctx) => Outcome::Finished(report),
        };
        heartbeat.abort();
        self.cancels.remove(job.id);
        let platform = match &outcome {
            Outcome::Finished(report) => report.platform,
            _ => None,
        }
        .or_else(|| job.platform.as_deref().and_then(|p| p.parse().ok()))
        .unwrap_or(Platform::Other);
        self.metrics
            .duration
            .get_or_create(&PlatformLabel {
                platform: platform.as_str().into(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.write_back(&job, platform, outcome).await;
    }

    async fn write_back(&self, job: &Job, platform: Platform, outcome: Outcome) {
        match outcome {
            Outcome::Finished(JobReport {
                result: Ok(audio), ..
            }) => {
                match self
                    .persist(|| self.queue.complete(job, audio.as_ref()))
                    .await
                {
                    Some(true) => {
                        self.stats.completed.fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .completed
                            .get_or_create(&PlatformLabel {
                                platform: platform.as_str().into(),
                            })
                            .inc();
                        tracing::info!("job completed");
                    }
                    Some(false) => {
                        // Cancelled while still ours: the audio must go. Taken
                        // over (we lost the database for longer than the
                        // lease): the object at this job's path is the other
                        // worker's now, finished or about to be.
                        if self.persist(|| self.queue.ack_cancel(job.id)).await == Some(true) {
                            tracing::info!(
                                "job was cancelled before it could complete; discarding its audio"
                            );
                            self.processor.discard(job, audio.as_ref()).await;
                        } else {
                            tracing::info!("job was taken over by another worker before it could complete; leaving its audio to that worker");
                        }
                    }
                    None => {}
                }
            }
            Outcome::Finished(JobReport { result: Err(e), .. }) => {
                self.record_failure(job, platform, e).await
            }
            Outcome::Cancelled => {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::info!("job stopped: cancelled or no longer ours");
                if self.persist(|| self.queue.ack_cancel(job.id)).await == Some(true) {
                    // Stopped at an unknown point, perhaps mid-upload.
                    self.processor.discard(job, None).await;
                }
            }
            Outcome::Interrupted => {
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                if self.persist(|| self.queue.release(job.id)).await == Some(true) {
                    tracing::info!("job interrupted by shutdown; released to pending");
                }
            }
        }
    }

    /// Applies the error's retry decision.
    async fn record_failure(&self, job: &Job, platform: Platform, e: JobError) {
        let platforms = self.settings.platforms.get();
        let policy = platforms.get(platform);
        let labels = OutcomeLabels {
            platform: platform.as_str().into(),
            error_code: e.code.as_str().into(),
        };
        if e.code == ErrorCode::ExtractorOutdated {
            // Every attempt, retried or not: the operator's signal to upgrade.
            self.metrics
                .extractor_outdated
                .get_or_create(&PlatformLabel {
                    platform: platform.as_str().into(),
                })
                .inc();
        }
        if e.retry == Retry::Cooldown {
            self.metrics
                .platform_pauses
                .get_or_create(&PlatformLabel {
                    platform: platform.as_str().into(),
                })
                .inc();
        }
        let attempts_left = job.attempts < policy.max_attempts as i32;
        let retry = match e.retry {
            Retry::Never => None,
            Retry::Backoff if !attempts_left => None,
            // Some failures know better than the queue how soon a retry
            // can help (ErrorCode::min_retry_delay): never sooner than that.
            Retry::Backoff => Some((
                self.retry_delay(job.attempts)
                    .max(e.retry_after.unwrap_or_default()),
                true,
            )),
            Retry::Cooldown if job.pauses >= self.settings.max_pauses => None,
            Retry::Cooldown => Some((e.retry_after.unwrap_or(policy.cooldown), false)),
            Retry::Defer => {
                let delay = e.retry_after.unwrap_or(self.settings.poll_interval);
                tracing::info!("{}; job deferred", e.detail);
                if self.persist(|| self.queue.defer(job.id, delay)).await == Some(true) {
                    self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        match retry {
            None => {
                tracing::warn!(code = %e.code, detail = %e.detail, "job failed: {}", e.message);
                if self.persist(|| self.queue.fail(job.id, &e)).await == Some(true) {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    self.metrics.failed.get_or_create(&labels).inc();
                }
            }
            Some((delay, counts)) => {
                tracing::warn!(
                    code = %e.code, detail = %e.detail,
                    "job will be retried in {:.0}s: {}", delay.as_secs_f64(), e.message
                );
                if self
                    .persist(|| self.queue.retry_later(job.id, delay, &e, counts))
                    .await
                    == Some(true)
                {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    self.metrics.retried.get_or_create(&labels).inc();
                }
            }
        }
    }

    /// Exponential backoff with jitter for the `attempts`-th failure.
    fn retry_delay(&self, attempts: i32) -> Duration {
        let s = &self.settings;
        backon::ExponentialBuilder::default()
            .with_min_delay(s.retry_base)
            .with_max_delay(s.retry_max)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.max(1) as usize - 1)
            .unwrap_or(s.retry_max)
    }

    /// Runs a write-back until the database takes it. A finished result is
    /// worth waiting for: the database may be restarting. Returns None when
    /// the statement failed for good or the daemon gave up on it.
    async fn persist<F, Fut>(&self, mut write: F) -> Option<bool>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, DbError>>,
    {
        let mut delays = backoff();
        loop {
            match write().await {
                Ok(changed) => return Some(changed),
                Err(e) if is_connection_error(&e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        "cannot write the job's outcome yet ({e}); keeping it and retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.abandon_writes.cancelled() => {
                            tracing::error!("gave up writing the job's outcome: the database stayed unreachable through shutdown; another worker will redo the job");
                            return None;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("cannot write the job's outcome: {e}");
                    return None;
                }
            }
        }
    }
}

/// Keeps the lease fresh. Cancels the job when it is no longer ours
/// (cancelled by an operator, or taken back after we were silent too long).
async fn heartbeat(queue: Queue, id: uuid::Uuid, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match queue.heartbeat(id).await {
            Ok(true) => {}
            Ok(false) => {
                cancel.cancel();
                return;
            }
            // The database is away; the job keeps running and its result
            // waits for the write-back.
            Err(e) => tracing::debug!("heartbeat failed: {e}"),
        }
    }
}
