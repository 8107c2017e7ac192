//! Faults a deployment meets (issue 11), each reproduced: a database away
//! for longer than the lease, a database down when the daemon starts, hung
//! downloads, processes that outlive their daemon, operator edits of running
//! jobs, panics, two link checks that disagree, a secret on a command line,
//! and a write-back the database refuses.

mod support;

use std::time::Duration;

use support::*;
use tokio::net::UnixDatagram;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Kills the processes `pids` names when dropped, so that a failing test
/// leaves no `sleep 300` behind.
struct KillOnDrop<F: Fn() -> Vec<i32>>(F);

impl<F: Fn() -> Vec<i32>> Drop for KillOnDrop<F> {
    fn drop(&mut self) {
        for pid in (self.0)() {
            // SAFETY: sending a signal; a stale pid at worst names nothing.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

// ---- 1. an outage longer than the lease ----

/// PostgreSQL stops for longer than the lease while the daemon runs three
/// jobs: two on their last attempt finish during the outage (their results
/// wait), one is still running. When the database returns, neither the
/// daemon that holds them nor a second daemon takes them back: each
/// completes once, with its audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_lease_takes_no_job_from_its_daemon() {
    let mut s = Stage::new()
        .concurrency(3)
        .lease(2.0)
        .poll(0.3)
        .prepare()
        .await;
    let names = ["outage-a", "outage-b", "outage-c"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(s.enqueue(&format!("http://127.0.0.1:9/block/{name}")).await);
    }
    // a and b are on their last attempt (local links are `other`: 3).
    s.client
        .execute(
            "UPDATE processing_jobs SET attempts = 2 WHERE id = ANY($1)",
            &[&ids[..2].to_vec()],
        )
        .await
        .unwrap();
    let holder = s.daemon_as("holder");
    for name in names {
        s.standin.blocked_pid(name).await;
    }
    let bystander = s.daemon_as("bystander");
    bystander.wait_for_log("xtract is running").await;

    s.db.pg.stop(false).unwrap();
    s.standin.release("outage-a");
    s.standin.release("outage-b");
    eventually(
        "both results to wait for the database",
        SECS(30),
        || async {
            (holder
                .log_text()
                .matches("cannot write the job's outcome yet")
                .count()
                >= 2)
                .then_some(())
        },
    )
    .await;
    // The outage itself: three leases long.
    tokio::time::sleep(Duration::from_secs_f64(s.options.lease_secs * 3.0)).await;
    s.db.pg.start(true).unwrap();

    s.reconnect().await;
    for id in &ids[..2] {
        s.wait(*id, "completed").await;
    }
    s.standin.release("outage-c");
    s.wait(ids[2], "completed").await;
    for (id, attempts) in ids.iter().zip([3, 3, 1]) {
        let row = s.job(*id).await;
        assert_eq!(row["attempts"], attempts, "{row}");
        assert!(row["error_code"].is_null(), "{row}");
        assert_eq!(s.audio_rows(*id).await, 1);
    }
    assert_eq!(s.standin.calls().len(), 3, "no job was run twice");
    assert_eq!(files_under(&holder.audio_dir()).len(), 3);
    for d in [&holder, &bystander] {
        assert!(
            !d.log_text().contains("stopped heart-beating"),
            "a job was taken back:\n{}",
            d.log_text()
        );
    }
}

/// The reaper's rules one by one, on the statement itself: a job whose
/// heartbeat is an hour old is not taken back while the database server has
/// been up for less than a lease (nobody could beat while it was down), and
/// never by the worker that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_counts_the_lease_from_the_database_start_and_spares_held_jobs() {
    let mut db = TestDb::start().await;
    let client = db.client().await;
    // A job worker `gone` took an hour ago, and never beat since.
    let held_by_gone = |url: &'static str| {
        let (db, client) = (&db, &client);
        async move {
            let id = db.enqueue(client, url).await;
            client
                .execute(
                    "UPDATE processing_jobs
                     SET status = 'processing', locked_by = 'gone', heartbeat_at = now() - interval '1 hour'
                     WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            id
        }
    };
    let id = held_by_gone("https://www.youtube.com/watch?v=dQw4w9WgXcQ").await;
    // Set back to pending by an operator while `gone` ran it, and `gone`
    // died before letting go: the job waits for nobody for ever, unless the
    // reaper lets go for it.
    let retried = held_by_gone("https://www.youtube.com/watch?v=dQw4w9WgXcR").await;
    operator_sets_status(&client, retried, "pending")
        .await
        .unwrap();
    assert_eq!(job(&client, retried).await["locked_by"], "gone");
    drop(client);
    db.pg.stop(false).unwrap();
    db.pg.start(true).unwrap();
    let target = xtract::db::DbTarget::parse(&db.url).unwrap();
    let queue = xtract::queue::Queue::new(target.pool(2).unwrap(), "reaper", "test");
    let lease = SECS(3);
    let attempts = xtract::domain::PlatformTable::default().max_attempts_json();
    let reap = |held: Vec<uuid::Uuid>| {
        let queue = queue.clone();
        let attempts = attempts.clone();
        async move { queue.reap(lease, &attempts, "lost", &held).await.unwrap() }
    };
    assert!(reap(vec![]).await.is_empty(), "judged across the restart");
    tokio::time::sleep(lease).await;
    assert!(
        reap(vec![id, retried]).await.is_empty(),
        "reaped a held job"
    );
    let mut reaped: Vec<_> = reap(vec![])
        .await
        .into_iter()
        .map(|(job, status)| (job.id, status))
        .collect();
    reaped.sort();
    let mut want = vec![
        (id, "pending".to_string()),
        (retried, "pending".to_string()),
    ];
    want.sort();
    assert_eq!(reaped, want);
    let client = db.client().await;
    assert!(job(&client, retried).await["locked_by"].is_null());
}

// ---- 2. the database down at start ----

/// What systemd and a health check see of a starting daemon: the
/// notifications on its NOTIFY_SOCKET, and its /health.
struct Watch {
    socket: UnixDatagram,
    addr: String,
    dir: tempfile::TempDir,
}

impl Watch {
    fn new() -> Watch {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        let addr = format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap());
        Watch { socket, addr, dir }
    }

