//! Commands for people: `migrate` and `enqueue`.

use std::time::Duration;

use uuid::Uuid;

use crate::db::{migrate, DbError, DbTarget};
use crate::queue::sql;

pub async fn migrate(database_url: &str) -> Result<Vec<i32>, DbError> {
    let target = DbTarget::parse(database_url)?;
    let mut client = target.connect_simple().await?;
    migrate::migrate(&mut client).await
}

/// The final state of an enqueued job, as `enqueue --wait` prints it.
pub struct Waited {
    pub row: serde_json::Value,
    /// The job's `audio_files` row, when it has one.
    pub audio: Option<serde_json::Value>,
    pub succeeded: bool,
}

/// Inserts a job exactly as a frontend does (only `user_id` and
/// `original_url`), optionally waiting until it is finished.
pub async fn enqueue(
    database_url: &str,
    url: &str,
    user: Uuid,
    wait: Option<Duration>,
) -> Result<(Uuid, Option<Waited>), DbError> {
    let target = DbTarget::parse(database_url)?;
    let client = target.connect_simple().await?;
    let id: Uuid = client.query_one(sql::ENQUEUE, &[&user, &url]).await?.get(0);
    match wait {
        None => Ok((id, None)),
        Some(timeout) => {
            let waited = wait_for(&client, id, timeout).await?;
            Ok((id, Some(waited)))
        }
    }
}

/// Waits for a job that already exists (the demo's).
pub async fn enqueue_wait_existing(
    database_url: &str,
    id: Uuid,
    timeout: Duration,
) -> Result<(Uuid, Waited), DbError> {
    let client = DbTarget::parse(database_url)?.connect_simple().await?;
    Ok((id, wait_for(&client, id, timeout).await?))
}

/// Polls the job row until it is finished or `timeout` passes. (A person is
/// waiting at a terminal: a fifth of a second is quick enough.)
async fn wait_for(
    client: &tokio_postgres::Client,
    id: Uuid,
    timeout: Duration,
) -> Result<Waited, DbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let row: serde_json::Value = client.query_one(sql::JOB_ROW, &[&id]).await?.get(0);
        let status = row["status"].as_str().unwrap_or_default().to_string();
        let finished = matches!(status.as_str(), "completed" | "failed" | "cancelled");
        if finished || tokio::time::Instant::now() >= deadline {
            let audio = client
                .query_opt(sql::AUDIO_ROW_OF_JOB, &[&id])
                .await?
                .map(|r| r.get(0));
            return Ok(Waited {
                succeeded: status == "completed",
                row,
                audio,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
