//! The worker loop, as River's producer: claims jobs while it has free
//! slots and hands each to the executor (executor.rs), which runs it with a
//! heartbeat and a time limit and writes its outcome back (writeback.rs,
//! deciding by outcome.rs). It sleeps until a notification, a finished job,
//! the next retry time or the fallback poll, whichever comes first, and
//! runs the rescuer (rescuer.rs) for jobs of workers that died.
//!
//! A job is *held* from its claim until its outcome is written back (or,
//! when it was told to stop, until the worker has let go of it): its
//! heartbeat beats all that time, and this worker's rescuer never takes it
//! back.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::executor::HeldJobs;
use super::handle::JobHandle;
use super::notifier::CancelRegistry;
use super::pacing::Pacer;
use super::{db_backoff, Queue};
use crate::db::is_connection_error;
use crate::domain::{AudioRow, Job, JobError, Platform, PlatformTable};
use crate::live::Live;
use crate::metrics::{Metrics, PlatformLabel};

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
    /// remembers the egress of the latest turn, which the executor reads
    /// for the metrics' `egress` label when the run is over, however it
    /// ended.
    pub pacer: Pacer,
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

impl WorkerSettings {
    pub fn retry_rules(&self) -> super::outcome::RetryRules {
        super::outcome::RetryRules {
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            max_pauses: self.max_pauses,
            poll_interval: self.poll_interval,
        }
    }
}

/// How the daemon asks the worker to stop: first stop claiming, then, after
/// the grace period, stop running jobs and put them back.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub stop_claiming: CancellationToken,
    pub stop_jobs: CancellationToken,
}

pub struct Worker<P> {
    pub(super) shared: Arc<Shared<P>>,
    wake: Arc<Notify>,
}

pub(super) struct Shared<P> {
    pub(super) queue: Queue,
    pub(super) processor: P,
    pub(super) settings: WorkerSettings,
    pub(super) cancels: CancelRegistry,
    pub(super) metrics: Arc<Metrics>,
    /// Turns of the loop (the watchdog's sign of life).
    pub(super) loop_turns: Arc<AtomicU64>,
    /// Cancelled when even pending write-backs must give up (the database
    /// stayed away through the whole shutdown).
    pub(super) abandon_writes: CancellationToken,
    /// The jobs this worker holds: the reaper leaves them alone.
    pub(super) held: HeldJobs,
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
                loop_turns: Arc::default(),
                metrics,
                abandon_writes: CancellationToken::new(),
                held: HeldJobs::default(),
            }),
            wake,
        }
    }

    /// The counters it keeps (the daemon's one set).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Turns of the loop: the systemd watchdog checks that it moves.
    pub fn loop_turns(&self) -> Arc<AtomicU64> {
        self.shared.loop_turns.clone()
    }

    /// Runs until `shutdown.stop_claiming` (or, with `exit_when_idle`, until
    /// there is no work), then drains the running jobs.
    pub async fn run(self, shutdown: Shutdown) {
        let s = &self.shared.settings;
        let slots = Arc::new(Semaphore::new(s.concurrency));
        let mut running = JoinSet::new();
        let mut reap_timer = tokio::time::interval(s.poll_interval);
        reap_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut db_delays = db_backoff();
        // Since when this worker has reached the database without a break.
        // Its reaper judges other workers' leases only after a whole lease
        // of that: if we could not reach the database, they may not have
        // either (a network cut is not a server restart).
        let mut connected_since = Some(tokio::time::Instant::now());

        while !shutdown.stop_claiming.is_cancelled() {
            self.shared.loop_turns.fetch_add(1, Ordering::Relaxed);
            self.shared.metrics.running.set(running.len() as i64);
            let mut wait = s.poll_interval;
            let free = slots.available_permits();
            if free > 0 {
                match self.shared.queue.claim(free).await {
                    Ok(jobs) => {
                        db_delays = db_backoff();
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

    fn spawn_job(
        &self,
        running: &mut JoinSet<()>,
        job: Job,
        permit: OwnedSemaphorePermit,
        shutdown: &Shutdown,
    ) {
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