    /// The daemon's variables that point it here.
    fn env(&self) -> Vec<(String, String)> {
        let socket = self.dir.path().join("notify.sock");
        vec![
            ("NOTIFY_SOCKET".into(), socket.display().to_string()),
            ("XTRACT_HEALTH_ADDR".into(), self.addr.clone()),
        ]
    }

    /// /health's status and body, once it answers.
    async fn health(&self) -> Option<(u16, serde_json::Value)> {
        let response = reqwest::get(format!("http://{}/health", self.addr))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Every notification that arrives within `quiet` of the previous one.
    async fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout(quiet, self.socket.recv(&mut buf)).await {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen
    }

    /// The first notification (from now) that says `want`.
    async fn receive(&self, want: &str) -> String {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = tokio::time::timeout(SECS(30), self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {want} within 30 s"))
                .unwrap();
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.contains(want) {
                return message;
            }
        }
    }
}

/// A VM boots before its database: the daemon keeps trying, says so (log,
/// systemd status, /health 503), reports READY=1 only once connected, and
/// then works. A database without the schema is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_before_its_database_waits_for_it_and_then_works() {
    let watch = Watch::new();
    let mut s = Stage::new().envs(watch.env()).prepare().await;

    // Reachable but never migrated: the operator's mistake, not an outage.
    s.db.pg.create_database("bare").await.unwrap();
    let bare_url = format!("{}/bare", s.db.url.rsplit_once('/').unwrap().0);
    let mut bare = Daemon::start(&bare_url, &DaemonOptions::new(&s.standin.script));
    assert_eq!(bare.wait_exit(SECS(30)).await.code(), Some(1));
    bare.assert_logged("xtract migrate");

    s.db.pg.stop(false).unwrap();
    let mut daemon = s.daemon();

