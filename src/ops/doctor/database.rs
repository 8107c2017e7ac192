//! The database checks: reachable (and encrypted when it should be),
//! LISTEN/NOTIFY delivered, schema current.

use tokio_postgres::config::{Host, SslMode};

use std::time::Duration;

use super::Check;
use crate::db::{migrate, redact_url, schema, DbError, DbTarget};
use crate::ops::horizon;
use crate::queue::admin;
use crate::queue::notifier::listen_works;

/// Supabase's transaction pooler (Supavisor) port.
const TRANSACTION_POOLER_PORT: u16 = 6543;

use crate::queue::notifier::POOLER_ADVICE;

/// The password as it may appear in text: as written in the URL, and
/// decoded as the driver uses it.
pub(super) fn password_forms(url: &str) -> Vec<String> {
    let mut forms = Vec::new();
    if let Some(raw) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(String::from))
    {
        forms.push(raw);
    }
    forms.extend(crate::db::url_password(url));
    forms.retain(|f| !f.is_empty());
    // Longest first, so a shorter form never leaves part of a longer one.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// database, listen and migrations. When the database cannot be reached the
/// two later checks are not run (the database line says so).
pub(super) async fn checks(url: Option<&str>, horizon_warn: Duration) -> Vec<Check> {
    let Some(url) = url else {
        return vec![Check::fail(
            "database",
            "DATABASE_URL is not set",
            "set it in /etc/xtract/xtract.env (see .env.example)",
        )];
    };
    let shown = redact_url(url);
    let target = match DbTarget::parse(url) {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::fail(
                "database",
                format!("{e} (LISTEN and migrations not checked)"),
                "write it as postgres://USER:PASSWORD@HOST:5432/DBNAME?sslmode=require",
            )]
        }
    };
    let client = match target.connect_simple().await {
        Ok(c) => c,
        Err(e) => {
            let check = Check::fail(
                "database",
                format!(
                    "cannot connect to {shown}: {} (LISTEN and migrations not checked)",
                    e.cause()
                ),
                connect_fix(&e),
            );
            // No answer at all (down, a firewall, a wrong host), as opposed
            // to one that refused us (a password, a role).
            let check = if crate::db::is_connection_error(&e) {
                check.unreachable()
            } else {
                check
            };
            let mut out = vec![check];
            if uses_transaction_pooler(&target) {
                out.push(Check::warn(
                    "listen",
                    format!(
                        "port {TRANSACTION_POOLER_PORT} is usually Supabase's transaction pooler"
                    ),
                    POOLER_ADVICE,
                ));
            }
            return out;
        }
    };
    let mut out = vec![connection_check(&target, &client, &shown).await];
    out.push(listen_check(&target).await);
    let migrations = match migrate::pending(&client).await {
        Ok(missing) if missing.is_empty() => Check::ok(
            "migrations",
            match migrate::applicable(&client).await {
                Ok((n, true)) => {
                    format!("schema current ({n} migrations, Supabase layer included)")
                }
                Ok((n, false)) => format!(
                    "schema current ({n} migrations; no `auth` schema, so not the Supabase layer)"
                ),
                Err(_) => "schema current".to_string(),
            },
        ),
        Ok(missing) => Check::fail(
            "migrations",
            format!("the schema lacks migrations {missing:?}"),
            "run xtract migrate (as the owner of the tables; on Supabase the postgres user)",
        ),
        Err(e) => Check::fail(
            "migrations",
            format!("cannot read the schema version: {e}"),
            "grant this user read access to the xtract schema, or run xtract migrate",
        ),
    };
    let schema_current = migrations.level == super::Level::Ok;
    out.push(migrations);
    out.push(match schema::check(&client).await {
        Ok(problems) if problems.is_empty() => Check::ok(
            "schema",
            "every table, column, trigger, function and privilege the daemon uses is there",
        ),
        Ok(problems) => Check::fail(
            "schema",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            schema::FIX,
        ),
        Err(e) => Check::fail(
            "schema",
            format!("cannot read the database catalog: {e}"),
            "check the user's privileges",
        ),
    });
    if schema_current {
        out.push(extractor_check(&client).await);
        out.push(horizon_check(&client, horizon_warn).await);
    }
    out
}

/// A session (or prepared transaction, or replication slot) holding a
/// snapshot for longer than `limit`: who, how long, what it costs the
/// queue, and how to end it (see ops/horizon.rs).
async fn horizon_check(client: &tokio_postgres::Client, limit: Duration) -> Check {
    let h = match horizon::read(client).await {
        Ok(h) => h,
        Err(e) => {
            return Check::warn(
                "horizon",
                format!("cannot read which sessions hold old snapshots: {e}"),
                "run xtract migrate (as the owner of the tables) so that xtract.horizon_holders() exists and xtract_worker may call it",
            )
        }
    };
    match horizon::finding(&h, limit) {
        horizon::Finding::Clear => Check::ok(
            "horizon",
            format!(
                "no snapshot held for {} or more ({} dead row versions in processing_jobs)",
                horizon::human(limit),
                h.dead_rows
            ),
        ),
        horizon::Finding::Held(holder) => Check::warn(
            "horizon",
            horizon::held_sentence(&h, holder, holder.held_for.unwrap_or_default(), false),
            horizon::end_it(holder),
        ),
        horizon::Finding::Unreadable(holder) => Check::warn(
            "horizon",
            horizon::unreadable_sentence(&h, holder),
            format!("{}; {}", horizon::UNREADABLE_FIX, horizon::end_it(holder)),
        ),
    }
}

