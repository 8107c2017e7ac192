//! Pacing requests to a platform across every daemon on the database, and
//! pausing a platform that rate-limited us. The state is one row per
//! platform and egress in `xtract.platform_pacing`; the claim reads the
//! pauses of the same rows (sql.rs). A request goes out through the
//! allowed egress whose next slot comes first (domain/egress_pool.rs). A
//! job body gets a [`Pacer`] bound to its job: it may take a turn or pause
//! a platform on an egress, nothing else; the egress of each turn is
//! recorded on the job (`processing_jobs.egress`) and kept for the metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sql;
use crate::db::DbError;
use crate::domain::{JobError, Platform, PlatformPolicy};

/// Added to a platform's interval between the first requests of two runs
/// (`Pacer::go`): what separates the go from the request on the wire (the
/// woken yt-dlp scheduled, its connection opened) varies by tens of
/// milliseconds on a loaded machine (measured in the rehearsal: up to 49 ms
/// with the load average at 12 on two cores), and the platform must never
/// see two requests closer than its interval. A tenth of a second is 1-2%
/// of the built-in intervals, and nothing at all where the random extra
/// delay already spaces the turns wider.
pub const REQUEST_MARGIN: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Pacer {
    pool: Pool,
    /// The job the turns are for, and the worker holding it.
    job_id: Uuid,
    worker_id: Arc<str>,
    /// The egress of the latest turn.
    served_by: Arc<Mutex<Option<String>>>,
}

/// What a reservation got.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// A slot through this egress, starting after `wait`.
    Go { egress: String, wait: Duration },
    /// Every egress's next slot is further than `max_wait` away (a pause,
    /// a long line): how far the first one is, to defer the job.
    Defer(Duration),
}

impl Turn {
    /// How long until the slot (or, deferred, until the first free one).
    pub fn wait(&self) -> Duration {
        match self {
            Turn::Go { wait, .. } | Turn::Defer(wait) => *wait,
        }
    }
}

impl Pacer {
    pub(super) fn new(pool: Pool, job_id: Uuid, worker_id: &str) -> Self {
        Pacer {
            pool,
            job_id,
            worker_id: worker_id.into(),
            served_by: Arc::default(),
        }
    }

    /// The egress the latest turn went to, if any was taken.
    pub fn served_by(&self) -> Option<String> {
        self.served_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, egress: &str) {
        *self.served_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(egress.to_string());
    }

    /// Waits for the platform's next request slot through one of
    /// `egresses` (pacing keys) and returns the egress. A slot further away
    /// than `max_wait` (every egress paused, or a long line of jobs) defers
    /// the job instead of holding a worker slot. If the database is away,
    /// pacing is skipped rather than failing the job: the platform's own
    /// limits still apply.
    pub async fn wait_turn(
        &self,
        platform: Platform,
        policy: &PlatformPolicy,
        egresses: &[&str],
        max_wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, JobError> {
        // A slot taken before its egress was paused (another job met a
        // rate limit through it meanwhile) is given up for the next best:
        // no request goes to a platform through an egress it has just
        // limited. A few rounds at most; the last one goes ahead.
        let mut round = 0;
        loop {
            round += 1;
            let (egress, wait) = match self.reserve(platform, policy, egresses, max_wait).await {
                Ok(Turn::Defer(wait)) => return Err(JobError::defer(platform, wait)),
                Ok(Turn::Go { egress, wait }) => (egress, wait),
                Err(e) => {
                    use rand::seq::SliceRandom;
                    tracing::warn!("pacing unavailable ({e}); going ahead");
                    let any = egresses.choose(&mut rand::thread_rng()).copied();
                    let egress = any.unwrap_or_default().to_string();
                    self.record(&egress);
                    return Ok(egress);
                }
            };
            self.record(&egress);
            if wait.is_zero() {
                return Ok(egress);
            }
            tracing::debug!(
                %egress,
                "waiting {:.1}s for {platform}'s turn",
                wait.as_secs_f64()
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // The job's future is dropped on cancel anyway.
                _ = cancel.cancelled() => return Ok(egress),
            }
            match self.paused(platform, &egress).await {
                Ok(true) if round < 3 => tracing::info!(
                    %egress,
                    "{platform} was paused on this egress while the job waited for its turn; choosing again"
                ),
                _ => return Ok(egress),
            }
        }
    }

    /// Holds a run's first request to `platform` through `egress` until
    /// `min_interval` after the latest one through it (from any daemon), so
    /// that the platform sees requests spaced as its policy says even when
    /// runs take different times to get from their turn to their first
    /// request. An egress paused since the turn was taken gives the run up
    /// (deferred: no attempt spent). Without the database, it goes ahead.
    pub async fn go(
        &self,
        platform: Platform,
        egress: &str,
        min_interval: Duration,
    ) -> Result<(), JobError> {
        let spacing = min_interval + REQUEST_MARGIN;
        let answer = async {
            let client = self.pool.get().await?;
            let stmt = client.prepare_cached(sql::REQUEST_GOES).await?;
            let row = client
                .query_opt(
                    &stmt,
                    &[&platform.as_str(), &egress, &spacing.as_secs_f64()],
                )
                .await?;
            Ok::<_, DbError>(row.map(|r| {
                (
                    r.get::<_, f64>("wait"),
                    r.get::<_, bool>("paused"),
                    r.get::<_, Option<f64>>("paused_for"),
                )
            }))
        };
        match answer.await {
            Ok(Some((_, true, paused_for))) => {
                tracing::info!(%egress, "{platform} was paused on this egress before the request went out; the job waits");
                Err(JobError::defer(
                    platform,
                    Duration::from_secs_f64(paused_for.unwrap_or(0.0).max(0.0)),
                ))
            }
            Ok(Some((wait, false, _))) => {
                // Never longer than the interval: the latest request is in
                // the past or just booked.
                let wait = wait.clamp(0.0, spacing.as_secs_f64());
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!("pacing unavailable ({e}); the request goes ahead");
                Ok(())
            }
        }
    }

    /// Whether `platform` is paused on `egress` now.
    async fn paused(&self, platform: Platform, egress: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::EGRESS_PAUSED).await?;
        let row = client
            .query_opt(&stmt, &[&platform.as_str(), &egress])
            .await?;
        Ok(row.is_some())
    }

