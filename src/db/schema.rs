//! What the daemon expects of the database, checked against the catalog:
//! every table and column it reads or writes (with its type), the unique
//! keys its upserts name, the triggers and functions the queue relies on,
//! and the privileges of the role it logs in as. Migration numbers alone
//! do not say this: an adopted table, a hand edit in the dashboard or a
//! migration run by the wrong role can leave a schema that looks current
//! and fails every job's write-back. The daemon refuses to start on a
//! mismatch (and `xtract doctor` lists it), naming what is wrong.

use std::collections::{HashMap, HashSet};
use std::fmt;

use tokio_postgres::GenericClient;

use super::DbError;

/// A column the daemon uses and the types it can work with.
struct Column {
    name: &'static str,
    types: &'static [&'static str],
}

const fn col(name: &'static str, types: &'static [&'static str]) -> Column {
    Column { name, types }
}

const UUID: &[&str] = &["uuid"];
const TEXT: &[&str] = &["text"];
const INT: &[&str] = &["integer"];
const TIME: &[&str] = &["timestamp with time zone"];
const FLOAT: &[&str] = &["double precision"];

struct Table {
    /// Schema-qualified.
    name: &'static str,
    columns: &'static [Column],
    /// Privileges the daemon's role needs on it.
    privileges: &'static [&'static str],
}

const TABLES: &[Table] = &[
    Table {
        name: "public.processing_jobs",
        columns: &[
            col("id", UUID),
            col("user_id", UUID),
            col("original_url", TEXT),
            col("status", TEXT),
            col("result_audio_file_id", UUID),
            col("error_message", TEXT),
            col("created_at", TIME),
            col("updated_at", TIME),
            col("platform", TEXT),
            col("attempts", INT),
            col("run_after", TIME),
            col("locked_by", TEXT),
            col("heartbeat_at", TIME),
            col("started_at", TIME),
            col("finished_at", TIME),
            col("error_code", TEXT),
            col("error_detail", TEXT),
            col("canonical_url", TEXT),
            col("progress_percent", &["smallint"]),
            col("media_id", TEXT),
            col("media_title", TEXT),
            col("media_uploader", TEXT),
            col("media_duration_secs", FLOAT),
            col("pauses", INT),
            col("user_queue_position", INT),
            col("audio_format", TEXT),
            col("audio_bitrate_kbps", INT),
            col("egress", TEXT),
            col("media_extractor", TEXT),
            col("audio_source", TEXT),
            col("submitted_via", TEXT),
        ],
        // DELETE: retention (XTRACT_RETENTION_DAYS).
        privileges: &["SELECT", "INSERT", "UPDATE", "DELETE"],
    },
    Table {
        name: "public.audio_files",
        columns: &[
            col("id", UUID),
            col("user_id", UUID),
            col("filename", TEXT),
            col("file_url", TEXT),
            // INTEGER as the old service made it; bigint where xtract's
            // own earlier schema had sizes that did not fit (sql/007).
            col("file_size", &["integer", "bigint"]),
            col("duration", FLOAT),
            col("created_at", TIME),
            col("updated_at", TIME),
            col("job_id", UUID),
            col("storage_path", TEXT),
            col("content_type", TEXT),
            col("audio_format", TEXT),
            col("reused_from_job_id", UUID),
            col("audio_bitrate_kbps", INT),
            col("title", TEXT),
            col("uploader", TEXT),
            col("platform", TEXT),
            col("source_url", TEXT),
            col("thumbnail_url", TEXT),
        ],
        // DELETE: retention (XTRACT_RETENTION_DAYS).
        privileges: &["SELECT", "INSERT", "UPDATE", "DELETE"],
    },
    Table {
        name: "xtract.platform_pacing",
        columns: &[
            col("platform", TEXT),
            col("egress_key", TEXT),
            col("next_request_at", TIME),
            col("paused_until", TIME),
            col("pause_reason", TEXT),
            col("updated_at", TIME),
            col("last_request_at", TIME),
        ],
        privileges: &["SELECT", "INSERT", "UPDATE"],
    },
    Table {
        name: "xtract.settings",
        columns: &[
            col("max_pending_per_user", INT),
            col("storage_bucket", TEXT),
        ],
        privileges: &["SELECT", "UPDATE"],
    },
];

