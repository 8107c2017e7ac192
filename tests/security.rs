//! The frontend contract on a database set up like a Supabase project: the
//! roles, the broad default grants (the trap), auth.uid() as Supabase
//! defines it, and each request as PostgREST makes it (SET LOCAL ROLE plus
//! the JWT claims, in one transaction). Each rule is shown both ways.

mod support;

use std::time::Duration;

use support::supabase::SUPABASE;
use support::*;
use tokio_postgres::{Client, NoTls, Row};
use uuid::Uuid;

struct Project {
    db: TestDb,
    owner: Client,
    /// Requests arrive through `authenticator`, as with PostgREST.
    api: Client,
}

async fn project() -> Project {
    project_after("").await
}

/// A project where `before` ran (as the owner) before `xtract migrate`.
async fn project_after(before: &str) -> Project {
    let (db, owner) = unmigrated_project(before).await;
    migrated(db, owner).await
}

/// A Supabase project with `before` run in it, not migrated yet.
async fn unmigrated_project(before: &str) -> (TestDb, Client) {
    let db = TestDb::start_unmigrated().await;
    let owner = db.client().await;
    owner.batch_execute(SUPABASE).await.unwrap();
    owner.batch_execute(before).await.unwrap();
    (db, owner)
}

async fn migrated(db: TestDb, owner: Client) -> Project {
    xtract::ops::commands::migrate(&db.owner_url).await.unwrap();
    owner
        .batch_execute("ALTER ROLE xtract_worker LOGIN")
        .await
        .unwrap();
    let (api, conn) =
        tokio_postgres::connect(&db.owner_url.replace("postgres@", "authenticator@"), NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    Project { db, owner, api }
}

/// One request: `user` None is the anon key.
async fn request(
    api: &mut Client,
    user: Option<Uuid>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, String> {
    let tx = begin(api, user).await;
    match tx.query(sql, params).await {
        Ok(rows) => {
            tx.commit().await.unwrap();
            Ok(rows)
        }
        Err(e) => Err(e
            .as_db_error()
            .map_or(e.to_string(), |d| d.message().to_string())),
    }
}

/// A request's transaction as PostgREST opens it (the role, the JWT's
/// claims), nothing run in it yet.
async fn begin(api: &mut Client, user: Option<Uuid>) -> tokio_postgres::Transaction<'_> {
    let tx = api.transaction().await.unwrap();
    let (role, claims) = match user {
        Some(u) => (
            "authenticated",
            serde_json::json!({"sub": u, "role": "authenticated"}),
        ),
        None => ("anon", serde_json::json!({"role": "anon"})),
    };
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    tx.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&claims.to_string()],
    )
    .await
    .unwrap();
    tx
}

/// A read as `user` that must succeed.
async fn select(p: &mut Project, user: Option<Uuid>, sql: &str) -> Vec<Row> {
    request(&mut p.api, user, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// An object's row in Storage's table, as Storage writes it.
async fn put_object(p: &Project, bucket: &str, name: &str) {
    p.owner
        .execute(
            "INSERT INTO storage.objects (bucket_id, name) VALUES ($1, $2)",
            &[&bucket, &name],
        )
        .await
        .unwrap();
}

const INSERT: &str =
    "INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, $2) RETURNING id, status";
const YT: &str = "https://www.youtube.com/watch?v=dQw4w9WgXcQ";

async fn insert(p: &mut Project, user: Uuid) -> Uuid {
    request(&mut p.api, Some(user), INSERT, &[&user, &YT])
        .await
        .unwrap()[0]
        .get(0)
}

#[tokio::test]
async fn a_user_adds_a_job_for_themself_and_reads_it_back() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    let rows = request(&mut p.api, Some(alice), INSERT, &[&alice, &YT])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(1), "pending");
    let id: Uuid = rows[0].get(0);
    let seen = select(
        &mut p,
        Some(alice),
        "SELECT id, platform FROM processing_jobs",
    )
    .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].get::<_, Uuid>(0), id);
    assert_eq!(seen[0].get::<_, String>(1), "youtube");
}