/// Jobs that failed lately because yt-dlp no longer understands a site: the
/// operator's cue to upgrade it, before users read "private video".
async fn extractor_check(client: &tokio_postgres::Client) -> Check {
    match admin::recent_extractor_outdated(client).await {
        Ok(by_platform) => extractor_finding(&by_platform),
        Err(e) => Check::warn(
            "extractors",
            format!("cannot count recent extractor_outdated jobs: {e}"),
            "check the user's privileges on processing_jobs",
        ),
    }
}

fn extractor_finding(by_platform: &[(String, i64)]) -> Check {
    let total: i64 = by_platform.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return Check::ok(
            "extractors",
            "no job failed with extractor_outdated in the last 24 h",
        );
    }
    let list = by_platform
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Check::warn(
        "extractors",
        format!(
            "{total} job{} in the last 24 h failed or wait for a retry with extractor_outdated ({list}): yt-dlp no longer reads these sites",
            if total == 1 { "" } else { "s" }
        ),
        "upgrade yt-dlp (the yt-dlp check says how) and restart xtract; waiting jobs retry by themselves, failed ones with xtract jobs retry --all-failed --platform <platform>",
    )
}

async fn connection_check(
    target: &DbTarget,
    client: &tokio_postgres::Client,
    shown: &str,
) -> Check {
    let (user, version, encrypted) = match admin::connection_facts(client).await {
        Ok(facts) => facts,
        Err(e) => {
            return Check::fail(
                "database",
                format!("connected to {shown}, but a query failed: {e}"),
                "check the user's privileges",
            )
        }
    };
    let version = version.split_whitespace().next().unwrap_or("?");
    let found = format!(
        "connected to {shown} as {user}, PostgreSQL {version}, {}",
        if encrypted {
            "TLS encrypted"
        } else {
            "not encrypted"
        }
    );
    let asked_for_tls = target.config.get_ssl_mode() == SslMode::Require;
    if encrypted {
        Check::ok("database", found)
    } else if asked_for_tls {
        // tokio-postgres refuses this itself; kept so the report never
        // claims TLS it did not get.
        Check::fail(
            "database",
            found,
            "the server did not accept TLS although sslmode asks for it",
        )
    } else if is_local(target) {
        Check::ok("database", format!("{found} (local)"))
    } else {
        Check::warn(
            "database",
            found,
            "add sslmode=require (or verify-full with sslrootcert) to DATABASE_URL",
        )
    }
}

async fn listen_check(target: &DbTarget) -> Check {
    match listen_works(target).await {
        Ok(took) if uses_transaction_pooler(target) => Check::warn(
            "listen",
            format!(
                "round trip worked ({} ms), but port {TRANSACTION_POOLER_PORT} is usually a transaction pooler",
                took.as_millis()
            ),
            POOLER_ADVICE,
        ),
        Ok(took) => Check::ok(
            "listen",
            format!("LISTEN/NOTIFY round trip in {} ms", took.as_millis()),
        ),
        Err(e) => Check::fail("listen", e.to_string(), POOLER_ADVICE),
    }
}

fn uses_transaction_pooler(target: &DbTarget) -> bool {
    target.config.get_ports().contains(&TRANSACTION_POOLER_PORT)
}

/// Loopback or a Unix socket: no one on the wire to read the traffic.
fn is_local(target: &DbTarget) -> bool {
    target.config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// What to do about a failed connection, by what failed.
fn connect_fix(e: &DbError) -> String {
    if let DbError::Postgres(pg) | DbError::Connect { source: pg, .. } = e {
        if let Some(code) = pg.code() {
            return match code.code() {
                "28P01" => "check the user name and password in DATABASE_URL".into(),
                "28000" => "the server refuses this user from this host (pg_hba.conf; on Supabase: Network Restrictions)".into(),
                "3D000" => "check the database name at the end of DATABASE_URL (on Supabase it is postgres)".into(),
                _ => "see the server's message above".into(),
            };
        }
        let mut source = std::error::Error::source(pg);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        "nothing listens there: check host and port (Supabase: db.<ref>.supabase.co:5432 or the session pooler on 5432)".into()
                    }
                    std::io::ErrorKind::TimedOut => {
                        "no answer: check the host name and the firewall; Supabase's direct connection is IPv6-only, so an IPv4-only VM needs the session pooler".into()
                    }
                    _ => "check the host name in DATABASE_URL and this machine's network".into(),
                };
            }
            source = s.source();
        }
    }
    "check DATABASE_URL and that this machine can reach the database".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_password_are_known() {
        let forms = password_forms("postgres://u:p%40ss@h:5432/db");
        assert_eq!(forms, vec!["p%40ss".to_string(), "p@ss".to_string()]);
        assert!(password_forms("postgres://u@h/db").is_empty());
    }

    #[test]
    fn recent_extractor_failures_ask_for_an_upgrade() {
        let none = extractor_finding(&[]);
        assert_eq!(none.level, super::super::Level::Ok);
        let some = extractor_finding(&[("instagram".into(), 9), ("tiktok".into(), 1)]);
        assert_eq!(some.level, super::super::Level::Warn);
        assert!(some.found.starts_with("10 jobs"), "{}", some.found);
        assert!(
            some.found.contains("instagram 9, tiktok 1"),
            "{}",
            some.found
        );
        assert!(some.fix.unwrap().contains("upgrade yt-dlp"));
    }

    #[test]
    fn loopback_hosts_are_local() {
        assert!(is_local(
            &DbTarget::parse("postgres://u@127.0.0.1/db").unwrap()
        ));
        assert!(is_local(
            &DbTarget::parse("postgres://u@localhost/db").unwrap()
        ));
        assert!(!is_local(
            &DbTarget::parse("postgres://u@db.example.co/db").unwrap()
        ));
    }
}
