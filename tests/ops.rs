//! Operator commands: `xtract doctor`, `xtract jobs`, and `scripts/install`,
//! run as an operator runs them (the real binary, a real PostgreSQL).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;
use uuid::Uuid;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn options() -> DaemonOptions {
    DaemonOptions::new(&tools().ytdlp)
}

fn line<'a>(ran: &'a Ran, prefix: &str) -> &'a str {
    ran.lines_starting(prefix)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{ran}"))
}

// ---- doctor ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_content_with_a_migrated_database_local_storage_and_the_real_tools() {
    let db = TestDb::start().await;
    let ran = xtract(&db.url, &options(), &["doctor"]).await;

    assert!(ran.status.success(), "{ran}");
    assert!(ran.lines_starting("FAIL").is_empty(), "{ran}");
    for check in [
        "configuration",
        "database",
        "listen",
        "migrations",
        "schema",
        "extractors",
        "ffmpeg",
        "ffprobe",
        "storage",
    ] {
        line(&ran, &format!("ok    {check} "));
    }
    // The warm helper was started as the daemon would, and stopped.
    let warm = line(&ran, "ok    warm yt-dlp");
    assert!(
        warm.contains("loaded once") && warm.contains("ready in"),
        "{warm}"
    );
    assert!(
        line(&ran, "ok    database").contains("not encrypted"),
        "{ran}"
    );
    assert!(line(&ran, "ok    listen").contains("round trip"), "{ran}");
    // Its age decides between ok and warn; either way it ran.
    let ytdlp = ran
        .stdout
        .lines()
        .find(|l| l.contains("yt-dlp ") && !l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("no yt-dlp line:\n{ran}"));
    assert!(ytdlp.contains("days old"), "{ytdlp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_an_unreachable_database_without_printing_its_password() {
    // Nothing listens on port 1.
    let url = "postgres://xtract:Sup3r-s3cret@127.0.0.1:1/postgres";
    let ran = xtract(url, &options(), &["doctor"]).await;

    assert!(!ran.status.success(), "{ran}");
    let database = line(&ran, "FAIL  database");
    assert!(database.contains("cannot connect to"), "{database}");
    assert!(database.contains("127.0.0.1:1"), "{database}");
    assert!(database.contains("Connection refused"), "{database}");
    assert!(!ran.stdout.contains("Sup3r-s3cret"), "{ran}");
    assert!(!ran.stderr.contains("Sup3r-s3cret"), "{ran}");
    // The checks that need no database still ran.
    line(&ran, "ok    ffmpeg");
}

/// A yt-dlp released 5 days ago: too old for the nightly channel, fine for
/// stable; the line names the channel either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_judges_yt_dlps_age_by_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let released = chrono::Utc::now().date_naive() - chrono::Days::new(5);
    let fake = dir.path().join("yt-dlp");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho {}.123456\n", released.format("%Y.%m.%d")),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (channel, want) in [("nightly", "warn  yt-dlp"), ("stable", "ok    yt-dlp")] {
        let mut opts = DaemonOptions::new(&fake);
        opts.extra_env
            .push(("XTRACT_YTDLP_CHANNEL".into(), channel.into()));
        let ran = xtract("postgres://127.0.0.1:1/postgres", &opts, &["doctor"]).await;
        let found = line(&ran, want);
        assert!(found.contains(&format!("{channel} channel")), "{found}");
        assert!(found.contains("5 days old"), "{found}");
        // A program that is not a Python script cannot be kept loaded.
        let warm = line(&ran, "warn  warm yt-dlp");
        assert!(warm.contains("not a Python script"), "{warm}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_warns_about_the_transaction_pooler_port() {
    let url = "postgres://xtract:pw@127.0.0.1:6543/postgres";
    let ran = xtract(url, &options(), &["doctor"]).await;
    let listen = line(&ran, "warn  listen");
    assert!(listen.contains("session pooler on port 5432"), "{listen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_sends_an_unmigrated_database_to_xtract_migrate() {
    let db = TestDb::start_unmigrated().await;
    let ran = xtract(&db.url, &options(), &["doctor"]).await;

    assert!(!ran.status.success(), "{ran}");
    line(&ran, "ok    database");
    line(&ran, "ok    listen");
    let migrations = line(&ran, "FAIL  migrations");
    assert!(migrations.contains("run xtract migrate"), "{migrations}");
}

/// Migration numbers say "current", but a column was renamed by hand, a
/// trigger dropped and a privilege revoked: every job's write-back would
/// fail. The daemon refuses to start, and doctor names each problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_the_daemon_cannot_work_with_stops_it_at_start_with_what_is_missing() {
    let db = TestDb::start().await;
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE audio_files RENAME COLUMN filename TO file_name;
             DROP TRIGGER processing_jobs_notify_insert ON processing_jobs;
             REVOKE UPDATE ON audio_files FROM xtract_worker;",
        )
        .await
        .unwrap();
    let mut daemon = Daemon::start(&db.url, &options());
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success());
    let log = daemon.log_text();
    for expected in [
        "column public.audio_files.filename is missing",
        "trigger processing_jobs_notify_insert on public.processing_jobs is missing",
        "this role may not UPDATE public.audio_files",
        "xtract migrate",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }

    let ran = xtract(&db.url, &options(), &["doctor"]).await;
    assert!(!ran.status.success(), "{ran}");
    line(&ran, "ok    migrations");
    let schema = line(&ran, "FAIL  schema");
    assert!(schema.contains("public.audio_files.filename"), "{schema}");
    assert!(schema.contains("→ run `xtract migrate`"), "{schema}");
}

