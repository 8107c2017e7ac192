//! The job queue on PostgreSQL: claim, heartbeat, write-back, reap (this
//! file, one method per state transition of `sql.rs`), the LISTEN connection
//! (`notifier`), and the loop that runs jobs (`worker`).

pub mod admin;
pub mod completer;
mod executor;
pub mod handle;
pub mod health;
pub mod notifier;
pub mod old_api;
pub mod outcome;
pub mod pacing;
mod rescuer;
pub mod sql;
pub mod worker;
mod writeback;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::db::DbError;
use crate::domain::egress_pool::EgressRoutes;
use crate::domain::{AudioRow, AudioSource, Job, JobError, MediaMeta, ReusableAudio};
use crate::live::Live;

/// A job from a row of `job_columns!` (sql.rs), read by name.
fn job_from_row(r: &tokio_postgres::Row) -> Job {
    Job {
        id: r.get("id"),
        user_id: r.get("user_id"),
        original_url: r.get("original_url"),
        attempts: r.get("attempts"),
        platform: r.get("platform"),
        created_at: r.get("created_at"),
        waited_secs: r.get("waited_secs"),
        pauses: r.get("pauses"),
        audio_format: r.get("audio_format"),
        audio_bitrate_kbps: r.get("audio_bitrate_kbps"),
        audio_source: AudioSource::from_column(r.get::<_, Option<&str>>("audio_source")),
        egress: None,
        ytdlp_canary: r.get("ytdlp_canary"),
    }
}

/// The queue's statements, bound to one worker identity.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    worker_id: Arc<str>,
    /// This machine's egress key (XTRACT_EGRESS_KEY).
    egress_key: Arc<str>,
    /// The (platform, egress) pairs this daemon may use: the claim skips a
    /// platform only while all of its pairs are paused. Reloadable.
    routes: Live<EgressRoutes>,
    /// Batches completions without an audio row (see completer.rs).
    completer: Option<completer::Completer>,
}

impl Queue {
    pub fn new(pool: Pool, worker_id: &str, egress_key: &str) -> Self {
        Queue {
            pool,
            worker_id: worker_id.into(),
            egress_key: egress_key.into(),
            routes: Live::new(EgressRoutes::single(egress_key)),
            completer: None,
        }
    }

    /// Claims by these routes (the egress pool's) instead of this
    /// machine's key alone; the daemon replaces them on SIGHUP.
    pub fn with_routes(mut self, routes: Live<EgressRoutes>) -> Self {
        self.routes = routes;
        self
    }

    /// The (platform, egress) pairs the claim reads now.
    pub fn routes(&self) -> std::sync::Arc<EgressRoutes> {
        self.routes.get()
    }

    /// Starts a completer task for this worker (needs a tokio runtime).
    pub fn with_completer(mut self) -> Self {
        self.completer = Some(completer::Completer::start(
            self.pool.clone(),
            self.worker_id.to_string(),
        ));
        self
    }

