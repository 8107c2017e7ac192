//! `xtract migrate`: applies the files of `sql/` in order, each once.
//!
//! Safe when several daemons start at once: everything runs in one
//! transaction behind an advisory lock, so a second migrator waits, then finds
//! the work done.

use tokio_postgres::Client;

use super::DbError;

#[derive(Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
    /// Applied only where Supabase's `auth` schema exists (RLS on auth.uid()).
    pub supabase_only: bool,
}

/// The migrations, in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../../sql/001_core.sql"),
        supabase_only: false,
    },
    Migration {
        version: 2,
        name: "platforms",
        sql: include_str!("../../sql/002_platforms.sql"),
        supabase_only: false,
    },
    Migration {
        version: 3,
        name: "fairness",
        sql: include_str!("../../sql/003_fairness.sql"),
        supabase_only: false,
    },
    Migration {
        version: 4,
        name: "worker role and checks",
        sql: include_str!("../../sql/004_worker_and_checks.sql"),
        supabase_only: false,
    },
    Migration {
        version: 5,
        name: "queue hot path",
        sql: include_str!("../../sql/005_queue_hot_path.sql"),
        supabase_only: false,
    },
    Migration {
        version: 6,
        name: "link check",
        sql: include_str!("../../sql/006_link_check.sql"),
        supabase_only: false,
    },
    Migration {
        version: 7,
        name: "old service contract",
        sql: include_str!("../../sql/007_old_service_contract.sql"),
        supabase_only: false,
    },
    Migration {
        version: 8,
        name: "stop then retry",
        sql: include_str!("../../sql/008_stop_then_retry.sql"),
        supabase_only: false,
    },
    Migration {
        version: 9,
        name: "one link check",
        sql: include_str!("../../sql/009_one_link_check.sql"),
        supabase_only: false,
    },
    Migration {
        version: 12,
        name: "dashboard views and retention",
        sql: include_str!("../../sql/012_dashboard_and_retention.sql"),
        supabase_only: false,
    },
    Migration {
        version: 13,
        name: "per-job audio choice, richer results",
        sql: include_str!("../../sql/013_per_job_format_and_richer_results.sql"),
        supabase_only: false,
    },
    Migration {
        version: 14,
        name: "egress pool",
        sql: include_str!("../../sql/014_egress_pool.sql"),
        supabase_only: false,
    },
    Migration {
        version: 15,
        name: "platform of pasted links",
        sql: include_str!("../../sql/015_platform_of_pasted_links.sql"),
        supabase_only: false,
    },
    Migration {
        version: 16,
        name: "extractor and audio source",
        sql: include_str!("../../sql/016_extractor_and_audio_source.sql"),
        supabase_only: false,
    },
    Migration {
        version: 17,
        name: "queue at scale",
        sql: include_str!("../../sql/017_queue_at_scale.sql"),
        supabase_only: false,
    },
    Migration {
        version: 18,
        name: "horizon holders",
        sql: include_str!("../../sql/018_horizon_holders.sql"),
        supabase_only: false,
    },
    Migration {
        version: 19,
        name: "old service's HTTP API",
        sql: include_str!("../../sql/019_old_api.sql"),
        supabase_only: false,
    },
    Migration {
        version: 22,
        name: "platform guess reads hosts as the daemon",
        sql: include_str!("../../sql/022_platform_guess_reads_hosts_as_the_daemon.sql"),
        supabase_only: false,
    },
    Migration {
        version: 100,
        name: "supabase security",
        sql: include_str!("../../sql/100_supabase_security.sql"),
        supabase_only: true,
    },
    Migration {
        version: 101,
        name: "supabase pending limit",
        sql: include_str!("../../sql/101_supabase_pending_limit.sql"),
        supabase_only: true,
    },
    Migration {
        version: 102,
        name: "supabase: only these policies",
        sql: include_str!("../../sql/102_supabase_only_these_policies.sql"),
        supabase_only: true,
    },
    Migration {
        version: 103,
        name: "supabase: old frontends, bucket policy",
        sql: include_str!("../../sql/103_supabase_old_frontends_and_bucket.sql"),
        supabase_only: true,
    },
    Migration {
        version: 104,
        name: "supabase: users choose the audio",
        sql: include_str!("../../sql/104_supabase_audio_choice.sql"),
        supabase_only: true,
    },
    Migration {
        version: 105,
        name: "supabase: users choose the post's audio or its sound",
        sql: include_str!("../../sql/105_supabase_audio_source.sql"),
        supabase_only: true,
    },
    Migration {
        version: 107,
        name: "supabase: the old service's HTTP API",
        sql: include_str!("../../sql/107_supabase_old_api.sql"),
        supabase_only: true,
    },
];

/// Arbitrary, fixed: the key of the advisory lock migrators share.
const MIGRATE_LOCK_KEY: i64 = 0x7874_7261_6374; // "xtract"

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Applied now, in order.
    pub applied: Vec<&'static Migration>,
    /// Not applied because this database is not a Supabase project (no
    /// `auth` schema): the row level security layer has nothing to attach to.
    pub skipped_supabase_only: Vec<&'static Migration>,
}

/// Applies what is missing; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    Ok(migrate_with_outcome(client)
        .await?
        .applied
        .iter()
        .map(|m| m.version)
        .collect())
}

/// Applies what is missing; says what it applied and what it skipped.
pub async fn migrate_with_outcome(client: &mut Client) -> Result<Outcome, DbError> {
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
    let supabase = has_auth_schema(&tx).await?;
    let mut outcome = Outcome::default();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        if m.supabase_only && !supabase {
            outcome.skipped_supabase_only.push(m);
            continue;
        }
        // `xtract migrate` lists what it applied; the log need not.
        tracing::debug!(version = m.version, name = m.name, "applying migration");
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO xtract.schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        outcome.applied.push(m);
    }
    tx.commit().await?;
    Ok(outcome)
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
    let supabase = has_auth_schema(client).await?;
    Ok(MIGRATIONS
        .iter()
        .filter(|m| supabase || !m.supabase_only)
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

/// How many migrations apply to this database (the Supabase layer only
/// where Supabase's `auth` schema exists), and whether it is Supabase.
pub async fn applicable(client: &Client) -> Result<(usize, bool), DbError> {
    let supabase = has_auth_schema(client).await?;
    let n = MIGRATIONS
        .iter()
        .filter(|m| supabase || !m.supabase_only)
        .count();
    Ok((n, supabase))
}

/// Supabase's `auth` schema (auth.uid()) is there: the security layer applies.
async fn has_auth_schema(client: &impl tokio_postgres::GenericClient) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT to_regnamespace('auth') IS NOT NULL", &[])
        .await?
        .get(0))
}
