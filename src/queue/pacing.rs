//! Pacing requests to a platform across every daemon on the database, and
//! pausing a platform that rate-limited us. The state is one row per
//! platform and egress in `xtract.platform_pacing`; the claim reads the
//! pauses of the same rows (sql.rs). A job body gets a [`Pacer`] bound to
//! this daemon's egress: it may take a turn or pause a platform, nothing
//! else.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use super::sql;
use crate::db::DbError;
use crate::domain::{JobError, Platform, PlatformPolicy};

#[derive(Clone)]
pub struct Pacer {
    pool: Pool,
    /// Where this daemon's requests leave from.
    egress_key: Arc<str>,
}

impl Pacer {
    pub(super) fn new(pool: Pool, egress_key: &str) -> Self {
        Pacer {
            pool,
            egress_key: egress_key.into(),
        }
    }

    /// Waits for this platform's next request slot. A slot further away than
    /// `max_wait` (a pause, or a long line of jobs) defers the job instead of
    /// holding a worker slot. If the database is away, pacing is skipped
    /// rather than failing the job: the platform's own limits still apply.
    pub async fn wait_turn(
        &self,
        platform: Platform,
        policy: &PlatformPolicy,
        max_wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), JobError> {
        match self.reserve(platform, policy, max_wait).await {
            Ok(wait) if wait > max_wait => Err(JobError::defer(platform, wait)),
            Ok(wait) => {
                if !wait.is_zero() {
                    tracing::debug!("waiting {:.1}s for {platform}'s turn", wait.as_secs_f64());
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => Ok(()),
                    // The job's future is dropped on cancel anyway.
                    _ = cancel.cancelled() => Ok(()),
                }
            }
            Err(e) => {
                tracing::warn!("pacing unavailable ({e}); going ahead");
                Ok(())
            }
        }
    }

    /// Takes this platform's next request slot and returns how long until
    /// it starts; a slot further than `max_wait` away is not taken, and a
    /// wait above `max_wait` comes back instead.
    pub async fn reserve(
        &self,
        platform: Platform,
        policy: &PlatformPolicy,
        max_wait: Duration,
    ) -> Result<Duration, DbError> {
        let client = self.pool.get().await?;
        let egress_key: &str = &self.egress_key;
        let spacing = policy.min_interval + policy.draw_jitter();
        let stmt = client.prepare_cached(sql::RESERVE_SLOT).await?;
        let taken = client
            .query_opt(
                &stmt,
                &[
                    &platform.as_str(),
                    &egress_key,
                    &spacing.as_secs_f64(),
                    &max_wait.as_secs_f64(),
                ],
            )
            .await?;
        if let Some(row) = taken {
            return Ok(Duration::from_secs_f64(row.get::<_, f64>(0).max(0.0)));
        }
        // Too far away (a pause, a long line): how far, to defer the job.
        let stmt = client.prepare_cached(sql::PACING_WAIT).await?;
        let secs: f64 = client
            .query_opt(&stmt, &[&platform.as_str(), &egress_key])
            .await?
            .map_or(0.0, |r| r.get(0));
        // Never below the limit, or the caller would wait instead of defer.
        Ok(Duration::from_secs_f64(secs).max(max_wait + Duration::from_millis(1)))
    }

    /// No requests to `platform` from this egress for `cooldown`.
    pub async fn pause(
        &self,
        platform: Platform,
        cooldown: Duration,
        reason: &str,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let egress_key: &str = &self.egress_key;
        let stmt = client.prepare_cached(sql::PAUSE_PLATFORM).await?;
        client
            .execute(
                &stmt,
                &[
                    &platform.as_str(),
                    &egress_key,
                    &cooldown.as_secs_f64(),
                    &reason,
                ],
            )
            .await?;
        tracing::warn!(%platform, "platform paused for {:.0}s: {reason}", cooldown.as_secs_f64());
        Ok(())
    }
}
