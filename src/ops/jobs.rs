//! `xtract jobs`: the queue from a terminal — list recent jobs with a
//! summary, show one, retry failed ones, cancel pending or running ones.
//! The queries are the queue's (`queue::admin`); this is the command line
//! and what it prints.

mod render;

use std::process::ExitCode;

use uuid::Uuid;

use crate::db::{DbError, DbTarget};
use crate::queue::admin::{self, Filter, Outcome};

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

/// Runs `xtract jobs …` and prints the result. Fails (exit 1) when any named
/// job was unknown or could not be changed.
pub async fn run(database_url: &str, args: JobsArgs) -> Result<ExitCode, JobsError> {
    let client = DbTarget::parse(database_url)?.connect_simple().await?;
    let command = args.command.unwrap_or(JobsCommand::List(args.list));
    let all_changed = match command {
        JobsCommand::List(filter) => {
            let jobs = admin::list(
                &client,
                &Filter {
                    status: filter.status.map(Status::as_str),
                    platform: filter.platform.as_deref(),
                    user: filter.user,
                    limit: filter.limit,
                },
            )
            .await?;
            let summary = admin::summary(&client).await?;
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
            let shown = admin::show(&client, id)
                .await?
                .ok_or(JobsError::NotFound(id))?;
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
            let retried = admin::retry_all_failed(&client, platform.as_deref()).await?;
            for id in &retried {
                println!("retried {id}");
            }
            println!("{} failed job(s) set back to pending", retried.len());
            true
        }
        JobsCommand::Retry { ids, .. } => report(
            "retried",
            "only failed or cancelled jobs can be retried",
            &admin::retry(&client, &ids).await?,
        ),
        JobsCommand::Cancel { ids } => report(
            "cancelled",
            "only pending or processing jobs can be cancelled",
            &admin::cancel(&client, &ids).await?,
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
