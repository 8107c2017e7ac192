//! Configuration from the environment (and `.env` when present). Every
//! mistake stops the daemon at start with one line naming the variable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::platform::read_document;
use crate::domain::{AudioFormat, EgressPool, PlatformTable};
use crate::pipeline::PipelineConfig;
use crate::settings::{credential, one_secret};
use crate::settings::{err, parse, parse_opt};
pub use crate::settings::{ConfigError, Secret};
pub use crate::storage::supabase::SupabaseSettings;

/// The largest XTRACT_MAX_FILESIZE_MB: `audio_files.file_size` is INTEGER,
/// so a file must stay under 2 GiB.
pub const MAX_FILESIZE_MB_LIMIT: u64 = 2047;

/// The longest duration any setting may have: 30 days.
const MAX_SECS: f64 = 30.0 * 24.0 * 3600.0;
/// The shortest period of anything that repeats (poll, heartbeat, retry).
const MIN_PERIOD_SECS: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Supabase,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// None: `xtract run`/`dev` start a throwaway local PostgreSQL.
    pub database_url: Option<Secret>,
    pub storage: StorageKind,
    pub local_storage_dir: PathBuf,
    pub concurrency: usize,
    pub ytdlp: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Programs that were not found (see `require_tools`).
    pub missing_tools: Vec<ConfigError>,
    pub allow_private_urls: bool,
    pub platforms: PlatformTable,
    pub platforms_file: Option<PathBuf>,
    /// The fallback poll: also starts jobs whose retry time has come.
    pub poll_interval: Duration,
    /// A processing job whose heartbeat is older than this is taken back.
    pub lease: Duration,
    pub heartbeat_interval: Duration,
    pub shutdown_grace: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A job running longer is stopped and fails `timeout` (a platform's
    /// `max_runtime_secs` overrides it).
    pub job_timeout: Duration,
    pub work_dir: PathBuf,
    pub worker_id: String,
    pub max_duration: Duration,
    pub max_filesize_bytes: u64,
    pub audio_format: AudioFormat,
    pub log_format: LogFormat,
    /// Where requests leave from, for pacing and pauses shared between
    /// daemons (default: the host name). Daemons behind one IP or proxy set
    /// the same key.
    pub egress_key: String,
    /// Where platform requests may leave from: the `[egress.*]` tables of
    /// the platforms file, or this machine alone (keyed by `egress_key`).
    pub egress: EgressPool,
    /// A job whose platform turn is further away than this gives its worker
    /// slot back and waits as pending.
    pub pacing_max_wait: Duration,
    /// `<platform>.txt` cookie files (Netscape format) in this folder are
    /// offered to yt-dlp as a last strategy; each job gets its own copy.
    pub cookies_dir: Option<PathBuf>,
    /// yt-dlp `--impersonate` target tried as a strategy (needs curl_cffi).
    pub impersonate: Option<String>,
    /// Which yt-dlp releases `xtract tools upgrade` installs, and how old
    /// one may get before `doctor` warns.
    pub ytdlp_channel: crate::ops::tools::Channel,
    /// pip packages installed beside yt-dlp by `xtract tools upgrade`
    /// (plugins such as bgutil-ytdlp-pot-provider).
    pub ytdlp_plugins: Vec<String>,
    /// Reuse the audio of an earlier job for the same video.
    pub dedup: bool,
    /// Run downloads in children of a warm yt-dlp helper (XTRACT_WARM_YTDLP).
    pub warm_ytdlp: bool,
    /// yt-dlp's cache folder (XTRACT_YTDLP_CACHE_DIR; None: no cache).
    pub ytdlp_cache_dir: Option<PathBuf>,
    /// Set when XTRACT_STORAGE=supabase; the error names what is missing.
    pub supabase: Result<SupabaseSettings, ConfigError>,
    /// Platform pauses a job may wait out before it fails.
    pub max_pauses: i32,
    /// Waiting or running jobs one user may have (enforced by the database).
    pub max_pending_per_user: i32,
    /// Where `/health` and `/metrics` are served (off when None).
    pub health_addr: Option<std::net::SocketAddr>,
    /// The old service's HTTP API (XTRACT_COMPAT_ADDR; off when None).
    pub compat: Option<crate::ops::compat::CompatSettings>,
    /// Delete finished jobs older than this many days (off when None).
    pub retention_days: Option<u32>,
    /// With retention: delete their audio rows and objects too.
    pub retention_audio: bool,
    /// A session holding a snapshot this long is named in the log and by
    /// `doctor` (XTRACT_HORIZON_WARN_SECS).
    pub horizon_warn: Duration,
    /// When a platform breaks (ops/heal): see [`HealConfig`].
    pub heal: HealConfig,
}