/// Jobs that failed because yt-dlp no longer reads a site are the operator's
/// cue to upgrade it; doctor names them (older ones, and other codes, not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_jobs_that_failed_for_an_outdated_yt_dlp() {
    let db = TestDb::start().await;
    let client = db.client().await;
    for (link, status, code, age) in [
        (
            "https://www.instagram.com/p/Cout1/",
            "failed",
            "extractor_outdated",
            "1 hour",
        ),
        (
            "https://www.instagram.com/p/Cout2/",
            "pending",
            "extractor_outdated",
            "1 hour",
        ),
        (
            "https://www.tiktok.com/@a/video/71",
            "failed",
            "extractor_outdated",
            "2 hours",
        ),
        (
            "https://www.tiktok.com/@a/video/72",
            "failed",
            "extractor_outdated",
            "3 days",
        ),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "failed",
            "private",
            "1 hour",
        ),
    ] {
        let id = db.enqueue(&client, link).await;
        let platform = link.split('.').nth(1).unwrap();
        client
            .execute(
                "UPDATE processing_jobs SET status = $2, error_code = $3, platform = $4 WHERE id = $1",
                &[&id, &status, &code, &platform],
            )
            .await
            .unwrap();
        // The trigger keeps updated_at current; age the row after it ran.
        client
            .batch_execute(&format!(
                "SET session_replication_role = replica;
                 UPDATE processing_jobs SET updated_at = now() - interval '{age}' WHERE id = '{id}';
                 SET session_replication_role = DEFAULT"
            ))
            .await
            .unwrap();
    }
    let ran = xtract(&db.url, &options(), &["doctor"]).await;
    let found = line(&ran, "warn  extractors");
    assert!(found.contains("3 jobs"), "{found}");
    assert!(found.contains("instagram 2, tiktok 1"), "{found}");
    assert!(found.contains("upgrade yt-dlp"), "{found}");
}

/// A session of the owner, idle in a REPEATABLE READ transaction (a
/// forgotten dashboard query): it keeps every dead row version the queue
/// leaves from being removed. Returns the connection and its pid.
async fn forgotten_dashboard_query(db: &TestDb) -> (tokio_postgres::Client, i32) {
    let url = format!(
        "{}?application_name=forgotten%20dashboard%20query",
        db.owner_url
    );
    let (holder, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    holder
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM processing_jobs;",
        )
        .await
        .unwrap();
    let pid: i32 = db
        .client()
        .await
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'forgotten dashboard query'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (holder, pid)
}

/// doctor (run as the daemon's least-privileged role) names the session
/// that holds the horizon back: its pid, application, state and age, the
/// dead row versions it costs, and the statement that ends it. Where the
/// role owning xtract's functions cannot read other sessions' state and
/// age, it names the session by what it can see and says what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_session_holding_the_horizon_and_how_to_end_it() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let (_holder, pid) = forgotten_dashboard_query(&db).await;
    // Dead row versions it keeps: jobs finished after its snapshot.
    for n in 0..3 {
        let id = db
            .enqueue(&client, &format!("https://www.tiktok.com/@a/video/{n}"))
            .await;
        operator_sets_status(&client, id, "cancelled")
            .await
            .unwrap();
    }
    let mut opts = options();
    opts.extra_env
        .push(("XTRACT_HORIZON_WARN_SECS".into(), "0".into()));
    let ran = xtract(&db.url, &opts, &["doctor"]).await;
    let found = line(&ran, "warn  horizon");
    for words in [
        format!("session pid {pid} (application 'forgotten dashboard query', user postgres, from 127.0.0.1), idle in transaction for "),
        ", has held a snapshot for".into(),
        "dead row versions in processing_jobs".into(),
        format!("end it with SELECT pg_terminate_backend({pid});"),
    ] {
        assert!(found.contains(&words), "{words:?} not in:\n{found}");
    }

    // The functions' owner without pg_read_all_stats: state and age of
    // other roles' sessions are hidden from it too.
    client
        .batch_execute(
            "CREATE ROLE plain_owner NOLOGIN;
             ALTER FUNCTION xtract.horizon_holders() OWNER TO plain_owner;",
        )
        .await
        .unwrap();
    // The snapshot grows old in transactions (its age in time is hidden).
    for _ in 0..xtract::ops::horizon::XIDS_WORTH_NAMING {
        client
            .batch_execute("SELECT pg_current_xact_id()")
            .await
            .unwrap();
    }
    let ran = xtract(&db.url, &opts, &["doctor"]).await;
    let found = line(&ran, "warn  horizon");
    for words in [
        format!("session pid {pid} (application 'forgotten dashboard query', user postgres) holds the oldest snapshot ("),
        "xtract cannot read".into(),
        "pg_read_all_stats".into(),
        format!("SELECT pg_terminate_backend({pid});"),
    ] {
        assert!(found.contains(&words), "{words:?} not in:\n{found}");
    }
}

