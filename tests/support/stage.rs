//! A test's stage: a database of its own, the stand-in yt-dlp, a client,
//! and the daemon settings the test changes, so that a test shows only what
//! is particular to it:
//!
//! ```ignore
//! let (s, _daemon) = Stage::new().lease(2.0).platforms(QUICK).start().await;
//! let id = s.enqueue("http://127.0.0.1:9/block/k").await;
//! ```
//!
//! (The platform rehearsal has its own `Rig`: the real yt-dlp in a network
//! namespace of stand-in platforms, rehearsal/rig.rs.)

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Client;
use uuid::Uuid;

use super::{
    job, status, tools, wait_status, xtract, Daemon, DaemonOptions, Ran, StandIn, TestDb, USER,
};

/// How long [`Stage::wait`] waits for a job's status: a bound on failure
/// only (a passing test never waits for it), generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// A database, a client of it, the stand-in yt-dlp, and the options daemons
/// start with.
pub struct Stage {
    pub db: TestDb,
    /// The table owner's connection (what an operator's dashboard uses).
    pub client: Client,
    pub standin: StandIn,
    /// What [`Stage::daemon`] and [`Stage::xtract`] run with.
    pub options: DaemonOptions,
}

/// The settings of a [`Stage`]; `start` or `prepare` sets it up.
#[derive(Default)]
pub struct StageBuilder {
    unmigrated: bool,
    ytdlp: Option<PathBuf>,
    platforms: Option<String>,
    concurrency: Option<usize>,
    poll_secs: Option<f64>,
    lease_secs: Option<f64>,
    grace_secs: Option<f64>,
    worker_id: Option<String>,
    env: Vec<(String, String)>,
}

impl Stage {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> StageBuilder {
        StageBuilder::default()
    }

    /// Another `xtract run` with the stage's options.
    pub fn daemon(&self) -> Daemon {
        Daemon::start(&self.db.url, &self.options)
    }

    /// Another `xtract run` with the stage's options, as worker `id`.
    pub fn daemon_as(&self, id: &str) -> Daemon {
        let mut o = self.options.clone();
        o.worker_id = id.into();
        Daemon::start(&self.db.url, &o)
    }

    /// `xtract <args>` as a process with the stage's options (not waited for).
    pub fn spawn(&self, args: &[&str]) -> Daemon {
        Daemon::spawn(&self.db.url, &self.options, args)
    }

    /// `xtract <args>` with the stage's options, run to its end.
    pub async fn xtract(&self, args: &[&str]) -> Ran {
        xtract(&self.db.url, &self.options, args).await
    }

    /// A new client, after the database was restarted.
    pub async fn reconnect(&mut self) {
        self.client = self.db.client().await;
    }

    /// Inserts a job for `url` as a frontend would.
    pub async fn enqueue(&self, url: &str) -> Uuid {
        self.db.enqueue_as(&self.client, USER, url).await
    }

    pub async fn enqueue_as(&self, user: Uuid, url: &str) -> Uuid {
        self.db.enqueue_as(&self.client, user, url).await
    }

    /// A job the stand-in holds at its download (`block`) until
    /// `standin.release(name)`: its id and, once it runs, the stand-in's pid.
    pub async fn blocked_job(&self, name: &str) -> (Uuid, i32) {
        let id = self
            .enqueue(&format!("http://127.0.0.1:9/block/{name}"))
            .await;
        (id, self.standin.blocked_pid(name).await)
    }

    /// What an operator does in the dashboard: sets job `id`'s status.
    pub async fn operator_sets(&self, id: Uuid, status: &str) {
        super::operator_sets_status(&self.client, id, status)
            .await
            .unwrap_or_else(|e| panic!("setting {id} {status}: {e}"));
    }

    /// Inserts a job for `url`, waits until it has status `want`; its id
    /// and row.
    pub async fn run(&self, url: &str, want: &str) -> (Uuid, serde_json::Value) {
        let id = self.enqueue(url).await;
        self.wait(id, want).await;
        (id, self.job(id).await)
    }

    /// Waits (up to [`WAIT`]) until job `id` has status `want`.
    pub async fn wait(&self, id: Uuid, want: &str) {
        wait_status(&self.client, id, want, WAIT).await
    }