    /// Takes the platform's first free request slot among `egresses`, in
    /// one statement (RESERVE_EGRESS_SLOT) that racing daemons cannot
    /// double-book. A slot further than `max_wait` away is not taken.
    pub async fn reserve(
        &self,
        platform: Platform,
        policy: &PlatformPolicy,
        egresses: &[&str],
        max_wait: Duration,
    ) -> Result<Turn, DbError> {
        /// Choosing again after a racing daemon took the slot chosen: each
        /// loss is someone else's win, so a few rounds suffice.
        const ROUNDS: usize = 20;
        let client = self.pool.get().await?;
        let spacing = (policy.min_interval + policy.draw_jitter()).as_secs_f64();
        let platform_name = platform.as_str();
        let worker_id: &str = &self.worker_id;
        let stmt = client.prepare_cached(sql::RESERVE_EGRESS_SLOT).await?;
        let mut ensured = false;
        for _ in 0..ROUNDS {
            let row = client
                .query_one(
                    &stmt,
                    &[
                        &platform_name,
                        &egresses,
                        &spacing,
                        &max_wait.as_secs_f64(),
                        &self.job_id,
                        &worker_id,
                    ],
                )
                .await?;
            let egress: Option<String> = row.get("egress");
            let first_free: Option<f64> = row.get("first_free");
            let wait: Option<f64> = row.get("wait");
            let known: i32 = row.get("known");
            // A new egress has no row yet: it is free at once.
            if (known as usize) < egresses.len() && !ensured {
                let ensure = client.prepare_cached(sql::ENSURE_PACING_ROWS).await?;
                client
                    .execute(&ensure, &[&platform_name, &egresses])
                    .await?;
                ensured = true;
                continue;
            }
            match (egress, wait) {
                (Some(egress), Some(wait)) => {
                    return Ok(Turn::Go {
                        egress,
                        wait: Duration::from_secs_f64(wait.max(0.0)),
                    })
                }
                (None, _) => break,
                (Some(_), None) => {
                    let first = Duration::from_secs_f64(first_free.unwrap_or(0.0).max(0.0));
                    if first > max_wait {
                        return Ok(Turn::Defer(first));
                    }
                    // A racing daemon took that slot first: choose again.
                }
            }
        }
        // No egress at all, or lost every race (never seen): come back
        // later rather than hold the worker slot. Never below the limit,
        // or the caller would wait instead of defer.
        Ok(Turn::Defer(max_wait + Duration::from_millis(1)))
    }

    /// No requests to `platform` through `egress` for `cooldown`; its other
    /// egresses go on.
    pub async fn pause(
        &self,
        platform: Platform,
        egress: &str,
        cooldown: Duration,
        reason: &str,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PAUSE_PLATFORM).await?;
        client
            .execute(
                &stmt,
                &[
                    &platform.as_str(),
                    &egress,
                    &cooldown.as_secs_f64(),
                    &reason,
                ],
            )
            .await?;
        tracing::warn!(%platform, %egress, "platform paused on this egress for {:.0}s: {reason}", cooldown.as_secs_f64());
        Ok(())
    }
}
