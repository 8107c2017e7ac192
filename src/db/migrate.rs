//! `xtract migrate`: applies the files of `sql/` in order, each once.
//!
//! Safe when several daemons start at once: everything runs in one
//! transaction behind an advisory lock, so a second migrator waits, then finds
//! the work done.

use tokio_postgres::Client;

use super::DbError;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations, in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../../sql/001_core.sql"),
    },
    Migration {
        version: 2,
        name: "platforms",
        sql: include_str!("../../sql/002_platforms.sql"),
    },
    Migration {
        version: 3,
        name: "fairness",
        sql: include_str!("../../sql/003_fairness.sql"),
    },
];

/// Arbitrary, fixed: the key of the advisory lock migrators share.
const MIGRATE_LOCK_KEY: i64 = 0x7874_7261_6374; // "xtract"

/// Applies what is missing; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS xtract;
         CREATE TABLE IF NOT EXISTS xtract.schema_migrations (
             version     integer PRIMARY KEY,
             name        text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM xtract.schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut now_applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(version = m.version, name = m.name, "applying migration");
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO xtract.schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        now_applied.push(m.version);
    }
    tx.commit().await?;
    Ok(now_applied)
}

/// Versions known to this build but not applied to the database.
pub async fn pending(client: &Client) -> Result<Vec<i32>, DbError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('xtract.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let applied: Vec<i32> = if exists {
        client
            .query("SELECT version FROM xtract.schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}