#[tokio::test]
async fn forged_columns_and_other_users_are_refused_on_insert() {
    let mut p = project().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let file: Uuid = p
        .owner
        .query_one(
            "INSERT INTO audio_files (user_id, filename, file_url) VALUES ($1, 'b.m4a', 'x') RETURNING id",
            &[&bob],
        )
        .await
        .unwrap()
        .get(0);
    for (column, value) in [
        ("attempts", "5"),
        ("locked_by", "'me'"),
        ("platform", "'other'"),
        ("error_message", "'ok'"),
        ("run_after", "now()"),
        ("result_audio_file_id", &format!("'{file}'")),
    ] {
        let sql = format!("INSERT INTO processing_jobs (user_id, original_url, {column}) VALUES ($1, $2, {value})");
        let e = request(&mut p.api, Some(alice), &sql, &[&alice, &YT])
            .await
            .unwrap_err();
        assert!(e.contains("permission denied"), "{column}: {e}");
    }
    // Frontends of the old service name the status, but only 'pending'.
    for status in ["completed", "processing", "failed"] {
        let e = request(
            &mut p.api,
            Some(alice),
            "INSERT INTO processing_jobs (user_id, original_url, status) VALUES ($1, $2, $3)",
            &[&alice, &YT, &status],
        )
        .await
        .unwrap_err();
        assert!(e.contains("row-level security"), "{status}: {e}");
    }
    let e = request(&mut p.api, Some(alice), INSERT, &[&bob, &YT])
        .await
        .unwrap_err();
    assert!(e.contains("row-level security"), "{e}");
    // Bob at his limit: an insert in his name still says nothing about
    // how many jobs he has.
    p.owner
        .execute("UPDATE xtract.settings SET max_pending_per_user = 1", &[])
        .await
        .unwrap();
    insert(&mut p, bob).await;
    let e = request(&mut p.api, Some(alice), INSERT, &[&bob, &YT])
        .await
        .unwrap_err();
    assert!(e.contains("row-level security"), "{e}");
    assert!(!e.contains("waiting"), "{e}");
    // Of all those inserts, only Bob's own went in.
    let left: Vec<Uuid> = column(&p.owner, "SELECT user_id FROM processing_jobs", &[]).await;
    assert_eq!(left, [bob], "a refused insert left a row");
}

#[tokio::test]
async fn users_see_only_their_own_jobs_and_audio() {
    let mut p = project().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    insert(&mut p, alice).await;
    insert(&mut p, bob).await;
    for user in [alice, bob] {
        p.owner
            .execute(
                "INSERT INTO audio_files (user_id, filename, file_url) VALUES ($1, 'a.m4a', 'x')",
                &[&user],
            )
            .await
            .unwrap();
    }
    let jobs = select(&mut p, Some(alice), "SELECT user_id FROM processing_jobs").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].get::<_, Uuid>(0), alice);
    let audio = select(&mut p, Some(alice), "SELECT user_id FROM audio_files").await;
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].get::<_, Uuid>(0), alice);
    // The service role sees everything.
    p.owner
        .batch_execute("SET ROLE service_role")
        .await
        .unwrap();
    let all: i64 = p
        .owner
        .query_one("SELECT count(*) FROM processing_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, 2);
    p.owner.batch_execute("RESET ROLE").await.unwrap();
}