/// The daemon warns once about a session holding the horizon, and says
/// when it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_warns_once_about_a_held_horizon() {
    let db = TestDb::start().await;
    let (holder, pid) = forgotten_dashboard_query(&db).await;
    let mut opts = options();
    opts.extra_env
        .push(("XTRACT_HORIZON_WARN_SECS".into(), "0".into()));
    let daemon = Daemon::start(&db.url, &opts);
    let named = format!("session pid {pid} (application 'forgotten dashboard query'");
    eventually("the warning", SECS(30), || async {
        daemon.log_text().contains(&named).then_some(())
    })
    .await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    eventually("the all-clear", SECS(30), || async {
        daemon
            .log_text()
            .contains("no longer holds back the removal of dead row versions")
            .then_some(())
    })
    .await;
    let log = daemon.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&named) && l.contains("has held a snapshot"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&format!("pg_terminate_backend({pid})")),
        "{}",
        warnings[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_a_configuration_mistake_and_checks_the_rest() {
    let db = TestDb::start().await;
    let mut opts = options();
    opts.extra_env
        .push(("XTRACT_CONCURRENCY".into(), "lots".into()));
    let ran = xtract(&db.url, &opts, &["doctor"]).await;

    assert!(!ran.status.success(), "{ran}");
    assert!(line(&ran, "FAIL  configuration").contains("XTRACT_CONCURRENCY"));
    line(&ran, "ok    database");
    line(&ran, "ok    migrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_self_test_gets_its_notification_on_a_direct_connection() {
    let db = TestDb::start().await;
    let target = xtract::db::DbTarget::parse(&db.url).unwrap();
    let took = xtract::queue::notifier::listen_works(&target)
        .await
        .unwrap();
    assert!(took < SECS(5));
}

/// A real transaction pooler (pgbouncer, pool_mode = transaction, as
/// Supabase's port 6543): LISTEN and NOTIFY both "work" but the notification
/// never reaches the daemon. The daemon refuses to start and doctor fails
/// the listen check, both with the advice; the same pooler in session mode
/// (Supabase's 5432 pooler) passes, so the refusal is about the mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_transaction_pooler_the_daemon_refuses_and_doctor_says_why() {
    let db = TestDb::start().await;
    let transaction = Pgbouncer::start(&db, "transaction");
    let pooled = transaction.url(&db.url, db.pg.port());

    // Ordinary statements do get through this pooler.
    let target = xtract::db::DbTarget::parse(&pooled).unwrap();
    let client = target.connect_simple().await.expect("through pgbouncer");
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "xtract_worker");

    let mut daemon = Daemon::start(&pooled, &options());
    let status = daemon.wait_exit(SECS(60)).await;
    let log = daemon.log_text();
    assert!(
        !status.success(),
        "the daemon ran behind a transaction pooler:\n{log}"
    );
    assert!(log.contains("LISTEN/NOTIFY does not work"), "{log}");
    assert!(log.contains("session pooler on port 5432"), "{log}");

    let ran = xtract(&pooled, &options(), &["doctor"]).await;
    assert!(!ran.status.success(), "{ran}");
    let listen = line(&ran, "FAIL  listen");
    assert!(listen.contains("no notification arrived"), "{listen}");
    assert!(listen.contains("session pooler on port 5432"), "{listen}");

    let session = Pgbouncer::start(&db, "session");
    let ran = xtract(&session.url(&db.url, db.pg.port()), &options(), &["doctor"]).await;
    assert!(line(&ran, "ok    listen").contains("round trip"), "{ran}");
}

/// Each proxy of the egress pool gets one request through it to a neutral
/// page that says which address asked: a proxy that answers is ok with its
/// exit address, a refused password or a dead port fails, two egresses
/// leaving from one address are a warning, and so is a platforms file with
/// passwords that every user may read. No password is ever printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_proxy_and_never_prints_its_password() {
    use support::proxy_double::StandInProxy;
    let db = TestDb::start().await;
    // The neutral page, reached directly: this machine's own address.
    let trace = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trace_addr = trace.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async { "fl=1\nip=198.51.100.9\n" });
        axum::serve(trace, app).await.unwrap();
    });
    let good = StandInProxy::http(Some(("alice", "s3cret-one")), "203.0.113.7").await;
    let refused = StandInProxy::http(Some(("bob", "the-right-one")), "203.0.113.8").await;
    let socks = StandInProxy::socks5(Some(("carol", "s3cret-three")), "203.0.113.7").await;
    let dead = format!(
        "http://dave:s3cret-four@127.0.0.1:{}",
        xtract::ops::localpg::free_port().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("platforms.toml");
    std::fs::write(
        &file,
        format!(
            "[egress.res1]\nproxy = \"{}\"\n[egress.res2]\nproxy = \"{}\"\n\
             [egress.res3]\nproxy = \"{}\"\nplatforms = [\"tiktok\"]\n[egress.res4]\nproxy = \"{dead}\"\n",
            good.url(),
            refused.url_with("bob", "wr0ng-one"),
            socks.url(),
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut opts = options();
    opts.extra_env = vec![
        ("XTRACT_PLATFORMS_FILE".into(), file.display().to_string()),
        (
            "XTRACT_EGRESS_CHECK_URL".into(),
            format!("http://{trace_addr}/cdn-cgi/trace"),
        ),
    ];
    let ran = xtract(&db.url, &opts, &["doctor"]).await;
    assert!(!ran.status.success(), "{ran}");
    let egress: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.contains("  egress "))
        .collect();
    let find = |prefix: &str| {
        egress
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{ran}"))
            .to_string()
    };
    let res1 = find("ok    egress        res1 http://alice:***@127.0.0.1:");
    assert!(
        res1.contains("exit address 203.0.113.7; serves instagram, tiktok, youtube"),
        "{res1}"
    );
    let res3 = find("ok    egress        res3 socks5h://carol:***@127.0.0.1:");
    assert!(res3.ends_with("serves tiktok"), "{res3}");
    let res2 = find("FAIL  egress        res2 http://bob:***@");
    assert!(
        res2.contains("refused its user and password (407)"),
        "{res2}"
    );
    let res4 = find("FAIL  egress        res4 http://dave:***@");
    assert!(res4.contains("cannot connect"), "{res4}");
    let same = find("warn  egress        res1 and res3 leave from the same address 203.0.113.7");
    assert!(!same.contains("this machine"), "{same}");
    let readable = find("warn  egress");
    assert!(
        egress
            .iter()
            .any(|l| l.contains("every local user may read it (mode 644)")),
        "{readable}\n{ran}"
    );
    // One request each, through the proxy, with the file's credentials.
    assert_eq!(good.seen().len(), 1);
    assert!(good.seen()[0].authorized);
    assert!(!refused.seen()[0].authorized);
    let all = format!("{}{}", ran.stdout, ran.stderr);
    for secret in ["s3cret-one", "wr0ng-one", "s3cret-three", "s3cret-four"] {
        assert!(!all.contains(secret), "{secret} printed:\n{ran}");
    }
}

// ---- dev mode ----

/// The README's run command (`scripts/demo` runs exactly this): from an
/// empty folder, a throwaway PostgreSQL, a generated clip served on
/// 127.0.0.1, one job followed to `completed`, its rows printed, and a real
/// audio file on disk. DATABASE_URL points nowhere: dev mode never uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_demo_takes_a_job_to_completed_from_an_empty_folder() {
    let mut demo = Daemon::spawn(
        "postgres://nobody@127.0.0.1:1/nothing",
        &options(),
        &["dev", "--demo"],
    );
    let status = demo.wait_exit(SECS(180)).await;
    let (stdout, log) = (demo.stdout_text(), demo.log_text());
    assert!(status.success(), "{stdout}\n{log}");
    assert!(log.contains("DEVELOPMENT MODE"), "{log}");
    assert!(log.contains("The demo job completed"), "{log}");

    // The job row, then the audio row, as pretty JSON objects.
    let mut rows = serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
    let job = rows.next().expect("the job row").unwrap();
    let audio = rows.next().expect("the audio row").unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result_audio_file_id"], audio["id"]);
    let url = audio["file_url"].as_str().unwrap();
    let path = Path::new(url.strip_prefix("file://").unwrap());
    let size = std::fs::metadata(path).expect("the audio file").len();
    assert!(size > 10_000, "{size} bytes");
    assert_eq!(audio["file_size"], size);
    // The throwaway cluster lives in the folder it was started from.
    assert!(demo.dir.path().join(".xtract-dev/pg").is_dir());
}