/// When a platform breaks (ops/heal): how it is noticed and what is done.
#[derive(Debug, Clone)]
pub struct HealConfig {
    /// XTRACT_AUTO_HEAL: upgrade, try and switch on its own (on), or only
    /// report (off).
    pub auto: bool,
    /// XTRACT_TOOLS_DIR: the tools folder (`xtract tools --dir`); None:
    /// the one XTRACT_YTDLP is in, when it is `<dir>/venv/bin/yt-dlp`.
    pub tools_dir: Option<PathBuf>,
    /// XTRACT_TOOLS_PYTHON: the Python that builds virtualenvs.
    pub python: PathBuf,
    /// XTRACT_HEAL_FAILURES (N): failures by the extractor among a
    /// platform's last M jobs that make it broken.
    pub failures: u32,
    /// XTRACT_HEAL_WINDOW (M); also the window of the success rates a new
    /// build is compared by.
    pub window: u32,
    /// XTRACT_HEAL_INTERVAL_SECS: at most one upgrade per platform this
    /// often.
    pub interval: Duration,
    /// XTRACT_HEAL_RETRY_WINDOW_SECS: jobs an outdated extractor failed
    /// this recently are retried when their platform works again.
    pub retry_window: Duration,
}

impl Config {
    /// The process environment, with the file named by XTRACT_ENV_FILE (or
    /// `.env`) filling in what is not set: the same file a reload reads.
    pub fn from_env() -> Result<Self, ConfigError> {
        let (var, loaded) = match std::env::var_os("XTRACT_ENV_FILE") {
            Some(file) => ("XTRACT_ENV_FILE", dotenvy::from_path(file)),
            None => (".env", dotenvy::dotenv().map(|_| ())),
        };
        // A missing file is normal; a broken one is worth a word.
        if let Err(e) = loaded {
            if !e.not_found() {
                return Err(err(var, e.to_string()));
            }
        }
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The pipeline's part of the configuration.
    pub fn pipeline(&self) -> PipelineConfig {
        let c = self;
        PipelineConfig {
            ytdlp: c.ytdlp.clone(),
            ffmpeg: c.ffmpeg.clone(),
            ffprobe: c.ffprobe.clone(),
            work_dir: c.work_dir.clone(),
            allow_private_urls: c.allow_private_urls,
            platforms: c.platforms.clone(),
            audio_format: c.audio_format,
            limits: crate::pipeline::ytdlp::Limits {
                max_duration: c.max_duration,
                max_filesize_bytes: c.max_filesize_bytes,
            },
            strategies: crate::pipeline::strategy::StrategyOptions {
                cookies_dir: c.cookies_dir.clone(),
                impersonate: c.impersonate.clone(),
                // What yt-dlp can do is asked by the daemon (daemon.rs).
                can_impersonate: false,
            },
            pacing_max_wait: c.pacing_max_wait,
            dedup: c.dedup,
            warm_ytdlp: c.warm_ytdlp,
            ytdlp_cache_dir: c.ytdlp_cache_dir.clone(),
            egress: c.egress.clone(),
        }
    }

    /// The programs a job runs must exist: the first one missing, named.
    pub fn require_tools(&self) -> Result<(), ConfigError> {
        match self.missing_tools.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The configuration again, for SIGHUP: the process environment with the
    /// file named by XTRACT_ENV_FILE (or `.env`) read anew on top, since
    /// systemd reads its EnvironmentFile only at start. The worker's name
    /// stays, and so do the connections' settings: the database and storage
    /// are not connected again, and their secrets, read once at start, are
    /// no longer in the environment (ops/isolation.rs).
    pub fn reload(&self) -> Result<Config, ConfigError> {
        let file = std::env::var("XTRACT_ENV_FILE").unwrap_or_else(|_| ".env".into());
        let mut from_file = std::collections::HashMap::new();
        if std::path::Path::new(&file).exists() {
            let entries = dotenvy::from_path_iter(&file)
                .map_err(|e| err("XTRACT_ENV_FILE", e.to_string()))?;
            for entry in entries {
                let (k, v) = entry.map_err(|e| err("XTRACT_ENV_FILE", e.to_string()))?;
                from_file.insert(k, v);
            }
        }
        let mut config =
            Self::from_lookup(|k| from_file.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
        config.worker_id = self.worker_id.clone();
        config.database_url = self.database_url.clone();
        config.supabase = self.supabase.clone();
        Ok(config)
    }

    /// Reads configuration through `get`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        // Every duration is checked here, so that none can stop the daemon
        // later (a zero period panics a timer; a poll shorter than the
        // shortest wait inverts a clamp; a huge value overflows a clock).
        let secs = |var: &'static str, default: f64, min: f64| -> Result<Duration, ConfigError> {
            let value = match get(var) {
                None => default,
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite())
                    .ok_or_else(|| err(var, format!("'{v}' is not a number of seconds")))?,
            };
            if value < min {
                return Err(err(
                    var,
                    format!("must be at least {min} seconds, not {value}"),
                ));
            }
            if value > MAX_SECS {
                return Err(err(
                    var,
                    format!("must be at most {MAX_SECS} seconds (30 days), not {value}"),
                ));
            }
            Ok(Duration::from_secs_f64(value))
        };
        let flag = |var: &'static str| -> Result<bool, ConfigError> {
            match get(var).as_deref().map(str::trim) {
                None => Ok(false),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(v) => Err(err(var, format!("'{v}' is not true or false"))),
            }
        };
        // A program not found is only an error for the commands that run
        // jobs (`require_tools`): `migrate` and `jobs` work without yt-dlp.
        let mut missing_tools = Vec::new();
        let mut program = |var: &'static str, name: &str| -> PathBuf {
            match get(var) {
                Some(p) => {
                    let path = PathBuf::from(&p);
                    if !is_executable(&path) {
                        missing_tools.push(err(var, format!("{p} is not an executable file")));
                    }
                    path
                }
                None => find_program(name).unwrap_or_else(|| {
                    missing_tools.push(err(
                        var,
                        format!("{name} is not on PATH; install it or set {var}"),
                    ));
                    PathBuf::from(name)
                }),
            }
        };
        let ytdlp = program("XTRACT_YTDLP", "yt-dlp");
        let ffmpeg = program("XTRACT_FFMPEG", "ffmpeg");
        let ffprobe = program("XTRACT_FFPROBE", "ffprobe");

        let storage = match get("XTRACT_STORAGE").as_deref().map(str::trim) {
            None | Some("supabase") => StorageKind::Supabase,
            Some("local") => StorageKind::Local,
            Some(v) => {
                return Err(err(
                    "XTRACT_STORAGE",
                    format!("'{v}' is not supabase or local"),
                ))
            }
        };
        let concurrency = parse(
            &get,
            "XTRACT_CONCURRENCY",
            2usize,
            |n| (1..=256).contains(n),
            "a number from 1 to 256",
        )?;
        let platforms_file = get("XTRACT_PLATFORMS_FILE").map(PathBuf::from);
        let egress_key = get("XTRACT_EGRESS_KEY").unwrap_or_else(hostname);
        // One read of the file for both its parts, so a reload never pairs
        // the platform table of one version with the egresses of another.
        let (platforms, egress) = match &platforms_file {
            None => (PlatformTable::default(), EgressPool::single(&egress_key)),
            Some(p) => {
                let parts = read_document(p).and_then(|doc| {
                    let platforms = PlatformTable::from_document(&doc)?;
                    let egress = EgressPool::from_document(&doc, &egress_key)?;
                    egress.check_platform_args(&platforms)?;
                    Ok((platforms, egress))
                });
                parts.map_err(|e| err("XTRACT_PLATFORMS_FILE", e))?
            }
        };
        let lease = secs("XTRACT_LEASE_SECS", 30.0, 1.0)?;
        let heartbeat_interval = match get("XTRACT_HEARTBEAT_SECS") {
            Some(_) => secs("XTRACT_HEARTBEAT_SECS", 0.0, MIN_PERIOD_SECS)?,
            // Several beats per lease, so one slow beat does not lose the job.
            None => (lease / 6).max(Duration::from_millis(200)),
        };
        if heartbeat_interval >= lease {
            return Err(err(
                "XTRACT_HEARTBEAT_SECS",
                "must be shorter than XTRACT_LEASE_SECS",
            ));
        }
        // audio_files.file_size is INTEGER (the old service's contract):
        // nothing of 2 GiB or more can be recorded.
        let max_filesize_mb = parse(
            &get,
            "XTRACT_MAX_FILESIZE_MB",
            500u64,
            |n| (1..=MAX_FILESIZE_MB_LIMIT).contains(n),
            &format!(
                "a whole number of megabytes from 1 to {MAX_FILESIZE_MB_LIMIT} (audio_files.file_size is an INTEGER column)"
            ),
        )?;
        let audio_format = match get("XTRACT_AUDIO_FORMAT") {
            None => AudioFormat::M4a,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: String| err("XTRACT_AUDIO_FORMAT", e))?,
        };
        let log_format = match get("XTRACT_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(v) => {
                return Err(err(
                    "XTRACT_LOG_FORMAT",
                    format!("'{v}' is not human or json"),
                ))
            }
        };
        let worker_id = get("XTRACT_WORKER_ID").unwrap_or_else(default_worker_id);
        let cookies_dir = get("XTRACT_COOKIES_DIR").map(PathBuf::from);
        if let Some(dir) = &cookies_dir {
            if !dir.is_dir() {
                return Err(err(
                    "XTRACT_COOKIES_DIR",
                    format!("{} is not a folder", dir.display()),
                ));
            }
        }

        let ytdlp_channel = match get("XTRACT_YTDLP_CHANNEL") {
            None => crate::ops::tools::Channel::Nightly,
            Some(v) => v.parse().map_err(|e| err("XTRACT_YTDLP_CHANNEL", e))?,
        };
        let ytdlp_plugins = plugin_list(get("XTRACT_YTDLP_PLUGINS").as_deref().unwrap_or(""))?;
        let work_dir = get("XTRACT_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("xtract"));
        // Outside the daemon's own run folder, which goes when it stops:
        // YouTube's player code and tokens are worth keeping.
        let ytdlp_cache_dir = match get("XTRACT_YTDLP_CACHE_DIR").as_deref().map(str::trim) {
            None | Some("") => Some(work_dir.join("ytdlp-cache")),
            Some("off" | "none") => None,
            Some(dir) => Some(PathBuf::from(dir)),
        };
        let warm_ytdlp = match get("XTRACT_WARM_YTDLP") {
            None => true,
            Some(_) => flag("XTRACT_WARM_YTDLP")?,
        };

        let config = Config {
            database_url: database_url(&get)?,
            storage,
            local_storage_dir: PathBuf::from(
                get("XTRACT_LOCAL_STORAGE_DIR").unwrap_or_else(|| "./audio".into()),
            ),
            concurrency,
            ytdlp,
            ffmpeg,
            ffprobe,
            missing_tools,
            allow_private_urls: flag("XTRACT_ALLOW_PRIVATE_URLS")?,
            platforms,
            platforms_file,
            poll_interval: secs("XTRACT_POLL_INTERVAL_SECS", 5.0, MIN_PERIOD_SECS)?,
            lease,
            heartbeat_interval,
            shutdown_grace: secs("XTRACT_SHUTDOWN_GRACE_SECS", 30.0, 0.0)?,
            retry_base: secs("XTRACT_RETRY_BASE_SECS", 10.0, MIN_PERIOD_SECS)?,
            retry_max: secs("XTRACT_RETRY_MAX_SECS", 600.0, MIN_PERIOD_SECS)?,
            job_timeout: secs("XTRACT_JOB_TIMEOUT_SECS", 1800.0, 1.0)?,
            work_dir: work_dir.clone(),
            worker_id,
            max_duration: secs("XTRACT_MAX_DURATION_SECS", 3.0 * 3600.0, 1.0)?,
            max_filesize_bytes: max_filesize_mb * 1024 * 1024,
            audio_format,
            log_format,
            egress_key,
            egress,
            pacing_max_wait: secs("XTRACT_PACING_MAX_WAIT_SECS", 30.0, 0.0)?,
            cookies_dir,
            impersonate: get("XTRACT_IMPERSONATE"),
            ytdlp_channel,
            ytdlp_plugins,
            supabase: SupabaseSettings::from_lookup(&get),
            max_pending_per_user: parse(
                &get,
                "XTRACT_MAX_PENDING_PER_USER",
                20i32,
                |n| *n >= 1,
                "a whole number from 1",
            )?,
            max_pauses: parse(
                &get,
                "XTRACT_MAX_PAUSES",
                6i32,
                |n| *n >= 0,
                "a whole number",
            )?,
            health_addr: parse_opt(
                &get,
                "XTRACT_HEALTH_ADDR",
                |_| true,
                "an address like 127.0.0.1:9464",
            )?,
            compat: crate::ops::compat::CompatSettings::from_lookup(&get)?,
            retention_days: parse_opt(
                &get,
                "XTRACT_RETENTION_DAYS",
                |d| (1..=36500).contains(d),
                "a whole number of days from 1",
            )?,
            retention_audio: flag("XTRACT_RETENTION_AUDIO")?,
            horizon_warn: secs("XTRACT_HORIZON_WARN_SECS", HORIZON_WARN_SECS, 0.0)?,
            dedup: match get("XTRACT_DEDUP") {
                None => true,
                Some(_) => flag("XTRACT_DEDUP")?,
            },
            warm_ytdlp,
            ytdlp_cache_dir,
            heal: HealConfig {
                auto: match get("XTRACT_AUTO_HEAL") {
                    None => true,
                    Some(_) => flag("XTRACT_AUTO_HEAL")?,
                },
                tools_dir: get("XTRACT_TOOLS_DIR").map(PathBuf::from),
                python: get("XTRACT_TOOLS_PYTHON")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("python3")),
                failures: parse(
                    &get,
                    "XTRACT_HEAL_FAILURES",
                    3u32,
                    |n| (1..=1000).contains(n),
                    "a whole number from 1 to 1000",
                )?,
                window: parse(
                    &get,
                    "XTRACT_HEAL_WINDOW",
                    10u32,
                    |n| (1..=1000).contains(n),
                    "a whole number from 1 to 1000",
                )?,
                interval: secs("XTRACT_HEAL_INTERVAL_SECS", 3600.0, 1.0)?,
                retry_window: secs("XTRACT_HEAL_RETRY_WINDOW_SECS", 86400.0, 0.0)?,
            },
        };
        if config.heal.window < config.heal.failures {
            return Err(err(
                "XTRACT_HEAL_WINDOW",
                "must not be less than XTRACT_HEAL_FAILURES (N failures of the last M jobs)",
            ));
        }
        if config.retention_audio && config.retention_days.is_none() {
            return Err(err(
                "XTRACT_RETENTION_AUDIO",
                "needs XTRACT_RETENTION_DAYS (how old finished jobs must be)",
            ));
        }
        if config.retry_max < config.retry_base {
            return Err(err(
                "XTRACT_RETRY_MAX_SECS",
                "must not be less than XTRACT_RETRY_BASE_SECS",
            ));
        }
        Ok(config)
    }
}

