//! The queue, end to end: real daemons, a real PostgreSQL, real signals.
//! The stand-in yt-dlp replaces only the video platforms.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::row_log::{job_changes, record_jobs, JobChange};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The LISTEN connection of some daemon is up.
async fn listener_up(client: &tokio_postgres::Client) {
    eventually("a daemon to LISTEN", SECS(30), || async {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN xtract_jobs%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n > 0).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_starts_a_job_long_before_the_poll() {
    // The fallback poll is an hour away: only the notification can start
    // the job within the minute `wait` allows.
    let (s, _daemon) = Stage::new().poll(3600.0).start().await;
    listener_up(&s.client).await;

    let id = s.enqueue("http://127.0.0.1:9/ok/fast").await;
    s.wait(id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_do_each_of_1000_jobs_exactly_once() {
    let s = Stage::new().concurrency(4).poll(2.0).prepare().await;
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| s.daemon_as(&format!("daemon-{i}")))
        .collect();
    listener_up(&s.client).await;

    // Inserted in batches while the daemons run, so claims race inserts.
    const JOBS: i64 = 1000;
    for batch in 0..10i64 {
        let numbers = batch * 100..=batch * 100 + 99;
        enqueue_burst(&s.client, USER, "http://127.0.0.1:9/ok/job-", numbers).await;
    }
    eventually("all jobs to complete", SECS(600), || async {
        let done: i64 = s
            .client
            .query_one(
                "SELECT count(*) FROM processing_jobs WHERE status = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (done == JOBS).then_some(())
    })
    .await;

    // Each URL went to yt-dlp exactly once.
    let calls = s.standin.calls();
    let unique: HashSet<&String> = calls.iter().collect();
    assert_eq!(calls.len(), JOBS as usize, "yt-dlp runs");
    assert_eq!(unique.len(), JOBS as usize, "distinct URLs downloaded");
    // One audio row per job, each job started once.
    let row = s
        .client
        .query_one(
            "SELECT (SELECT count(DISTINCT job_id) FROM audio_files),
                    (SELECT count(*) FROM audio_files),
                    (SELECT max(attempts) FROM processing_jobs),
                    (SELECT count(*) FROM processing_jobs WHERE result_audio_file_id IS NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), JOBS);
    assert_eq!(row.get::<_, i64>(1), JOBS);
    assert_eq!(row.get::<_, i32>(2), 1);
    assert_eq!(row.get::<_, i64>(3), 0);
    // The work was shared.
    for d in &daemons {
        assert!(
            d.log_text().contains("job completed"),
            "a daemon did no job:\n{}",
            d.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_job_is_finished_by_another() {
    let (s, mut first) = Stage::new().lease(2.0).poll(0.5).start().await;
    let (id, ytdlp_pid) = s.blocked_job("k").await;
    assert_eq!(s.status(id).await, "processing");

    first.signal(libc::SIGKILL);
    first.wait_exit(SECS(10)).await;
    // The orphaned download dies with its daemon.
    wait_ended("the killed daemon's yt-dlp to die", &[ytdlp_pid]).await;
    assert_eq!(s.status(id).await, "processing", "nobody has noticed yet");

    s.standin.release("k");
    let _second = s.daemon_as("second");
    s.wait(id, "completed").await;
    let job = s.job(id).await;
    assert_eq!(job["attempts"], 2);
    assert_eq!(s.audio_rows(id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_worker_job_fails_once_attempts_are_used_up() {
    // One storage for both daemons, as in production.
    let storage = tempfile::tempdir().unwrap();
    let s = Stage::new()
        .lease(1.0)
        .poll(0.3)
        .env(
            "XTRACT_LOCAL_STORAGE_DIR",
            &storage.path().display().to_string(),
        )
        .prepare()
        .await;
    // Local links are platform "other": 3 attempts. Pretend two were spent.
    let id = s.enqueue("http://127.0.0.1:9/block/lost").await;
    s.client
        .execute(
            "UPDATE processing_jobs SET attempts = 2 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let mut first = s.daemon();
    s.standin.blocked_pid("lost").await;
    // What the killed worker may have stored before it could write the row.
    let stored = storage.path().join(format!("{USER}/{id}.m4a"));
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, b"audio of a lost run").unwrap();
    first.signal(libc::SIGKILL);
    first.wait_exit(SECS(10)).await;

    let _second = s.daemon_as("reaper");
    s.wait(id, "failed").await;
    let job = s.job(id).await;
    assert_eq!(job["error_code"], "worker_lost");
    assert_eq!(job["attempts"], 3);
    assert!(text_of(&job, "error_message").contains("stopped unexpectedly"));
    assert!(
        s.standin.calls().len() == 1,
        "the job was not started again"
    );
    // A failed job keeps no audio: the reaper removes what its run stored.
    eventually("the lost run's audio to go", SECS(30), || async {
        (!stored.exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_job_loses_nothing() {
    let (mut s, daemon) = Stage::new().start().await;
    let (id, _) = s.blocked_job("r").await;

    // The job finishes while the database is down: its result must wait.
    s.db.pg.stop(false).unwrap();
    s.standin.release("r");
    daemon
        .wait_for_log("cannot write the job's outcome yet")
        .await;
    s.db.pg.start(true).unwrap();

    s.reconnect().await;
    s.wait(id, "completed").await;
    assert_eq!(s.job(id).await["attempts"], 1);

    // And it listens again: a new job starts without waiting for the poll.
    listener_up(&s.client).await;
    let next = s.enqueue("http://127.0.0.1:9/ok/after-restart").await;
    s.wait(next, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_retry_from_the_dashboard_is_picked_up_at_once() {
    let (s, _daemon) = Stage::new().start().await;
    s.standin.set_error(
        "again",
        "ERROR: [generic] again: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: Not Found>)\n",
    );
    listener_up(&s.client).await;

    let (id, failed) = s.run("http://127.0.0.1:9/flaky/again", "failed").await;
    assert_eq!(failed["error_code"], "not_found");
    assert_eq!(failed["attempts"], 1, "a 404 is not retried");

    // What an operator does in the table editor.
    s.operator_sets(id, "pending").await;
    s.wait(id, "completed").await;
    let done = s.job(id).await;
    assert_eq!(
        done["attempts"], 1,
        "a retry from the dashboard starts afresh"
    );
    assert!(done["error_code"].is_null() && done["error_message"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cancel_stops_a_running_job() {
    let (s, daemon) = Stage::new().start().await;
    let (id, ytdlp_pid) = s.blocked_job("c").await;

    s.operator_sets(id, "cancelled").await;
    wait_ended("the download to be killed", &[ytdlp_pid]).await;
    eventually("the worker to let go of the job", SECS(5), || async {
        s.job(id).await["locked_by"].is_null().then_some(())
    })
    .await;
    let row = s.job(id).await;
    assert_eq!(row["status"], "cancelled");
    assert!(row["finished_at"].is_string());
    assert_eq!(s.audio_rows(id).await, 0);
    daemon.assert_logged("operator cancelled the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_unfinished_jobs_without_counting_the_attempt() {
    let (s, mut daemon) = Stage::new().grace(0.5).start().await;
    let (id, ytdlp_pid) = s.blocked_job("term").await;

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SECS(30)).await;
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        daemon.log_text()
    );
    assert!(!process_alive(ytdlp_pid), "the download was stopped");
    let row = s.job(id).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0);
    assert!(row["locked_by"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_job_finish_within_the_grace_period() {
    let (s, mut daemon) = Stage::new().grace(60.0).start().await;
    let (id, _) = s.blocked_job("grace").await;

    daemon.signal(libc::SIGTERM);
    daemon.wait_for_log("shutting down").await;
    // Not claimed: a job inserted after SIGTERM waits for another daemon.
    let later = s.enqueue("http://127.0.0.1:9/ok/later").await;
    s.standin.release("grace");
    let status = daemon.wait_exit(SECS(30)).await;
    assert!(status.success());
    assert_eq!(s.status(id).await, "completed");
    assert_eq!(s.status(later).await, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_backoff_then_fail() {
    let s = Stage::new().prepare().await;
    record_jobs(&s.client).await;
    let _daemon = s.daemon();
    let network = "ERROR: [generic] n: Unable to download webpage: <urlopen error [Errno 111] Connection refused> (caused by TransportError('[Errno 111] Connection refused'))\n";
    s.standin.set_error("blip", network);
    s.standin.set_error("down", network);

    let blip = s.enqueue("http://127.0.0.1:9/flaky/blip").await;
    let down = s.enqueue("http://127.0.0.1:9/fail/down").await;
    s.wait(blip, "completed").await;
    assert_eq!(s.job(blip).await["attempts"], 2);

    s.wait(down, "failed").await;
    let row = s.job(down).await;
    assert_eq!(row["attempts"], 3, "platform other allows 3 attempts");
    assert!(text_of(&row, "error_detail").contains("Connection refused"));
    let downs: Vec<f64> = s
        .standin
        .times()
        .into_iter()
        .filter(|(_, url)| url.contains("/fail/down"))
        .map(|(at, _)| at)
        .collect();
    assert_eq!(downs.len(), 3);
    // With backoff: each failure put the job off (XTRACT_RETRY_BASE_SECS
    // 0.2 s, doubling, plus jitter), and the next run came no sooner.
    let retries: Vec<JobChange> = job_changes(&s.client, down)
        .await
        .into_iter()
        .filter(|c| c.status == "pending")
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    for (k, retry) in retries.iter().enumerate() {
        let run_after = retry.run_after.unwrap();
        let delay = run_after - retry.at;
        let least = 0.2 * f64::from(1 << k);
        assert!(
            delay >= least - 0.05,
            "retry {k} put off {delay:.3}s: {retries:?}"
        );
        assert!(
            downs[k + 1] >= run_after - 0.01,
            "run {} at {:.3}, before its time {run_after:.3}",
            k + 2,
            downs[k + 1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_at_once_both_succeed() {
    let s = Stage::new().unmigrated().prepare().await;
    let (mut a, mut b) = (s.spawn(&["migrate"]), s.spawn(&["migrate"]));
    let (sa, sb) = (a.wait_exit(SECS(60)).await, b.wait_exit(SECS(60)).await);
    assert!(sa.success(), "{}", a.log_text());
    assert!(sb.success(), "{}", b.log_text());

    let rows = s
        .client
        .query(
            "SELECT version, count(*) FROM xtract.schema_migrations GROUP BY version",
            &[],
        )
        .await
        .unwrap();
    // Plain PostgreSQL: every migration but the Supabase layer.
    let core = xtract::db::migrate::MIGRATIONS
        .iter()
        .filter(|m| !m.supabase_only)
        .count();
    assert_eq!(rows.len(), core);
    assert!(rows.iter().all(|r| r.get::<_, i64>(1) == 1));
    // And again, on a migrated database: nothing to do.
    let applied = xtract::ops::commands::migrate(&s.db.url).await.unwrap();
    assert!(applied.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_an_unmigrated_database_with_advice() {
    let s = Stage::new().unmigrated().prepare().await;
    let mut daemon = s.daemon();
    let status = daemon.wait_exit(SECS(30)).await;
    assert!(!status.success());
    daemon.assert_logged("run `xtract migrate`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_mistake_stops_the_daemon_with_one_line_naming_it() {
    let s = Stage::new()
        .unmigrated()
        .env("XTRACT_CONCURRENCY", "lots")
        .prepare()
        .await;
    let mut daemon = s.daemon();
    let status = daemon.wait_exit(SECS(30)).await;
    assert_eq!(status.code(), Some(2));
    let log = daemon.log_text();
    assert_eq!(log.trim().lines().count(), 1, "{log}");
    assert!(log.contains("XTRACT_CONCURRENCY"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_platform_table_without_dropping_running_jobs() {
    let s = Stage::new().prepare().await;
    let network = "ERROR: [generic] x: Unable to download webpage: <urlopen error [Errno 111] Connection refused>\n";
    s.standin.set_error("before", network);
    s.standin.set_error("after", network);
    // As installed: the env file (given with --env-file, as the unit does)
    // names the platform file, and a reload reads the same env file again.
    let (one, two) = (s.standin.path("one.toml"), s.standin.path("two.toml"));
    std::fs::write(&one, "[other]\nmax_attempts = 1\n").unwrap();
    std::fs::write(&two, "[other]\nmax_attempts = 2\n").unwrap();
    let env_file = s.standin.path("xtract.env");
    std::fs::write(
        &env_file,
        format!("XTRACT_PLATFORMS_FILE={}\n", one.display()),
    )
    .unwrap();
    let env_arg = env_file.display().to_string();
    let daemon = s.spawn(&["--env-file", &env_arg, "run"]);

    let (running, _) = s.blocked_job("long").await;
    let before = s.enqueue("http://127.0.0.1:9/fail/before").await;
    s.wait(before, "failed").await;
    assert_eq!(s.job(before).await["attempts"], 1);

    std::fs::write(
        &env_file,
        format!("XTRACT_PLATFORMS_FILE={}\n", two.display()),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("configuration reloaded").await;
    let after = s.enqueue("http://127.0.0.1:9/fail/after").await;
    s.wait(after, "failed").await;
    assert_eq!(s.job(after).await["attempts"], 2);

    assert_eq!(s.status(running).await, "processing");
    s.standin.release("long");
    s.wait(running, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_a_log_line() {
    const PASSWORD: &str = "pw-7f3a9c1e-never-log-me";
    const KEY: &str = "sk-service-role-5d2b8e-never-log-me";
    let mut db = TestDb::start().await;
    // The test cluster trusts local connections: the password travels in the
    // URL but is never asked for.
    let url = db
        .url
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let standin = StandIn::new();
    standin.set_error(
        "oops",
        "ERROR: [generic] oops: Unable to download webpage: HTTP Error 404: Not Found\n",
    );
    // A cookie file, offered when a video needs a signed-in session.
    const COOKIE: &str = "sessionid-0c9e4b-never-log-me";
    standin.set_error(
        "members",
        "ERROR: [youtube] members: You need to log in to access this content. Use --cookies-from-browser or --cookies for the authentication.\n",
    );
    let cookies = tempfile::tempdir().unwrap();
    std::fs::write(
        cookies.path().join("other.txt"),
        format!(
            "# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tTRUE\t0\tsessionid\t{COOKIE}\n"
        ),
    )
    .unwrap();
    let client = db.client().await;
    let mut options = DaemonOptions::new(&standin.script);
    options.extra_env = vec![
        ("SUPABASE_SERVICE_ROLE_KEY".into(), KEY.into()),
        (
            "XTRACT_COOKIES_DIR".into(),
            cookies.path().display().to_string(),
        ),
        ("RUST_LOG".into(), "debug".into()),
    ];
    let mut daemon = Daemon::start(&url, &options);
    let ok = db.enqueue(&client, "http://127.0.0.1:9/ok/fine").await;
    let bad = db.enqueue(&client, "http://127.0.0.1:9/fail/oops").await;
    let members = db.enqueue(&client, "http://127.0.0.1:9/fail/members").await;
    wait_status(&client, ok, "completed", SECS(30)).await;
    wait_status(&client, bad, "failed", SECS(30)).await;
    wait_status(&client, members, "failed", SECS(30)).await;
    // The cookie strategy did run for it.
    assert!(
        standin.args().iter().any(|a| a.contains("--cookies")),
        "{:?}",
        standin.args()
    );
    let row = job(&client, members).await;
    assert!(
        !row.to_string().contains(COOKIE),
        "cookie in the job row: {row}"
    );
    drop(client);
    // Connection errors are logged at length: they must not carry the URL.
    db.pg.stop(false).unwrap();
    daemon.wait_for_log("reconnecting").await;
    db.pg.start(true).unwrap();
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(SECS(30)).await.success());

    // And a command that cannot reach the database at all.
    let dead = url.replace(&format!(":{}/", db.pg.port()), ":1/");
    let mut migrate = Daemon::spawn(&dead, &options, &["migrate"]);
    assert!(!migrate.wait_exit(SECS(30)).await.success());

    for log in [daemon.log_text(), migrate.log_text()] {
        assert!(log.len() > 100, "the log says something:\n{log}");
        assert!(!log.contains(PASSWORD), "password in log:\n{log}");
        assert!(!log.contains(KEY), "service key in log:\n{log}");
        assert!(!log.contains(COOKIE), "cookie in log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_500_jobs_do_not_hold_up_another_users_job() {
    let (s, _daemon) = Stage::new().concurrency(1).start().await;
    listener_up(&s.client).await;

    let busy = uuid::Uuid::new_v4();
    enqueue_burst(&s.client, busy, "http://127.0.0.1:9/ok/busy-", 1..=500).await;
    let other = uuid::Uuid::new_v4();
    let single = s.enqueue_as(other, "http://127.0.0.1:9/ok/single").await;
    s.wait(single, "completed").await;

    let calls = s.standin.calls();
    let position = calls
        .iter()
        .position(|c| c.ends_with("/ok/single"))
        .unwrap();
    assert!(
        position <= 3,
        "the single job ran after {position} of the busy user's jobs"
    );
    let pending: i64 = s
        .client
        .query_one(
            "SELECT count(*) FROM processing_jobs WHERE user_id = $1 AND status = 'pending'",
            &[&busy],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        pending > 400,
        "the busy user's queue was still long ({pending})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_role_without_rights_in_schema_xtract_can_insert_and_cancel() {
    let db = TestDb::start().await;
    let client = db.client().await;
    // Like Supabase's `authenticated`: rights on the public tables only.
    client
        .batch_execute(
            "CREATE ROLE app NOLOGIN;
             GRANT USAGE ON SCHEMA public TO app;
             GRANT SELECT, INSERT, UPDATE ON processing_jobs TO app;",
        )
        .await
        .unwrap();
    client.batch_execute("SET ROLE app").await.unwrap();
    let id: uuid::Uuid = client
        .query_one(
            "INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, $2) RETURNING id",
            &[&USER, &"https://youtu.be/dQw4w9WgXcQ"],
        )
        .await
        .expect("the insert triggers run as their owner")
        .get(0);
    operator_sets_status(&client, id, "cancelled")
        .await
        .expect("the update triggers run as their owner");
    client.batch_execute("RESET ROLE").await.unwrap();
    let row = job(&client, id).await;
    assert_eq!(row["platform"], "youtube");
    assert_eq!(row["status"], "cancelled");
    assert!(row["finished_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_yt_dlp_stops_the_daemon_but_not_migrate() {
    let s = Stage::new()
        .unmigrated()
        .ytdlp(std::path::Path::new("/nonexistent/yt-dlp"))
        .prepare()
        .await;
    let mut run = s.daemon();
    assert_eq!(run.wait_exit(SECS(30)).await.code(), Some(2));
    let log = run.log_text();
    assert_eq!(log.trim().lines().count(), 1, "{log}");
    assert!(log.contains("XTRACT_YTDLP"), "{log}");
    let mut migrate = s.spawn(&["migrate"]);
    assert!(
        migrate.wait_exit(SECS(30)).await.success(),
        "{}",
        migrate.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_about_a_job_carry_its_id_and_platform() {
    let (s, daemon) = Stage::new().env("XTRACT_LOG_FORMAT", "json").start().await;
    let id = s.enqueue("http://127.0.0.1:9/ok/logged").await;
    s.wait(id, "completed").await;
    let text = eventually("the completion line", SECS(10), || async {
        let log = daemon.log_text();
        log.contains("job completed").then_some(log)
    })
    .await;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["span"]["name"] == "job")
        .collect();
    assert!(lines.len() >= 2, "{text}");
    for line in &lines {
        assert_eq!(line["span"]["job_id"], id.to_string(), "{line}");
    }
    let done = lines
        .iter()
        .find(|l| l["message"] == "job completed")
        .unwrap();
    assert_eq!(done["span"]["platform"], "other", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_wait_prints_the_final_row_and_fails_when_the_job_does() {
    let (s, _daemon) = Stage::new().start().await;
    s.standin.set_error(
        "gone",
        "ERROR: [generic] gone: Unable to download webpage: HTTP Error 404: Not Found\n",
    );
    let user = USER.to_string();

    let ok = s
        .xtract(&[
            "enqueue",
            "http://127.0.0.1:9/ok/waited",
            "--user",
            &user,
            "--wait",
        ])
        .await;
    assert!(ok.status.success(), "{}", ok.stderr);
    let row: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(row["status"], "completed");
    assert_eq!(row["original_url"], "http://127.0.0.1:9/ok/waited");

    let bad = s
        .xtract(&[
            "enqueue",
            "http://127.0.0.1:9/fail/gone",
            "--user",
            &user,
            "--wait",
        ])
        .await;
    assert!(!bad.status.success());
    let row: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], "not_found");

    // Without --wait: the new job's id.
    let quick = s
        .xtract(&["enqueue", "http://127.0.0.1:9/ok/later", "--user", &user])
        .await;
    assert!(quick.status.success());
    assert!(
        uuid::Uuid::parse_str(quick.stdout.trim()).is_ok(),
        "{}",
        quick.stdout
    );
}

// ---- who removes the audio when a completion is refused ----

/// A job body that stores "audio", while something else happens to its row
/// (`meanwhile`, run as the table owner), and records what it is asked to
/// discard.
#[derive(Clone)]
struct Meddler {
    owner_url: String,
    meanwhile: &'static str,
    discarded: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
    ran: std::sync::Arc<tokio::sync::Notify>,
}

impl xtract::queue::worker::Processor for Meddler {
    async fn process(
        &self,
        job: &xtract::domain::Job,
        _ctx: &xtract::queue::worker::JobContext,
    ) -> xtract::queue::worker::JobReport {
        let (client, conn) = tokio_postgres::connect(&self.owner_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.execute(self.meanwhile, &[&job.id]).await.unwrap();
        self.ran.notify_one();
        xtract::queue::worker::JobReport {
            platform: None,
            result: Ok(Some(xtract::domain::AudioRow {
                filename: "a.m4a".into(),
                file_url: "file:///a.m4a".into(),
                file_size: 1,
                duration_secs: None,
                storage_path: format!("{}/{}.m4a", job.user_id, job.id),
                content_type: "audio/mp4".into(),
                audio_format: "m4a".into(),
                ..Default::default()
            })),
        }
    }

    async fn discard(&self, _job: &xtract::domain::Job, audio: Option<&xtract::domain::AudioRow>) {
        self.discarded
            .lock()
            .unwrap()
            .push(audio.map(|a| a.storage_path.clone()));
    }
}

/// The real worker loop in this process, as worker "worker-a" on egress
/// "test", one slot, polling every 5 s.
fn in_process_worker<P: xtract::queue::worker::Processor>(
    db: &TestDb,
    body: P,
) -> xtract::queue::worker::Worker<P> {
    in_process::worker(db, "worker-a", body, in_process::settings())
}

/// Runs one job through an in-process worker whose body does `meanwhile`;
/// returns what the worker discarded and the final row.
async fn complete_refused(meanwhile: &'static str) -> (Vec<Option<String>>, serde_json::Value) {
    use std::sync::Arc;
    use xtract::queue::worker::Shutdown;
    let db = TestDb::start().await;
    let client = db.client().await;
    let id = db
        .enqueue(&client, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        .await;
    let body = Meddler {
        owner_url: db.owner_url.clone(),
        meanwhile,
        discarded: Arc::default(),
        ran: Arc::default(),
    };
    let worker = in_process_worker(&db, body.clone());
    let shutdown = Shutdown::default();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    body.ran.notified().await;
    // Stopping waits for the running job's write-back.
    shutdown.stop_claiming.cancel();
    running.await.unwrap();
    let discarded = body.discarded.lock().unwrap().clone();
    (discarded, job(&client, id).await)
}

/// The daemon lost the database for longer than the lease; another worker
/// took the job over and finished it, writing the same object path. The
/// late worker must not delete what is now the other worker's audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_job_leaves_the_audio_to_the_new_owner() {
    let (discarded, row) = complete_refused(
        "UPDATE processing_jobs SET status = 'completed', locked_by = NULL WHERE id = $1",
    )
    .await;
    assert_eq!(row["status"], "completed");
    assert!(
        discarded.is_empty(),
        "deleted another worker's audio: {discarded:?}"
    );

    // Taken over and still running elsewhere: the same.
    let (discarded, row) =
        complete_refused("UPDATE processing_jobs SET locked_by = 'worker-b' WHERE id = $1").await;
    assert_eq!(row["locked_by"], "worker-b");
    assert!(
        discarded.is_empty(),
        "deleted another worker's audio: {discarded:?}"
    );
}

/// The reaper failed the job `worker_lost` (its last attempt) while this
/// worker was cut off from the database (not from storage): the job stays
/// failed, as its reaper said, and the late worker removes the audio it
/// stored, instead of leaving it with no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_of_a_job_failed_as_lost_is_removed() {
    let (discarded, row) = complete_refused(
        "UPDATE processing_jobs
         SET status = 'failed', error_code = 'worker_lost', locked_by = NULL, heartbeat_at = NULL
         WHERE id = $1",
    )
    .await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(row["result_audio_file_id"].is_null(), "{row}");
    let path = format!("{}/{}.m4a", USER, row["id"].as_str().unwrap());
    assert_eq!(discarded, vec![Some(path)]);
}

/// An operator cancelled the job while its audio was being stored: the
/// audio goes, and the job stays cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_during_its_upload_has_its_audio_removed() {
    let (discarded, row) =
        complete_refused("UPDATE processing_jobs SET status = 'cancelled' WHERE id = $1").await;
    assert_eq!(row["status"], "cancelled");
    assert_eq!(row["locked_by"], serde_json::Value::Null);
    let path = format!("{}/{}.m4a", USER, row["id"].as_str().unwrap());
    assert_eq!(discarded, vec![Some(path)]);
}

/// While a platform is paused on this egress, its waiting jobs are not
/// "ready": the worker sleeps until the poll instead of asking the database
/// twenty times a second for the whole pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_platform_does_not_keep_the_worker_polling() {
    use std::sync::atomic::Ordering;
    let db = TestDb::start().await;
    let client = db.client().await;
    db.enqueue(&client, "https://www.instagram.com/p/CxYz123AbC/")
        .await;
    client
        .execute(
            "INSERT INTO xtract.platform_pacing (platform, egress_key, paused_until)
             VALUES ('instagram', 'test', now() + interval '10 minutes')",
            &[],
        )
        .await
        .unwrap();
    let body = Meddler {
        owner_url: db.owner_url.clone(),
        meanwhile: "SELECT $1::uuid",
        discarded: Default::default(),
        ran: Default::default(),
    };
    let worker = in_process_worker(&db, body.clone());
    let (loop_turns, metrics) = (worker.loop_turns(), worker.metrics());
    let shutdown = xtract::queue::worker::Shutdown::default();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    // The loop ran: it claimed (the first turn, and the reaper's first tick
    // at once), found nothing ready, and went to sleep.
    let ran = eventually("the worker loop to turn twice", SECS(30), || async {
        let turns = loop_turns.load(Ordering::Relaxed);
        (turns >= 2).then_some(turns)
    })
    .await;
    // Nothing to await now: the point is what does not happen in 1.5 s
    // (asking twenty times a second, that would be thirty turns).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let turns = loop_turns.load(Ordering::Relaxed) - ran;
    shutdown.stop_claiming.cancel();
    running.await.unwrap();
    assert_eq!(metrics.claimed_total(), 0);
    assert!(turns <= 1, "{turns} more turns of the worker loop in 1.5 s");
}

/// A finished job's outcome is kept and retried only while the database is
/// away; a fault of our own (a value that does not convert, a bad
/// statement) is not waited out forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_connection_failures_count_as_the_database_being_away() {
    use xtract::db::{is_connection_error, DbError};
    let mut db = TestDb::start().await;
    let client = db.client().await;
    let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    let conversion = row.try_get::<_, String>(0).unwrap_err();
    assert!(!is_connection_error(&DbError::Postgres(conversion)));
    let statement = client.query_one("SELECT nope", &[]).await.unwrap_err();
    assert!(!is_connection_error(&DbError::Postgres(statement)));
    db.pg.stop(true).unwrap();
    let gone = client.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(is_connection_error(&DbError::Postgres(gone)));
}

/// A body that reports progress every 100 ms for a second.
struct Progressing;

impl xtract::queue::worker::Processor for Progressing {
    async fn process(
        &self,
        _job: &xtract::domain::Job,
        ctx: &xtract::queue::worker::JobContext,
    ) -> xtract::queue::worker::JobReport {
        for percent in (10..=100).step_by(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.job.progress(percent).await.unwrap();
        }
        xtract::queue::worker::JobReport {
            platform: None,
            result: Ok(None),
        }
    }
}

/// Every write of a job's row is an event to the app's Realtime
/// subscription (and a policy check per subscriber). While progress flows,
/// it renews the lease: the heartbeat adds no writes of its own. Measured
/// here: the row's updates for a job of one second, progress every 100 ms,
/// with a heartbeat every 150 ms (without this, about seven more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_renews_the_lease_so_heartbeats_add_no_realtime_events() {
    use xtract::queue::worker::{Shutdown, WorkerSettings};
    let db = TestDb::start().await;
    let client = db.client().await;
    record_jobs(&client).await;
    let id = db.enqueue(&client, "http://127.0.0.1:9/ok/progress").await;
    let settings = WorkerSettings {
        lease: SECS(3),
        heartbeat_interval: Duration::from_millis(150),
        job_timeout: SECS(60),
        exit_when_idle: true,
        ..in_process::settings()
    };
    let worker = in_process::worker(&db, "worker-p", Progressing, settings);
    let ran = tokio::time::timeout(SECS(30), worker.run(Shutdown::default())).await;
    assert!(ran.is_ok(), "{}", job(&client, id).await);
    assert_eq!(status(&client, id).await, "completed");
    let writes = job_changes(&client, id).await;
    let statuses: Vec<&str> = writes.iter().map(|w| w.status.as_str()).collect();
    assert_eq!(
        statuses.first(),
        Some(&"processing"),
        "the claim: {writes:?}"
    );
    assert_eq!(statuses.last(), Some(&"completed"), "{writes:?}");
    let progress: Vec<i16> = writes.iter().filter_map(|w| w.progress).collect();
    let mut steps = progress.clone();
    steps.dedup();
    assert_eq!(
        steps,
        (10..=100).step_by(10).collect::<Vec<_>>(),
        "{writes:?}"
    );
    // A beat is a write that changed nothing but the lease. One comes only
    // when the row went a whole heartbeat interval without a progress
    // write: none while progress flows every 100 ms (a machine too busy
    // to keep that pace may see some, each after such a gap).
    for pair in writes.windows(2) {
        let (before, beat) = (&pair[0], &pair[1]);
        if beat.status == "processing" && beat.progress == before.progress && beat.beat {
            let gap = beat.at - before.at;
            assert!(
                gap >= 0.15 - 0.005,
                "a beat {gap:.3}s after the row's last write: {writes:?}"
            );
        }
    }
}

/// With an egress pool, a platform's jobs are claimed while any egress it
/// may use here is free of a pause, wait (without the worker polling)
/// until the first pause ends when all are paused, and are left to other
/// daemons when no egress here serves the platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_skips_a_platform_only_while_all_its_egresses_are_paused() {
    use xtract::domain::EgressRoutes;
    let db = TestDb::start().await;
    let client = db.client().await;
    // TikTok through a or b; `other` from this machine; no YouTube here.
    let routes = EgressRoutes {
        platforms: ["tiktok", "tiktok", "other"].map(String::from).to_vec(),
        keys: ["a", "b", "vm"].map(String::from).to_vec(),
    };
    let queue = xtract::queue::Queue::new(db.pool(2), "claimer", "vm")
        .with_routes(xtract::live::Live::new(routes));
    let pause = |egress: &'static str, minutes: i32| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO xtract.platform_pacing (platform, egress_key, paused_until)
                     VALUES ('tiktok', $1, now() + make_interval(mins => $2))
                     ON CONFLICT (platform, egress_key) DO UPDATE SET paused_until = excluded.paused_until",
                    &[&egress, &minutes],
                )
                .await
                .unwrap();
        }
    };
    db.enqueue(&client, "https://www.youtube.com/watch?v=aaaaaaaaaaa")
        .await;
    let tiktok = db
        .enqueue(&client, "https://www.tiktok.com/@a/video/1")
        .await;
    pause("a", 10).await;
    pause("b", 5).await;
    assert!(
        queue.claim(5).await.unwrap().is_empty(),
        "every egress paused"
    );
    let wake = queue
        .next_run_after()
        .await
        .unwrap()
        .expect("a wake-up time");
    let in_secs = (wake - chrono::Utc::now()).num_seconds();
    assert!(
        (290..=300).contains(&in_secs),
        "wakes in {in_secs}s, not at b's end"
    );
    // b's pause ends: TikTok is claimed again (through b).
    pause("b", 0).await;
    let claimed = queue.claim(5).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, [tiktok], "YouTube has no egress here");
    // Only the YouTube job is left, and nothing here may run it.
    assert_eq!(queue.next_run_after().await.unwrap(), None);
    let paused = queue.paused_platforms().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(
        (paused[0].0.as_str(), paused[0].1.as_str()),
        ("tiktok", "a")
    );
}

/// People paste links without their scheme and with blanks around them;
/// the insert accepts them (the link check trims and reads them as the
/// daemon does), so its platform guess, which the claim's pauses go by,
/// reads them the same way instead of calling them `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insert_guesses_the_platform_of_a_pasted_link() {
    let db = TestDb::start().await;
    let client = db.client().await;
    for (link, platform) in [
        ("  www.tiktok.com/@a/video/7100000000000000001\n", "tiktok"),
        ("tiktok.com/@a/video/7100000000000000002", "tiktok"),
        ("\u{a0}https://youtu.be/aaaaaaaaaaa", "youtube"),
        ("\tinstagram.com/reel/Cabcdefghij/", "instagram"),
        ("HTTPS://WWW.YOUTUBE.COM/watch?v=aaaaaaaaaaa", "youtube"),
        ("example.com/video/1", "other"),
        ("https://notyoutube.com/watch?v=aaaaaaaaaaa", "other"),
    ] {
        let id = db.enqueue(&client, link).await;
        assert_eq!(job(&client, id).await["platform"], platform, "{link:?}");
    }
}

/// A frontend's burst: one user's 10,000 jobs in one statement, then 100
/// users adding 10 each. Each other user's first job is claimed before the
/// big user's second (one place in the fair order per user and job), and
/// no job is claimed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_jobs_waits_behind_every_other_users_first() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let big = uuid::Uuid::new_v4();
    let inserted = enqueue_burst(
        &client,
        big,
        "https://www.tiktok.com/@big/video/",
        1..=10_000,
    )
    .await;
    assert_eq!(inserted.len(), 10_000);
    let others: Vec<uuid::Uuid> = (0..100).map(|_| uuid::Uuid::new_v4()).collect();
    for user in &others {
        enqueue_burst(
            &client,
            *user,
            "https://www.tiktok.com/@small/video/",
            1..=10,
        )
        .await;
    }
    // Each of the big user's jobs has its own place, as if inserted one by one.
    let places: Vec<i32> = client
        .query(
            "SELECT user_queue_position FROM processing_jobs WHERE user_id = $1 ORDER BY created_at, user_queue_position",
            &[&big],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(places, (0..10_000).collect::<Vec<i32>>());

    // A daemon of 4 slots claims: the first 1 + 100 + 1 jobs.
    let queue = xtract::queue::Queue::new(db.pool(2), "claimer", "vm");
    let mut claimed = Vec::new();
    while claimed.len() < 102 {
        let jobs = queue.claim(4).await.unwrap();
        assert!(!jobs.is_empty());
        claimed.extend(jobs.into_iter().map(|j| (j.id, j.user_id)));
    }
    let ids: HashSet<_> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), claimed.len(), "a job claimed twice");
    let bigs: Vec<usize> = claimed
        .iter()
        .enumerate()
        .filter(|(_, (_, user))| *user == big)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bigs[..2], [0, 101], "the big user's first two claims");
    let firsts: HashSet<_> = claimed[1..101].iter().map(|(_, user)| *user).collect();
    assert_eq!(firsts, others.iter().copied().collect::<HashSet<_>>());
}

/// The dashboard views are a contract for operators: their columns stay,
/// and what they count is bounded: every waiting and running job, finished
/// ones over the last 24 hours (`counted` says which), the last 100
/// failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_views_keep_their_columns_and_count_finished_jobs_over_a_day() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let columns = |view: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = 'xtract' AND table_name = $1 ORDER BY ordinal_position",
                    &[&view],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        columns("queue_summary").await,
        [
            "status",
            "platform",
            "jobs",
            "oldest_waiting",
            "next_start",
            "oldest_heartbeat",
            "hint",
            "counted"
        ]
    );
    assert_eq!(
        columns("recent_failures").await,
        [
            "id",
            "user_id",
            "platform",
            "error_code",
            "error_message",
            "what_to_do",
            "error_detail",
            "attempts",
            "original_url",
            "finished_at"
        ]
    );
    assert_eq!(
        columns("platform_status").await,
        [
            "platform",
            "egress",
            "paused_until",
            "pause_reason",
            "next_free_slot",
            "jobs_waiting",
            "hint",
            "last_change",
            // Per platform, its yt-dlp's health (020, docs/platforms.md).
            "health",
            "health_since",
            "ytdlp_build",
            "heal_tried",
            "heal_tried_at",
            "ytdlp_pinned",
            "ytdlp_bad_builds",
            "health_host"
        ]
    );

    // Waiting jobs, and failures of an hour and of two days ago.
    for _ in 0..2 {
        db.enqueue(&client, "https://www.youtube.com/watch?v=aaaaaaaaaaa")
            .await;
    }
    for (n, age) in [(1, "1 hour"), (2, "2 hours"), (3, "2 days")] {
        let id = db
            .enqueue(&client, &format!("https://www.tiktok.com/@a/video/{n}"))
            .await;
        client
            .execute(
                "UPDATE processing_jobs SET status = 'failed', error_code = 'private',
                     finished_at = now() - $2::text::interval
                 WHERE id = $1",
                &[&id, &age],
            )
            .await
            .unwrap();
    }
    let summary: Vec<(String, String, i64, String)> = client
        .query(
            "SELECT status, platform, jobs, counted FROM xtract.queue_summary ORDER BY status",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "failed".into(),
                "tiktok".into(),
                2,
                "finished in the last 24 hours".into()
            ),
            ("pending".into(), "youtube".into(), 2, "all".into()),
        ]
    );
    let failures: Vec<String> = client
        .query("SELECT original_url FROM xtract.recent_failures", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        failures,
        [1, 2, 3].map(|n| format!("https://www.tiktok.com/@a/video/{n}")),
        "newest first, old ones too"
    );
}