    let (code, body) = eventually("/health to answer while waiting", SECS(30), || {
        watch.health()
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    assert_eq!(body["database_connected"], false, "{body}");
    let status = watch.receive("STATUS=").await;
    assert!(status.contains("waiting for the database"), "{status}");
    daemon.wait_for_log("waiting for the database").await;
    let before = watch.drain(Duration::from_millis(1500)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon gave up:\n{}",
        daemon.log_text()
    );
    assert!(
        !before.iter().any(|m| m.contains("READY=1")),
        "READY before the database: {before:?}"
    );

    s.db.pg.start(true).unwrap();
    watch.receive("READY=1").await;
    eventually("a healthy daemon", SECS(30), || async {
        watch.health().await.filter(|(code, _)| *code == 200)
    })
    .await;
    s.reconnect().await;
    s.run("http://127.0.0.1:9/ok/after-boot", "completed").await;
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(SECS(30)).await.success());
}

/// A signal while the daemon waits for its database stops it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_database_exits_cleanly() {
    let mut db = TestDb::start().await;
    db.pg.stop(false).unwrap();
    let mut daemon = Daemon::start(
        &db.url,
        &DaemonOptions::new(std::path::Path::new("/bin/true")),
    );
    daemon.wait_for_log("waiting for the database").await;
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SECS(10)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
}

// ---- 2b. Supabase Storage down at start ----

/// A VM boots during a Storage outage: the daemon waits as it does for its
/// database (systemd status, /health 503 with the reason, no job taken),
/// and takes jobs once Storage answers. The real server showed it exiting 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_during_a_storage_outage_waits_for_it_and_then_works() {
    use support::storage_double::{Fault, StorageDouble, KEY};
    let double = StorageDouble::start(true, None).await;
    double.go_down(Fault::Reply(503, "upstream connect error".into()));
    let watch = Watch::new();
    let s = Stage::new()
        .envs(double.daemon_env(KEY))
        .envs(watch.env())
        .prepare()
        .await;
    let id = s.enqueue("http://127.0.0.1:9/ok/during-outage").await;
    let mut daemon = s.daemon();

    let status = watch.receive("waiting for Supabase Storage").await;
    assert!(status.contains("503"), "{status}");
    let (code, body) = eventually("/health to say why it waits", SECS(30), || async {
        watch
            .health()
            .await
            .filter(|(_, b)| b["waiting_for"].as_str().unwrap_or("").contains("Storage"))
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    daemon.wait_for_log("waiting for Supabase Storage").await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon gave up:\n{}",
        daemon.log_text()
    );
    assert_eq!(s.status(id).await, "pending");
    let before = watch.drain(Duration::from_millis(500)).await;
    assert!(
        !before.iter().any(|m| m.contains("READY=1")),
        "READY before Storage: {before:?}"
    );

    double.come_back();
    watch.receive("READY=1").await;
    s.wait(id, "completed").await;
    assert!(double
        .object(&format!("audio-files/{USER}/{id}.m4a"))
        .is_some());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(SECS(30)).await.success());
}

/// Storage that cannot be reached at all (nothing listens) is waited for
/// too, and a signal meanwhile stops the daemon cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_storage_exits_cleanly() {
    use support::storage_double::{supabase_env, KEY};
    let nobody = format!(
        "http://127.0.0.1:{}",
        xtract::ops::localpg::free_port().unwrap()
    );
    let (_s, mut daemon) = Stage::new().envs(supabase_env(&nobody, KEY)).start().await;
    eventually("the daemon to wait", SECS(30), || async {
        let log = daemon.log_text();
        (log.contains("waiting for Supabase Storage") && log.contains("cannot reach")).then_some(())
    })
    .await;
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SECS(10)).await;
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
}

/// A key Storage refuses is the operator's mistake: exit 2 (the CLI's
/// table), with what to do after "→" as every other message has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_storage_refuses_stops_the_daemon_as_a_configuration_mistake() {
    use support::storage_double::StorageDouble;
    let double = StorageDouble::start(true, None).await;
    let wrong = "wrong-key-ffffffffffffffff";
    let (_s, mut daemon) = Stage::new().envs(double.daemon_env(wrong)).start().await;
    let status = daemon.wait_exit(SECS(30)).await;
    let log = daemon.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("→ check SUPABASE_SERVICE_ROLE_KEY"), "{log}");
    assert!(!log.contains(" — "), "{log}");
    assert!(!log.contains(wrong), "{log}");
}

// ---- 3. hung downloads; 4. stray processes ----

