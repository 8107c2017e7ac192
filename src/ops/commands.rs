//! Commands for people: `migrate` and `enqueue`.

use std::time::Duration;

use uuid::Uuid;

use crate::db::{migrate, DbError, DbTarget};
use crate::queue::admin;

pub async fn migrate(database_url: &str) -> Result<Vec<i32>, DbError> {
    let mut client = quiet_client(database_url).await?;
    migrate::migrate(&mut client).await
}

/// `xtract migrate`: what was applied, and what was skipped and why.
pub async fn migrate_with_outcome(database_url: &str) -> Result<migrate::Outcome, DbError> {
    let mut client = quiet_client(database_url).await?;
    migrate::migrate_with_outcome(&mut client).await
}

/// A connection whose routine notices ("… does not exist, skipping", from
/// the idempotent `drop … if exists` of the migrations) stay out of the
/// default output: they read like failures. Other notices (a policy the
/// migration dropped, say) are shown.
async fn quiet_client(database_url: &str) -> Result<tokio_postgres::Client, DbError> {
    use futures::StreamExt;
    let (client, mut connection) = DbTarget::parse(database_url)?.connect().await?;
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notice(n))
                    if n.message().ends_with("skipping") =>
                {
                    tracing::debug!("{}", n.message())
                }
                Ok(tokio_postgres::AsyncMessage::Notice(n)) => tracing::info!("{}", n.message()),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("database connection closed: {e}");
                    return;
                }
            }
        }
    });
    Ok(client)
}

/// The final state of an enqueued job, as `enqueue --wait` prints it.
pub struct Waited {
    pub row: serde_json::Value,
    /// The job's `audio_files` row, when it has one.
    pub audio: Option<serde_json::Value>,
    pub succeeded: bool,
    /// False when the wait timed out with the job still pending or running.
    pub finished: bool,
}

/// Refuses a link the daemon would refuse, with the daemon's sentence: the
/// same URL rules, with this machine's settings (platforms turned off, other
/// sites allowed or not, private addresses only where allowed).
pub fn check_link(config: &crate::ops::config::Config, url: &str) -> Result<(), String> {
    use crate::domain::Platform;
    use crate::pipeline::url_rules;
    let pipeline = config.pipeline();
    let link = url_rules::parse_job_url(url, &pipeline.url_policy()).map_err(|e| e.to_string())?;
    if link.platform != Platform::Other && !pipeline.platforms.get(link.platform).enabled {
        return Err(format!(
            "{} links are not accepted at the moment (turned off in the platform file).",
            link.platform.display_name()
        ));
    }
    Ok(())
}

/// Inserts a job exactly as a frontend does (only `user_id` and
/// `original_url`), optionally waiting until it is finished.
pub async fn enqueue(
    database_url: &str,
    url: &str,
    user: Uuid,
    wait: Option<Duration>,
) -> Result<(Uuid, Option<Waited>), DbError> {
    enqueue_choosing(database_url, url, user, &AudioChoice::default(), wait).await
}

/// What a user may choose for their job at insert (null: the default).
#[derive(Debug, Clone, Default)]
pub struct AudioChoice {
    pub format: Option<String>,
    pub bitrate_kbps: Option<i32>,
}

/// `enqueue` with the user's choice of format and bitrate, as a frontend
/// inserts it.
pub async fn enqueue_choosing(
    database_url: &str,
    url: &str,
    user: Uuid,
    choice: &AudioChoice,
    wait: Option<Duration>,
) -> Result<(Uuid, Option<Waited>), DbError> {
    enqueue_following(database_url, url, user, choice, wait, |_| {}).await
}

/// As [`enqueue_choosing`], telling `follow` the job's row when it is
/// inserted and each time its status or progress changes while waiting (a
/// person at a terminal wants to see it move).
pub async fn enqueue_following(
    database_url: &str,
    url: &str,
    user: Uuid,
    choice: &AudioChoice,
    wait: Option<Duration>,
    mut follow: impl FnMut(&serde_json::Value),
) -> Result<(Uuid, Option<Waited>), DbError> {
    let target = DbTarget::parse(database_url)?;
    let client = target.connect_simple().await?;
    let id = admin::enqueue(
        &client,
        user,
        url,
        choice.format.as_deref(),
        choice.bitrate_kbps,
    )
    .await?;
    match wait {
        None => Ok((id, None)),
        Some(timeout) => {
            let waited = wait_for(&client, id, timeout, &mut follow).await?;
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
    Ok((id, wait_for(&client, id, timeout, &mut |_| {}).await?))
}

/// Polls the job row until it is finished or `timeout` passes. (A person is
/// waiting at a terminal: a fifth of a second is quick enough.)
async fn wait_for(
    client: &tokio_postgres::Client,
    id: Uuid,
    timeout: Duration,
    follow: &mut dyn FnMut(&serde_json::Value),
) -> Result<Waited, DbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = None;
    loop {
        let row = admin::job_row(client, id)
            .await?
            .ok_or_else(|| DbError::Statement(format!("job {id} is gone")))?;
        let now = (row["status"].clone(), row["progress_percent"].clone());
        if seen.as_ref() != Some(&now) {
            follow(&row);
            seen = Some(now);
        }
        let status = row["status"].as_str().unwrap_or_default().to_string();
        let finished = matches!(status.as_str(), "completed" | "failed" | "cancelled");
        if finished || tokio::time::Instant::now() >= deadline {
            let audio = admin::audio_row_of_job(client, id).await?;
            return Ok(Waited {
                succeeded: status == "completed",
                finished,
                row,
                audio,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
