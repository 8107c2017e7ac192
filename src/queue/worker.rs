//! The worker loop: claims jobs while it has free slots, runs each with a
//! heartbeat and a time limit, and writes the outcome back. It sleeps until a
//! notification, a finished job, the next retry time or the fallback poll,
//! whichever comes first, and reaps jobs of workers that died.
//!
//! A job is *held* from its claim until its outcome is written back (or,
//! when it was told to stop, until the worker has let go of it): its
//! heartbeat beats all that time, and this worker's reaper never takes it
//! back.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use futures::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handle::JobHandle;
use super::notifier::{backoff, CancelRegistry};
use super::pacing::Pacer;
use super::Queue;
use crate::db::{is_connection_error, DbError};
use crate::domain::{AudioRow, ErrorCode, Job, JobError, Platform, PlatformTable, Retry};
use crate::live::Live;
use crate::metrics::{EgressLabels, Metrics, OutcomeLabels, PlatformLabel};

/// What a job body reports back.
pub struct JobReport {
    /// The platform the job's URL belongs to, once known: it decides the
    /// attempts and the cooldown.
    pub platform: Option<Platform>,
    /// The audio row to write (None for a body that stores nothing).
    pub result: Result<Option<AudioRow>, JobError>,
}

/// What a job body gets besides the job: narrow handles, not the queue.
pub struct JobContext {
    /// Its own job's row: facts, progress, reusable audio.
    pub job: JobHandle,
    /// Turns toward the platforms through the egresses, and pauses; it
    /// remembers the egress of the latest turn, which the worker reads for
    /// the metrics' `egress` label when the run is over, however it ended.
    pub pacer: Pacer,
    /// Cancelled when the job must stop (operator cancel, lost lease). The
    /// body's future is dropped then too; the token lets it stop children
    /// promptly.
    pub cancel: CancellationToken,
}

/// The `egress` label of a job's outcome: `none` when no request left.
fn egress_label(job: &Job) -> String {
    job.egress.clone().unwrap_or_else(|| "none".into())
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
    /// A job running longer is stopped, with its processes, and fails
    /// `timeout` (XTRACT_JOB_TIMEOUT_SECS); a platform's `max_runtime`
    /// overrides it.
    pub job_timeout: Duration,
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
    /// The jobs this worker holds: the reaper leaves them alone.
    held: HeldJobs,
}

// One value per running job, moved once: its size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Finished(JobReport),
    /// Told to stop: cancelled, set back to pending or marked by hand, or
    /// taken over by another worker.
    Stopped,
    /// Shutdown.
    Interrupted,
    /// Past its time limit.
    TimedOut(Duration),
    /// The job body panicked (a bug): the message.
    Panicked(String),
}

/// What became of a write-back.
#[derive(Debug)]
enum Persisted<T> {
    Written(T),
    /// The database refused the statement for a reason other than being
    /// unreachable (a constraint, a missing column, a type, a permission).
    Refused(DbError),
    /// The database stayed away through the whole shutdown.
    GaveUp,
}

/// The ids of the jobs this worker holds.
#[derive(Clone, Default)]
struct HeldJobs(Arc<Mutex<HashSet<uuid::Uuid>>>);

impl HeldJobs {
    /// Holds `id` until the guard is dropped (a panic included).
    fn hold(&self, id: uuid::Uuid) -> Held {
        self.lock().insert(id);
        Held(self.clone(), id)
    }

    fn ids(&self) -> Vec<uuid::Uuid> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<uuid::Uuid>> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Held(HeldJobs, uuid::Uuid);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Aborts a task when dropped: the heartbeat must end with its job however
/// the job ends, a panic included, or the job would never be reaped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
                held: HeldJobs::default(),
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
        // Since when this worker has reached the database without a break.
        // Its reaper judges other workers' leases only after a whole lease
        // of that: if we could not reach the database, they may not have
        // either (a network cut is not a server restart).
        let mut connected_since = Some(tokio::time::Instant::now());

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
                        connected_since.get_or_insert_with(tokio::time::Instant::now);
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
                        connected_since = None;
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
                _ = reap_timer.tick() => {
                    if connected_since.is_some_and(|t| t.elapsed() >= s.lease) {
                        if let Err(e) = self.reap().await {
                            if is_connection_error(&e) {
                                connected_since = None;
                            }
                        }
                    }
                }
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

