//! The references generated from the code: every setting the daemon reads
//! (`docs/configuration.md`, and the names `.env.example` may carry) and
//! every error code (`docs/errors.md`). `xtract docs config|errors|cli`
//! prints them; `tests/docs.rs` fails when a page on disk, `.env.example`
//! or the source disagrees with them, and says how to regenerate.

use crate::domain::{ErrorCode, Platform, Retry};

/// One setting: an environment variable (or env file line) some module
/// reads.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// The value when unset, as a person would write it ("" = none).
    pub default: &'static str,
    /// The module that reads it.
    pub module: &'static str,
    pub meaning: &'static str,
}

const fn s(
    name: &'static str,
    default: &'static str,
    module: &'static str,
    meaning: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        module,
        meaning,
    }
}

const CONFIG: &str = "ops/config.rs";
const STORAGE: &str = "storage/supabase/settings.rs";
const COMPAT: &str = "ops/compat/settings.rs";

/// Every setting, in the order the configuration page lists them.
pub const SETTINGS: &[Setting] = &[
    // The database.
    s("DATABASE_URL", "", CONFIG, "PostgreSQL URL. On Supabase the direct connection (db.<ref>.supabase.co:5432) or the session pooler (port 5432); the transaction pooler (6543) cannot deliver LISTEN/NOTIFY. `sslmode=require` encrypts; `sslmode=verify-full&sslrootcert=…` also checks the certificate. Required by `xtract run`. Under systemd, give it without the password and the password as the credential `database-password`."),
    // Storage.
    s("XTRACT_STORAGE", "supabase", CONFIG, "Where audio goes: `supabase` (Supabase Storage) or `local` (a folder)."),
    s("XTRACT_LOCAL_STORAGE_DIR", "./audio", CONFIG, "The local backend's folder."),
    s("SUPABASE_URL", "", STORAGE, "The project URL, with no path (xtract adds /storage/v1 itself)."),
    s("SUPABASE_SERVICE_ROLE_KEY", "", STORAGE, "A server key: a secret key `sb_secret_…` or the legacy service_role JWT (publishable and anon keys are refused). Never logged, never passed to a job's programs. Under systemd, better the credential `supabase-service-key`."),
    s("SUPABASE_SERVICE_ROLE_KEY_FILE", "", STORAGE, "A file holding the key, instead of the variable."),
    s("XTRACT_STORAGE_BUCKET", "audio-files", STORAGE, "The bucket audio goes to."),
    s("XTRACT_RESUMABLE_THRESHOLD_MB", "6", STORAGE, "Files larger than this go up with resumable (TUS) uploads in 6 MiB chunks."),
    // Jobs.
    s("XTRACT_CONCURRENCY", "2", CONFIG, "Jobs processed at once by one daemon (1-256)."),
    s("XTRACT_AUDIO_FORMAT", "m4a", CONFIG, "The default output: m4a (AAC copied when the source is AAC), mp3, opus, or original (the source's audio unchanged); a job's `audio_format` overrides it."),
    s("XTRACT_MAX_DURATION_SECS", "10800", CONFIG, "Longer videos fail with `too_long`."),
    s("XTRACT_MAX_FILESIZE_MB", "500", CONFIG, "Larger downloads fail with `too_large` (at most 2047: `audio_files.file_size` is INTEGER)."),
    s("XTRACT_DEDUP", "true", CONFIG, "Reuse the audio of an earlier job for the same video, format and audio source (copied under the new user's folder) instead of downloading again."),
    s("XTRACT_MAX_PENDING_PER_USER", "20", CONFIG, "Jobs one user may have waiting or running; the database refuses the next insert by that user with a sentence."),
    s("XTRACT_ALLOW_PRIVATE_URLS", "false", CONFIG, "true: accept links to loopback and private addresses, as platform `other`, with no pacing. Tests and local demos only."),
    // Programs.
    s("XTRACT_YTDLP", "this folder's .venv/bin/yt-dlp, else the first on PATH", CONFIG, "The yt-dlp jobs run (`/opt/xtract/venv/bin/yt-dlp` in production: the link `xtract tools upgrade` switches)."),
    s("XTRACT_FFMPEG", "the first on PATH", CONFIG, "ffmpeg."),
    s("XTRACT_FFPROBE", "the first on PATH", CONFIG, "ffprobe."),
    s("XTRACT_WARM_YTDLP", "true", CONFIG, "Keep yt-dlp loaded in a helper process that forks a child per download (about a tenth of the CPU of a yt-dlp command line for a short clip); false: the command line for every download."),
    s("XTRACT_YTDLP_CACHE_DIR", "ytdlp-cache in XTRACT_WORK_DIR", CONFIG, "yt-dlp's cache (YouTube's player code and tokens), kept between jobs; `off`: no cache."),
    s("XTRACT_YTDLP_CHANNEL", "nightly", CONFIG, "The yt-dlp releases `xtract tools upgrade` installs: nightly or stable."),
    s("XTRACT_YTDLP_PLUGINS", "", CONFIG, "pip packages installed beside yt-dlp by the upgrade (plugins such as a PO token provider), separated by spaces or commas."),
    // When a platform breaks (docs/platforms.md, "When a platform breaks").
    s("XTRACT_AUTO_HEAL", "on", CONFIG, "When a platform breaks, build the newest yt-dlp of the channel, try it on one of the platform's failed jobs and switch only that platform to it; roll a new build back where it does worse (`on`), or only report it (`off`: log, dashboard, /metrics, systemd's status line)."),
    s("XTRACT_HEAL_FAILURES", "3", CONFIG, "A platform is broken when this many of its last XTRACT_HEAL_WINDOW jobs failed because yt-dlp could not read the site (not private, removed, rate-limited, a login wall or a bot check)."),
    s("XTRACT_HEAL_WINDOW", "10", CONFIG, "The jobs that judgement looks at; also the window a new build's success is compared with the old one's over."),
    s("XTRACT_HEAL_INTERVAL_SECS", "3600", CONFIG, "At most one upgrade per platform this often (counted from the end of the last one)."),
    s("XTRACT_HEAL_RETRY_WINDOW_SECS", "86400", CONFIG, "Jobs the outdated extractor failed this recently are set back to pending when their platform works again."),
    s("XTRACT_TOOLS_DIR", "the folder XTRACT_YTDLP is in, when it is <dir>/venv/bin/yt-dlp", CONFIG, "The tools folder (`xtract tools --dir`) the daemon builds new yt-dlp in; it must be the daemon user's. None: broken platforms are only reported."),
    s("XTRACT_TOOLS_PYTHON", "python3", CONFIG, "The Python that builds virtualenvs."),
    s("XTRACT_WORK_DIR", "the system's temporary folder/xtract", CONFIG, "Temporary files of running jobs (removed after each job)."),
    // Platforms.
    s("XTRACT_PLATFORMS_FILE", "", CONFIG, "TOML file overriding the per-platform table (pacing, attempts, pauses, ytdlp_args, enabled, max_runtime_secs) and holding an egress pool ([egress.NAME] proxies)."),
    s("XTRACT_EGRESS_KEY", "the host name", CONFIG, "The key this machine's own address shares pacing and pauses under, through the database."),
    s("XTRACT_EGRESS_CHECK_URL", "https://www.cloudflare.com/cdn-cgi/trace", "ops/doctor.rs", "The page `xtract doctor` asks each egress proxy for, to see where it leaves from."),
    s("XTRACT_PACING_MAX_WAIT_SECS", "30", CONFIG, "A job whose platform turn is further away than this gives its worker slot back and waits as pending."),
    s("XTRACT_MAX_PAUSES", "6", CONFIG, "A job that meets a platform's pushback (rate limit, bot check, login wall) this many times fails (pauses spend no attempts)."),
    s("XTRACT_COOKIES_DIR", "", CONFIG, "Cookie files (Netscape format) named <platform>.txt, offered to yt-dlp as a last strategy; each job gets its own copy."),
    s("XTRACT_IMPERSONATE", "", CONFIG, "A yt-dlp --impersonate target tried as a strategy (needs curl_cffi beside yt-dlp)."),
    // The queue.
    s("XTRACT_POLL_INTERVAL_SECS", "5", CONFIG, "The fallback poll (notifications start jobs at once)."),
    s("XTRACT_LEASE_SECS", "30", CONFIG, "A processing job whose worker has been silent this long is taken back."),
    s("XTRACT_HEARTBEAT_SECS", "a sixth of the lease", CONFIG, "How often a running job's worker says it is alive."),
    s("XTRACT_SHUTDOWN_GRACE_SECS", "30", CONFIG, "On SIGTERM, how long running jobs get to finish before they are put back."),
    s("XTRACT_JOB_TIMEOUT_SECS", "1800", CONFIG, "A job running longer (a hung download) is stopped with its processes and fails with `timeout`; a platform's max_runtime_secs overrides it."),
    s("XTRACT_RETRY_BASE_SECS", "10", CONFIG, "Retry backoff of passing failures: exponential from this…"),
    s("XTRACT_RETRY_MAX_SECS", "600", CONFIG, "…to this, with jitter."),
    s("XTRACT_WORKER_ID", "host:pid", CONFIG, "This daemon's name in `processing_jobs.locked_by`."),
    s("XTRACT_RETENTION_DAYS", "", CONFIG, "Delete completed, failed and cancelled jobs older than this many days (hourly, in batches); off when unset."),
    s("XTRACT_RETENTION_AUDIO", "false", CONFIG, "With retention, also delete their audio rows and files."),
    s("XTRACT_HORIZON_WARN_SECS", "300", CONFIG, "A session (or prepared transaction, or replication slot) holding a snapshot this long, which keeps every dead row version of processing_jobs, is named in the log (once) and by `xtract doctor`, with the statement that ends it."),
    // Operations.
    s("XTRACT_HEALTH_ADDR", "", CONFIG, "Serve GET /health and GET /metrics on this address (off unless set)."),
    s("XTRACT_LOG_FORMAT", "human", CONFIG, "Logs: human (compact lines; no timestamps under journald) or json."),
    s("RUST_LOG", "info", "ops/logging.rs", "Log levels, as tracing's EnvFilter reads them."),
    s("XTRACT_ENV_FILE", ".env", CONFIG, "A file read at start for what the environment does not set, and again on SIGHUP (with the platforms file)."),
    s("XTRACT_PG_BIN", "PATH, then /usr/lib/postgresql/*/bin", "ops/localpg.rs", "`xtract dev` only: the folder of PostgreSQL's initdb and pg_ctl."),
    // The old service's HTTP API.
    s("XTRACT_COMPAT_ADDR", "", COMPAT, "Serve the old service's POST /extract-audio and GET /health on this address, for app versions still calling it (off unless set)."),
    s("XTRACT_COMPAT_WAIT_SECS", "90", COMPAT, "How long a request waits for its job before a 504 (the job goes on)."),
    s("XTRACT_COMPAT_MAX_WAITING", "256", COMPAT, "Requests that may wait at once; the next gets a 503, nothing inserted."),
    s("XTRACT_COMPAT_CLIENT_TIMEOUT_SECS", "10", COMPAT, "Headers, then the body, must arrive within this."),
    s("XTRACT_COMPAT_JWKS_URL", "<SUPABASE_URL>/auth/v1/.well-known/jwks.json", COMPAT, "Where the project's JWT signing keys are published (ES256/RS256 access tokens)."),
    s("SUPABASE_JWT_SECRET", "", COMPAT, "The legacy shared JWT secret, for HS256 access tokens (never logged)."),
    s("XTRACT_COMPAT_TRUST_BODY_USER", "false", COMPAT, "true: no token, the body's user_id is believed. Only for an endpoint the app's own backend alone can reach; the daemon warns at every start."),
];

