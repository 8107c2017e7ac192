//! The queue for the old service's HTTP API (ops/compat): a job inserted as
//! the app inserts it, for the user the request speaks for, and its outcome
//! read back. Every statement is one of `sql.rs`; the limits and checks are
//! the database's own, the same an app's insert meets.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::sql;
use crate::db::DbError;

/// The old-API jobs' queries, on a pool of their own: requests held open
/// must never wait behind, or hold up, the worker's claims and heartbeats.
#[derive(Clone)]
pub struct OldApi {
    pool: Pool,
}

/// Why the database refused the insert, in the sentence it gave (the one an
/// app shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The link check of every insert (SQLSTATE 22023).
    Link(String),
    /// The per-user limit of waiting and running jobs (P0001).
    Limit(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A job as the old API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Pending or processing (a retry waiting included).
    Unfinished,
    Completed {
        audio_file_id: Option<Uuid>,
    },
    Failed {
        code: Option<String>,
        message: Option<String>,
    },
    Cancelled,
    /// Deleted meanwhile (by an operator, or retention).
    Gone,
}

/// The job a request waits for, and whether it made it.
#[derive(Debug, Clone, Copy)]
pub struct Submitted {
    pub id: Uuid,
    /// False: the same user's job for the same link was already waiting or
    /// running, and the request waits for that one.
    pub created: bool,
}

impl OldApi {
    pub fn new(pool: Pool) -> Self {
        OldApi { pool }
    }

    /// Whether this database can take old-API jobs: the per-user limit the
    /// app's inserts meet must apply to them too, and it lives in the
    /// Supabase layer (100/101) with the daemon's right to call it (107).
    pub async fn check(&self) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(sql::OLD_API_SUPPORTED, &[])
            .await
            .map_err(|e| DbError::from(e).to_string())?;
        let (exists, callable): (bool, bool) = (row.get(0), row.get(1));
        if !exists {
            return Err("the database has no per-user limit to insert under \
                        (xtract.may_enqueue, the Supabase layer: sql/100 and 101): \
                        it is applied by `xtract migrate` where Supabase's auth schema exists"
                .into());
        }
        if !callable {
            return Err("the daemon's role may not call xtract.may_enqueue: \
                        run `xtract migrate` as the tables' owner (sql/107)"
                .into());
        }
        Ok(())
    }

    /// The user's waiting or running old-API job for `url`, or a new one
    /// inserted as the app would: the user's claims set as PostgREST sets
    /// them, the app's per-user limit, the insert's link check.
    pub async fn submit(&self, user: Uuid, url: &str) -> Result<Submitted, SubmitError> {
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let stmt = client
            .prepare_cached(sql::OLD_API_ACTIVE)
            .await
            .map_err(DbError::from)?;
        if let Some(row) = client
            .query_opt(&stmt, &[&user, &url])
            .await
            .map_err(DbError::from)?
        {
            return Ok(Submitted {
                id: row.get(0),
                created: false,
            });
        }
        let claims = serde_json::json!({"sub": user, "role": "authenticated"}).to_string();
        let tx = client.transaction().await.map_err(DbError::from)?;
        tx.execute(sql::OLD_API_CLAIMS, &[&claims])
            .await
            .map_err(DbError::from)?;
        let inserted = match tx.query_opt(sql::OLD_API_INSERT, &[&user, &url]).await {
            Ok(row) => row,
            Err(e) => return Err(refusal(e)),
        };
        let Some(row) = inserted else {
            // may_enqueue said no without a reason: the claims are not this
            // user's. Cannot happen with the claims set above.
            return Err(DbError::Statement(
                "the per-user limit refused the insert without a reason".into(),
            )
            .into());
        };
        tx.commit().await.map_err(DbError::from)?;
        Ok(Submitted {
            id: row.get(0),
            created: true,
        })
    }

    /// The job's outcome as it stands.
    pub async fn outcome(&self, id: Uuid) -> Result<Outcome, DbError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::OLD_API_OUTCOME).await?;
        let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
            return Ok(Outcome::Gone);
        };
        let status: String = row.get(0);
        Ok(match status.as_str() {
            "completed" => Outcome::Completed {
                audio_file_id: row.get(1),
            },
            "failed" => Outcome::Failed {
                code: row.get(2),
                message: row.get(3),
            },
            "cancelled" => Outcome::Cancelled,
            _ => Outcome::Unfinished,
        })
    }
}

/// The insert's refusals, told apart by SQLSTATE: the link check raises
/// 22023, the per-user limit P0001, each with the sentence an app shows.
fn refusal(e: tokio_postgres::Error) -> SubmitError {
    if let Some(db) = e.as_db_error() {
        let message = db.message().to_string();
        if *db.code() == tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE {
            return SubmitError::Refused(Refusal::Link(message));
        }
        if *db.code() == tokio_postgres::error::SqlState::RAISE_EXCEPTION {
            return SubmitError::Refused(Refusal::Limit(message));
        }
    }
    SubmitError::Db(e.into())
}