#[tokio::test]
async fn a_user_may_cancel_their_own_pending_job_and_nothing_else() {
    let mut p = project().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let pending = insert(&mut p, alice).await;
    let running = insert(&mut p, alice).await;
    let bobs = insert(&mut p, bob).await;
    p.owner
        .execute(
            "UPDATE processing_jobs SET status = 'processing' WHERE id = $1",
            &[&running],
        )
        .await
        .unwrap();
    let cancel = "UPDATE processing_jobs SET status = 'cancelled' WHERE id = $1 RETURNING id";

    assert_eq!(
        request(&mut p.api, Some(alice), cancel, &[&pending])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        request(&mut p.api, Some(alice), cancel, &[&running])
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        request(&mut p.api, Some(alice), cancel, &[&bobs])
            .await
            .unwrap()
            .len(),
        0
    );
    let complete = "UPDATE processing_jobs SET status = 'completed' WHERE id = $1";
    let other = insert(&mut p, alice).await;
    let e = request(&mut p.api, Some(alice), complete, &[&other])
        .await
        .unwrap_err();
    assert!(e.contains("row-level security"), "{e}");
    let e = request(
        &mut p.api,
        Some(alice),
        "UPDATE processing_jobs SET attempts = 0 WHERE id = $1",
        &[&other],
    )
    .await
    .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    let e = request(
        &mut p.api,
        Some(alice),
        "DELETE FROM processing_jobs WHERE id = $1",
        &[&other],
    )
    .await
    .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    let e = request(&mut p.api, Some(alice), "DELETE FROM audio_files", &[])
        .await
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");

    let status = |id: Uuid| {
        let owner = &p.owner;
        async move {
            let s: String = owner
                .query_one("SELECT status FROM processing_jobs WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get(0);
            s
        }
    };
    assert_eq!(status(pending).await, "cancelled");
    assert_eq!(status(running).await, "processing");
    assert_eq!(status(bobs).await, "pending");
}

#[tokio::test]
async fn the_anon_key_gets_nothing() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    insert(&mut p, alice).await;
    for sql in ["SELECT * FROM processing_jobs", "SELECT * FROM audio_files"] {
        let e = request(&mut p.api, None, sql, &[]).await.unwrap_err();
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    let e = request(&mut p.api, None, INSERT, &[&alice, &YT])
        .await
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
}

#[tokio::test]
async fn a_bad_link_is_refused_at_insert_with_a_message_the_app_can_show() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    for (link, message) in [
        ("", "The link is empty."),
        (
            "file:///etc/passwd",
            "Only http and https links are supported.",
        ),
        (
            "javascript:alert(1)",
            "Only http and https links are supported.",
        ),
        ("-o /tmp/x", "Links may not start with '-'."),
        (
            "check this https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "Links may not contain spaces or control characters.",
        ),
        ("hello", "This is not a valid link."),
        ("https:///watch?v=x", "This is not a valid link."),
        (
            "https://user:pw@www.youtube.com/watch?v=dQw4w9WgXcQ",
            "Links with a user name or password in them are not accepted.",
        ),
    ] {
        let e = request(&mut p.api, Some(alice), INSERT, &[&alice, &link])
            .await
            .unwrap_err();
        assert_eq!(e, message, "{link}");
    }
    // What the daemon accepts, the insert accepts.
    for link in [
        "youtu.be/dQw4w9WgXcQ",
        "  https://www.tiktok.com/@a/video/123  ",
        "http://127.0.0.1:8080/clip.mp4",
        "http://localhost:8080/clip.mp4",
        "http://[::1]:8080/clip.mp4",
    ] {
        request(&mut p.api, Some(alice), INSERT, &[&alice, &link])
            .await
            .unwrap_or_else(|e| panic!("{link}: {e}"));
    }
    let long = format!("{YT}&x={}", "a".repeat(2100));
    let e = request(&mut p.api, Some(alice), INSERT, &[&alice, &long])
        .await
        .unwrap_err();
    assert!(e.contains("too long"), "{e}");
}