/// A download that never returns is stopped at the platform's time limit
/// (`max_runtime_secs`, here shorter than XTRACT_JOB_TIMEOUT_SECS), with
/// every process it started; it is retried per the platform's attempts and
/// then fails with `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_download_is_stopped_at_its_time_limit_with_all_its_processes() {
    let (s, daemon) = Stage::new()
        .platforms("[other]\nmax_runtime_secs = 1.5\nmax_attempts = 2\n")
        .env("XTRACT_JOB_TIMEOUT_SECS", "600")
        .start()
        .await;
    let id = s.enqueue("http://127.0.0.1:9/family/hung").await;
    let _cleanup = KillOnDrop(|| s.standin.children("hung"));
    s.wait(id, "failed").await;
    let row = s.job(id).await;
    assert_eq!(row["error_code"], "timeout", "{row}");
    assert_eq!(row["attempts"], 2, "{row}");
    assert!(
        text_of(&row, "error_message").contains("took too long"),
        "{row}"
    );
    assert_eq!(s.standin.calls().len(), 2);
    let children = s.standin.children("hung");
    assert_eq!(children.len(), 4, "two per run");
    wait_ended("every process of the job to end", &children).await;
    daemon.assert_logged("time limit");
}

/// `kill -9` of a daemon: yt-dlp dies with it, but what yt-dlp started
/// (ffmpeg, deno, here two `sleep`s, one in its own session) would live on.
/// The next daemon on the machine ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_a_killed_daemon_left_behind_are_ended_by_the_next_one() {
    // One work folder for both daemons, as on one machine.
    let work = tempfile::tempdir().unwrap();
    let (s, mut first) = Stage::new()
        .lease(1.0)
        .poll(0.3)
        .env("XTRACT_WORK_DIR", &work.path().display().to_string())
        .start()
        .await;
    let id = s.enqueue("http://127.0.0.1:9/family/orphans").await;
    let ytdlp = s.standin.blocked_pid("orphans").await;
    let children = s.standin.children("orphans");
    let _cleanup = KillOnDrop(|| s.standin.children("orphans"));
    assert_eq!(children.len(), 2);

    first.signal(libc::SIGKILL);
    first.wait_exit(SECS(10)).await;
    wait_ended("the killed daemon's yt-dlp to die", &[ytdlp]).await;
    assert!(
        children.iter().all(|pid| process_alive(*pid)),
        "the children outlive their daemon until someone ends them"
    );

    s.standin.release("orphans");
    let next = s.daemon_as("next");
    wait_ended("the next daemon to end the strays", &children).await;
    s.wait(id, "completed").await;
    next.assert_logged("left by a daemon");
}

// ---- 5. operator edits while a job runs ----

/// An operator sets a running job back to pending in the dashboard: its
/// run is stopped first, then the job runs again from attempt 1, never two
/// runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_a_running_job_to_pending_stops_it_then_runs_it_once_afresh() {
    let (s, _daemon) = Stage::new().start().await;
    let (id, first) = s.blocked_job("again").await;

    s.operator_sets(id, "pending").await;
    wait_ended("the first run to be stopped", &[first]).await;
    eventually("the second run", SECS(10), || async {
        (s.standin.calls().len() == 2).then_some(())
    })
    .await;
    s.standin.release("again");
    s.wait(id, "completed").await;
    assert!(s.standin.overlaps().is_empty(), "two runs at once");
    let row = s.job(id).await;
    assert_eq!(row["attempts"], 1, "a fresh start: {row}");
    assert_eq!(s.audio_rows(id).await, 1);
}

/// A completed job has its audio: cancelling it is refused with a sentence
/// the dashboard shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_job_cannot_be_cancelled() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let id = db
        .enqueue(&client, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        .await;
    operator_sets_status(&client, id, "completed")
        .await
        .unwrap();
    let e = operator_sets_status(&client, id, "cancelled")
        .await
        .unwrap_err();
    let message = e.as_db_error().unwrap().message().to_string();
    assert!(message.contains("already completed"), "{message}");
    assert_eq!(status(&client, id).await, "completed");
}

// ---- 10. a write-back the database refuses ----