/// Unique keys that `ON CONFLICT` clauses name: (table, columns).
const UNIQUE_KEYS: &[(&str, &[&str])] = &[
    ("public.audio_files", &["job_id"]),
    ("xtract.platform_pacing", &["platform", "egress_key"]),
];

/// Triggers the queue relies on: (table, trigger).
const TRIGGERS: &[(&str, &str)] = &[
    ("public.processing_jobs", "processing_jobs_before_insert"),
    ("public.processing_jobs", "processing_jobs_before_update"),
    ("public.processing_jobs", "processing_jobs_notify_insert"),
    ("public.processing_jobs", "processing_jobs_notify_update"),
    ("public.audio_files", "audio_files_touch_updated_at"),
    ("public.processing_jobs", "processing_jobs_check_choice"),
    // The old-API endpoint's waits (019).
    ("public.processing_jobs", "processing_jobs_notify_finished"),
];

/// Functions in schema `xtract` (name, identity arguments).
const FUNCTIONS: &[(&str, &str)] = &[
    ("check_link", "url text"),
    ("link_problem", "url text"),
    ("detect_platform", "url text"),
    ("processing_jobs_before_insert", ""),
    ("processing_jobs_before_update", ""),
    ("processing_jobs_notify", ""),
    ("processing_jobs_notify_inserted", ""),
    ("horizon_holders", ""),
    ("touch_updated_at", ""),
    ("storage_bucket", ""),
    ("check_audio_choice", "format text, bitrate integer"),
    ("processing_jobs_check_choice", ""),
    ("processing_jobs_notify_finished", ""),
];

/// Every column of the tables named in `$1` (schema-qualified), with its type.
const COLUMNS_OF: &str = "
SELECT n.nspname || '.' || c.relname, a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = ANY($1)
  AND a.attnum > 0
  AND NOT a.attisdropped";

/// The columns of each unique index (or primary key) of the tables in `$1`.
const UNIQUE_INDEXES_OF: &str = "
SELECT n.nspname || '.' || c.relname,
       array(SELECT a.attname::text
             FROM unnest(i.indkey) AS k(attnum)
             JOIN pg_catalog.pg_attribute AS a
               ON a.attrelid = c.oid AND a.attnum = k.attnum
             ORDER BY 1)
FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE i.indisunique AND i.indpred IS NULL
  AND n.nspname || '.' || c.relname = ANY($1)";

/// User triggers of the tables in `$1`, and whether they fire ('D': disabled).
const TRIGGERS_OF: &str = "
SELECT n.nspname || '.' || c.relname, t.tgname::text, t.tgenabled <> 'D'
FROM pg_catalog.pg_trigger AS t
JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal
  AND n.nspname || '.' || c.relname = ANY($1)";

const XTRACT_FUNCTIONS: &str = "
SELECT p.proname::text, pg_catalog.pg_get_function_identity_arguments(p.oid)
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = 'xtract'";

/// Whether the connected role holds privilege `$2` on table `$1`.
const HAS_PRIVILEGE: &str = "
SELECT pg_catalog.has_table_privilege(current_user, $1, $2)";