// ---- jobs ----

/// One job in each state (two failed), and a paused platform.
struct Fixture {
    db: TestDb,
    client: tokio_postgres::Client,
    pending: Uuid,
    processing: Uuid,
    completed: Uuid,
    failed_instagram: Uuid,
    failed_tiktok: Uuid,
    cancelled: Uuid,
}

async fn fixture() -> Fixture {
    let db = TestDb::start().await;
    let client = db.client().await;
    let set = |id: Uuid, sql: &'static str| {
        let client = &client;
        async move {
            client.execute(sql, &[&id]).await.unwrap();
        }
    };
    let completed = db
        .enqueue(&client, "https://www.youtube.com/watch?v=done")
        .await;
    client
        .execute(
            "WITH a AS (
                 INSERT INTO audio_files (user_id, job_id, filename, file_url, file_size)
                 VALUES ($2, $1, 'done.m4a', 'file:///audio/done.m4a', 1234)
                 RETURNING id)
             UPDATE processing_jobs
             SET status = 'completed', attempts = 1, result_audio_file_id = (SELECT id FROM a)
             WHERE id = $1",
            &[&completed, &USER],
        )
        .await
        .unwrap();
    let failed_instagram = db
        .enqueue(&client, "https://www.instagram.com/reel/private1/")
        .await;
    set(
        failed_instagram,
        "UPDATE processing_jobs SET status = 'failed', attempts = 2,
             error_code = 'private_video', error_message = 'This video is private.'
         WHERE id = $1",
    )
    .await;
    let failed_tiktok = db
        .enqueue(&client, "https://www.tiktok.com/@someone/video/123")
        .await;
    set(
        failed_tiktok,
        "UPDATE processing_jobs SET status = 'failed', attempts = 3, error_code = 'network'
         WHERE id = $1",
    )
    .await;
    let cancelled = db.enqueue(&client, "https://youtu.be/stopped").await;
    set(
        cancelled,
        "UPDATE processing_jobs SET status = 'cancelled' WHERE id = $1",
    )
    .await;
    let processing = db.enqueue(&client, "https://youtu.be/running").await;
    set(
        processing,
        "UPDATE processing_jobs SET status = 'processing', attempts = 1,
             locked_by = 'elsewhere:1', heartbeat_at = now()
         WHERE id = $1",
    )
    .await;
    let pending = db.enqueue(&client, "https://youtu.be/waiting").await;
    client
        .execute(
            "INSERT INTO xtract.platform_pacing (platform, egress_key, paused_until, pause_reason)
             VALUES ('tiktok', 'vm1', now() + interval '10 minutes', 'rate limited'),
                    ('instagram', 'vm1', now() - interval '1 minute', 'over')",
            &[],
        )
        .await
        .unwrap();
    Fixture {
        db,
        client,
        pending,
        processing,
        completed,
        failed_instagram,
        failed_tiktok,
        cancelled,
    }
}

async fn jobs(f: &Fixture, args: &[&str]) -> Ran {
    let mut all = vec!["jobs"];
    all.extend_from_slice(args);
    xtract(&f.db.url, &options(), &all).await
}

