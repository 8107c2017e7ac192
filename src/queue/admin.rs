//! The queue for operators and commands: list, show, retry and cancel jobs
//! (`xtract jobs`), add one as a frontend would, as the operator (`xtract enqueue`), the
//! settings the database enforces, and what `doctor` and `/health` ask.
//! Each is a statement of `sql.rs` through a client the caller holds; the
//! table's triggers do the rest (resetting a retried job, notifying the
//! daemons), exactly as when an operator edits the row in the dashboard.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use super::sql;
use crate::db::DbError;

/// One row of `jobs list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobLine {
    pub id: Uuid,
    pub status: String,
    pub platform: Option<String>,
    pub attempts: i32,
    pub user_id: Uuid,
    pub original_url: String,
    pub error_code: Option<String>,
    /// None on rows the old service wrote without one.
    pub created_at: Option<DateTime<Utc>>,
    /// By the database's clock.
    pub age_secs: Option<f64>,
    /// The egress its latest download went out through.
    pub egress: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pause {
    pub platform: String,
    pub egress_key: String,
    pub paused_until: DateTime<Utc>,
    pub pause_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Every status, zero included.
    pub counts: BTreeMap<String, i64>,
    pub paused: Vec<Pause>,
}

/// A job with its audio row, as `jobs show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub job: serde_json::Value,
    pub audio_file: Option<serde_json::Value>,
}

/// What a retry or cancel did to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    NotFound,
    /// Left alone: its status does not allow the change.
    Skipped {
        status: String,
    },
}

/// What `list` shows: each filter applies when set.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub status: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub user: Option<Uuid>,
    pub limit: i64,
}

/// Recent jobs, newest first.
pub async fn list(client: &Client, filter: &Filter<'_>) -> Result<Vec<JobLine>, DbError> {
    let rows = client
        .query(
            sql::LIST_JOBS,
            &[
                &filter.status,
                &filter.platform,
                &filter.user,
                &filter.limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| JobLine {
            id: r.get("id"),
            status: r.get("status"),
            platform: r.get("platform"),
            attempts: r.get("attempts"),
            user_id: r.get("user_id"),
            original_url: r.get("original_url"),
            error_code: r.get("error_code"),
            created_at: r.get("created_at"),
            age_secs: r.get("age_secs"),
            egress: r.get("egress"),
        })
        .collect())
}

/// Every status a job can have, in the order a job goes through them.
pub const STATUSES: [&str; 5] = ["pending", "processing", "completed", "failed", "cancelled"];

/// How many jobs are in each status (every status, zero included), and
/// the platforms paused after a rate limit.
pub async fn summary(client: &Client) -> Result<Summary, DbError> {
    let mut counts: BTreeMap<String, i64> = STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    for row in client.query(sql::COUNT_BY_STATUS, &[]).await? {
        counts.insert(row.get(0), row.get(1));
    }
    let paused = client
        .query(sql::PAUSED_PLATFORMS, &[])
        .await?
        .iter()
        .map(|r| Pause {
            platform: r.get(0),
            egress_key: r.get(1),
            paused_until: r.get(2),
            pause_reason: r.get(3),
        })
        .collect();
    Ok(Summary { counts, paused })
}

/// One job with its audio row; None when there is no such job.
pub async fn show(client: &Client, id: Uuid) -> Result<Option<Shown>, DbError> {
    let Some(row) = client.query_opt(sql::JOB_ROW, &[&id]).await? else {
        return Ok(None);
    };
    let audio_file = client
        .query_opt(sql::AUDIO_ROW_OF_JOB, &[&id])
        .await?
        .map(|r| r.get(0));
    Ok(Some(Shown {
        job: row.get(0),
        audio_file,
    }))
}

/// failed/cancelled → pending.
pub async fn retry(client: &Client, ids: &[Uuid]) -> Result<Vec<(Uuid, Outcome)>, DbError> {
    transition(client, sql::RETRY_JOBS, ids).await
}

/// Returns the jobs set back to pending.
pub async fn retry_all_failed(
    client: &Client,
    platform: Option<&str>,
) -> Result<Vec<Uuid>, DbError> {
    Ok(client
        .query(sql::RETRY_ALL_FAILED, &[&platform])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// pending/processing → cancelled.
pub async fn cancel(client: &Client, ids: &[Uuid]) -> Result<Vec<(Uuid, Outcome)>, DbError> {
    transition(client, sql::CANCEL_JOBS, ids).await
}

/// Runs a transition over `ids`, then explains each job it did not change.
async fn transition(
    client: &Client,
    statement: &str,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Outcome)>, DbError> {
    let changed: Vec<Uuid> = client
        .query(statement, &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unchanged: Vec<Uuid> = ids
        .iter()
        .filter(|id| !changed.contains(id))
        .copied()
        .collect();
    let statuses: BTreeMap<Uuid, String> = if unchanged.is_empty() {
        BTreeMap::new()
    } else {
        client
            .query(sql::STATUS_OF_JOBS, &[&unchanged])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    Ok(ids
        .iter()
        .map(|id| {
            let outcome = if changed.contains(id) {
                Outcome::Changed
            } else {
                match statuses.get(id) {
                    Some(status) => Outcome::Skipped {
                        status: status.clone(),
                    },
                    None => Outcome::NotFound,
                }
            };
            (*id, outcome)
        })
        .collect())
}

// ---- `xtract enqueue` ----

/// Inserts a job exactly as a frontend does (the user, the link, and the
/// user's choice of format and bitrate).
pub async fn enqueue(
    client: &Client,
    user: Uuid,
    url: &str,
    format: Option<&str>,
    bitrate_kbps: Option<i32>,
) -> Result<Uuid, DbError> {
    Ok(client
        .query_one(sql::ENQUEUE, &[&user, &url, &format, &bitrate_kbps])
        .await?
        .get(0))
}

/// One job's row as JSON, None when there is no such job.
pub async fn job_row(client: &Client, id: Uuid) -> Result<Option<serde_json::Value>, DbError> {
    Ok(client
        .query_opt(sql::JOB_ROW, &[&id])
        .await?
        .map(|r| r.get(0)))
}

/// The job's audio row as JSON, if it has one.
pub async fn audio_row_of_job(
    client: &Client,
    id: Uuid,
) -> Result<Option<serde_json::Value>, DbError> {
    Ok(client
        .query_opt(sql::AUDIO_ROW_OF_JOB, &[&id])
        .await?
        .map(|r| r.get(0)))
}

// ---- what the database enforces, written by the daemon at start ----

/// Jobs one user may have waiting or running (the insert policy reads it).
pub async fn set_max_pending_per_user(client: &Client, n: i32) -> Result<(), DbError> {
    client.execute(sql::SET_MAX_PENDING, &[&n]).await?;
    Ok(())
}

/// The bucket the users' storage read policy names.
pub async fn set_storage_bucket(client: &Client, bucket: &str) -> Result<(), DbError> {
    client.execute(sql::SET_STORAGE_BUCKET, &[&bucket]).await?;
    Ok(())
}

// ---- `xtract doctor` ----

/// Who and where we are: (user, server version, TLS encrypted).
pub async fn connection_facts(client: &Client) -> Result<(String, String, bool), DbError> {
    let row = client.query_one(sql::CONNECTION_FACTS, &[]).await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Jobs that failed or wait for a retry with `extractor_outdated` in the
/// last 24 hours, by platform.
pub async fn recent_extractor_outdated(client: &Client) -> Result<Vec<(String, i64)>, DbError> {
    Ok(client
        .query(sql::RECENT_EXTRACTOR_OUTDATED, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