/// One thing the daemon needs that the database does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    MissingTable(&'static str),
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
    WrongType {
        table: &'static str,
        column: &'static str,
        found: String,
        expected: &'static [&'static str],
    },
    MissingUniqueKey {
        table: &'static str,
        columns: &'static [&'static str],
    },
    MissingTrigger {
        table: &'static str,
        trigger: &'static str,
    },
    DisabledTrigger {
        table: &'static str,
        trigger: &'static str,
    },
    MissingFunction {
        name: &'static str,
        args: &'static str,
    },
    MissingPrivilege {
        table: &'static str,
        privilege: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingTable(t) => write!(f, "table {t} is missing"),
            Problem::MissingColumn { table, column } => {
                write!(f, "column {table}.{column} is missing")
            }
            Problem::WrongType {
                table,
                column,
                found,
                expected,
            } => write!(
                f,
                "column {table}.{column} is {found}, expected {}",
                expected.join(" or ")
            ),
            Problem::MissingUniqueKey { table, columns } => {
                write!(f, "{table} has no unique key on ({})", columns.join(", "))
            }
            Problem::MissingTrigger { table, trigger } => {
                write!(f, "trigger {trigger} on {table} is missing")
            }
            Problem::DisabledTrigger { table, trigger } => {
                write!(f, "trigger {trigger} on {table} is disabled")
            }
            Problem::MissingFunction { name, args } => {
                write!(f, "function xtract.{name}({args}) is missing")
            }
            Problem::MissingPrivilege { table, privilege } => {
                write!(f, "this role may not {privilege} {table}")
            }
        }
    }
}

/// What to do about any of them.
pub const FIX: &str =
    "run `xtract migrate` as the owner of the tables (on Supabase the postgres user); \
a missing privilege of the daemon's own role is granted by the same migration";

/// Reads the catalog and lists what does not match, in a stable order.
pub async fn check(client: &impl GenericClient) -> Result<Vec<Problem>, DbError> {
    let names: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
    let mut columns: HashMap<String, HashMap<String, String>> = HashMap::new();
    for row in client.query(COLUMNS_OF, &[&names]).await? {
        columns
            .entry(row.get(0))
            .or_default()
            .insert(row.get(1), row.get(2));
    }
    let mut problems = Vec::new();
    for table in TABLES {
        let Some(found) = columns.get(table.name) else {
            problems.push(Problem::MissingTable(table.name));
            continue;
        };
        for c in table.columns {
            match found.get(c.name) {
                None => problems.push(Problem::MissingColumn {
                    table: table.name,
                    column: c.name,
                }),
                Some(ty) if !c.types.contains(&ty.as_str()) => problems.push(Problem::WrongType {
                    table: table.name,
                    column: c.name,
                    found: ty.clone(),
                    expected: c.types,
                }),
                Some(_) => {}
            }
        }
        for privilege in table.privileges {
            let held: bool = client
                .query_one(HAS_PRIVILEGE, &[&table.name, privilege])
                .await?
                .get(0);
            if !held {
                problems.push(Problem::MissingPrivilege {
                    table: table.name,
                    privilege,
                });
            }
        }
    }

    let unique: HashSet<(String, Vec<String>)> = client
        .query(UNIQUE_INDEXES_OF, &[&names])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, key) in UNIQUE_KEYS {
        let mut want: Vec<String> = key.iter().map(|c| c.to_string()).collect();
        want.sort();
        if columns.contains_key(*table) && !unique.contains(&(table.to_string(), want)) {
            problems.push(Problem::MissingUniqueKey {
                table,
                columns: key,
            });
        }
    }

    let triggers: HashMap<(String, String), bool> = client
        .query(TRIGGERS_OF, &[&names])
        .await?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    for (table, trigger) in TRIGGERS {
        match triggers.get(&(table.to_string(), trigger.to_string())) {
            None => problems.push(Problem::MissingTrigger { table, trigger }),
            Some(false) => problems.push(Problem::DisabledTrigger { table, trigger }),
            Some(true) => {}
        }
    }

    let functions: HashSet<(String, String)> = client
        .query(XTRACT_FUNCTIONS, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, args) in FUNCTIONS {
        if !functions.contains(&(name.to_string(), args.to_string())) {
            problems.push(Problem::MissingFunction { name, args });
        }
    }
    Ok(problems)
}

/// One line for an operator: every problem, then the fix.
pub fn describe(problems: &[Problem]) -> String {
    let listed: Vec<String> = problems.iter().map(Problem::to_string).collect();
    format!("{} → {FIX}", listed.join("; "))
}