    pub fn egress_key(&self) -> &str {
        &self.egress_key
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The handle a job body gets for `job`.
    pub fn job_handle(&self, job: Uuid) -> handle::JobHandle {
        handle::JobHandle::new(self.clone(), job, Default::default())
    }

    /// Pacing toward the platforms, for the turns of `job` (the egress of
    /// each is recorded on its row while this worker holds it).
    pub fn pacer(&self, job: Uuid) -> pacing::Pacer {
        pacing::Pacer::new(self.pool.clone(), job, &self.worker_id)
    }

    /// Claims up to `n` ready jobs, in a transaction that does not wait
    /// for its commit to reach the disk (sql::CLAIM_BEGIN says why that is
    /// safe). Its three messages go out together: one round trip.
    pub async fn claim(&self, n: usize) -> Result<Vec<Job>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql::claim_up_to(n)).await?;
        let routes = self.routes.get();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&&*self.worker_id, &routes.platforms, &routes.keys];
        let (begun, rows, committed) = futures::join!(
            client.batch_execute(sql::CLAIM_BEGIN),
            client.query(&stmt, &params),
            client.batch_execute("COMMIT"),
        );
        match (begun, rows, committed) {
            (Ok(()), Ok(rows), Ok(())) => Ok(rows.iter().map(job_from_row).collect()),
            (begun, rows, committed) => {
                // Never back into the pool with a transaction that may
                // still be open.
                let _ = deadpool_postgres::Object::take(client);
                Err(begun
                    .and(rows.map(|_| ()))
                    .and(committed)
                    .expect_err("one of them failed")
                    .into())
            }
        }
    }

    /// When the earliest pending job becomes ready, if any is pending.
    pub async fn next_run_after(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::NEXT_RUN_AFTER).await?;
        let routes = self.routes.get();
        Ok(client
            .query_one(&stmt, &[&routes.platforms, &routes.keys])
            .await?
            .get(0))
    }

    /// The job's status while this worker holds it (not `processing` once
    /// it was told to stop); None once it is no longer ours (taken back,
    /// finished).
    pub async fn heartbeat(&self, id: Uuid) -> Result<Option<String>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HEARTBEAT).await?;
        let row = client.query_opt(&stmt, &[&id, &&*self.worker_id]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Writes the audio row and marks the job completed, in one transaction.
    /// False (and nothing written) when the job is no longer ours.
    pub async fn complete(&self, job: &Job, audio: Option<&AudioRow>) -> Result<bool, DbError> {
        let Some(a) = audio else {
            if let Some(completer) = &self.completer {
                return completer.complete(job.id).await;
            }
            // Nothing to insert: one statement, no transaction round trips.
            let none: Option<Uuid> = None;
            return self
                .transition(sql::COMPLETE, &[&job.id, &&*self.worker_id, &none])
                .await;
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stmt = tx.prepare_cached(sql::UPSERT_AUDIO_FILE).await?;
        let audio_id: Uuid = tx
            .query_one(
                &stmt,
                &[
                    &job.user_id,
                    &job.id,
                    &a.filename,
                    &a.file_url,
                    &a.file_size,
                    &a.duration_secs,
                    &a.storage_path,
                    &a.content_type,
                    &a.audio_format,
                    &a.reused_from_job_id,
                    &a.audio_bitrate_kbps,
                    &a.title,
                    &a.uploader,
                    &a.platform,
                    &a.source_url,
                    &a.thumbnail_url,
                ],
            )
            .await?
            .get(0);
        let stmt = tx.prepare_cached(sql::COMPLETE).await?;
        let done = !tx
            .query(&stmt, &[&job.id, &&*self.worker_id, &Some(audio_id)])
            .await?
            .is_empty();
        // Not ours any more (cancelled, taken over): the audio row goes too.
        if done {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(done)
    }

    pub async fn fail(&self, id: Uuid, e: &JobError) -> Result<bool, DbError> {
        self.transition(
            sql::FAIL,
            &[
                &id,
                &&*self.worker_id,
                &e.code.as_str(),
                &e.message,
                &e.detail,
            ],
        )
        .await
    }

    /// Back to pending, to run again after `delay`. `counts`: whether this
    /// attempt is spent (false for a platform pause).
    pub async fn retry_later(
        &self,
        id: Uuid,
        delay: Duration,
        e: &JobError,
        counts: bool,
    ) -> Result<bool, DbError> {
        let refund: i32 = if counts { 0 } else { 1 };
        self.transition(
            sql::RETRY_LATER,
            &[
                &id,
                &&*self.worker_id,
                &delay.as_secs_f64(),
                &e.code.as_str(),
                &e.message,
                &e.detail,
                &refund,
            ],
        )
        .await
    }

    /// Back to pending at once, the attempt not counted (shutdown).
    pub async fn release(&self, id: Uuid) -> Result<bool, DbError> {
        self.transition(sql::RELEASE, &[&id, &&*self.worker_id])
            .await
    }

    /// The job's status now, and whether this worker still holds it.
    pub async fn hold_state(&self, id: Uuid) -> Result<Option<(String, bool)>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HOLD_STATE).await?;
        let row = client.query_opt(&stmt, &[&id, &&*self.worker_id]).await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Lets go of a job this worker was told to stop and has stopped.
    pub async fn let_go(&self, id: Uuid) -> Result<bool, DbError> {
        self.transition(sql::LET_GO, &[&id, &&*self.worker_id])
            .await
    }

    /// Takes back jobs of workers silent for longer than `lease`, never the
    /// ones in `held` (this worker's own): each job and its new status.
    pub async fn reap(
        &self,
        lease: Duration,
        max_attempts: &serde_json::Value,
        message: &str,
        held: &[Uuid],
    ) -> Result<Vec<(Job, String)>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::REAP).await?;
        let rows = client
            .query(
                &stmt,
                &[&lease.as_secs_f64(), max_attempts, &message, &held],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (job_from_row(r), r.get("status")))
            .collect())
    }

    /// Not run now: back to pending for `delay`, the attempt given back.
    pub async fn defer(&self, id: Uuid, delay: Duration) -> Result<bool, DbError> {
        self.transition(sql::DEFER, &[&id, &&*self.worker_id, &delay.as_secs_f64()])
            .await
    }

    pub(crate) async fn find_reusable_audio(
        &self,
        job_id: Uuid,
        canonical_url: &str,
        audio_format: &str,
        audio_bitrate_kbps: Option<i32>,
        audio_source: AudioSource,
    ) -> Result<Option<ReusableAudio>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::FIND_REUSABLE_AUDIO).await?;
        let row = client
            .query_opt(
                &stmt,
                &[
                    &canonical_url,
                    &job_id,
                    &audio_format,
                    &audio_bitrate_kbps,
                    &audio_source.as_str(),
                ],
            )
            .await?;
        Ok(row.map(|r| ReusableAudio {
            job_id: r.get(0),
            storage_path: r.get(1),
            filename: r.get(2),
            file_size: r.get(3),
            duration_secs: r.get(4),
            content_type: r.get(5),
            thumbnail_url: r.get(10),
            title: r.get(11),
            uploader: r.get(12),
            media: MediaMeta {
                id: r.get(6),
                title: r.get(7),
                uploader: r.get(8),
                duration: r.get(9),
                thumbnail: r.get(10),
                ..MediaMeta::default()
            },
        }))
    }

    pub(crate) async fn set_link(
        &self,
        id: Uuid,
        platform: &str,
        canonical: &str,
    ) -> Result<(), DbError> {
        self.execute(
            sql::SET_LINK,
            &[&id, &&*self.worker_id, &platform, &canonical],
        )
        .await
    }

    pub(crate) async fn set_media(&self, id: Uuid, m: &MediaMeta) -> Result<(), DbError> {
        self.execute(
            sql::SET_MEDIA,
            &[
                &id,
                &&*self.worker_id,
                &m.id,
                &m.title,
                &m.uploader,
                &m.duration,
                &m.extractor_key,
            ],
        )
        .await
    }

    pub(crate) async fn run_build(&self, id: Uuid, build: &str) -> Result<(), DbError> {
        self.execute(sql::RUN_BUILD, &[&id, &build, &&*self.worker_id])
            .await
    }

    pub(crate) async fn record_run(
        &self,
        id: Uuid,
        platform: &str,
        build: &str,
        error_code: Option<&str>,
    ) -> Result<(), DbError> {
        self.execute(
            sql::RECORD_RUN,
            &[
                &id,
                &platform,
                &build,
                &error_code.is_none(),
                &error_code,
                &&*self.worker_id,
            ],
        )
        .await
    }

    /// True when the row was written (the job is still ours and running).
    pub(crate) async fn set_progress(&self, id: Uuid, percent: i16) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::SET_PROGRESS).await?;
        Ok(client
            .execute(&stmt, &[&id, &&*self.worker_id, &percent])
            .await?
            > 0)
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client.execute(&stmt, params).await?;
        Ok(())
    }

    /// Deletes up to `batch` finished jobs older than `days` (retention),
    /// with their audio rows when `with_audio`: `remove` deletes each audio
    /// row's object first, inside the transaction that holds the rows, so a
    /// failure leaves rows that the next round finds again, never a row
    /// whose object is gone without anyone knowing. Returns (jobs, audio
    /// rows) deleted.
    pub async fn delete_expired<F, Fut>(
        &self,
        days: i32,
        batch: i64,
        with_audio: bool,
        remove: F,
    ) -> Result<(usize, usize), DbError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), JobError>>,
    {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(sql::SELECT_EXPIRED_JOBS, &[&days, &batch]).await?;
        let jobs: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        let mut audio: Vec<Uuid> = Vec::new();
        if with_audio {
            for row in &rows {
                let Some(id) = row.get::<_, Option<Uuid>>(1) else {
                    continue;
                };
                if let Some(path) = row.get::<_, Option<String>>(2) {
                    if let Err(e) = remove(path.clone()).await {
                        // Keep this row (and its job) for the next round.
                        tracing::warn!("retention: cannot delete {path}: {}", e.detail);
                        continue;
                    }
                }
                audio.push(id);
            }
        }
        let kept: Vec<Uuid> = if with_audio {
            rows.iter()
                .filter(|r| {
                    r.get::<_, Option<Uuid>>(1)
                        .is_some_and(|a| !audio.contains(&a))
                })
                .map(|r| r.get(0))
                .collect()
        } else {
            Vec::new()
        };
        let jobs: Vec<Uuid> = jobs.into_iter().filter(|j| !kept.contains(j)).collect();
        let deleted_jobs = tx.execute(sql::DELETE_JOBS, &[&jobs]).await? as usize;
        let deleted_audio = tx.execute(sql::DELETE_AUDIO_ROWS, &[&audio]).await? as usize;
        tx.commit().await?;
        Ok((deleted_jobs, deleted_audio))
    }

    /// The paused pairs among this daemon's routes: (platform, egress,
    /// until as text).
    pub async fn paused_platforms(&self) -> Result<Vec<(String, String, String)>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PAUSED_ROUTES).await?;
        let routes = self.routes.get();
        let rows = client
            .query(&stmt, &[&routes.platforms, &routes.keys])
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Waiting and running jobs in the whole database, by status (for the
    /// queue-depth gauge), read from their partial index.
    pub async fn active_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ACTIVE_COUNT_BY_STATUS).await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// The database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("").await?;
        Ok(())
    }

    pub async fn active_count(&self) -> Result<i64, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ACTIVE_COUNT).await?;
        Ok(client.query_one(&stmt, &[]).await?.get(0))
    }

    /// Runs a statement that returns the row it changed; true if it did.
    async fn transition(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(!client.query(&stmt, params).await?.is_empty())
    }
}

/// Delays between tries to reach the database: quick at first, capped at
/// 5 s, for ever (the listener, the claim loop, the write-back).
pub(crate) fn db_backoff() -> impl Iterator<Item = Duration> {
    crate::sync::backoff(Duration::from_millis(100), Duration::from_secs(5))
}