#[tokio::test]
async fn a_user_cannot_queue_more_than_the_limit_even_all_at_once() {
    let mut p = project().await;
    p.owner
        .execute("UPDATE xtract.settings SET max_pending_per_user = 3", &[])
        .await
        .unwrap();
    let alice = Uuid::new_v4();
    for _ in 0..2 {
        insert(&mut p, alice).await;
    }
    // Two inserts race for the last place. The first is in, its
    // transaction still open (its row not yet visible to anyone else) while
    // the second tries: the second must wait for it, then be refused.
    let url = p.db.owner_url.replace("postgres@", "authenticator@");
    let (mut first_api, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let first = begin(&mut first_api, Some(alice)).await;
    first.query(INSERT, &[&alice, &YT]).await.unwrap();
    let second = tokio::spawn(async move {
        let (mut api, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        request(&mut api, Some(alice), INSERT, &[&alice, &YT]).await
    });
    eventually(
        "the second insert to wait or end",
        Duration::from_secs(30),
        || async {
            let waiting: i64 = p
                .owner
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE usename = 'authenticator' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            (waiting > 0 || second.is_finished()).then_some(())
        },
    )
    .await;
    first.commit().await.unwrap();
    let refused = second
        .await
        .unwrap()
        .expect_err("both inserts got the last place");
    assert!(
        refused.contains("You already have 3 videos waiting"),
        "{refused}"
    );
    // Another user is not affected.
    insert(&mut p, Uuid::new_v4()).await;
    // A finished job frees a place.
    p.owner
        .execute("UPDATE processing_jobs SET status = 'completed' WHERE id = (SELECT id FROM processing_jobs WHERE user_id = $1 LIMIT 1)", &[&alice])
        .await
        .unwrap();
    insert(&mut p, alice).await;
}

#[tokio::test]
async fn users_read_only_their_own_folder_of_the_bucket() {
    let mut p = project().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    for (user, bucket) in [
        (alice, "audio-files"),
        (bob, "audio-files"),
        (alice, "other-bucket"),
    ] {
        put_object(&p, bucket, &format!("{user}/{}.m4a", Uuid::new_v4())).await;
    }
    let rows = select(&mut p, Some(alice), "SELECT name FROM storage.objects").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get::<_, String>(0).starts_with(&alice.to_string()));
}

#[tokio::test]
async fn jobs_and_audio_rows_stream_to_realtime() {
    let p = project().await;
    let rows = p
        .owner
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'supabase_realtime' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(tables, vec!["audio_files", "processing_jobs"]);
    // Migrating again changes nothing and fails nothing.
    assert!(xtract::ops::commands::migrate(&p.db.owner_url)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_as_xtract_worker_completes_a_users_job() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    let id = insert(&mut p, alice).await;
    let standin = StandIn::new();
    let worker_url = p.db.owner_url.replace("postgres@", "xtract_worker@");
    let _daemon = Daemon::start(&worker_url, &DaemonOptions::new(&standin.script));
    wait_status(&p.owner, id, "completed", Duration::from_secs(30)).await;
    let audio = select(&mut p, Some(alice), "SELECT file_url FROM audio_files").await;
    assert_eq!(audio.len(), 1, "alice sees her audio row");
}

/// The old service's tables, adopted with a permissive policy left on them:
/// after `xtract migrate` only xtract's rules apply.
#[tokio::test]
async fn policies_left_on_adopted_tables_are_dropped() {
    let mut p = project_after(&format!(
        "{OLD_SERVICE_DDL}
         ALTER TABLE public.processing_jobs ENABLE ROW LEVEL SECURITY;
         CREATE POLICY \"anyone reads jobs\" ON public.processing_jobs FOR SELECT USING (true);
         CREATE POLICY \"users update own rows\" ON public.processing_jobs FOR UPDATE
             USING (user_id = auth.uid());"
    ))
    .await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let job = insert(&mut p, alice).await;
    let seen = select(&mut p, Some(bob), "SELECT id FROM processing_jobs").await;
    assert!(seen.is_empty(), "bob reads alice's job");
    let left: Vec<String> = column(
        &p.owner,
        "SELECT policyname::text FROM pg_policies WHERE tablename = 'processing_jobs' ORDER BY 1",
        &[],
    )
    .await;
    assert!(
        !left
            .iter()
            .any(|n| n == "anyone reads jobs" || n == "users update own rows"),
        "{left:?}"
    );
    // Alice still reads her own.
    let mine = select(&mut p, Some(alice), "SELECT id FROM processing_jobs").await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].get::<_, Uuid>(0), job);
}

// ---- The old service's tables, as users' projects have them ----

/// What an old frontend and the old service left: a finished job with its
/// audio, a failed one (without `created_at`: the old column is nullable), a
/// job still waiting, and one the old service was running when it stopped.
const OLD_ROWS: &str = "
INSERT INTO audio_files (id, user_id, filename, file_url, file_size, created_at, updated_at)
VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'a11ce000-0000-4000-8000-000000000001',
        'Old song.m4a', 'https://old.example/audio-files/old.m4a', 1234,
        '2026-01-02 03:04:05+00', '2026-01-02 03:04:06+00');
INSERT INTO processing_jobs (id, user_id, original_url, status, result_audio_file_id, created_at, updated_at)
VALUES ('00000000-0000-4000-8000-00000000000c', 'a11ce000-0000-4000-8000-000000000001',
        'https://www.youtube.com/watch?v=oldcomplete', 'completed',
        'aaaaaaaa-0000-4000-8000-000000000001', '2026-01-02 03:04:00+00', '2026-01-02 03:04:06+00');
INSERT INTO processing_jobs (id, user_id, original_url, status, error_message, created_at, updated_at)
VALUES ('00000000-0000-4000-8000-00000000000f', 'a11ce000-0000-4000-8000-000000000001',
        'https://www.tiktok.com/@someone/video/7000000000000000001', 'failed',
        'Video Processing Failed', NULL, '2026-01-03 00:00:00+00');
INSERT INTO processing_jobs (id, user_id, original_url, status, created_at, updated_at)
VALUES ('00000000-0000-4000-8000-00000000000a', 'b0b00000-0000-4000-8000-000000000002',
        'https://www.youtube.com/watch?v=oldpending1', 'pending', now(), now());