/// Names that look like settings but are not an operator's to set.
pub const NOT_SETTINGS: &[(&str, &str)] = &[
    (
        "CREDENTIALS_DIRECTORY",
        "set by systemd for LoadCredential=",
    ),
    (
        "XTRACT_PROCESS_MARK",
        "the mark xtract gives a job's processes",
    ),
    ("XTRACT_TEST_PG_BIN", "the test suite's PostgreSQL binaries"),
    ("XTRACT_TEST_PGBOUNCER", "the test suite's pgbouncer"),
];

pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The known setting nearest to `name` (a typo's likely meaning), if any is
/// close.
pub fn nearest(name: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

/// `XTRACT_…` names among `vars` that no module reads, each with the
/// nearest known name.
pub fn unknown<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<(String, Option<&'static str>)> {
    let mut out: Vec<(String, Option<&'static str>)> = vars
        .into_iter()
        .filter(|v| v.starts_with("XTRACT_"))
        .filter(|v| find(v).is_none() && !NOT_SETTINGS.iter().any(|(n, _)| n == v))
        .map(|v| (v.to_string(), nearest(v)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One line per unknown setting, for the log and `xtract doctor`.
pub fn unknown_sentence(name: &str, nearest: Option<&str>) -> String {
    match nearest {
        Some(n) => format!("{name} is not a setting xtract reads: did you mean {n}?"),
        None => format!("{name} is not a setting xtract reads (docs/configuration.md lists them)"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `docs/configuration.md`.
pub fn configuration_page() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         For whoever runs xtract: every setting the daemon reads, its default \
         and what it does. Generated from the code (`src/ops/reference.rs`): \
         run `xtract docs config > docs/configuration.md` after adding or \
         changing a setting (`tests/docs.rs` fails until then). The daemon \
         reads them from its environment and from the env file \
         (`XTRACT_ENV_FILE`, default `.env`); `.env.example` carries every one. \
         A mistake stops the daemon at start with one line naming the variable; \
         an `XTRACT_…` name no module reads is named as a warning at start and \
         by `xtract doctor`, with the nearest known name.\n\n\
         | setting | default | read by | meaning |\n|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "unset".to_string()
        } else {
            format!("`{}`", s.default)
        };
        out.push_str(&format!(
            "| `{}` | {} | `src/{}` | {} |\n",
            s.name,
            cell(&default),
            s.module,
            cell(s.meaning)
        ));
    }
    out.push_str("\nNot settings (set for xtract, not by you): ");
    let names: Vec<String> = NOT_SETTINGS
        .iter()
        .map(|(n, why)| format!("`{n}` ({why})"))
        .collect();
    out.push_str(&names.join(", "));
    out.push_str(".\n");
    out
}

/// How the queue treats a failure with this code, in words.
pub fn retry_words(code: ErrorCode) -> String {
    match (code.retry(), code.min_retry_delay()) {
        (Retry::Never, _) => "no".into(),
        (Retry::Cooldown, _) => {
            "after the platform's pause on that egress; no attempt spent (at most XTRACT_MAX_PAUSES pauses)".into()
        }
        (Retry::Backoff, Some(d)) => format!(
            "with backoff while attempts remain, not sooner than {} min",
            d.as_secs() / 60
        ),
        (Retry::Backoff, None) => "with backoff while attempts remain".into(),
        (Retry::Defer, _) => "later, no attempt spent".into(),
    }
}

/// `docs/errors.md`.
pub fn errors_page() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         For operators and app developers: what each `processing_jobs.error_code` \
         means, the sentence the user reads in `error_message`, whether the job \
         is tried again, and what helps (the dashboard's \
         `xtract.operator_advice`, in `xtract.recent_failures`). Generated from \
         the code (`src/domain/error.rs`): run `xtract docs errors > \
         docs/errors.md` after changing one (`tests/docs.rs` fails until then).\n\n\
         | `error_code` | what the user reads | tried again? | what helps |\n|---|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        let mut says = code.user_message(None);
        if code == ErrorCode::RateLimited {
            says = format!(
                "{says} On Instagram, the old service's words: \"{}\"",
                code.user_message(Some(Platform::Instagram))
            );
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            code.as_str(),
            cell(&says),
            cell(&retry_words(code)),
            cell(code.what_helps())
        ));
    }
    out.push_str(ERRORS_NOTES);
    out
}

const ERRORS_NOTES: &str = "
Where a sentence names the site, it names the job's platform (\"TikTok is \
limiting downloads right now…\"); above, jobs of no known platform.

- **Every strategy failed.** When a platform's download strategies all \
fail, the sentence starts with \"All download strategies failed:\" and \
the last reason follows.
- **Login walls.** Instagram's \"empty media response\" to a logged-out \
request and TikTok's redirect to its login page are `login_required` with \
\"… is showing this video only to signed-in viewers right now. Please try \
again later; if it keeps failing, the video may be private.\": the cookies \
strategy is tried first when there is one, then the platform is paused on \
that egress as after a rate limit (no attempt spent).
- **`too_long` and `too_large`** name the limit the video passed: \
\"This video is too long: the limit is N minutes.\", \"…too large: the \
limit is N MB.\" (or the bucket's own size limit).
- **`extractor_outdated`** is yt-dlp blaming itself (its \"please report \
this issue\" trailer, \"Unable to extract …\", a page it no longer reads): \
fixed by upgrading yt-dlp, not by the user; the platform is not paused \
for it.
- **A job asking for a TikTok post's sound** (`audio_source = 'sound'`) \
whose post has none of its own fails `no_audio` with \"This post has no \
separate sound to download. Ask for the post's audio instead.\"
- **How a message becomes a code**: `src/pipeline/classify.rs`, built from \
yt-dlp's source; `tests/data/ytdlp-errors.toml` holds every message with \
its code, and the platform rehearsal runs every message of the TikTok, \
Instagram and YouTube extractors through it.
";
