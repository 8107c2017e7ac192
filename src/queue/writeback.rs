//! The write-back: what became of a run goes to the database, exactly
//! once. A finished result waits out a database outage (it is worth it); a
//! statement the database refuses for another reason fails the job
//! `internal` with the database's words; a run whose job is no longer ours
//! lets go of it and removes what it stored when the job's state makes it
//! void. What to do after a failure is outcome.rs's decision.

use std::future::Future;
use std::time::Duration;

use super::db_backoff;
use super::executor::Outcome;
use super::outcome::{self, Decision};
use super::worker::{JobReport, Processor, Shared};
use crate::db::{is_connection_error, DbError};
use crate::domain::{AudioRow, ErrorCode, Job, JobError, Platform, Retry};
use crate::metrics::{EgressLabels, OutcomeLabels, PlatformLabel};

/// The `egress` label of a job's outcome: `none` when no request left.
fn egress_label(job: &Job) -> String {
    job.egress.clone().unwrap_or_else(|| "none".into())
}

/// What became of a write-back.
#[derive(Debug)]
pub(super) enum Persisted<T> {
    Written(T),
    /// The database refused the statement for a reason other than being
    /// unreachable (a constraint, a missing column, a type, a permission).
    Refused(DbError),
    /// The database stayed away through the whole shutdown.
    GaveUp,
}

impl<P: Processor> Shared<P> {
    pub(super) async fn write_back(&self, job: &Job, platform: Platform, outcome: Outcome) {
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
                tracing::info!("job stopped: cancelled, set back to pending, or no longer ours");
                // Stopped at an unknown point, perhaps mid-upload.
                self.let_go(job, None).await;
            }
            Outcome::Interrupted => match self.persist(|| self.queue.release(job.id)).await {
                Persisted::Written(true) => {
                    tracing::info!("job interrupted by shutdown; released to pending")
                }
                Persisted::Written(false) => self.let_go(job, None).await,
                Persisted::Refused(e) => {
                    tracing::error!("cannot release the job: {e}; it will be reaped")
                }
                Persisted::GaveUp => {}
            },
        }
    }

    /// Writes a finished job's result.
    async fn complete(&self, job: &Job, platform: Platform, audio: Option<AudioRow>) {
        match self
            .persist(|| self.queue.complete(job, audio.as_ref()))
            .await
        {
            Persisted::Written(true) => {
                self.metrics.count_completed(&EgressLabels {
                    platform: platform.as_str().into(),
                    egress: egress_label(job),
                });
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
        let (delay, counts) = match outcome::decide(
            &e,
            job.attempts,
            job.pauses,
            policy,
            &self.settings.retry_rules(),
        ) {
            Decision::Retry { delay, counts } => (delay, counts),
            Decision::Fail => {
                if let Persisted::Refused(db) = self.fail(job, platform, &e).await {
                    self.fail_unrecorded(job, platform, &e, db).await;
                }
                return;
            }
            Decision::Defer { delay } => {
                tracing::info!("{}; job deferred", e.detail);
                match self.persist(|| self.queue.defer(job.id, delay)).await {
                    Persisted::Written(false) => self.let_go(job, None).await,
                    Persisted::Refused(db) => self.fail_unrecorded(job, platform, &e, db).await,
                    Persisted::Written(true) | Persisted::GaveUp => {}
                }
                return;
            }
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
                self.metrics.count_failed(&OutcomeLabels {
                    platform: platform.as_str().into(),
                    error_code: e.code.as_str().into(),
                    egress: egress_label(job),
                });
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

    /// Runs a write-back until the database takes it. A finished result is
    /// worth waiting for: the database may be restarting. A statement the
    /// database refuses for another reason is handed back at once.
    async fn persist<T, F, Fut>(&self, mut write: F) -> Persisted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let mut delays = db_backoff();
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
