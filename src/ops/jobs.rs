//! `xtract jobs`: the queue from a terminal — list recent jobs with a
//! summary, show one, retry failed ones, cancel pending or running ones.
//! Each change is one statement of `queue::sql`; the table's triggers do the
//! rest (resetting a retried job, notifying the daemons), exactly as when an
//! operator edits the row in the dashboard.

mod render;

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::db::{DbError, DbTarget};
use crate::queue::sql;

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no job with id {0}")]
    NotFound(Uuid),
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tokio_postgres::Error> for JobsError {
    fn from(e: tokio_postgres::Error) -> Self {
        JobsError::Db(e.into())
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// Without a subcommand: `list`.
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Recent jobs, newest first, then counts by status and paused platforms.
    List(ListArgs),
    /// One job: every column, and its audio_files row.
    Show {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Set failed or cancelled jobs back to pending; they start again from
    /// attempt 0.
    Retry {
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<Uuid>,
        /// Every failed job.
        #[arg(long)]
        all_failed: bool,
        /// With --all-failed: only this platform's.
        #[arg(long, requires = "all_failed", value_parser = super::cli::platform)]
        platform: Option<String>,
    },
    /// Cancel pending or processing jobs; a running job is stopped by its
    /// daemon.
    Cancel {
        #[arg(required = true)]
        ids: Vec<Uuid>,
    },
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub status: Option<Status>,
    /// instagram, tiktok, youtube or other.
    #[arg(long, value_parser = super::cli::platform)]
    pub platform: Option<String>,
    /// Only this user's jobs.
    #[arg(long, value_parser = super::cli::user_id)]
    pub user: Option<Uuid>,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Machine-readable JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    /// In the order a job goes through them.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Processing,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

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

pub async fn list(client: &Client, filter: &ListArgs) -> Result<Vec<JobLine>, JobsError> {
    let status = filter.status.map(Status::as_str);
    let rows = client
        .query(
            sql::LIST_JOBS,
            &[&status, &filter.platform, &filter.user, &filter.limit],
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

pub async fn summary(client: &Client) -> Result<Summary, JobsError> {
    let mut counts: BTreeMap<String, i64> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
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

pub async fn show(client: &Client, id: Uuid) -> Result<Shown, JobsError> {
    let job = client
        .query_opt(sql::JOB_ROW, &[&id])
        .await?
        .ok_or(JobsError::NotFound(id))?
        .get(0);
    let audio_file = client
        .query_opt(sql::AUDIO_ROW_OF_JOB, &[&id])
        .await?
        .map(|r| r.get(0));
    Ok(Shown { job, audio_file })
}

pub async fn retry(client: &Client, ids: &[Uuid]) -> Result<Vec<(Uuid, Outcome)>, JobsError> {
    transition(client, sql::RETRY_JOBS, ids).await
}

/// Returns the jobs set back to pending.
pub async fn retry_all_failed(
    client: &Client,
    platform: Option<&str>,
) -> Result<Vec<Uuid>, JobsError> {
    Ok(client
        .query(sql::RETRY_ALL_FAILED, &[&platform])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn cancel(client: &Client, ids: &[Uuid]) -> Result<Vec<(Uuid, Outcome)>, JobsError> {
    transition(client, sql::CANCEL_JOBS, ids).await
}

/// Runs a transition over `ids`, then explains each job it did not change.
async fn transition(
    client: &Client,
    statement: &str,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Outcome)>, JobsError> {
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

/// Runs `xtract jobs …` and prints the result. Fails (exit 1) when any named
/// job was unknown or could not be changed.
pub async fn run(database_url: &str, args: JobsArgs) -> Result<ExitCode, JobsError> {
    let client = DbTarget::parse(database_url)?.connect_simple().await?;
    let command = args.command.unwrap_or(JobsCommand::List(args.list));
    let all_changed = match command {
        JobsCommand::List(filter) => {
            let jobs = list(&client, &filter).await?;
            let summary = summary(&client).await?;
            if filter.json {
                let out = serde_json::json!({ "jobs": jobs, "summary": summary });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", render::table(&jobs));
                println!("{}", render::summary_line(&summary));
            }
            true
        }
        JobsCommand::Show { id, json } => {
            let shown = show(&client, id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print!("{}", render::shown(&shown));
            }
            true
        }
        JobsCommand::Retry {
            ids,
            all_failed: true,
            platform,
        } if ids.is_empty() => {
            let retried = retry_all_failed(&client, platform.as_deref()).await?;
            for id in &retried {
                println!("retried {id}");
            }
            println!("{} failed job(s) set back to pending", retried.len());
            true
        }
        JobsCommand::Retry { ids, .. } => report(
            "retried",
            "only failed or cancelled jobs can be retried",
            &retry(&client, &ids).await?,
        ),
        JobsCommand::Cancel { ids } => report(
            "cancelled",
            "only pending or processing jobs can be cancelled",
            &cancel(&client, &ids).await?,
        ),
    };
    Ok(if all_changed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per job: changes on stdout, refusals on stderr. True when every
/// job was changed.
fn report(done: &str, rule: &str, outcomes: &[(Uuid, Outcome)]) -> bool {
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Changed => println!("{done} {id}"),
            Outcome::NotFound => {
                eprintln!(
                    "xtract: jobs: no job with id {id} → check the id (xtract jobs lists them)"
                )
            }
            Outcome::Skipped { status } => {
                eprintln!("xtract: jobs: job {id} is {status}: {rule}")
            }
        }
    }
    outcomes.iter().all(|(_, o)| *o == Outcome::Changed)
}