INSERT INTO processing_jobs (id, user_id, original_url, status, created_at, updated_at)
VALUES ('00000000-0000-4000-8000-00000000000b', 'b0b00000-0000-4000-8000-000000000002',
        'https://www.youtube.com/watch?v=oldrunning1', 'processing',
        now() - interval '1 hour', now() - interval '1 hour');
";

/// The old service's columns of every row, as JSON.
const OLD_COLUMNS: &str = "
SELECT jsonb_agg(to_jsonb(t) ORDER BY t.id) FROM (
    SELECT id, user_id, original_url, status, result_audio_file_id, error_message, created_at, updated_at
    FROM processing_jobs) AS t
UNION ALL
SELECT jsonb_agg(to_jsonb(t) ORDER BY t.id) FROM (
    SELECT id, user_id, filename, file_url, file_size, created_at, updated_at
    FROM audio_files) AS t";

async fn old_columns(owner: &Client) -> Vec<serde_json::Value> {
    owner
        .query(OLD_COLUMNS, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The type of a column, as the catalog names it.
async fn column_type(owner: &Client, table: &str, column: &str) -> Option<String> {
    owner
        .query_opt(
            "SELECT data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
            &[&table, &column],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_services_tables_are_adopted_with_their_rows_and_jobs_complete_on_them() {
    let (db, owner) = unmigrated_project(&format!("{OLD_SERVICE_DDL}{OLD_ROWS}")).await;
    let before = old_columns(&owner).await;
    let mut p = migrated(db, owner).await;

    // Every existing row and column as it was; the contract's names and types.
    assert_eq!(old_columns(&p.owner).await, before);
    for (table, column, ty) in [
        ("audio_files", "filename", "text"),
        ("audio_files", "file_size", "integer"),
        ("audio_files", "updated_at", "timestamp with time zone"),
        ("processing_jobs", "updated_at", "timestamp with time zone"),
        ("processing_jobs", "status", "text"),
    ] {
        assert_eq!(
            column_type(&p.owner, table, column).await.as_deref(),
            Some(ty),
            "{table}.{column}"
        );
    }
    assert_eq!(
        column_type(&p.owner, "audio_files", "file_name").await,
        None
    );

    // An old frontend names the status itself.
    let alice = Uuid::parse_str("a11ce000-0000-4000-8000-000000000001").unwrap();
    let bob = Uuid::parse_str("b0b00000-0000-4000-8000-000000000002").unwrap();
    let new_job: Uuid = request(
        &mut p.api,
        Some(alice),
        "INSERT INTO processing_jobs (user_id, original_url, status) VALUES ($1, $2, 'pending') RETURNING id",
        &[&alice, &"https://youtu.be/newjob00001"],
    )
    .await
    .unwrap()[0]
        .get(0);

    // The daemon, as its least-privileged role, on the adopted tables: the
    // new job, the old waiting one, and the one the old service left
    // running (taken back after the lease) all complete.
    let standin = StandIn::new();
    let worker_url = p.db.owner_url.replace("postgres@", "xtract_worker@");
    // A short lease: the reaper judges leases only after a whole lease of
    // the database (just started) and of its own connection.
    let mut options = DaemonOptions::new(&standin.script);
    options.lease_secs = 2.0;
    options.poll_secs = 0.5;
    let mut daemon = Daemon::spawn(&worker_url, &options, &["run", "--exit-when-idle"]);
    assert!(
        daemon.wait_exit(Duration::from_secs(60)).await.success(),
        "{}",
        daemon.log_text()
    );
    let old_pending = Uuid::parse_str("00000000-0000-4000-8000-00000000000a").unwrap();
    let old_running = Uuid::parse_str("00000000-0000-4000-8000-00000000000b").unwrap();
    for id in [new_job, old_pending, old_running] {
        let row = job(&p.owner, id).await;
        assert_eq!(row["status"], "completed", "{row}");
        let audio: serde_json::Value = p
            .owner
            .query_one(
                "SELECT to_jsonb(a) FROM audio_files a WHERE id = $1::text::uuid",
                &[&row["result_audio_file_id"].as_str().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(text_of(&audio, "filename").ends_with(".m4a"), "{audio}");
        assert!(audio["file_size"].as_i64().unwrap() > 0, "{audio}");
        assert!(audio["updated_at"].is_string(), "{audio}");
    }
    // Taken back from the old service (whose run counts as no attempt of
    // ours), then run once.
    assert_eq!(job(&p.owner, old_running).await["attempts"], 1);
    let log = daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&old_running.to_string()) && l.contains("stopped heart-beating")),
        "{log}"
    );

    // The finished rows of the old service are untouched by all of it.
    let after = old_columns(&p.owner).await;
    for (id, table) in [
        ("00000000-0000-4000-8000-00000000000c", 0),
        ("00000000-0000-4000-8000-00000000000f", 0),
        ("aaaaaaaa-0000-4000-8000-000000000001", 1),
    ] {
        let find = |all: &serde_json::Value| {
            all.as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id)
                .cloned()
        };
        assert_eq!(find(&after[table]), find(&before[table]), "{id}");
    }

    // Users read their own rows, old and new.
    let mine = select(&mut p, Some(alice), "SELECT id FROM processing_jobs").await;
    assert_eq!(mine.len(), 3);
    let theirs = select(&mut p, Some(bob), "SELECT id FROM audio_files").await;
    assert_eq!(theirs.len(), 2);

    // `updated_at` follows every change, whoever makes it.
    let stamped: bool = p
        .owner
        .query_one(
            "UPDATE audio_files SET filename = 'Renamed.m4a'
             WHERE id = 'aaaaaaaa-0000-4000-8000-000000000001'
             RETURNING updated_at > now() - interval '1 minute'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stamped);

    // `xtract jobs` shows the old rows too, the one without created_at last.
    let ran = xtract(
        &worker_url,
        &DaemonOptions::new(&standin.script),
        &["jobs", "--json"],
    )
    .await;
    assert!(ran.status.success(), "{ran}");
    let out: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let listed = out["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{ran}");
    let last = listed.last().unwrap();
    assert_eq!(last["id"], "00000000-0000-4000-8000-00000000000f");
    assert!(last["age_secs"].is_null(), "{last}");
}

#[tokio::test]
async fn the_users_storage_policy_follows_the_configured_bucket() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    p.owner
        .execute(
            "UPDATE xtract.settings SET storage_bucket = 'podcasts'",
            &[],
        )
        .await
        .unwrap();
    for bucket in ["podcasts", "audio-files"] {
        put_object(&p, bucket, &format!("{alice}/{}.m4a", Uuid::new_v4())).await;
    }
    let rows = select(&mut p, Some(alice), "SELECT bucket_id FROM storage.objects").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "podcasts");
}