    /// Takes back the jobs of silent workers, never this worker's own.
    async fn reap(&self) -> Result<(), DbError> {
        let s = &self.shared.settings;
        let message = ErrorCode::WorkerLost.user_message(None);
        let held = self.shared.held.ids();
        match self
            .shared
            .queue
            .reap(
                s.lease,
                &s.platforms.get().max_attempts_json(),
                &message,
                &held,
            )
            .await
        {
            Ok(reaped) => {
                for (job, status) in &reaped {
                    tracing::warn!(job_id = %job.id, "worker of job stopped heart-beating; job is now {status}");
                }
                self.shared
                    .stats
                    .reaped
                    .fetch_add(reaped.len() as u64, Ordering::Relaxed);
                self.shared.metrics.reaped.inc_by(reaped.len() as u64);
                // A failed job keeps no audio: its dead worker may have
                // stored some before it could write the row. In the
                // background: storage requests must not hold up the loop.
                let failed: Vec<Job> = reaped
                    .into_iter()
                    .filter(|(_, status)| status == "failed")
                    .map(|(job, _)| job)
                    .collect();
                if !failed.is_empty() {
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        for job in &failed {
                            shared.processor.discard(job, None).await;
                        }
                    });
                }
                Ok(())
            }
            Err(e) => {
                tracing::debug!("reaper: {e}");
                Err(e)
            }
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
        let _held = self.held.hold(job.id);
        let cancel = self.cancels.register(job.id);
        // Beats until the outcome is written back (a finished result waiting
        // for the database keeps its lease) or the job is let go of; aborted
        // when dropped, however this function ends.
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.queue.clone(),
            job.id,
            self.settings.heartbeat_interval,
            cancel.clone(),
        )));
        let ctx = JobContext {
            job: self.queue.job_handle(job.id),
            pacer: self.queue.pacer(job.id),
            cancel: cancel.clone(),
        };
        let limit = self.time_limit(&job);
        tracing::info!(attempt = job.attempts, url = %job.original_url, "job started");
        let started = std::time::Instant::now();
        // A panic in the body is a bug in one job, not the end of the
        // worker: caught here, the job fails and its slot is given back.
        let body = AssertUnwindSafe(self.processor.process(&job, &ctx)).catch_unwind();
        // Dropping the body on a stop, the shutdown or the time limit kills
        // its processes (pipeline/process.rs).
        let outcome = tokio::select! {
            biased;
            _ = stop_jobs.cancelled() => Outcome::Interrupted,
            _ = cancel.cancelled() => Outcome::Stopped,
            ran = tokio::time::timeout(limit, body) => match ran {
                Ok(Ok(report)) => Outcome::Finished(report),
                Ok(Err(panic)) => Outcome::Panicked(panic_message(panic.as_ref())),
                Err(_) => Outcome::TimedOut(limit),
            },
        };
        self.cancels.remove(job.id);
        let job = Job {
            egress: ctx.pacer.served_by(),
            ..job
        };
        let platform = match &outcome {
            Outcome::Finished(report) => report.platform,
            _ => None,
        }
        .or_else(|| job_platform(&job))
        .unwrap_or(Platform::Other);
        self.metrics
            .duration
            .get_or_create(&PlatformLabel {
                platform: platform.as_str().into(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.write_back(&job, platform, outcome).await;
    }

    /// The job's time limit: its platform's `max_runtime`, else the
    /// daemon's. The platform is the one the insert trigger detected.
    fn time_limit(&self, job: &Job) -> Duration {
        job_platform(job)
            .and_then(|p| self.settings.platforms.get().get(p).max_runtime)
            .unwrap_or(self.settings.job_timeout)
    }

    async fn write_back(&self, job: &Job, platform: Platform, outcome: Outcome) {
        match outcome {
            Outcome::Finished(JobReport {
                result: Ok(audio), ..
            }) => self.complete(job, platform, audio).await,
            Outcome::Finished(JobReport { result: Err(e), .. }) => {
                self.record_failure(job, platform, e).await
            }
            Outcome::Panicked(message) => {
                tracing::error!(panic = %message, "the job body panicked; failing the job");
                self.discard_if_running_here(job).await;
                let e = JobError::internal(format!("the job body panicked: {message}"))
                    .with_retry(Retry::Never);
                self.record_failure(job, platform, e).await
            }
            Outcome::TimedOut(limit) => {
                tracing::warn!(
                    "job ran past its time limit of {:.0}s; its processes were stopped",
                    limit.as_secs_f64()
                );
                // Stopped at an unknown point, perhaps mid-upload.
                self.discard_if_running_here(job).await;
                let e = JobError::new(
                    ErrorCode::Timeout,
                    Some(platform),
                    format!(
                        "stopped after its time limit of {:.0}s ({platform} max_runtime_secs, else XTRACT_JOB_TIMEOUT_SECS)",
                        limit.as_secs_f64()
                    ),
                );
                self.record_failure(job, platform, e).await
            }
            Outcome::Stopped => {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::info!("job stopped: cancelled, set back to pending, or no longer ours");
                // Stopped at an unknown point, perhaps mid-upload.
                self.let_go(job, None).await;
            }
            Outcome::Interrupted => {
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                match self.persist(|| self.queue.release(job.id)).await {
                    Persisted::Written(true) => {
                        tracing::info!("job interrupted by shutdown; released to pending")
                    }
                    Persisted::Written(false) => self.let_go(job, None).await,
                    Persisted::Refused(e) => {
                        tracing::error!("cannot release the job: {e}; it will be reaped")
                    }
                    Persisted::GaveUp => {}
                }
            }
        }
    }

    /// Writes a finished job's result.
    async fn complete(&self, job: &Job, platform: Platform, audio: Option<AudioRow>) {
        match self
            .persist(|| self.queue.complete(job, audio.as_ref()))
            .await
        {
            Persisted::Written(true) => {
                self.stats.completed.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .completed
                    .get_or_create(&EgressLabels {
                        platform: platform.as_str().into(),
                        egress: egress_label(job),
                    })
                    .inc();
                tracing::info!("job completed");
            }
            // Cancelled or set back to pending meanwhile, or taken over
            // while we could not reach the database.
            Persisted::Written(false) => self.let_go(job, audio.as_ref()).await,
            // Waiting would not help: the result cannot be written. The job
            // fails now, with the database's words, instead of staying
            // `processing` until the reaper runs it again into the same wall.
            Persisted::Refused(db) => {
                tracing::error!("the database refused the job's result: {db}");
                let e = JobError::internal(format!("the database refused the result: {db}"))
                    .with_retry(Retry::Never);
                match self.fail(job, platform, &e).await {
                    Persisted::Written(true) => self.processor.discard(job, audio.as_ref()).await,
                    Persisted::Refused(db) => {
                        tracing::error!("cannot record the job's failure either: {db}")
                    }
                    _ => {}
                }
            }
            Persisted::GaveUp => {}
        }
    }

    /// After a run whose outcome is not to be written (the job was told to
    /// stop, or is no longer ours): removes what the run may have stored
    /// when the job's state makes it void, and lets go of the job if this
    /// worker still holds it. `audio`: what the run stored, None when it
    /// stopped at an unknown point (whatever it may have stored).
    async fn let_go(&self, job: &Job, audio: Option<&AudioRow>) {
        let (status, ours) = match self.persist(|| self.queue.hold_state(job.id)).await {
            Persisted::Written(Some(state)) => state,
            Persisted::Written(None) => return, // the row was deleted
            Persisted::Refused(e) => {
                tracing::error!("cannot read the job's state: {e}");
                return;
            }
            Persisted::GaveUp => return,
        };
        if ours && status == "processing" {
            // Stopped without being told to (a stale cancel): put it back.
            if let Persisted::Written(true) = self.persist(|| self.queue.release(job.id)).await {
                tracing::info!("job released to pending");
            }
            return;
        }
        // A failed or cancelled job keeps no audio, whoever ran it; one
        // this worker was told to stop (set back to pending, failed by hand)
        // must not leave this run's. A completed job's audio, or a job
        // another worker runs now (every attempt writes the same object),
        // is left alone.
        let void = match status.as_str() {
            "failed" | "cancelled" => true,
            "pending" => ours,
            _ => false,
        };
        if void {
            tracing::info!("job is {status}: removing what this run stored");
            self.processor.discard(job, audio).await;
        } else if !ours {
            tracing::info!(
                "job was taken over by another worker ({status}); leaving its audio to that worker"
            );
        }
        // Only now may the job be claimed again: a new run cannot start
        // while this one's files are being removed.
        if ours {
            match self.persist(|| self.queue.let_go(job.id)).await {
                Persisted::Written(true) => tracing::info!("let go of the {status} job"),
                Persisted::Written(false) => {}
                Persisted::Refused(e) => tracing::error!("cannot let go of the job: {e}"),
                Persisted::GaveUp => {}
            }
        }
    }

    /// Removes what a run stopped at an unknown point may have stored, when
    /// the job is still running here (not someone else's by now).
    async fn discard_if_running_here(&self, job: &Job) {
        if let Persisted::Written(Some((status, true))) =
            self.persist(|| self.queue.hold_state(job.id)).await
        {
            if status == "processing" {
                self.processor.discard(job, None).await;
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
            egress: egress_label(job),
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
                .get_or_create(&EgressLabels {
                    platform: platform.as_str().into(),
                    egress: egress_label(job),
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
                match self.persist(|| self.queue.defer(job.id, delay)).await {
                    Persisted::Written(true) => {
                        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    Persisted::Written(false) => self.let_go(job, None).await,
                    Persisted::Refused(db) => self.fail_unrecorded(job, platform, &e, db).await,
                    Persisted::GaveUp => {}
                }
                return;
            }
        };
        let Some((delay, counts)) = retry else {
            if let Persisted::Refused(db) = self.fail(job, platform, &e).await {
                self.fail_unrecorded(job, platform, &e, db).await;
            }
            return;
        };
        tracing::warn!(
            code = %e.code, detail = %e.detail,
            "job will be retried in {:.0}s: {}", delay.as_secs_f64(), e.message
        );
        match self
            .persist(|| self.queue.retry_later(job.id, delay, &e, counts))
            .await
        {
            Persisted::Written(true) => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                self.metrics.retried.get_or_create(&labels).inc();
            }
            Persisted::Written(false) => self.let_go(job, None).await,
            Persisted::Refused(db) => self.fail_unrecorded(job, platform, &e, db).await,
            Persisted::GaveUp => {}
        }
    }

    /// Fails the job for good: Written(true) when it was ours to fail (a
    /// job no longer ours is let go of).
    async fn fail(&self, job: &Job, platform: Platform, e: &JobError) -> Persisted<bool> {
        tracing::warn!(code = %e.code, detail = %e.detail, "job failed: {}", e.message);
        match self.persist(|| self.queue.fail(job.id, e)).await {
            Persisted::Written(true) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .failed
                    .get_or_create(&OutcomeLabels {
                        platform: platform.as_str().into(),
                        error_code: e.code.as_str().into(),
                        egress: egress_label(job),
                    })
                    .inc();
                // A failed job keeps no audio: an earlier attempt may have
                // stored some and died before writing its row.
                if job.attempts > 1 {
                    self.processor.discard(job, None).await;
                }
                Persisted::Written(true)
            }
            Persisted::Written(false) => {
                self.let_go(job, None).await;
                Persisted::Written(false)
            }
            other => other,
        }
    }

    /// The database refused to record a failure (say a check on
    /// `error_code` that does not know the code): fail the job `internal`,
    /// with the database's words and the original error, so that it does
    /// not stay `processing` for the reaper.
    async fn fail_unrecorded(&self, job: &Job, platform: Platform, e: &JobError, db: DbError) {
        tracing::error!("the database refused the job's outcome: {db}");
        let internal = JobError::internal(format!(
            "the database refused the outcome ({}: {}): {db}",
            e.code, e.detail
        ))
        .with_retry(Retry::Never);
        if let Persisted::Refused(db) = self.fail(job, platform, &internal).await {
            tracing::error!("cannot record the job's failure either: {db}; it will be reaped");
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
    /// worth waiting for: the database may be restarting. A statement the
    /// database refuses for another reason is handed back at once.
    async fn persist<T, F, Fut>(&self, mut write: F) -> Persisted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let mut delays = backoff();
        loop {
            match write().await {
                Ok(done) => return Persisted::Written(done),
                Err(e) if is_connection_error(&e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        "cannot write the job's outcome yet ({e}); keeping it and retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.abandon_writes.cancelled() => {
                            tracing::error!("gave up writing the job's outcome: the database stayed unreachable through shutdown; another worker will redo the job");
                            return Persisted::GaveUp;
                        }
                    }
                }
                Err(e) => return Persisted::Refused(e),
            }
        }
    }
}

/// The platform the insert trigger detected for the job.
fn job_platform(job: &Job) -> Option<Platform> {
    job.platform.as_deref().and_then(|p| p.parse().ok())
}

/// The text a panic carries, when it carries one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Keeps the lease fresh while the worker holds the job. Stops the job when
/// it is no longer to run: told to stop (cancelled, set back to pending,
/// marked by hand), the worker keeps beating until it lets go, so nobody
/// takes the job while its files are being removed; taken back after we
/// were silent too long, the beating ends.
async fn heartbeat(queue: Queue, id: uuid::Uuid, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match queue.heartbeat(id).await {
            Ok(Some(status)) if status == "processing" => {}
            Ok(Some(_)) => cancel.cancel(),
            Ok(None) => {
                cancel.cancel();
                return;
            }
            // The database is away; the job keeps running and its result
            // waits for the write-back.
            Err(e) => tracing::debug!("heartbeat failed: {e}"),
        }
    }
}