/// The database refuses the audio row (a constraint here; a missing
/// column, a type or a permission alike): the job fails `internal` with the
/// database's words, and the object it stored is removed. It does not stay
/// `processing` for the reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_the_database_refuses_fails_the_job_and_removes_its_audio() {
    let s = Stage::new().prepare().await;
    s.client
        .batch_execute(
            "ALTER TABLE audio_files ADD CONSTRAINT test_refuses_audio CHECK (duration < 0) NOT VALID",
        )
        .await
        .unwrap();
    let daemon = s.daemon();
    let (id, row) = s.run("http://127.0.0.1:9/ok/refused", "failed").await;
    assert_eq!(row["error_code"], "internal", "{row}");
    assert!(
        text_of(&row, "error_detail").contains("test_refuses_audio"),
        "{row}"
    );
    assert!(row["locked_by"].is_null());
    assert_eq!(s.audio_rows(id).await, 0);
    assert_eq!(
        files_under(&daemon.audio_dir()),
        Vec::<std::path::PathBuf>::new()
    );
}

// ---- 6. panics ----

/// A job body that panics for links with "boom" in them.
struct Fragile;

impl xtract::queue::worker::Processor for Fragile {
    async fn process(
        &self,
        job: &xtract::domain::Job,
        _ctx: &xtract::queue::worker::JobContext,
    ) -> xtract::queue::worker::JobReport {
        if job.original_url.contains("boom") {
            panic!("the body fell over");
        }
        xtract::queue::worker::JobReport {
            platform: None,
            result: Ok(None),
        }
    }
}

/// The log lines of this test process, as JSON (only the panic test runs
/// a worker in this process; daemons are processes of their own).
fn capture_log() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex};
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || Sink(sink.clone()))
        .try_init()
        .expect("one subscriber per test process");
    log
}

/// A panic in a job body fails that job `internal` (the heartbeat stops,
/// the slot is given back), is logged with the job's id, and the next job
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_job_body_fails_that_job_and_the_worker_goes_on() {
    use xtract::queue::worker::{Shutdown, WorkerSettings};
    let log = capture_log();
    let db = TestDb::start().await;
    let client = db.client().await;
    let boom = db
        .enqueue(&client, "https://www.youtube.com/watch?v=boomboom123")
        .await;
    let settings = WorkerSettings {
        poll_interval: Duration::from_millis(200),
        heartbeat_interval: Duration::from_millis(100),
        ..in_process::settings()
    };
    let worker = in_process::worker(&db, "fragile", Fragile, settings);
    let shutdown = Shutdown::default();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    wait_status(&client, boom, "failed", SECS(20)).await;
    let row = job(&client, boom).await;
    assert_eq!(row["error_code"], "internal", "{row}");
    assert!(
        text_of(&row, "error_detail").contains("the body fell over"),
        "{row}"
    );
    assert_eq!(row["attempts"], 1, "a bug is not retried: {row}");
    let fine = db
        .enqueue(&client, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        .await;
    wait_status(&client, fine, "completed", SECS(20)).await;
    shutdown.stop_claiming.cancel();
    running.await.unwrap();
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("panicked"))
        })
        .unwrap_or_else(|| panic!("no line about the panic:\n{text}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["span"]["job_id"], boom.to_string(), "{line}");
    assert!(line["fields"]["panic"]
        .as_str()
        .unwrap()
        .contains("the body fell over"));
}

// ---- 7. one table of links for both link checks ----

struct LinkCase {
    why: String,
    link: String,
    insert: String,
    daemon: String,
}

fn link_cases() -> Vec<LinkCase> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/link_cases.json"
    ))
    .unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    table["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut link = c["link"].as_str().unwrap().to_string();
            if let Some(pad) = c["pad"].as_array() {
                link.push_str(
                    &pad[0]
                        .as_str()
                        .unwrap()
                        .repeat(pad[1].as_u64().unwrap() as usize),
                );
            }
            if let Some(tail) = c["tail"].as_str() {
                link.push_str(tail);
            }
            let insert = c["insert"].as_str().unwrap().to_string();
            LinkCase {
                why: c["why"].as_str().unwrap().to_string(),
                link,
                daemon: c["daemon"].as_str().unwrap_or(&insert).to_string(),
                insert,
            }
        })
        .collect()
}