/// XTRACT_HORIZON_WARN_SECS when unset.
pub const HORIZON_WARN_SECS: f64 = 300.0;

/// The systemd credential that holds the database password
/// (`$CREDENTIALS_DIRECTORY/database-password`).
pub const DATABASE_PASSWORD_CREDENTIAL: &str = "database-password";

/// DATABASE_URL, with the password of the credential `database-password`
/// when systemd gives one (the env file then keeps a URL without it).
pub fn database_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, ConfigError> {
    let Some(url) = get("DATABASE_URL") else {
        return Ok(None);
    };
    // Outside the service (root's shell: `migrate` as the tables' owner,
    // say), a URL that carries its own password is the one meant: the
    // credential store holds the daemon's role's password, for the daemon.
    let in_service =
        get(crate::settings::CREDENTIALS_DIRECTORY).is_some_and(|d| !d.trim().is_empty());
    if !in_service && crate::db::url_password(&url).is_some() {
        return Ok(Some(Secret::new(url)));
    }
    let Some(password) = credential(get, DATABASE_PASSWORD_CREDENTIAL)? else {
        return Ok(Some(Secret::new(url)));
    };
    let reason = |why: &str| {
        crate::settings::err(
            "DATABASE_URL",
            format!(
                "cannot take the password of the credential {DATABASE_PASSWORD_CREDENTIAL}: {why}"
            ),
        )
    };
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(reason("DATABASE_URL is not a postgres:// URL"));
    }
    let mut parsed = url::Url::parse(url).map_err(|e| reason(&e.to_string()))?;
    // A password in the URL too: fine if it is the same one (see one_secret).
    let in_url = crate::db::url_password(url).map(Secret::new);
    let password = one_secret(
        "DATABASE_URL",
        in_url,
        DATABASE_PASSWORD_CREDENTIAL,
        Some(password),
    )?
    .expect("the credential is there");
    if parsed.username().is_empty() {
        return Err(reason(
            "DATABASE_URL names no user (postgres://USER@host/db)",
        ));
    }
    parsed
        .set_password(Some(password.expose()))
        .map_err(|_| reason("this URL cannot carry a password"))?;
    Ok(Some(Secret::new(parsed.to_string())))
}