fn json(ran: &Ran) -> serde_json::Value {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{ran}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_shows_recent_jobs_first_and_counts_by_status() {
    let f = fixture().await;

    let ran = jobs(&f, &[]).await;
    assert!(ran.status.success(), "{ran}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{ran}");
    // Newest first: the last inserted job is the first row.
    assert!(lines[1].starts_with(&f.pending.to_string()), "{ran}");
    assert_eq!(lines.len(), 1 + 6 + 1, "{ran}");
    let failed_row = lines
        .iter()
        .find(|l| l.starts_with(&f.failed_instagram.to_string()))
        .unwrap();
    for cell in ["failed", "instagram", "2", "private_video"] {
        assert!(failed_row.contains(cell), "{failed_row}");
    }
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with(
            "all jobs: 1 pending, 1 processing, 1 completed, 2 failed, 1 cancelled; paused: tiktok on vm1 until "
        ),
        "{summary}"
    );
    assert!(summary.ends_with("(rate limited)"), "{summary}");
    assert!(
        !summary.contains("instagram"),
        "an expired pause: {summary}"
    );

    let ran = jobs(&f, &["list", "--status", "failed", "--json"]).await;
    let out = json(&ran);
    let listed: Vec<&str> = out["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["failed", "failed"]);
    assert_eq!(out["summary"]["counts"]["failed"], 2);
    assert_eq!(out["summary"]["counts"]["pending"], 1);
    assert_eq!(out["summary"]["paused"][0]["platform"], "tiktok");

    let out = json(&jobs(&f, &["--platform", "instagram", "--json"]).await);
    assert_eq!(out["jobs"][0]["id"], f.failed_instagram.to_string());
    assert_eq!(out["jobs"].as_array().unwrap().len(), 1);

    let out = json(&jobs(&f, &["--limit", "2", "--json"]).await);
    assert_eq!(out["jobs"].as_array().unwrap().len(), 2);
    let other_user = Uuid::new_v4().to_string();
    let out = json(&jobs(&f, &["--user", &other_user, "--json"]).await);
    assert!(out["jobs"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_show_prints_every_column_and_the_audio_row() {
    let f = fixture().await;

    let out = json(&jobs(&f, &["show", &f.completed.to_string(), "--json"]).await);
    assert_eq!(out["job"]["id"], f.completed.to_string());
    assert_eq!(out["job"]["status"], "completed");
    assert!(out["job"].get("run_after").is_some());
    assert_eq!(out["audio_file"]["filename"], "done.m4a");

    let ran = jobs(&f, &["show", &f.failed_instagram.to_string()]).await;
    assert!(ran.status.success(), "{ran}");
    assert!(ran.stdout.contains("This video is private."), "{ran}");
    assert!(ran.stdout.contains("audio_files: none"), "{ran}");

    let unknown = Uuid::new_v4();
    let ran = jobs(&f, &["show", &unknown.to_string()]).await;
    assert!(!ran.status.success(), "{ran}");
    assert!(
        ran.stderr.contains(&format!("no job with id {unknown}")),
        "{ran}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_retry_sets_a_failed_job_pending_from_attempt_zero() {
    let f = fixture().await;
    let client = &f.client;

    let ran = jobs(&f, &["retry", &f.failed_instagram.to_string()]).await;
    assert!(ran.status.success(), "{ran}");
    assert!(ran
        .stdout
        .contains(&format!("retried {}", f.failed_instagram)));
    let row = job(client, f.failed_instagram).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0);
    assert!(row["error_code"].is_null() && row["error_message"].is_null());

    // A pending job and an unknown id are refused, each with its reason; the
    // cancelled one in the same call is retried.
    let unknown = Uuid::new_v4();
    let ran = jobs(
        &f,
        &[
            "retry",
            &f.pending.to_string(),
            &unknown.to_string(),
            &f.cancelled.to_string(),
        ],
    )
    .await;
    assert!(!ran.status.success(), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("job {} is pending", f.pending)),
        "{ran}"
    );
    assert!(
        ran.stderr.contains(&format!("no job with id {unknown}")),
        "{ran}"
    );
    assert_eq!(status(client, f.cancelled).await, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_retry_all_failed_takes_only_the_named_platform() {
    let f = fixture().await;
    let client = &f.client;

    let ran = jobs(&f, &["retry", "--all-failed", "--platform", "tiktok"]).await;
    assert!(ran.status.success(), "{ran}");
    assert!(
        ran.stdout.contains("1 failed job(s) set back to pending"),
        "{ran}"
    );
    assert_eq!(status(client, f.failed_tiktok).await, "pending");
    assert_eq!(status(client, f.failed_instagram).await, "failed");

    let ran = jobs(&f, &["retry", "--all-failed"]).await;
    assert!(
        ran.stdout.contains("1 failed job(s) set back to pending"),
        "{ran}"
    );
    assert_eq!(status(client, f.failed_instagram).await, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cancel_cancels_pending_jobs_and_refuses_finished_ones() {
    let f = fixture().await;
    let client = &f.client;

    let ran = jobs(&f, &["cancel", &f.pending.to_string()]).await;
    assert!(ran.status.success(), "{ran}");
    assert_eq!(status(client, f.pending).await, "cancelled");

    let ran = jobs(&f, &["cancel", &f.completed.to_string()]).await;
    assert!(!ran.status.success(), "{ran}");
    assert!(ran.stderr.contains("is completed"), "{ran}");
    assert_eq!(status(client, f.completed).await, "completed");
    // The processing job belongs to no live daemon here; its row still moves.
    let ran = jobs(&f, &["cancel", &f.processing.to_string()]).await;
    assert!(ran.status.success(), "{ran}");
    assert_eq!(status(client, f.processing).await, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cancel_stops_a_job_a_daemon_is_running() {
    let (s, daemon) = Stage::new().start().await;
    let (id, ytdlp_pid) = s.blocked_job("op").await;

    let ran = s.xtract(&["jobs", "cancel", &id.to_string()]).await;
    assert!(ran.status.success(), "{ran}");
    wait_ended("the download to be killed", &[ytdlp_pid]).await;
    eventually("the worker to let go of the job", SECS(10), || async {
        s.job(id).await["locked_by"].is_null().then_some(())
    })
    .await;
    assert_eq!(s.status(id).await, "cancelled");
    daemon.assert_logged("operator cancelled the job");
}

// ---- scripts/install ----

const INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install");

/// Runs scripts/install into `root`. Its yt-dlp comes from wheels the test
/// builds (no package index; `xtract tools upgrade` is tested in
/// tests/tools.rs).
fn install_into(root: &Path) -> std::process::Output {
    let wheel_dir = tempfile::tempdir().unwrap();
    wheels::ytdlp(wheel_dir.path(), "2026.1.1", false);
    wheels::deno(wheel_dir.path(), "2.5.0");
    let out = Command::new(INSTALL)
        .args(["--root"])
        .arg(root)
        .args(["--binary", env!("CARGO_BIN_EXE_xtract")])
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheel_dir.path())
        .env("PIP_NO_CACHE_DIR", "1")
        .output()
        .expect("run scripts/install");
    assert!(
        out.status.success(),
        "scripts/install failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file and folder under `root` (the virtualenvs' contents left out:
/// pip owns them): mode, size, modification time, content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let content = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                rel.clone(),
                (
                    meta.mode(),
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    content,
                ),
            );
            if meta.is_dir() && rel != Path::new("opt/xtract/venvs") {
                walk(&path, root, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn install_into_a_root_creates_the_files_and_a_second_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    install_into(root.path());

    let mode = |p: &str| {
        std::fs::metadata(root.path().join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/local/bin/xtract"), 0o755);
    assert_eq!(mode("etc/systemd/system/xtract.service"), 0o644);
    assert_eq!(mode("etc/xtract"), 0o750);
    assert_eq!(mode("etc/xtract/xtract.env"), 0o600);
    assert_eq!(mode("var/lib/xtract"), 0o750);
    assert_eq!(mode("etc/systemd/system/xtract-upgrade.service"), 0o644);
    assert_eq!(mode("etc/systemd/system/xtract-upgrade.timer"), 0o644);
    // yt-dlp (and deno beside it) in a checked virtualenv behind the
    // symlink the daemon runs through.
    let venv = std::fs::read_link(root.path().join("opt/xtract/venv")).unwrap();
    assert!(venv.starts_with("venvs"), "{venv:?}");
    assert!(root.path().join("opt/xtract/venv/bin/yt-dlp").exists());
    assert!(root.path().join("opt/xtract/venv/bin/deno").exists());
    let env = std::fs::read_to_string(root.path().join("etc/xtract/xtract.env")).unwrap();
    assert!(
        env.lines()
            .any(|l| l == "XTRACT_YTDLP=/opt/xtract/venv/bin/yt-dlp"),
        "{env}"
    );
    assert_eq!(
        std::fs::read(root.path().join("usr/local/bin/xtract")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_xtract")).unwrap()
    );

    // An operator's edit survives a second run, and nothing else moves.
    let env_file = root.path().join("etc/xtract/xtract.env");
    std::fs::write(&env_file, format!("{env}DATABASE_URL=postgres://edited\n")).unwrap();
    let before = snapshot(root.path());
    let out = install_into(root.path());
    assert_eq!(
        before,
        snapshot(root.path()),
        "the second run changed files"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("keeping the existing /etc/xtract/xtract.env"),
        "{stdout}"
    );
    assert!(!stdout.contains("installed "), "{stdout}");
}

#[test]
fn install_dry_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(INSTALL)
        .args(["--dry-run", "--root"])
        .arg(root.path())
        .args(["--binary", env!("CARGO_BIN_EXE_xtract")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would run: install -D -m 0755"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "{stdout}"
    );
}

// ---- the operator's dashboard ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_views_say_what_waits_what_failed_and_what_is_paused() {
    let f = fixture().await;
    let client = &f.client;
    // Nothing has started the waiting job for ten minutes.
    client
        .execute(
            "UPDATE processing_jobs SET created_at = now() - interval '10 minutes',
                 run_after = now() - interval '10 minutes' WHERE id = $1",
            &[&f.pending],
        )
        .await
        .unwrap();

    let summary = client
        .query(
            "SELECT status, platform, jobs, extract(epoch FROM oldest_waiting)::float8, hint
             FROM xtract.queue_summary ORDER BY status, platform",
            &[],
        )
        .await
        .unwrap();
    let waiting = summary
        .iter()
        .find(|r| r.get::<_, String>(0) == "pending")
        .expect("a pending line");
    assert_eq!(waiting.get::<_, String>(1), "youtube");
    assert_eq!(waiting.get::<_, i64>(2), 1);
    let age: f64 = waiting.get(3);
    assert!((590.0..700.0).contains(&age), "{age}");
    let hint: Option<String> = waiting.get(4);
    assert!(hint.unwrap().contains("is a daemon running"));
    let failed: i64 = summary
        .iter()
        .filter(|r| r.get::<_, String>(0) == "failed")
        .map(|r| r.get::<_, i64>(2))
        .sum();
    assert_eq!(failed, 2);

    let failures = client
        .query(
            "SELECT id, error_code, what_to_do FROM xtract.recent_failures",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = failures.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&f.failed_tiktok) && ids.contains(&f.failed_instagram));
    let network = failures
        .iter()
        .find(|r| r.get::<_, Option<String>>(1).as_deref() == Some("network"))
        .unwrap();
    assert!(network.get::<_, String>(2).contains("network"));

    let paused = client
        .query(
            "SELECT platform, egress, paused_until IS NOT NULL, pause_reason, next_free_slot >= now(),
                    hint, last_change <= now()
             FROM xtract.platform_status ORDER BY platform",
            &[],
        )
        .await
        .unwrap();
    let row = |p: &str| paused.iter().find(|r| r.get::<_, String>(0) == p).unwrap();
    assert!(row("tiktok").get::<_, bool>(2));
    assert_eq!(
        row("tiktok").get::<_, Option<String>>(3).as_deref(),
        Some("rate limited")
    );
    assert!(row("tiktok").get::<_, bool>(4));
    // With a pool, one egress's pause is not the platform's.
    let hint: String = row("tiktok").get(5);
    assert!(hint.contains("other egresses"), "{hint}");
    assert!(row("tiktok").get::<_, bool>(6));
    // A pause that ended shows as none.
    assert!(!row("instagram").get::<_, bool>(2));
    assert_eq!(row("instagram").get::<_, Option<String>>(3), None);
}

// ---- retention ----

/// Finished jobs older than XTRACT_RETENTION_DAYS go, in batches; waiting
/// and running ones never do, whatever their age. Their audio rows and
/// objects go only with XTRACT_RETENTION_AUDIO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_jobs_and_with_audio_their_files() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let standin = StandIn::new();
    let daemon_dir = tempfile::tempdir().unwrap();
    let audio_dir = daemon_dir.path().join("audio");
    // `age` days old; completed ones with an audio row and a file.
    let add = |status: &'static str, age: i32| {
        let (client, audio_dir) = (&client, &audio_dir);
        async move {
            let id: Uuid = client
                .query_one(
                    "INSERT INTO processing_jobs (user_id, original_url, status, finished_at, created_at)
                     VALUES ($1, 'https://youtu.be/aaaaaaaaaaa', $2,
                             CASE WHEN $2 IN ('completed', 'failed', 'cancelled')
                                  THEN now() - make_interval(days => $3) END,
                             now() - make_interval(days => $3))
                     RETURNING id",
                    &[&USER, &status, &age],
                )
                .await
                .unwrap()
                .get(0);
            if status == "completed" {
                let path = format!("{USER}/{id}.m4a");
                std::fs::create_dir_all(audio_dir.join(USER.to_string())).unwrap();
                std::fs::write(audio_dir.join(&path), b"audio").unwrap();
                client
                    .execute(
                        "WITH a AS (
                             INSERT INTO audio_files (user_id, job_id, filename, file_url, storage_path)
                             VALUES ($1, $2, 'a.m4a', 'file:///a.m4a', $3) RETURNING id)
                         UPDATE processing_jobs SET result_audio_file_id = (SELECT id FROM a)
                         WHERE id = $2",
                        &[&USER, &id, &path],
                    )
                    .await
                    .unwrap();
            }
            id
        }
    };
    let old_done = add("completed", 40).await;
    let old_failed = add("failed", 40).await;
    let old_waiting = add("pending", 40).await;
    let recent_done = add("completed", 3).await;
    // More old finished jobs than a batch holds (200), older still, so
    // they go first: the deletions come in batches, each its own
    // statement (recorded below).
    client
        .execute(
            "INSERT INTO processing_jobs (user_id, original_url, status, finished_at, created_at)
             SELECT $1, 'https://youtu.be/aaaaaaaaaaa', 'failed',
                    now() - interval '50 days', now() - interval '50 days'
             FROM generate_series(1, 450)",
            &[&USER],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE deleted_batches (seq bigserial, jobs bigint);
             CREATE FUNCTION log_batch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
             BEGIN INSERT INTO deleted_batches (jobs) SELECT count(*) FROM gone; RETURN NULL; END $$;
             CREATE TRIGGER log_batch AFTER DELETE ON processing_jobs
                 REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION log_batch();",
        )
        .await
        .unwrap();
    // Nothing to run: the waiting job is held back.
    client
        .execute(
            "UPDATE processing_jobs SET run_after = now() + interval '1 day' WHERE id = $1",
            &[&old_waiting],
        )
        .await
        .unwrap();
    let exists = |id: Uuid| {
        let client = &client;
        async move {
            client
                .query_opt("SELECT 1 FROM processing_jobs WHERE id = $1", &[&id])
                .await
                .unwrap()
                .is_some()
        }
    };
    let audio_rows = || {
        let client = &client;
        async move {
            client
                .query_one("SELECT count(*) FROM audio_files", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };

    let run = |audio: bool| {
        let mut opts = DaemonOptions::new(&standin.script);
        opts.extra_env = vec![
            ("XTRACT_RETENTION_DAYS".into(), "30".into()),
            ("XTRACT_RETENTION_AUDIO".into(), audio.to_string()),
            (
                "XTRACT_LOCAL_STORAGE_DIR".into(),
                audio_dir.display().to_string(),
            ),
        ];
        Daemon::start(&db.url, &opts)
    };
    // Without audio: the jobs go, the audio rows and files stay.
    let mut daemon = run(false);
    eventually("old jobs to go", SECS(30), || async {
        (!exists(old_done).await && !exists(old_failed).await).then_some(())
    })
    .await;
    daemon.signal(libc::SIGTERM);
    daemon.wait_exit(SECS(30)).await;
    daemon.assert_logged("retention: deleted");
    assert!(exists(old_waiting).await && exists(recent_done).await);
    assert_eq!(audio_rows().await, 2);
    assert!(audio_dir.join(format!("{USER}/{old_done}.m4a")).exists());
    let batches: Vec<i64> = column(
        &client,
        "SELECT jobs FROM deleted_batches WHERE jobs > 0 ORDER BY seq",
        &[],
    )
    .await;
    assert_eq!(batches, [200, 200, 52], "452 old jobs in batches of 200");

    // With audio: another old completed job goes with its row and file.
    let old_done2 = add("completed", 35).await;
    let mut daemon = run(true);
    eventually("the second old job to go", SECS(30), || async {
        (!exists(old_done2).await).then_some(())
    })
    .await;
    daemon.signal(libc::SIGTERM);
    daemon.wait_exit(SECS(30)).await;
    assert!(!audio_dir.join(format!("{USER}/{old_done2}.m4a")).exists());
    assert!(audio_dir.join(format!("{USER}/{recent_done}.m4a")).exists());
    // The recent job's row and the first old job's row (kept without its
    // job, as the first run left it).
    assert_eq!(audio_rows().await, 2);
    assert!(exists(old_waiting).await && exists(recent_done).await);
}

// ---- commands speak one language ----

/// Every failure is one line, `xtract: what: why → what to do`, with no
/// timestamp or colour when the output is not a terminal, and the same
/// exit code for the same kind of failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_fail_in_one_style_with_an_exit_code_per_kind() {
    let db = TestDb::start().await;
    let opts = options();
    let code = |ran: &Ran| ran.status.code().unwrap();
    let one_line = |ran: &Ran, starts: &str| {
        let text = ran.stderr.trim_end();
        assert!(!text.contains('\n'), "one line: {ran}");
        assert!(text.starts_with(starts), "{ran}");
        assert!(!text.contains('\u{1b}'), "colour codes: {ran}");
        text.to_string()
    };

    // A user id is a UUID.
    let ran = xtract(
        &db.url,
        &opts,
        &["enqueue", "https://youtu.be/aaaaaaaaaaa", "--user", "bob"],
    )
    .await;
    assert_eq!(code(&ran), 2, "{ran}");
    let line = one_line(&ran, "xtract: --user: ");
    assert!(line.contains("a user id is a UUID"), "{line}");
    assert!(line.ends_with("→ see xtract enqueue --help"), "{line}");

    // A link the daemon would refuse is refused here, with its sentence,
    // and nothing is inserted.
    let user = USER.to_string();
    let ran = xtract(
        &db.url,
        &opts,
        &["enqueue", "https://vimeo.com/12345", "--user", &user],
    )
    .await;
    assert_eq!(code(&ran), 2, "{ran}");
    let line = one_line(
        &ran,
        "xtract: enqueue: Links from this site are not supported.",
    );
    assert!(line.contains(" → "), "{line}");
    let ran = xtract(
        &db.url,
        &opts,
        &[
            "enqueue",
            "https://www.youtube.com/@channel",
            "--user",
            &user,
        ],
    )
    .await;
    assert_eq!(code(&ran), 2, "{ran}");
    let client = db.client().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM processing_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);

    // Waiting with no daemon: timed out, said on stderr, the row on stdout.
    let ran = xtract(
        &db.url,
        &opts,
        &[
            "enqueue",
            "http://127.0.0.1:9/ok/nobody",
            "--user",
            &user,
            "--wait",
            "--timeout",
            "1",
        ],
    )
    .await;
    assert_eq!(code(&ran), 4, "{ran}");
    let row: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(row["status"], "pending");
    // First the job's id and status, said at once, then the one failure
    // line.
    let id = row["id"].as_str().unwrap();
    let lines: Vec<&str> = ran.stderr.trim_end().lines().collect();
    assert_eq!(
        lines[..lines.len() - 1],
        [format!("enqueue: job {id} is pending")],
        "{ran}"
    );
    let last = lines[lines.len() - 1];
    assert!(
        last.starts_with("xtract: enqueue: job ") && last.contains("is still pending after 1 s"),
        "{ran}"
    );

    // An unknown platform is a mistake, not an empty list.
    let ran = xtract(&db.url, &opts, &["jobs", "--platform", "facebook"]).await;
    assert_eq!(code(&ran), 2, "{ran}");
    assert!(ran.stderr.contains("facebook"), "{ran}");

    // A database that cannot be reached: host and port named, exit 3.
    let dead = db.url.replace(&format!(":{}/", db.pg.port()), ":1/");
    let ran = xtract(&dead, &opts, &["jobs"]).await;
    assert_eq!(code(&ran), 3, "{ran}");
    let line = one_line(
        &ran,
        "xtract: jobs: cannot connect to the database at 127.0.0.1:1",
    );
    assert!(line.contains("→ check DATABASE_URL"), "{line}");
    let ran = xtract(&dead, &opts, &["migrate"]).await;
    assert_eq!(code(&ran), 3, "{ran}");
    // The doctor too: its report says which check, its exit what kind.
    let ran = xtract(&dead, &opts, &["doctor"]).await;
    assert_eq!(code(&ran), 3, "{ran}");
    assert!(ran.lines_starting("FAIL  database").len() == 1, "{ran}");

    // A configuration mistake: exit 2, whatever the command.
    let mut bad = options();
    bad.extra_env
        .push(("XTRACT_CONCURRENCY".into(), "lots".into()));
    for args in [&["jobs"][..], &["migrate"][..], &["run"][..]] {
        let ran = xtract(&db.url, &bad, args).await;
        assert_eq!(code(&ran), 2, "{args:?}: {ran}");
        one_line(&ran, "xtract: configuration: XTRACT_CONCURRENCY: ");
    }
}

/// `migrate` says what it applied and what it skipped, without the
/// "does not exist, skipping" notices of its idempotent statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_says_what_it_applied_and_skipped_and_nothing_that_looks_like_a_failure() {
    let db = TestDb::start_unmigrated().await;
    let ran = xtract(&db.url, &options(), &["migrate"]).await;
    assert!(ran.status.success(), "{ran}");
    assert!(ran.stdout.contains("applied 001 core"), "{ran}");
    assert!(
        ran.stdout.contains("applied 007 old service contract"),
        "{ran}"
    );
    let skipped = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("skipped 100, 101, "))
        .unwrap_or_else(|| panic!("no skipped line: {ran}"));
    assert!(
        skipped.contains("(the Supabase security layer"),
        "{skipped}"
    );
    // Said once, on stdout: the log does not repeat it.
    assert!(!ran.stderr.contains("applying migration"), "{ran}");
    assert!(!ran.stderr.contains("skipping"), "{ran}");
    assert!(!ran.stderr.contains("does not exist"), "{ran}");
    let again = xtract(&db.url, &options(), &["migrate"]).await;
    assert!(again.stdout.contains("schema is up to date"), "{again}");
}