/// What the daemon says about a link with its default rules.
fn daemon_verdict(link: &str) -> String {
    use xtract::pipeline::url_rules::{parse_job_url, UrlPolicy};
    match parse_job_url(link, &UrlPolicy::default()) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

/// Every case of tests/link_cases.json, through the insert's check on a
/// real database and through the daemon's rules: the insert refuses exactly
/// the links whose shape the daemon refuses, in the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insert_and_the_daemon_judge_links_alike() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let cases = link_cases();
    assert!(cases.len() >= 50);
    let mut wrong = Vec::new();
    for c in &cases {
        let insert = match client
            .execute("SELECT xtract.check_link($1)", &[&c.link])
            .await
        {
            Ok(_) => "ok".to_string(),
            Err(e) => e.as_db_error().unwrap().message().to_string(),
        };
        let daemon = daemon_verdict(&c.link);
        if insert != c.insert || daemon != c.daemon {
            wrong.push(format!(
                "{} ({:?}): insert says {insert:?} (want {:?}), daemon says {daemon:?} (want {:?})",
                c.why,
                c.link.chars().take(80).collect::<String>(),
                c.insert,
                c.daemon
            ));
        }
        if c.insert != "ok" {
            assert_eq!(c.insert, c.daemon, "{}: the table itself", c.why);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every character of the Basic Multilingual Plane inside a link and at its
/// end: the insert and the daemon trim and refuse the same ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insert_and_the_daemon_trim_and_refuse_the_same_characters() {
    use xtract::pipeline::url_rules::check_shape;
    let db = TestDb::start().await;
    let client = db.client().await;
    const LINK: &str = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&x=a";
    let rows = client
        .query(
            "SELECT cp,
                    xtract.link_problem($1 || chr(cp) || 'b') IS NOT NULL,
                    xtract.link_problem($1 || chr(cp)) IS NOT NULL
             FROM generate_series(1, 65535) AS cp
             WHERE cp NOT BETWEEN 55296 AND 57343",
            &[&LINK],
        )
        .await
        .unwrap();
    // The daemon's first step, check_shape, decides characters; what
    // follows it (the URL parser) percent-encodes whatever it passes.
    let refused = |link: String| check_shape(&link, 2048).is_err();
    let mut wrong = Vec::new();
    for r in rows {
        let cp: i32 = r.get(0);
        let c = char::from_u32(cp as u32).unwrap();
        let inside = refused(format!("{LINK}{c}b"));
        let at_end = refused(format!("{LINK}{c}"));
        if (inside, at_end) != (r.get(1), r.get(2)) {
            wrong.push(format!(
                "U+{cp:04X}: daemon refuses inside/at end {inside}/{at_end}, insert {}/{}",
                r.get::<_, bool>(1),
                r.get::<_, bool>(2)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---- 8. secrets on a command line ----

/// The egress guard's per-download password reaches yt-dlp in a file only
/// its user can read, never on its command line (which `ps` shows to every
/// local user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_pass_is_never_on_a_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let (s, _daemon) = Stage::new().start().await;
    // Local links are `other`: their downloads go through the guard.
    let (id, pid) = s.blocked_job("secretive").await;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let line = args.join(" ");
    assert!(
        !line.contains("xtract:"),
        "a pass on the command line: {line}"
    );
    assert!(!line.contains("--proxy"), "{line}");
    let at = args
        .iter()
        .position(|a| a == "--config-locations")
        .unwrap_or_else(|| panic!("no --config-locations in {line}"));
    let file = std::path::Path::new(&args[at + 1]);
    let mode = file.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    let options = std::fs::read_to_string(file).unwrap();
    assert!(options.contains("--proxy"), "{options}");
    assert!(options.contains("http://xtract:"), "{options}");
    s.standin.release("secretive");
    s.wait(id, "completed").await;
    assert!(!file.exists(), "the file goes with the job's folder");
}

// ---- all of it at once ----

/// How hard a chaos run shakes the daemons.
struct Chaos {
    jobs: i64,
    /// Each daemon's job slots.
    concurrency: usize,
    /// Rounds of `round` each: a daemon killed with -9 and started again,
    /// or (every `outage_every`-th) PostgreSQL stopped for 2.5 leases.
    rounds: usize,
    round: Duration,
    outage_every: usize,
}

/// Three daemons work through `jobs` jobs while daemons are killed with -9
/// and started again, PostgreSQL stops for longer than the lease, and an
/// operator sets running jobs back to pending. Every job ends: completed
/// once, with one audio row and one object, or (killed on each of its
/// attempts) failed `worker_lost` with neither, its stored audio removed by
/// the reaper. Nothing is held, nothing ran twice at once.
async fn chaos(c: Chaos) {
    use rand::Rng;
    let jobs = c.jobs;
    let shared = tempfile::tempdir().unwrap();
    let audio = shared.path().join("audio");
    let mut s = Stage::new()
        .concurrency(c.concurrency)
        .lease(2.0)
        .poll(0.5)
        .grace(1.0)
        .env(
            "XTRACT_WORK_DIR",
            &shared.path().join("work").display().to_string(),
        )
        .env("XTRACT_LOCAL_STORAGE_DIR", &audio.display().to_string())
        .prepare()
        .await;
    let name = |i: usize| format!("chaos-{i}-{}", uuid::Uuid::new_v4().simple());
    let mut daemons: Vec<Daemon> = (0..3).map(|i| s.daemon_as(&name(i))).collect();
    enqueue_burst(&s.client, USER, "http://127.0.0.1:9/nap/chaos-", 1..=jobs).await;

    let (mut kills, mut outages, mut retries) = (0, 0, 0);
    for round in 0..c.rounds {
        tokio::time::sleep(c.round).await;
        if round % c.outage_every == c.outage_every - 1 {
            s.db.pg.stop(round % 2 == 0).unwrap();
            tokio::time::sleep(Duration::from_secs_f64(s.options.lease_secs * 2.5)).await;
            s.db.pg.start(true).unwrap();
            s.reconnect().await;
            outages += 1;
            continue;
        }
        let i = rand::thread_rng().gen_range(0..daemons.len());
        daemons[i].signal(libc::SIGKILL);
        daemons[i].wait_exit(SECS(10)).await;
        daemons[i] = s.daemon_as(&name(i));
        kills += 1;
        if round % 3 == 0 {
            retries += s
                .client
                .execute(
                    "UPDATE processing_jobs SET status = 'pending'
                     WHERE id IN (SELECT id FROM processing_jobs WHERE status = 'processing' LIMIT 2)",
                    &[],
                )
                .await
                .unwrap();
        }
    }

    let (standin, client) = (&s.standin, &s.client);
    let deadline = std::time::Instant::now() + SECS(180);
    loop {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM processing_jobs
                 WHERE status = 'completed' OR (status = 'failed' AND error_code = 'worker_lost')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done == jobs {
            break;
        }
        if std::time::Instant::now() > deadline {
            let rows = client
                .query(
                    "SELECT to_jsonb(j) - 'original_url' FROM processing_jobs j
                     WHERE status <> 'completed' AND error_code IS DISTINCT FROM 'worker_lost'",
                    &[],
                )
                .await
                .unwrap();
            let mut report = String::new();
            for r in rows.iter().take(10) {
                let v: serde_json::Value = r.get(0);
                report.push_str(&format!("{v}\n"));
                let id = v["id"].as_str().unwrap().to_string();
                for d in &daemons {
                    for line in d.log_text().lines().filter(|l| l.contains(&id)) {
                        report.push_str(&format!("  {line}\n"));
                    }
                }
            }
            panic!("{} jobs not finished:\n{report}", jobs - done);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let completed: std::collections::BTreeSet<String> = column(
        client,
        "SELECT id::text FROM processing_jobs WHERE status = 'completed'",
        &[],
    )
    .await
    .into_iter()
    .collect();
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM audio_files),
                    (SELECT count(DISTINCT a.job_id) FROM audio_files a
                     JOIN processing_jobs j ON j.id = a.job_id AND j.status = 'completed'),
                    (SELECT count(*) FROM processing_jobs j
                     JOIN audio_files a ON a.id = j.result_audio_file_id AND a.job_id = j.id),
                    (SELECT count(*) FROM processing_jobs WHERE locked_by IS NOT NULL)",
            &[],
        )
        .await
        .unwrap();
    let n = completed.len() as i64;
    assert!(n > jobs * 9 / 10, "only {n} completed");
    assert_eq!(row.get::<_, i64>(0), n, "audio rows, one per completed job");
    assert_eq!(row.get::<_, i64>(1), n, "completed jobs with an audio row");
    assert_eq!(row.get::<_, i64>(2), n, "jobs pointing at their own row");
    assert_eq!(row.get::<_, i64>(3), 0, "jobs still held");
    // One object per completed job, none of a failed one (the reaper
    // removes those in the background: give it a moment).
    // (The local backend's `.tmp…` copies of a daemon killed mid-copy are
    // not objects: the development backend leaves them.)
    let objects = || -> std::collections::BTreeSet<String> {
        files_under(&audio)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .map(|name| name.split('.').next().unwrap().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + SECS(30);
    while objects() != completed {
        if std::time::Instant::now() > deadline {
            let have = objects();
            let orphans: Vec<_> = have.difference(&completed).collect();
            let missing: Vec<_> = completed.difference(&have).collect();
            let mut report = String::new();
            for id in orphans.iter().chain(missing.iter()).take(6) {
                let row = client
                    .query_opt(
                        "SELECT to_jsonb(j) - 'original_url' FROM processing_jobs j WHERE id::text = $1",
                        &[&id.as_str()],
                    )
                    .await
                    .unwrap();
                let v: Option<serde_json::Value> = row.map(|r| r.get(0));
                report.push_str(&format!("{id}: {v:?}\n"));
                for d in &daemons {
                    for line in d.log_text().lines().filter(|l| l.contains(id.as_str())) {
                        report.push_str(&format!("  {line}\n"));
                    }
                }
            }
            panic!("objects without a completed job: {orphans:?}\ncompleted jobs without an object: {missing:?}\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = files_under(&audio)
        .iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(files, completed.len(), "one object per job");
    let overlaps = standin.overlaps();
    if !overlaps.is_empty() {
        let mut report = String::new();
        for name in overlaps.iter().take(3) {
            let id: String = client
                .query_one(
                    "SELECT id::text FROM processing_jobs WHERE original_url LIKE '%/' || $1",
                    &[name],
                )
                .await
                .unwrap()
                .get(0);
            report.push_str(&format!("{name} = {id}\n"));
            for (i, d) in daemons.iter().enumerate() {
                for line in d.log_text().lines().filter(|l| l.contains(&id)) {
                    report.push_str(&format!("  [{i}] {line}\n"));
                }
            }
        }
        panic!("two runs of one job at once: {overlaps:?}\n{report}");
    }
    // The chaos happened: daemons were killed while they held jobs (their
    // jobs were taken back), and the database went away.
    let taken_back: usize = daemons
        .iter()
        .map(|d| d.log_text().matches("stopped heart-beating").count())
        .sum();
    eprintln!(
        "chaos: {kills} kill -9, {outages} outages, {retries} operator retries, {taken_back} jobs taken back (by the last daemons), {} yt-dlp runs, {n} of {jobs} jobs completed, {} failed worker_lost",
        standin.calls().len(),
        jobs - n
    );
    assert!(
        kills >= 2 && outages >= 1,
        "{kills} kills, {outages} outages"
    );
    assert!(
        standin.calls().len() as i64 > jobs,
        "no job was interrupted and run again"
    );
}

/// A short chaos run, in the suite: kill -9 again and again with an outage
/// between, on 60 jobs (about a quarter of a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_loses_duplicates_and_orphans_nothing() {
    chaos(Chaos {
        jobs: 60,
        concurrency: 2,
        rounds: 6,
        round: Duration::from_millis(800),
        outage_every: 4,
    })
    .await
}

/// The long run: 300 jobs, 30 rounds, two outages. About three minutes:
/// run it by hand, `cargo test --test faults chaos -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn chaos_loses_duplicates_and_orphans_nothing() {
    chaos(Chaos {
        jobs: 300,
        concurrency: 4,
        rounds: 30,
        round: Duration::from_millis(1500),
        outage_every: 12,
    })
    .await
}