/// `host:pid`, unique enough among daemons and readable in the dashboard.
fn default_worker_id() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

/// From gethostname(2): the unit's `ProcSubset=pid` hides
/// /proc/sys/kernel/hostname, and every VM would be called "host", sharing
/// one egress key.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the result is cut at NUL.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)])
        .trim()
        .to_string();
    if ok && !name.is_empty() {
        name
    } else {
        "host".into()
    }
}

/// Looks a program up on PATH, then in the project's `.venv` (where the
/// setup script installs yt-dlp).
/// XTRACT_YTDLP_PLUGINS: pip requirements separated by spaces or commas,
/// from the package index only: no pip options, paths or URLs (the upgrade
/// runs pip as root).
fn plugin_list(v: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for p in &list {
        let ok = !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]<>=!~".contains(c));
        if !ok {
            return Err(err(
                "XTRACT_YTDLP_PLUGINS",
                format!("'{p}' is not a package name (with an optional version, e.g. bgutil-ytdlp-pot-provider>=1.2)"),
            ));
        }
    }
    Ok(list)
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    // The project's own virtualenv first: in a checkout, `scripts/ensure-deps`
    // put the pinned yt-dlp there, and a yt-dlp on PATH (a pyenv shim, a
    // distribution's old package) would be another one, without the warm
    // helper's Python. A service runs elsewhere, with XTRACT_YTDLP set.
    let venv = PathBuf::from(".venv/bin").join(name);
    if is_executable(&venv) {
        return Some(venv.canonicalize().unwrap_or(venv));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

/// `XTRACT_…` names in the environment (the env file's included: it was
/// read into it) that no module reads, each with the nearest known name.
pub fn unknown_settings() -> Vec<(String, Option<&'static str>)> {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    super::reference::unknown(names.iter().map(String::as_str))
}

/// Why `program` (as the configuration found it for `var`) is the one
/// jobs run: said by `xtract doctor`.
pub fn program_origin(var: &str, program: &Path) -> &'static str {
    if std::env::var_os(var).is_some() {
        "set by its variable"
    } else if program.starts_with(std::env::current_dir().unwrap_or_default().join(".venv")) {
        "this folder's .venv, ahead of PATH"
    } else {
        "the first on PATH"
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_host_name_comes_from_the_kernel_not_proc() {
        let name = hostname();
        assert_ne!(name, "host");
        let uts = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap();
        assert_eq!(name, String::from_utf8_lossy(&uts.stdout).trim());
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> = [
            ("XTRACT_YTDLP", "/bin/true"),
            ("XTRACT_FFMPEG", "/bin/true"),
            ("XTRACT_FFPROBE", "/bin/true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = config(&[]).unwrap();
        assert_eq!(c.storage, StorageKind::Supabase);
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.local_storage_dir, PathBuf::from("./audio"));
        assert!(!c.allow_private_urls);
        assert_eq!(c.max_duration, Duration::from_secs(3 * 3600));
        assert_eq!(c.max_filesize_bytes, 500 * 1024 * 1024);
        assert_eq!(c.job_timeout, Duration::from_secs(1800));
        assert!(c.database_url.is_none());
        assert_eq!(c.ytdlp_channel, crate::ops::tools::Channel::Nightly);
        assert!(c.ytdlp_plugins.is_empty());
        assert!(c.warm_ytdlp);
        assert_eq!(c.ytdlp_cache_dir, Some(c.work_dir.join("ytdlp-cache")));
    }

    #[test]
    fn platform_health_settings_are_read_and_checked() {
        let c = config(&[]).unwrap();
        assert!(c.heal.auto);
        assert_eq!((c.heal.failures, c.heal.window), (3, 10));
        assert_eq!(c.heal.interval, Duration::from_secs(3600));
        assert_eq!(c.heal.retry_window, Duration::from_secs(86400));
        assert_eq!(c.heal.tools_dir, None);
        let c = config(&[
            ("XTRACT_AUTO_HEAL", "off"),
            ("XTRACT_HEAL_FAILURES", "2"),
            ("XTRACT_HEAL_WINDOW", "5"),
            ("XTRACT_TOOLS_DIR", "/srv/tools"),
        ])
        .unwrap();
        assert!(!c.heal.auto);
        assert_eq!((c.heal.failures, c.heal.window), (2, 5));
        assert_eq!(c.heal.tools_dir, Some(PathBuf::from("/srv/tools")));
        for (var, value) in [
            ("XTRACT_AUTO_HEAL", "sometimes"),
            ("XTRACT_HEAL_FAILURES", "0"),
            ("XTRACT_HEAL_INTERVAL_SECS", "0"),
        ] {
            assert_eq!(config(&[(var, value)]).unwrap_err().var, var, "{var}");
        }
        let e = config(&[("XTRACT_HEAL_FAILURES", "5"), ("XTRACT_HEAL_WINDOW", "4")]).unwrap_err();
        assert_eq!(e.var, "XTRACT_HEAL_WINDOW");
    }

    #[test]
    fn the_warm_yt_dlp_and_its_cache_can_be_turned_off() {
        let c = config(&[
            ("XTRACT_WARM_YTDLP", "false"),
            ("XTRACT_YTDLP_CACHE_DIR", "off"),
        ])
        .unwrap();
        assert!(!c.warm_ytdlp);
        assert_eq!(c.ytdlp_cache_dir, None);
        let c = config(&[("XTRACT_YTDLP_CACHE_DIR", "/var/lib/xtract/ytdlp-cache")]).unwrap();
        assert_eq!(
            c.ytdlp_cache_dir,
            Some(PathBuf::from("/var/lib/xtract/ytdlp-cache"))
        );
    }

    #[test]
    fn the_yt_dlp_channel_and_plugins_are_read_and_checked() {
        let c = config(&[
            ("XTRACT_YTDLP_CHANNEL", "stable"),
            (
                "XTRACT_YTDLP_PLUGINS",
                "bgutil-ytdlp-pot-provider>=1.2, other_plugin",
            ),
        ])
        .unwrap();
        assert_eq!(c.ytdlp_channel, crate::ops::tools::Channel::Stable);
        assert_eq!(
            c.ytdlp_plugins,
            ["bgutil-ytdlp-pot-provider>=1.2", "other_plugin"]
        );
        for bad in [
            "--index-url=http://evil",
            "https://evil/x.whl",
            "/tmp/x.whl",
        ] {
            let e = config(&[("XTRACT_YTDLP_PLUGINS", bad)]).unwrap_err();
            assert_eq!(e.var, "XTRACT_YTDLP_PLUGINS", "{bad}");
        }
    }

    /// Each of these crashed the daemon after it started (a timer of period
    /// zero, a poll below the 50 ms floor of the retry wait) or overflowed a
    /// clock: now they stop it at start, naming the variable.
    #[test]
    fn every_duration_is_checked_at_start() {
        for (var, value) in [
            ("XTRACT_POLL_INTERVAL_SECS", "0.01"),
            ("XTRACT_POLL_INTERVAL_SECS", "0"),
            ("XTRACT_HEARTBEAT_SECS", "0"),
            ("XTRACT_HEARTBEAT_SECS", "-1"),
            ("XTRACT_HEARTBEAT_SECS", "30"),
            ("XTRACT_LEASE_SECS", "0.5"),
            ("XTRACT_LEASE_SECS", "inf"),
            ("XTRACT_SHUTDOWN_GRACE_SECS", "-1"),
            ("XTRACT_SHUTDOWN_GRACE_SECS", "1e300"),
            ("XTRACT_RETRY_BASE_SECS", "0"),
            ("XTRACT_RETRY_MAX_SECS", "NaN"),
            ("XTRACT_MAX_DURATION_SECS", "0"),
            ("XTRACT_PACING_MAX_WAIT_SECS", "99999999"),
            ("XTRACT_JOB_TIMEOUT_SECS", "0"),
            ("XTRACT_JOB_TIMEOUT_SECS", "forever"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{var}={value}: {e}");
        }
        let e = config(&[
            ("XTRACT_RETRY_BASE_SECS", "20"),
            ("XTRACT_RETRY_MAX_SECS", "10"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "XTRACT_RETRY_MAX_SECS");
        let c = config(&[
            ("XTRACT_POLL_INTERVAL_SECS", "0.05"),
            ("XTRACT_HEARTBEAT_SECS", "0.05"),
            ("XTRACT_SHUTDOWN_GRACE_SECS", "0"),
            ("XTRACT_JOB_TIMEOUT_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_millis(50));
        assert_eq!(c.job_timeout, Duration::from_secs(60));
    }

    #[test]
    fn each_mistake_names_its_variable() {
        for (var, value) in [
            ("XTRACT_STORAGE", "s3"),
            ("XTRACT_CONCURRENCY", "zero"),
            ("XTRACT_CONCURRENCY", "0"),
            ("XTRACT_ALLOW_PRIVATE_URLS", "maybe"),
            ("XTRACT_WARM_YTDLP", "maybe"),
            ("XTRACT_POLL_INTERVAL_SECS", "-1"),
            ("XTRACT_AUDIO_FORMAT", "wav"),
            ("XTRACT_PLATFORMS_FILE", "/nonexistent/platforms.toml"),
            ("XTRACT_YTDLP_CHANNEL", "master"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains(var), "{e}");
        }
    }

    #[test]
    fn the_platforms_file_gives_the_egress_pool_keyed_by_the_egress_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("platforms.toml");
        std::fs::write(
            &file,
            "[egress.res1]\nproxy = \"http://u:hunter2@10.0.0.5:3128\"\n[egress.direct]\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let c = config(&[
            ("XTRACT_PLATFORMS_FILE", &path),
            ("XTRACT_EGRESS_KEY", "vm7"),
        ])
        .unwrap();
        let keys: Vec<&str> = c.egress.all().iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["vm7", "res1"]);
        assert!(!format!("{c:?}").contains("hunter2"));
        // A mistake in an egress stops the daemon, naming the file.
        std::fs::write(&file, "[egress.res1]\nproxy = \"http://u:hunter2@h\"\n").unwrap();
        let e = config(&[("XTRACT_PLATFORMS_FILE", &path)]).unwrap_err();
        assert_eq!(e.var, "XTRACT_PLATFORMS_FILE");
        assert!(
            e.reason.contains("[egress.res1]") && !e.reason.contains("hunter2"),
            "{e}"
        );
    }

    /// A folder of systemd credentials holding `files`.
    fn credentials(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_database_password_comes_from_its_credential() {
        let creds = credentials(&[("database-password", "p@ss/w:rd%\n")]);
        let dir = creds.path().display().to_string();
        let c = config(&[
            (
                "DATABASE_URL",
                "postgres://xtract_worker@db.example:5432/postgres?sslmode=require",
            ),
            ("CREDENTIALS_DIRECTORY", &dir),
        ])
        .unwrap();
        let url = c.database_url.unwrap();
        let base = url.expose().split('?').next().unwrap();
        let parsed: tokio_postgres::Config = base.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"p@ss/w:rd%"[..]));
        assert_eq!(parsed.get_user(), Some("xtract_worker"));
        assert!(
            url.expose().ends_with("/postgres?sslmode=require"),
            "{url:?}"
        );
        // The URL's own password may stay if it is the same one; another
        // one is refused rather than one of them silently winning.
        let same = config(&[
            (
                "DATABASE_URL",
                "postgres://xtract_worker:p%40ss%2Fw%3Ard%25@db.example/postgres",
            ),
            ("CREDENTIALS_DIRECTORY", &dir),
        ]);
        assert!(same.is_ok(), "{same:?}");
        let e = config(&[
            (
                "DATABASE_URL",
                "postgres://xtract_worker:old@db.example/postgres",
            ),
            ("CREDENTIALS_DIRECTORY", &dir),
        ])
        .unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        assert!(
            e.reason.contains("database-password") && !e.reason.contains("old"),
            "{e}"
        );
        // Without the credential the URL is taken as it is.
        let c = config(&[("DATABASE_URL", "postgres://u:pw@h/db")]).unwrap();
        assert_eq!(c.database_url.unwrap().expose(), "postgres://u:pw@h/db");
    }

    #[test]
    fn the_storage_key_comes_from_its_credential_or_the_environment() {
        let supabase = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("SUPABASE_URL", "https://abc.supabase.co")];
            pairs.extend_from_slice(extra);
            config(&pairs).unwrap().supabase
        };
        let creds = credentials(&[("supabase-service-key", "sb_secret_fromcred\n")]);
        let dir = creds.path().display().to_string();
        let s = supabase(&[("CREDENTIALS_DIRECTORY", &dir)]).unwrap();
        assert_eq!(s.service_role_key.expose(), "sb_secret_fromcred");
        let s = supabase(&[("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_fromenv")]).unwrap();
        assert_eq!(s.service_role_key.expose(), "sb_secret_fromenv");
        let e = supabase(&[
            ("CREDENTIALS_DIRECTORY", &dir),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_fromenv"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "SUPABASE_SERVICE_ROLE_KEY");
        assert!(!e.reason.contains("sb_secret"), "{e}");
        // An empty credential (a placeholder) leaves the environment's key.
        let empty = credentials(&[("supabase-service-key", "\n")]);
        let dir = empty.path().display().to_string();
        let s = supabase(&[
            ("CREDENTIALS_DIRECTORY", &dir),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_fromenv"),
        ])
        .unwrap();
        assert_eq!(s.service_role_key.expose(), "sb_secret_fromenv");
        let e = supabase(&[("CREDENTIALS_DIRECTORY", &dir)]).unwrap_err();
        assert!(e.reason.contains("supabase-service-key"), "{e}");
    }

    #[test]
    fn the_database_password_never_shows_in_debug_output() {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
