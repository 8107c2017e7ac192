//! A daemon in the rehearsal: the real `xtract run` with the pinned yt-dlp,
//! started inside the namespace where the platforms' names lead to the
//! stand-ins, on a database of its own.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use tokio_postgres::Client;
use uuid::Uuid;

use super::Rehearsal;
use crate::support::{eventually, tools, Daemon, DaemonOptions, TestDb, USER};

/// Pacing short enough for tests: one request a second per platform and
/// egress, no jitter, a 2-second pause after a rate limit, one attempt
/// (a failure shows its code at once), and a 20-second time limit (the
/// hanging download; a job's time includes its waits for its turn).
pub const QUICK_PLATFORMS: &str = "
[tiktok]
min_interval_secs = 1.0
jitter_secs = [0.0, 0.0]
cooldown_secs = 2.0
max_attempts = 1
max_runtime_secs = 20.0
[instagram]
min_interval_secs = 1.0
jitter_secs = [0.0, 0.0]
cooldown_secs = 2.0
max_attempts = 1
max_runtime_secs = 20.0
[youtube]
min_interval_secs = 1.0
jitter_secs = [0.0, 0.0]
cooldown_secs = 2.0
max_attempts = 1
max_runtime_secs = 20.0
";

/// The daemon's settings beyond the defaults.
pub struct RigOptions {
    /// Downloads in children of the warm helper (else the command line).
    pub warm: bool,
    /// The platforms file (pacing, egresses).
    pub platforms: String,
    /// Platforms with a cookie file (`<platform>.txt`, a `sessionid`
    /// cookie for the site): the cookies strategy is offered.
    pub cookies: Vec<&'static str>,
    pub concurrency: usize,
    pub extra_env: Vec<(String, String)>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            warm: true,
            platforms: QUICK_PLATFORMS.to_string(),
            cookies: Vec::new(),
            concurrency: 3,
            extra_env: Vec::new(),
        }
    }
}

pub struct Rig {
    pub db: TestDb,
    pub client: Client,
    pub daemon: Daemon,
    dir: TempDir,
}

/// How a job ended, with its audio when it has one.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_detail: Option<String>,
    pub egress: Option<String>,
    pub attempts: i32,
    pub pauses: i32,
    pub extractor: Option<String>,
    /// The audio row, as JSON.
    pub audio: Option<serde_json::Value>,
    /// The stored file.
    pub file: Option<PathBuf>,
}

/// The session cookie a cookie file gives each site (what the platform
/// sees when the cookies strategy runs).
pub const SESSION_COOKIE_VALUE: &str = "rehearsal-signed-in";

impl Rig {
    pub async fn start(r: &Rehearsal, options: RigOptions) -> Rig {
        let db = TestDb::start().await;
        Self::start_on(r, db, options).await
    }

    pub async fn start_on(r: &Rehearsal, db: TestDb, options: RigOptions) -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("xtract-rehearsal-rig-")
            .tempdir()
            .expect("temp dir");
        let platforms = dir.path().join("platforms.toml");
        std::fs::write(&platforms, &options.platforms).unwrap();
        let mut o = DaemonOptions::new(&tools().ytdlp);
        o.concurrency = options.concurrency;
        o.wrapper = r.wrapper();
        o.extra_env.extend([
            (
                "XTRACT_PLATFORMS_FILE".into(),
                platforms.display().to_string(),
            ),
            ("XTRACT_WARM_YTDLP".into(), options.warm.to_string()),
            ("XTRACT_DEDUP".into(), "false".into()),
            ("XTRACT_PACING_MAX_WAIT_SECS".into(), "60".into()),
        ]);
        if !options.cookies.is_empty() {
            let cookies = dir.path().join("cookies");
            std::fs::create_dir(&cookies).unwrap();
            for platform in &options.cookies {
                let domain = match *platform {
                    "tiktok" => ".tiktok.com",
                    "instagram" => ".instagram.com",
                    _ => ".youtube.com",
                };
                std::fs::write(
                    cookies.join(format!("{platform}.txt")),
                    format!(
                        "# Netscape HTTP Cookie File\n\
                         {domain}\tTRUE\t/\tTRUE\t2147483647\tsessionid\t{SESSION_COOKIE_VALUE}\n"
                    ),
                )
                .unwrap();
            }
            o.extra_env
                .push(("XTRACT_COOKIES_DIR".into(), cookies.display().to_string()));
        }
        o.extra_env.extend(options.extra_env);
        let daemon = Daemon::start(&db.url, &o);
        let client = db.client().await;
        Rig {
            db,
            client,
            daemon,
            dir,
        }
    }

    /// Adds a job for `url` as a frontend would.
    pub async fn job(&self, url: &str) -> Uuid {
        self.db.enqueue_as(&self.client, USER, url).await
    }

    /// Adds a job that keeps the post's sound (`audio_source`).
    pub async fn sound_job(&self, url: &str) -> Uuid {
        self.client
            .query_one(
                "INSERT INTO processing_jobs (user_id, original_url, audio_source) VALUES ($1, $2, 'sound') RETURNING id",
                &[&USER, &url],
            )
            .await
            .expect("insert a sound job")
            .get(0)
    }

    /// Adds the job a scenario describes.
    pub async fn scenario_job(&self, s: &super::scenarios::Scenario, url: &str) -> Uuid {
        if s.sound {
            self.sound_job(url).await
        } else {
            self.job(url).await
        }
    }

    /// Waits until job `id` is completed, failed or cancelled.
    pub async fn finished(&self, id: Uuid, timeout: Duration) -> Outcome {
        eventually(&format!("job {id} to finish"), timeout, || async {
            let s = crate::support::status(&self.client, id).await;
            matches!(s.as_str(), "completed" | "failed" | "cancelled").then_some(())
        })
        .await;
        self.outcome(id).await
    }

    /// The job's row as it is now.
    pub async fn outcome(&self, id: Uuid) -> Outcome {
        let row = crate::support::job(&self.client, id).await;
        let audio: Option<serde_json::Value> = self
            .client
            .query_opt(
                "SELECT to_jsonb(a) FROM audio_files a WHERE a.job_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        let file = audio
            .as_ref()
            .and_then(|a| a["storage_path"].as_str())
            .map(|p| self.daemon.audio_dir().join(p));
        let text = |k: &str| row[k].as_str().map(String::from);
        Outcome {
            status: text("status").unwrap_or_default(),
            error_code: text("error_code"),
            error_message: text("error_message"),
            error_detail: text("error_detail"),
            egress: text("egress"),
            attempts: row["attempts"].as_i64().unwrap_or(0) as i32,
            pauses: row["pauses"].as_i64().unwrap_or(0) as i32,
            extractor: text("media_extractor"),
            audio,
            file,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the daemon and keeps the database, for the next daemon.
    pub fn into_db(self) -> TestDb {
        let Rig { db, daemon, .. } = self;
        drop(daemon);
        db
    }
}
