//! The statements of platform health (ops/heal): the runs a platform and
//! its builds are judged by, the canary job, the retry of the jobs an
//! outdated extractor failed, and the report the dashboard reads. Methods
//! of the queue, as every statement about jobs is.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{sql, Queue};
use crate::db::DbError;

/// A row of `xtract.ytdlp_runs`.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub platform: String,
    pub build: String,
    pub ok: bool,
    pub error_code: Option<String>,
    pub at: DateTime<Utc>,
}

/// A canary job as it is now.
#[derive(Debug, Clone)]
pub struct CanaryRow {
    pub status: String,
    pub error_code: Option<String>,
    pub canary: Option<String>,
    /// The build of its latest run.
    pub ran_on: Option<String>,
}

/// One platform's line in `xtract.platform_health`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    pub platform: String,
    pub state: String,
    pub since: Option<DateTime<Utc>>,
    pub build: Option<String>,
    pub auto_heal: bool,
    pub pinned: Option<String>,
    pub tried: Option<String>,
    pub tried_at: Option<DateTime<Utc>>,
    pub bad_builds: Vec<String>,
}

impl Queue {
    /// The latest `window` runs of each (platform, build) in `pairs`,
    /// newest first.
    pub async fn heal_runs(
        &self,
        pairs: &[(String, String)],
        window: u32,
    ) -> Result<Vec<RunRow>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HEAL_RUNS).await?;
        let platforms: Vec<&str> = pairs.iter().map(|(p, _)| p.as_str()).collect();
        let builds: Vec<&str> = pairs.iter().map(|(_, b)| b.as_str()).collect();
        let rows = client
            .query(&stmt, &[&platforms, &builds, &i64::from(window)])
            .await?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                platform: r.get(0),
                build: r.get(1),
                ok: r.get(2),
                error_code: r.get(3),
                at: r.get(4),
            })
            .collect())
    }

    /// Jobs of `platform` the extractor failed (`codes`) within `window`,
    /// that a canary may run on.
    pub async fn heal_failed_jobs(
        &self,
        platform: &str,
        codes: &[&str],
        window: std::time::Duration,
    ) -> Result<Vec<Uuid>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HEAL_FAILED_JOBS).await?;
        let rows = client
            .query(&stmt, &[&platform, &codes, &window.as_secs_f64()])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn heal_job(&self, id: Uuid) -> Result<Option<CanaryRow>, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HEAL_JOB).await?;
        Ok(client.query_opt(&stmt, &[&id]).await?.map(|r| CanaryRow {
            status: r.get(0),
            error_code: r.get(1),
            canary: r.get(2),
            ran_on: r.get(3),
        }))
    }

    /// Re-runs job `id` on `build` now; false when it could not be (taken,
    /// completed, gone).
    pub async fn heal_mark_canary(&self, id: Uuid, build: &str) -> Result<bool, DbError> {
        self.transition(sql::HEAL_MARK_CANARY, &[&id, &build]).await
    }

    pub async fn heal_unmark_canary(&self, id: Uuid) -> Result<(), DbError> {
        self.execute(sql::HEAL_UNMARK_CANARY, &[&id]).await
    }

    /// Retries the jobs of `platform` the extractor failed within
    /// `window`, but `except`, and with `not_on` only those whose latest
    /// run was on another build (failed ones set back to pending, waiting
    /// ones pulled forward).
    pub async fn heal_retry_failed(
        &self,
        platform: &str,
        codes: &[&str],
        window: std::time::Duration,
        except: Option<Uuid>,
        older: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(i64, i64), DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HEAL_RETRY_FAILED).await?;
        let (not_on, before) = (older.map(|(b, _)| b), older.map(|(_, t)| t));
        let row = client
            .query_one(
                &stmt,
                &[
                    &platform,
                    &codes,
                    &window.as_secs_f64(),
                    &except,
                    &not_on,
                    &before,
                ],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn heal_report(&self, host: &str, row: &HealthRow) -> Result<(), DbError> {
        self.execute(
            sql::HEAL_REPORT,
            &[
                &row.platform,
                &host,
                &row.state,
                &row.since.unwrap_or_else(Utc::now),
                &row.build,
                &row.auto_heal,
                &row.pinned,
                &row.tried,
                &row.tried_at,
                &row.bad_builds,
            ],
        )
        .await
    }

    pub async fn heal_prune_runs(&self) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        Ok(client.execute(sql::HEAL_PRUNE_RUNS, &[]).await?)
    }
}
