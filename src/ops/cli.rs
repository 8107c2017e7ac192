//! How commands fail, for people: one line, `xtract: what: why → what to do`,
//! and an exit code by kind of failure, the same for every command.
//!
//! | code | kind |
//! |---|---|
//! | 1 | the work failed (a job did not complete, a check failed, a job was refused) |
//! | 2 | a mistake in the command line, the configuration or the input |
//! | 3 | a service could not be reached (the database, storage) |
//! | 4 | timed out waiting (`enqueue --wait`) |

use std::fmt;
use std::process::ExitCode;

use super::config::ConfigError;
use crate::db::{is_connection_error, DbError};
use crate::domain::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Usage,
    Unavailable,
    TimedOut,
}

impl Kind {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Unavailable => 3,
            Kind::TimedOut => 4,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The command or the thing that failed (`enqueue`, `configuration`).
    pub what: String,
    pub why: String,
    pub fix: Option<String>,
    pub kind: Kind,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xtract: {}: {}", self.what, self.why)?;
        if let Some(fix) = &self.fix {
            write!(f, " → {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

impl CliError {
    pub fn new(kind: Kind, what: impl Into<String>, why: impl Into<String>) -> Self {
        CliError {
            what: what.into(),
            why: why.into(),
            fix: None,
            kind,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn config(e: &ConfigError) -> Self {
        CliError::new(
            Kind::Usage,
            "configuration",
            format!("{}: {}", e.var, e.reason),
        )
        .fix(format!(
            "correct {} in the environment or the env file (see .env.example)",
            e.var
        ))
    }

    /// A database failure of command `what`: unreachable (3), or a statement
    /// the database refused (1).
    pub fn db(what: &str, e: &DbError) -> Self {
        if is_connection_error(e) {
            CliError::new(Kind::Unavailable, what, e.to_string()).fix(
                "check DATABASE_URL and that this machine reaches the database (xtract doctor)",
            )
        } else {
            CliError::new(Kind::Failed, what, e.to_string())
        }
    }
}

/// clap value parser: a user id is a UUID.
pub fn user_id(s: &str) -> Result<uuid::Uuid, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not a user id: a user id is a UUID (like 1d4e5c7a-3b2f-4c1d-9e8f-0a1b2c3d4e5f), the user's id in Supabase Auth")
    })
}

/// clap value parser: one of the platform names jobs carry.
pub fn platform(s: &str) -> Result<String, String> {
    s.parse::<Platform>().map(|p| p.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_what_why_and_what_to_do() {
        let e = CliError::new(Kind::Unavailable, "jobs", "cannot connect to 10.0.0.1:5432")
            .fix("check DATABASE_URL");
        assert_eq!(
            e.to_string(),
            "xtract: jobs: cannot connect to 10.0.0.1:5432 → check DATABASE_URL"
        );
        assert_eq!(e.kind.exit_code(), ExitCode::from(3));
    }

    #[test]
    fn user_ids_and_platforms_are_checked_with_a_sentence() {
        assert!(user_id("bob").unwrap_err().contains("a user id is a UUID"));
        assert!(user_id("1d4e5c7a-3b2f-4c1d-9e8f-0a1b2c3d4e5f").is_ok());
        assert!(platform("facebook").unwrap_err().contains("facebook"));
        assert_eq!(platform("tiktok").unwrap(), "tiktok");
    }
}