#[tokio::test]
async fn the_dashboard_views_are_for_the_dashboard_not_for_the_app() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    insert(&mut p, alice).await;
    for view in [
        "xtract.queue_summary",
        "xtract.recent_failures",
        "xtract.platform_status",
    ] {
        for user in [None, Some(alice)] {
            let e = request(&mut p.api, user, &format!("SELECT * FROM {view}"), &[])
                .await
                .unwrap_err();
            assert!(e.contains("permission denied"), "{view} {user:?}: {e}");
        }
        // What the dashboard and server-side tools use.
        let tx = p.api.transaction().await.unwrap();
        tx.batch_execute("SET LOCAL ROLE service_role")
            .await
            .unwrap();
        tx.query(&format!("SELECT * FROM {view}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{view} as service_role: {e}"));
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn a_user_chooses_the_audio_of_their_job_and_nothing_else() {
    let mut p = project().await;
    let alice = Uuid::new_v4();
    let rows = request(
        &mut p.api,
        Some(alice),
        "INSERT INTO processing_jobs (user_id, original_url, audio_format, audio_bitrate_kbps)
         VALUES ($1, $2, 'opus', 64) RETURNING audio_format, audio_bitrate_kbps",
        &[&alice, &YT],
    )
    .await
    .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "opus");
    assert_eq!(rows[0].get::<_, i32>(1), 64);
    let e = request(
        &mut p.api,
        Some(alice),
        "INSERT INTO processing_jobs (user_id, original_url, audio_format) VALUES ($1, $2, 'flac')",
        &[&alice, &YT],
    )
    .await
    .unwrap_err();
    assert!(e.contains("Unknown audio format \"flac\""), "{e}");
    // Chosen at insert; the daemon's row afterwards.
    let e = request(
        &mut p.api,
        Some(alice),
        "UPDATE processing_jobs SET audio_format = 'mp3'",
        &[],
    )
    .await
    .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
}
