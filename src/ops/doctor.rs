//! `xtract doctor`: checks what a daemon needs on this machine — its
//! configuration, the database (reachable, encrypted, LISTEN/NOTIFY delivered,
//! schema current), yt-dlp, ffmpeg, a JavaScript runtime, storage — and prints
//! one line per check with a fix for each failure. Nothing stops at the first
//! problem: an operator fixes them all in one round.

mod database;
mod egress;
mod tools;

use std::fmt;
use std::path::{Path, PathBuf};

use super::config::{find_program, Config, ConfigError, StorageKind, SupabaseSettings};
use crate::storage::supabase::human_size;
use crate::storage::SupabaseStorage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    /// What was found, in a few words.
    pub found: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
    /// A failure to reach a service (the database, Storage), not a wrong
    /// setup: `xtract doctor` then exits 3, as every command does.
    pub unreachable: bool,
}

impl Check {
    /// Marks a failure as a service that could not be reached.
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }

    pub fn ok(name: &'static str, found: impl Into<String>) -> Self {
        Check {
            level: Level::Ok,
            name,
            found: found.into(),
            fix: None,
            unreachable: false,
        }
    }

    pub fn warn(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            level: Level::Warn,
            name,
            found: found.into(),
            fix: Some(fix.into()),
            unreachable: false,
        }
    }

    pub fn fail(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            level: Level::Fail,
            name,
            found: found.into(),
            fix: Some(fix.into()),
            unreachable: false,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {:<13} {}",
            self.level.label(),
            self.name,
            self.found
        )?;
        // No arrow before nothing.
        if let Some(fix) = self.fix.as_ref().filter(|f| !f.is_empty()) {
            write!(f, " → {fix}")?;
        }
        Ok(())
    }
}

/// All checks, in the order they ran.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Text that must never be printed (the database password, raw and
    /// percent-encoded). Error messages from libraries are not ours to trust,
    /// so every line is scrubbed on the way in.
    secrets: Vec<String>,
}

impl Report {
    fn push(&mut self, mut check: Check) {
        for secret in &self.secrets {
            check.found = check.found.replace(secret.as_str(), "***");
            check.fix = check.fix.map(|f| f.replace(secret.as_str(), "***"));
        }
        self.checks.push(check);
    }