    /// The job's row as JSON.
    pub async fn job(&self, id: Uuid) -> serde_json::Value {
        job(&self.client, id).await
    }

    pub async fn status(&self, id: Uuid) -> String {
        status(&self.client, id).await
    }

    /// How many audio rows job `id` has.
    pub async fn audio_rows(&self, id: Uuid) -> i64 {
        self.client
            .query_one("SELECT count(*) FROM audio_files WHERE job_id = $1", &[&id])
            .await
            .expect("count audio rows")
            .get(0)
    }

    /// The job's audio row as JSON, if it has one.
    pub async fn audio(&self, id: Uuid) -> Option<serde_json::Value> {
        self.client
            .query_opt(
                "SELECT to_jsonb(a) FROM audio_files a WHERE job_id = $1",
                &[&id],
            )
            .await
            .expect("read the audio row")
            .map(|r| r.get(0))
    }

    /// Seconds until job `id` may run again (`run_after`).
    pub async fn secs_until_run(&self, id: Uuid) -> f64 {
        self.client
            .query_one(
                "SELECT extract(epoch FROM run_after - now())::float8 FROM processing_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .expect("read run_after")
            .get(0)
    }

    /// The platform file the daemons read (`platforms(..)`), to rewrite
    /// before a reload.
    pub fn platforms_file(&self) -> PathBuf {
        self.standin.path("platforms.toml")
    }
}

impl StageBuilder {
    /// A database without xtract's schema.
    pub fn unmigrated(mut self) -> Self {
        self.unmigrated = true;
        self
    }

    /// Daemons run the pinned, real yt-dlp instead of the stand-in.
    pub fn real_ytdlp(self) -> Self {
        self.ytdlp(&tools().ytdlp)
    }

    /// Daemons run this program as yt-dlp.
    pub fn ytdlp(mut self, program: &std::path::Path) -> Self {
        self.ytdlp = Some(program.to_path_buf());
        self
    }

    /// The platform file (pacing, attempts, egresses) daemons read.
    pub fn platforms(mut self, toml: &str) -> Self {
        self.platforms = Some(toml.to_string());
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    pub fn poll(mut self, secs: f64) -> Self {
        self.poll_secs = Some(secs);
        self
    }

    pub fn lease(mut self, secs: f64) -> Self {
        self.lease_secs = Some(secs);
        self
    }

    pub fn grace(mut self, secs: f64) -> Self {
        self.grace_secs = Some(secs);
        self
    }

    pub fn worker(mut self, id: &str) -> Self {
        self.worker_id = Some(id.to_string());
        self
    }

    /// One more variable in the daemons' environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// More variables in the daemons' environment.
    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    /// The database, the stand-in and a client; no daemon yet.
    pub async fn prepare(self) -> Stage {
        let db = if self.unmigrated {
            TestDb::start_unmigrated().await
        } else {
            TestDb::start().await
        };
        let standin = StandIn::new();
        let client = db.client().await;
        let ytdlp = self.ytdlp.as_ref().unwrap_or(&standin.script);
        let mut options = DaemonOptions::new(ytdlp);
        if let Some(toml) = &self.platforms {
            let file = standin.path("platforms.toml");
            std::fs::write(&file, toml).expect("write the platform file");
            options
                .extra_env
                .push(("XTRACT_PLATFORMS_FILE".into(), file.display().to_string()));
        }
        if let Some(n) = self.concurrency {
            options.concurrency = n;
        }
        if let Some(s) = self.poll_secs {
            options.poll_secs = s;
        }
        if let Some(s) = self.lease_secs {
            options.lease_secs = s;
        }
        if let Some(s) = self.grace_secs {
            options.grace_secs = s;
        }
        if let Some(id) = self.worker_id {
            options.worker_id = id;
        }
        options.extra_env.extend(self.env);
        Stage {
            db,
            client,
            standin,
            options,
        }
    }

    /// The stage and one daemon (`xtract run`) on it.
    pub async fn start(self) -> (Stage, Daemon) {
        let stage = self.prepare().await;
        let daemon = stage.daemon();
        (stage, daemon)
    }
}
