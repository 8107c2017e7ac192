//! The executor, as River's: runs one claimed job. It holds the job (the
//! rescuer leaves held jobs alone), keeps its lease fresh with a heartbeat
//! that ends with it however it ends, gives its body narrow handles, stops
//! it on a cancel, the shutdown or its time limit, catches a panic in it,
//! and hands what happened to the write-back.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::handle::JobHandle;
use super::worker::{JobContext, JobReport, Processor, Shared};
use super::Queue;
use crate::domain::{Job, Platform};
use crate::metrics::PlatformLabel;
use crate::sync::{lock, AbortOnDrop};

// One value per running job, moved once: its size costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Outcome {
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

/// The ids of the jobs this worker holds.
#[derive(Clone, Default)]
pub(super) struct HeldJobs(Arc<Mutex<HashSet<uuid::Uuid>>>);

impl HeldJobs {
    /// Holds `id` until the guard is dropped (a panic included).
    pub(super) fn hold(&self, id: uuid::Uuid) -> Held {
        self.lock().insert(id);
        Held(self.clone(), id)
    }

    pub(super) fn ids(&self) -> Vec<uuid::Uuid> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<uuid::Uuid>> {
        lock(&self.0)
    }
}

pub(super) struct Held(HeldJobs, uuid::Uuid);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

impl<P: Processor> Shared<P> {
    pub(super) async fn execute(&self, job: Job, stop_jobs: CancellationToken) {
        let _held = self.held.hold(job.id);
        let cancel = self.cancels.register(job.id);
        // Beats until the outcome is written back (a finished result waiting
        // for the database keeps its lease) or the job is let go of; aborted
        // when dropped, however this function ends.
        let renewed = Arc::new(LastWrite::default());
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.queue.clone(),
            job.id,
            self.settings.heartbeat_interval,
            renewed.clone(),
            cancel.clone(),
        )));
        let ctx = JobContext {
            job: JobHandle::new(self.queue.clone(), job.id, renewed),
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
        // The egress the run's latest request went out through (metrics).
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
}

/// When the job's row was last written by its body in a way that renews
/// the lease.
#[derive(Default)]
pub(super) struct LastWrite(Mutex<Option<tokio::time::Instant>>);

impl LastWrite {
    pub(super) fn now(&self) {
        *lock(&self.0) = Some(tokio::time::Instant::now());
    }

    fn within(&self, period: Duration) -> bool {
        lock(&self.0).is_some_and(|at| at.elapsed() < period)
    }
}

/// The platform the insert trigger detected for the job.
pub(super) fn job_platform(job: &Job) -> Option<Platform> {
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
async fn heartbeat(
    queue: Queue,
    id: uuid::Uuid,
    every: Duration,
    renewed: Arc<LastWrite>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        // A progress write renewed the lease within this period: this beat
        // would only be one more event to the app's Realtime subscription.
        // (A progress write that found the job no longer ours does not
        // count, so the beat below still notices.)
        if renewed.within(every) {
            continue;
        }
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