    /// How `xtract doctor` exits: None when nothing failed; a service that
    /// could not be reached is a 3, as for every command (cli.rs); any
    /// other failure a 1.
    pub fn failure_kind(&self) -> Option<super::cli::Kind> {
        let mut failed = self.checks.iter().filter(|c| c.level == Level::Fail);
        let first = failed.next()?;
        if first.unreachable && failed.all(|c| c.unreachable) {
            Some(super::cli::Kind::Unavailable)
        } else {
            Some(super::cli::Kind::Failed)
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

/// What the checks look at. Taken from the configuration when it is valid;
/// otherwise read from the environment as well as it can be, so one mistake
/// in the configuration does not hide the state of everything else.
struct Inputs {
    database_url: Option<String>,
    ytdlp: Option<PathBuf>,
    /// XTRACT_YTDLP_CHANNEL: how old yt-dlp may get.
    channel: crate::ops::tools::Channel,
    ffmpeg: Option<PathBuf>,
    ffprobe: Option<PathBuf>,
    /// None when XTRACT_STORAGE itself is wrong.
    storage: Option<StorageKind>,
    local_storage_dir: PathBuf,
    /// None when the configuration could not be read at all.
    supabase: Option<Result<SupabaseSettings, ConfigError>>,
    /// XTRACT_HORIZON_WARN_SECS: how long a snapshot may be held unnamed.
    horizon_warn: std::time::Duration,
}

impl Inputs {
    fn from_config(c: &Config) -> Self {
        Inputs {
            database_url: c.database_url.as_ref().map(|s| s.expose().to_string()),
            ytdlp: Some(c.ytdlp.clone()),
            channel: c.ytdlp_channel,
            ffmpeg: Some(c.ffmpeg.clone()),
            ffprobe: Some(c.ffprobe.clone()),
            storage: Some(c.storage),
            local_storage_dir: c.local_storage_dir.clone(),
            supabase: Some(c.supabase.clone()),
            horizon_warn: c.horizon_warn,
        }
    }

    fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let program =
            |var: &str, name: &str| get(var).map(PathBuf::from).or_else(|| find_program(name));
        Inputs {
            // With the credential's password, as the configuration would.
            database_url: super::config::database_url(&get)
                .ok()
                .flatten()
                .map(|url| url.expose().to_string())
                .or_else(|| get("DATABASE_URL")),
            ytdlp: program("XTRACT_YTDLP", "yt-dlp"),
            channel: get("XTRACT_YTDLP_CHANNEL")
                .and_then(|c| c.parse().ok())
                .unwrap_or(crate::ops::tools::Channel::Nightly),
            ffmpeg: program("XTRACT_FFMPEG", "ffmpeg"),
            ffprobe: program("XTRACT_FFPROBE", "ffprobe"),
            storage: match get("XTRACT_STORAGE").as_deref().map(str::trim) {
                None | Some("supabase") => Some(StorageKind::Supabase),
                Some("local") => Some(StorageKind::Local),
                Some(_) => None,
            },
            local_storage_dir: PathBuf::from(
                get("XTRACT_LOCAL_STORAGE_DIR").unwrap_or_else(|| "./audio".into()),
            ),
            supabase: None,
            horizon_warn: get("XTRACT_HORIZON_WARN_SECS")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(std::time::Duration::from_secs_f64)
                .unwrap_or(std::time::Duration::from_secs_f64(
                    super::config::HORIZON_WARN_SECS,
                )),
        }
    }
}

/// Runs every check. `config` is the result of reading the configuration
/// (`Config::from_env`), which has also loaded `.env` into the environment.
pub async fn check_all(config: Result<Config, ConfigError>) -> Report {
    let inputs = match &config {
        Ok(c) => Inputs::from_config(c),
        Err(_) => Inputs::from_env(|k| std::env::var(k).ok()),
    };
    let mut report = Report {
        checks: Vec::new(),
        secrets: inputs
            .database_url
            .as_deref()
            .map(database::password_forms)
            .unwrap_or_default(),
    };
    // Proxy passwords of the egress pool, whatever a library says.
    if let Ok(c) = &config {
        for proxy in c.egress.all().iter().filter_map(|e| e.proxy.as_ref()) {
            report.secrets.extend(proxy.secrets().iter().cloned());
        }
    }

    report.push(match &config {
        Ok(c) => Check::ok(
            "configuration",
            format!(
                "valid (storage {}, concurrency {}, worker {})",
                storage_name(c.storage),
                c.concurrency,
                c.worker_id
            ),
        ),
        Err(e) => Check::fail(
            "configuration",
            format!("{}: {}", e.var, e.reason),
            format!("correct {} (see .env.example)", e.var),
        ),
    });
    // A misspelt setting is silently a default: say so.
    for (name, nearest) in super::config::unknown_settings() {
        report.push(Check::warn(
            "configuration",
            super::reference::unknown_sentence(&name, nearest),
            "correct or remove it in the environment or the env file",
        ));
    }
    for check in database::checks(inputs.database_url.as_deref(), inputs.horizon_warn).await {
        report.push(check);
    }
    report.push(tools::check_ytdlp(inputs.ytdlp.as_deref(), today(), inputs.channel).await);
    report.push(tools::check_ffmpeg("ffmpeg", "XTRACT_FFMPEG", inputs.ffmpeg.as_deref()).await);
    report.push(tools::check_ffmpeg("ffprobe", "XTRACT_FFPROBE", inputs.ffprobe.as_deref()).await);
    report.push(tools::check_js_runtime(inputs.ytdlp.as_deref()));
    if let Ok(c) = &config {
        report.push(tools::check_warm_ytdlp(inputs.ytdlp.as_deref(), c.warm_ytdlp).await);
    }
    report.push(
        check_storage(
            inputs.storage,
            &inputs.local_storage_dir,
            inputs.supabase.as_ref(),
        )
        .await,
    );
    if let Ok(c) = &config {
        let url = std::env::var("XTRACT_EGRESS_CHECK_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| egress::DEFAULT_CHECK_URL.into());
        for check in egress::checks(&c.egress, url.trim(), c.platforms_file.as_deref()).await {
            report.push(check);
        }
    }
    report
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn storage_name(kind: StorageKind) -> &'static str {
    match kind {
        StorageKind::Supabase => "supabase",
        StorageKind::Local => "local",
    }
}

/// The storage backend's own check: for Supabase, the key is accepted and
/// the bucket exists (what the daemon checks at start).
pub async fn check_storage(
    kind: Option<StorageKind>,
    local_dir: &Path,
    supabase: Option<&Result<SupabaseSettings, ConfigError>>,
) -> Check {
    match kind {
        Some(StorageKind::Supabase) => match supabase {
            None => Check::warn(
                "storage",
                "supabase: not checked (the configuration could not be read)",
                "fix the configuration first",
            ),
            Some(Err(e)) => Check::fail("storage", e.to_string(), format!("set {}", e.var)),
            Some(Ok(settings)) => match SupabaseStorage::connect(settings).await {
                Ok(store) => {
                    let b = store.bucket();
                    let limit = b
                        .file_size_limit
                        .map(|l| format!(", limit {}", human_size(l)))
                        .unwrap_or_default();
                    Check::ok(
                        "storage",
                        format!(
                            "supabase bucket '{}' at {} ({}{limit}), with a {}",
                            b.id,
                            settings.url,
                            if b.public { "public" } else { "private" },
                            store.key_kind().describe()
                        ),
                    )
                }
                Err(e) => Check::fail(
                    "storage",
                    format!(
                        "supabase bucket '{}' at {}: {e}",
                        settings.bucket, settings.url
                    ),
                    e.advice(),
                ),
            },
        },
        None => Check::fail(
            "storage",
            "XTRACT_STORAGE is not supabase or local",
            "set XTRACT_STORAGE=supabase or XTRACT_STORAGE=local",
        ),
        Some(StorageKind::Local) => check_local_dir(local_dir),
    }
}

fn check_local_dir(dir: &Path) -> Check {
    // The service runs in /var/lib/xtract: a relative folder there is not
    // the one seen from the operator's shell.
    let note = if dir.is_relative() {
        " (relative: the service resolves it in its working directory)"
    } else {
        ""
    };
    // The daemon creates a missing folder; creating it here (perhaps as
    // root) could leave one the service cannot write, so only look.
    let existing = dir
        .ancestors()
        .find(|p| p.exists() && !p.as_os_str().is_empty());
    let probe = if dir.exists() {
        dir
    } else {
        match existing {
            Some(p) => p,
            None => Path::new("."),
        }
    };
    if probe.exists() && !probe.is_dir() {
        return Check::fail(
            "storage",
            format!("local: {} is not a folder", probe.display()),
            "point XTRACT_LOCAL_STORAGE_DIR at a folder",
        );
    }
    let writable = tempfile::Builder::new()
        .prefix(".xtract-doctor-")
        .tempfile_in(probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
    match writable {
        Ok(()) if dir.exists() => Check::ok(
            "storage",
            format!("local: {} is writable{note}", dir.display()),
        ),
        Ok(()) => Check::ok(
            "storage",
            format!(
                "local: {} does not exist yet; the daemon creates it in {}, which is writable{note}",
                dir.display(),
                probe.display()
            ),
        ),
        Err(e) => Check::fail(
            "storage",
            format!("local: cannot write in {}: {e}{note}", probe.display()),
            "make the folder writable by the user the daemon runs as (xtract)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_carries_level_name_finding_and_fix() {
        let line = Check::fail("migrations", "missing [2]", "run xtract migrate").to_string();
        assert!(line.starts_with("FAIL  migrations"), "{line}");
        assert!(line.ends_with("missing [2] → run xtract migrate"), "{line}");
    }

    #[test]
    fn the_password_is_scrubbed_from_every_line() {
        let mut report = Report {
            checks: Vec::new(),
            secrets: database::password_forms("postgres://u:p%40ss@h/db"),
        };
        report.push(Check::fail("database", "bad p@ss and p%40ss", "not p@ss"));
        let text = report.to_string();
        assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");
    }

    #[test]
    fn a_writable_folder_is_ok_and_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_local_dir(dir.path()).level, Level::Ok);
        assert_eq!(
            check_local_dir(&dir.path().join("new/sub")).level,
            Level::Ok
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(check_local_dir(&file).level, Level::Fail);
    }
}
