//! Shared fixtures: a throwaway PostgreSQL per test, generated media, a
//! stand-in yt-dlp for the video platforms we cannot reach, and real daemon
//! processes to start, signal and kill.
#![allow(dead_code)]

pub mod in_process;
pub mod proxy_double;
pub mod rehearsal;
pub mod row_log;
pub mod stage;
pub mod storage_double;
pub mod supabase;
pub mod wheels;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;
use xtract::ops::localpg::LocalPostgres;

#[allow(unused_imports)]
pub use stage::Stage;

pub const USER: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);

/// The old service's two tables, exactly as users' projects have them
/// (shared/reference/old-service.md): the contract with today's frontends.
pub const OLD_SERVICE_DDL: &str = "
CREATE TABLE processing_jobs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL,
    original_url TEXT NOT NULL,
    status TEXT NOT NULL, -- 'pending', 'processing', 'completed', 'failed'
    result_audio_file_id UUID,
    error_message TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE audio_files (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL,
    filename TEXT NOT NULL,
    file_url TEXT NOT NULL,
    file_size INTEGER,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);
";

/// Real programs the tests run: from the environment `scripts/ensure-deps`
/// prints, else PATH / the project's .venv.
pub struct Tools {
    pub ytdlp: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let find = |var: &str, name: &str| -> PathBuf {
            if let Some(p) = std::env::var_os(var) {
                return PathBuf::from(p);
            }
            let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".venv/bin")
                .join(name);
            if venv.exists() {
                return venv;
            }
            xtract::ops::config::find_program(name).unwrap_or_else(|| {
                panic!("{name} not found: run scripts/ensure-deps (or set {var})")
            })
        };
        Tools {
            ytdlp: find("XTRACT_YTDLP", "yt-dlp"),
            ffmpeg: find("XTRACT_FFMPEG", "ffmpeg"),
            ffprobe: find("XTRACT_FFPROBE", "ffprobe"),
        }
    })
}

/// A PostgreSQL cluster of this test's own, with the schema migrated into
/// database `xtract`. Stopped when dropped.
pub struct TestDb {
    pub pg: LocalPostgres,
    /// What daemons connect with: the least-privileged `xtract_worker` once
    /// migrated (as in production), the owner before.
    pub url: String,
    /// The owner of the tables (what migrations and test clients use).
    pub owner_url: String,
    _dir: TempDir,
}

impl TestDb {
    pub async fn start() -> TestDb {
        Self::start_unmigrated_inner(true).await
    }

    pub async fn start_unmigrated() -> TestDb {
        Self::start_unmigrated_inner(false).await
    }

    async fn start_unmigrated_inner(migrate: bool) -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("xtract-test-pg-")
            .tempdir()
            .expect("temp dir");
        let mut pg = LocalPostgres::init(dir.path()).expect("initdb");
        pg.start(true).expect("start postgres");
        pg.create_database("xtract").await.expect("create database");
        let owner_url = pg.url("xtract");
        let mut url = owner_url.clone();
        if migrate {
            xtract::ops::commands::migrate(&owner_url)
                .await
                .expect("migrate");
            // The cluster trusts local connections: the role needs only LOGIN.
            let (client, conn) = tokio_postgres::connect(&owner_url, NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .batch_execute("ALTER ROLE xtract_worker LOGIN")
                .await
                .expect("worker login");
            url = owner_url.replace("postgres@", "xtract_worker@");
        }
        TestDb {
            pg,
            url,
            owner_url,
            _dir: dir,
        }
    }

    /// A connection pool of `size` on this database, as the daemon has.
    pub fn pool(&self, size: usize) -> deadpool_postgres::Pool {
        xtract::db::DbTarget::parse(&self.url)
            .expect("the test database's URL")
            .pool(size)
            .expect("a pool")
    }

    pub async fn client(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.owner_url, NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }

    /// Inserts a job as a frontend would.
    pub async fn enqueue(&self, client: &Client, url: &str) -> Uuid {
        self.enqueue_as(client, USER, url).await
    }

    pub async fn enqueue_as(&self, client: &Client, user: Uuid, url: &str) -> Uuid {
        client
            .query_one(
                "INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, $2) RETURNING id",
                &[&user, &url],
            )
            .await
            .expect("insert job")
            .get(0)
    }
}

/// A frontend's burst: `user`'s jobs for `prefix` followed by each of
/// `numbers`, inserted in one statement; their ids.
pub async fn enqueue_burst(
    client: &Client,
    user: Uuid,
    prefix: &str,
    numbers: std::ops::RangeInclusive<i64>,
) -> Vec<Uuid> {
    column(
        client,
        "INSERT INTO processing_jobs (user_id, original_url)
         SELECT $1, $2 || n FROM generate_series($3::bigint, $4::bigint) AS n
         RETURNING id",
        &[&user, &prefix, numbers.start(), numbers.end()],
    )
    .await
}

/// What an operator does in the dashboard's table editor: sets a job's
/// status (the triggers decide what else changes, or refuse).
pub async fn operator_sets_status(
    client: &Client,
    id: Uuid,
    status: &str,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE processing_jobs SET status = $2 WHERE id = $1",
            &[&id, &status],
        )
        .await
}

pub async fn status(client: &Client, id: Uuid) -> String {
    client
        .query_one("SELECT status FROM processing_jobs WHERE id = $1", &[&id])
        .await
        .expect("job row")
        .get(0)
}

/// The job row as JSON.
pub async fn job(client: &Client, id: Uuid) -> serde_json::Value {
    client
        .query_one(
            "SELECT to_jsonb(j) FROM processing_jobs j WHERE id = $1",
            &[&id],
        )
        .await
        .expect("job row")
        .get(0)
}

/// The text in a JSON row's column ("" when it is null or not text).
pub fn text_of<'a>(row: &'a serde_json::Value, column: &str) -> &'a str {
    row[column].as_str().unwrap_or_default()
}

/// The first column of every row `sql` returns.
pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T> {
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A server on 127.0.0.1 that redirects every request to `to`.
pub async fn redirector(to: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || {
            let to = to.clone();
            async move { axum::response::Redirect::temporary(&to) }
        });
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// Polls `check` until it returns Some or `timeout` passes. For conditions
/// in another process (a row changing state) there is no event to await.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn wait_status(client: &Client, id: Uuid, want: &str, timeout: Duration) {
    eventually(&format!("job {id} to be {want}"), timeout, || async {
        (status(client, id).await == want).then_some(())
    })
    .await
}

/// Generated media, made once per test run and kept in target/.
pub struct Media {
    pub dir: PathBuf,
}

pub fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-media");
        std::fs::create_dir_all(&dir).expect("media dir");
        let make = |name: &str, args: &[&str]| {
            make_media(&dir, name, args);
        };
        let sine = |secs: u32| format!("sine=frequency=440:duration={secs}");
        let video = |secs: u32| format!("testsrc=size=160x120:rate=10:duration={secs}");
        // AAC audio in MP4 with video: what TikTok/Instagram serve.
        make(
            "clip.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                &sine(3),
                "-f",
                "lavfi",
                "-i",
                &video(3),
                "-c:a",
                "aac",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-shortest",
                "-f",
                "mp4",
            ],
        );
        // Audio only, AAC: what the stand-in yt-dlp "downloads".
        make(
            "tiny.m4a",
            &[
                "-f",
                "lavfi",
                "-i",
                &sine(1),
                "-c:a",
                "aac",
                "-b:a",
                "32k",
                "-f",
                "ipod",
            ],
        );
        // Opus audio in WebM: YouTube's other audio-only format.
        make(
            "opus.webm",
            &[
                "-f",
                "lavfi",
                "-i",
                &sine(3),
                "-c:a",
                "libopus",
                "-f",
                "webm",
            ],
        );
        // MP3 audio.
        make(
            "song.mp3",
            &[
                "-f",
                "lavfi",
                "-i",
                &sine(3),
                "-c:a",
                "libmp3lame",
                "-f",
                "mp3",
            ],
        );
        // Video without any audio stream.
        make(
            "silent.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                &video(3),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-f",
                "mp4",
            ],
        );
        // A thumbnail, as platforms serve them.
        make(
            "cover.jpg",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=96x96:duration=1",
                "-frames:v",
                "1",
                "-f",
                "mjpeg",
            ],
        );
        // Not media at all.
        let corrupt = dir.join("corrupt.mp4");
        if !corrupt.exists() {
            std::fs::write(&corrupt, vec![0x42u8; 50_000]).expect("corrupt file");
        }
        Media { dir }
    })
}

/// Makes `dir/name` with ffmpeg (`args` before the output) unless it is
/// there already. Written under a unique name, then renamed: test binaries
/// run side by side and must never see half a file.
pub fn make_media(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    if out.exists() {
        return out;
    }
    let tmp = dir.join(format!(".{}.{}.{name}", std::process::id(), Uuid::new_v4()));
    let status = Command::new(&tools().ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    std::fs::rename(&tmp, &out).expect("rename media");
    out
}

/// A stand-in for yt-dlp, for links to platforms we cannot reach. It reads
/// the same arguments the real one gets. What it does depends on the link:
/// local links `http://127.0.0.1:9/<kind>/<name>` say it in the path; for
/// platform links the name is the video id (`v=`, or the last path segment)
/// and the kind is read from `<name>.kind` (default `ok`). Kinds:
/// - `ok`: "downloads" tiny.m4a, printing what `--print` asks for;
/// - `block`: writes `<name>.pid`, waits for `<name>.go`, then as ok; a
///   run that starts while an earlier run of the same name still lives
///   appends the name to `overlap.log` (two runs of one job at once);
/// - `family`: starts two `sleep 300` children, one in its own session
///   (as a program that daemonizes would), appends their pids to
///   `<name>.children`, then as block;
/// - `nap`: writes `<name>.pid` (noting an overlap as block does), sleeps
///   0.1 to 0.9 s, then as ok;
/// - `slow`: prints 50% progress, then as block;
/// - `huge`: reports 3 MB downloaded of an unknown total, then as block;
/// - `fail`: prints the yt-dlp stderr stored in `<name>.err`, exits 1;
/// - `flaky`: fails like fail the first time, then as ok;
/// - `needcookies`: "You need to log in" unless given `--cookies`, whose
///   file it then rewrites, as yt-dlp does;
/// - `needmuxed`: "Requested format is not available" unless `-f` allows a
///   muxed file (does not start with `ba`);
/// - `carousel:<item>,<item>,…`: a post with several media (an Instagram
///   carousel), which yt-dlp runs as a playlist whatever `--no-playlist`
///   says. Items are `photo` (no formats: yt-dlp prints "No video formats
///   found!" and goes on to the next item), `video`, `video403` (its
///   download fails with HTTP 403, and yt-dlp goes on) and `long` (fails
///   the `--break-match-filters` duration filter: yt-dlp stops). Items run
///   in `--playlist-items` order (`N`, `A:`, `A:B`, comma-separated,
///   repeats dropped), else all; `--max-downloads 1` stops after the first
///   file with exit code 101, as yt-dlp 2026.10.26 does. Item `k` is
///   "downloaded" with id `<name>_<k>` and title `Stand-in <name> item <k>`.
///
/// A platform link given a proxy (`--proxy` in the private options file of
/// `--config-locations`, as xtract passes it) first asks the proxy for the
/// link with curl, over http so the stand-in proxy sees it (see
/// proxy_double.rs): a 429 there, no proxy listening and a 407 fail the run
/// as yt-dlp does, any other answer but 200 as a network error naming the
/// proxy, password and all (as some HTTP libraries do: xtract must scrub
/// it); `proxied.log` gets `<epoch secs>
/// <proxy host:port> <status> <url>`.
///
/// Every call appends the URL to `calls.log`, `<epoch secs> <url>` to
/// `times.log` and its arguments to `args.log`.
///
/// Like yt-dlp, it refuses an option it does not know, or one without its
/// value, with yt-dlp's usage error and exit code 2; it knows
/// [`STANDIN_OPTIONS`].
pub struct StandIn {
    pub dir: TempDir,
    pub script: PathBuf,
}

impl StandIn {
    pub fn new() -> StandIn {
        let dir = tempfile::Builder::new()
            .prefix("xtract-standin-")
            .tempdir()
            .expect("temp dir");
        let script = dir.path().join("yt-dlp");
        let media = media().dir.join("tiny.m4a");
        let options: String = STANDIN_OPTIONS
            .iter()
            .map(|(name, value)| format!("[{name}]={} ", u8::from(*value)))
            .collect();
        let body = STANDIN_SCRIPT
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@MEDIA@", &media.display().to_string())
            .replace("@OPTIONS@", options.trim_end());
        std::fs::write(&script, body).expect("write stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        StandIn { dir, script }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Sets what the stand-in does for platform video `name`.
    pub fn set_kind(&self, name: &str, kind: &str) {
        std::fs::write(self.path(&format!("{name}.kind")), kind).expect("write kind");
    }

    /// Makes runs of `name` fail, printing `stderr` as yt-dlp would.
    pub fn fails_with(&self, name: &str, stderr: &str) {
        self.set_kind(name, "fail");
        self.set_error(name, stderr);
    }

    /// Makes `fail`/`flaky` runs of `name` print `stderr`.
    pub fn set_error(&self, name: &str, stderr: &str) {
        std::fs::write(self.path(&format!("{name}.err")), stderr).expect("write error");
    }

    /// Lets a blocked run of `name` finish.
    pub fn release(&self, name: &str) {
        std::fs::write(self.path(&format!("{name}.go")), "").expect("write go");
    }

    /// The pid of the stand-in blocked on `name`, once it is running.
    pub async fn blocked_pid(&self, name: &str) -> i32 {
        let file = self.path(&format!("{name}.pid"));
        eventually(
            &format!("stand-in {name} to start"),
            Duration::from_secs(30),
            || async {
                std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            },
        )
        .await
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The URL of every call, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lines("calls.log")
    }

    /// (seconds since the epoch, URL) of every call, in order.
    pub fn times(&self) -> Vec<(f64, String)> {
        self.lines("times.log")
            .iter()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, u)| (t.parse().expect("time"), u.to_string()))
            .collect()
    }

    /// The arguments of every call, in order.
    pub fn args(&self) -> Vec<String> {
        self.lines("args.log")
    }

    /// (proxy `host:port`, HTTP status, URL) of every request a run sent
    /// through a proxy, in order.
    pub fn proxied(&self) -> Vec<(String, String, String)> {
        self.lines("proxied.log")
            .iter()
            .filter_map(|l| {
                let mut parts = l.splitn(4, ' ').skip(1);
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// Names of `block` runs that started while an earlier run of the same
    /// name was still alive.
    pub fn overlaps(&self) -> Vec<String> {
        self.lines("overlap.log")
    }

    /// The pids of the children `family` runs of `name` started.
    pub fn children(&self, name: &str) -> Vec<i32> {
        self.lines(&format!("{name}.children"))
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

/// The options the stand-in yt-dlp accepts, and whether a value follows
/// each: every option xtract passes (ytdlp.rs `arguments`, the strategies,
/// the pipeline's own) and every one a platform file may add (the allow
/// list in domain/ytdlp_args.rs), as yt-dlp spells them.
/// tests/pipeline.rs checks each against the real yt-dlp's `--help`.
pub const STANDIN_OPTIONS: &[(&str, bool)] = &[
    // ytdlp.rs, arguments()
    ("--ignore-config", false),
    ("--no-quiet", false),
    ("--no-playlist", false),
    ("--no-mtime", false),
    ("--write-thumbnail", false),
    ("--socket-timeout", true),
    ("--retries", true),
    ("--fragment-retries", true),
    ("--newline", false),
    ("--progress", false),
    ("--no-progress", false),
    ("--print", true),
    ("--progress-template", true),
    ("-f", true),
    ("-o", true),
    ("--match-filters", true),
    ("--break-match-filters", true),
    ("--max-downloads", true),
    ("--max-filesize", true),
    // the pipeline (pipeline/mod.rs) and private_options()
    ("--ffmpeg-location", true),
    ("--playlist-items", true),
    ("--cache-dir", true),
    ("--no-cache-dir", false),
    ("--config-locations", true),
    ("--proxy", true),
    // strategies (strategy.rs)
    ("--cookies", true),
    ("--impersonate", true),
    ("--add-headers", true),
    // what a platform file may add (ytdlp_args.rs ALLOWED)
    ("--extractor-args", true),
    ("--js-runtimes", true),
    ("--source-address", true),
    ("--force-ipv4", false),
    ("-4", false),
    ("--force-ipv6", false),
    ("-6", false),
    ("--xff", true),
    ("--sleep-requests", true),
    ("--sleep-interval", true),
    ("--min-sleep-interval", true),
    ("--max-sleep-interval", true),
    ("--limit-rate", true),
    ("-r", true),
    ("--throttled-rate", true),
    ("--http-chunk-size", true),
    ("--concurrent-fragments", true),
    ("-N", true),
    ("--extractor-retries", true),
    ("--retry-sleep", true),
    ("--format-sort", true),
    ("-S", true),
    ("--verbose", false),
    ("-v", false),
    ("--compat-options", true),
];

const STANDIN_SCRIPT: &str = r##"#!/usr/bin/env bash
# Stand-in for yt-dlp (see tests/support/mod.rs).
dir='@DIR@'; media='@MEDIA@'
# Asked for its version (a reload logs it): not a call to the platform.
[ "$1" = --version ] && { echo 2026.01.01; exit 0; }
out=''; url=''; format=''; cookies=''; prints=(); progress=''; thumb=''
items_spec=''; max_downloads=''; break_filter=''; conf=''; proxy=''
printf '%s\n' "$*" >> "$dir/args.log"
# The options it knows, 1 where a value follows (STANDIN_OPTIONS); any
# other is refused as yt-dlp refuses it, before anything else is done.
declare -A takes=(@OPTIONS@)
usage_error() { printf 'Usage: yt-dlp [OPTIONS] URL [URL...]\n\nyt-dlp: error: %s\n' "$1" >&2; exit 2; }
for ((i = 1; i <= $#; i++)); do
  a="${!i}"
  case "$a" in
    --) break;;
    -*) n="${a%%=*}"
        [[ -v takes[$n] ]] || usage_error "no such option: $n"
        if [ "${takes[$n]}" = 1 ] && [ "$n" = "$a" ]; then
          i=$((i + 1)); [ "$i" -le $# ] || usage_error "$n option requires 1 argument"
        fi;;
  esac
done
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2;;
    -f) format="$2"; shift 2;;
    --cookies) cookies="$2"; shift 2;;
    --print) prints+=("$2"); shift 2;;
    --write-thumbnail) thumb=1; shift;;
    --progress-template) progress="$2"; shift 2;;
    --playlist-items) items_spec="$2"; shift 2;;
    --max-downloads) max_downloads="$2"; shift 2;;
    --break-match-filters) break_filter="$2"; shift 2;;
    --config-locations) conf="$2"; shift 2;;
    --proxy) proxy="$2"; shift 2;;
    --) url="$2"; shift 2;;
    *) shift;;
  esac
done
printf '%s\n' "$url" >> "$dir/calls.log"
printf '%s %s\n' "$(date +%s.%N)" "$url" >> "$dir/times.log"
case "$url" in
  http://127.0.0.1*)
    path="${url#http://*/}"; kind="${path%%/*}"; name="${path#*/}"; name="${name%%\?*}";;
  *v=*)
    name="${url#*v=}"; name="${name%%&*}";;
  *)
    name="${url%%\?*}"; name="${name%/}"; name="${name##*/}";;
esac
[ -e "$dir/$name.kind" ] && kind="$(cat "$dir/$name.kind")"
# The private options file: `--proxy '<url>'` (xtract's quoting).
[ -n "$conf" ] && p="$(sed -n "s/^--proxy '\(.*\)'\$/\1/p" "$conf")" && [ -n "$p" ] && proxy="$p"
case "$url" in
  http://127.0.0.1*) ;;
  *) if [ -n "$proxy" ]; then
       code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -x "$proxy" "http://${url#https://}")"
       hostport="${proxy##*@}"; hostport="${hostport#*://}"
       printf '%s %s %s %s\n' "$(date +%s.%N)" "$hostport" "$code" "$url" >> "$dir/proxied.log"
       case "$code" in
         200) ;;
         429) echo "ERROR: [TikTok] $name: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: Too Many Requests>)" >&2; exit 1;;
         # No proxy listening, and a proxy refusing us: yt-dlp 2026.10.26's
         # words (the second also names the proxy, password and all, as
         # some HTTP libraries do).
         000) echo "ERROR: [TikTok] $name: Unable to download webpage: [Errno 111] Connection refused (caused by TransportError('[Errno 111] Connection refused'))" >&2; exit 1;;
         407) echo "ERROR: [TikTok] $name: Unable to download webpage: <urlopen error Tunnel connection failed: 407 Proxy Authentication Required> (caused by ProxyError('<urlopen error Tunnel connection failed: 407 Proxy Authentication Required> via $proxy')); please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U" >&2; exit 1;;
         *) echo "ERROR: [TikTok] $name: Unable to download webpage: <urlopen error [Errno 111] Connection refused> (proxy answered $code via $proxy)" >&2; exit 1;;
       esac
     fi;;
esac
[ -n "$kind" ] || kind=ok
fail() { cat "$dir/$name.err" >&2; exit 1; }
say_progress() { [ -n "$progress" ] && { t="${progress#*:}"; printf '%s%s %s NA\n' "${t%%%(*}" "$1" 1000; }; }
running() {
  # The earlier run is alive if its pid still runs this script for this
  # link (a pid alone may have been reused).
  if [ -e "$dir/$name.pid" ] && tr '\0' '\n' 2>/dev/null < "/proc/$(cat "$dir/$name.pid")/cmdline" | grep -qxF -- "$url"; then
    echo "$name" >> "$dir/overlap.log"
  fi
  echo $$ > "$dir/$name.pid.tmp"; mv "$dir/$name.pid.tmp" "$dir/$name.pid"
}
block() {
  running
  while [ ! -e "$dir/$name.go" ]; do sleep 0.05; done
}
print_stage() { # stage id title duration index [file]
  for p in "${prints[@]}"; do
    st="${p%%:*}"; template="${p#*:}"; prefix="${template%%%(*}"
    [ "$st" = "$1" ] || continue
    case "$1" in
      video) printf '%s{"id": "%s", "title": "%s", "duration": %s, "uploader": "someone", "extractor_key": "Instagram", "playlist_index": %s}\n' "$prefix" "$2" "$3" "$4" "$5";;
      after_move) printf '%s%s\n' "$prefix" "$6";;
    esac
  done
}
# yt-dlp on a post with several media: a playlist (see the doc comment).
carousel() {
  IFS=, read -r -a kinds <<< "$1"; n=${#kinds[@]}; order=()
  if [ -n "$items_spec" ]; then
    IFS=, read -r -a parts <<< "$items_spec"
    for part in "${parts[@]}"; do
      case "$part" in
        *:*) a="${part%%:*}"; b="${part#*:}"; [ -n "$b" ] || b=$n; for ((k=a; k<=b; k++)); do order+=("$k"); done;;
        *) order+=("$part");;
      esac
    done
  else
    for ((k=1; k<=n; k++)); do order+=("$k"); done
  fi
  echo "[download] Downloading playlist: Post by someone"
  echo "[Instagram] Playlist Post by someone: Downloading ${#order[@]} items of $n"
  seen=' '; errors=0; i=0
  for k in "${order[@]}"; do
    case "$seen" in *" $k "*) continue;; esac; seen="$seen$k "
    [ "$k" -ge 1 ] && [ "$k" -le "$n" ] || continue
    i=$((i + 1)); item="${kinds[$((k - 1))]}"; id="${name}_$k"
    echo "[download] Downloading item $i of ${#order[@]}"
    case "$item" in
      photo) echo "ERROR: [Instagram] $id: No video formats found!; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U" >&2; errors=1; continue;;
      long)
        if [ -n "$break_filter" ]; then
          echo "[download] Stand-in $name item $k does not pass filter ($break_filter), skipping .."
          echo "[info] Encountered a video that did not match filter, stopping due to --break-match-filter"
          echo "Aborting remaining downloads"; exit 101
        fi;;
    esac
    print_stage video "$id" "Stand-in $name item $k" 1.0 "$k"
    if [ "$item" = video403 ]; then
      echo "ERROR: unable to download video data: HTTP Error 403: Forbidden" >&2; errors=1; continue
    fi
    f="${out%%.%(ext)s}.m4a"; cp "$media" "$f"
    print_stage after_move "$id" "" "" "" "$f"
    if [ "$max_downloads" = 1 ]; then
      echo "[info] Maximum number of downloads reached, stopping due to --max-downloads"
      echo "Aborting remaining downloads"; exit 101
    fi
  done
  echo "[download] Finished downloading playlist: Post by someone"
  exit $errors
}
case "$kind" in
  block) block;;
  nap) running; sleep "0.$(( RANDOM % 9 + 1 ))";;
  family)
    sleep 300 >/dev/null 2>&1 & echo $! >> "$dir/$name.children"
    setsid sleep 300 >/dev/null 2>&1 & echo $! >> "$dir/$name.children"
    block;;
  slow) say_progress 500; block;;
  huge)
    # The pid first: the daemon may kill us as soon as it reads the line.
    echo $$ > "$dir/$name.pid.tmp"; mv "$dir/$name.pid.tmp" "$dir/$name.pid"
    [ -n "$progress" ] && { t="${progress#*:}"; printf '%s%s NA NA\n' "${t%%%(*}" 3000000; }
    block;;
  fail) fail;;
  flaky)
    if [ ! -e "$dir/$name.failed-once" ]; then touch "$dir/$name.failed-once"; fail; fi;;
  needcookies)
    if [ -z "$cookies" ]; then echo "ERROR: [Instagram] $name: You need to log in to access this content. Use --cookies-from-browser or --cookies for the authentication." >&2; exit 1; fi
    echo "# rewritten by yt-dlp" >> "$cookies";;
  needmuxed)
    case "$format" in
      ba*) echo "ERROR: [StandIn] $name: Requested format is not available. Use --list-formats for a list of available formats" >&2; exit 1;;
    esac;;
  carousel:*) carousel "${kind#carousel:}";;
esac
file="${out%%.%(ext)s}.m4a"
for p in "${prints[@]}"; do
  stage="${p%%:*}"; template="${p#*:}"; prefix="${template%%%(*}"
  case "$stage" in
    video) printf '%s{"id": "%s", "title": "Stand-in %s", "duration": 1.0, "uploader": "someone", "extractor_key": "StandIn", "thumbnail": "https://img.example/%s.jpg"}\n' "$prefix" "$name" "$name" "$name";;
  esac
done
say_progress 1000
cp "$media" "$file"
[ -n "$thumb" ] && cp "$(dirname "$media")/cover.jpg" "${out%%.%(ext)s}.jpg"
for p in "${prints[@]}"; do
  stage="${p%%:*}"; template="${p#*:}"; prefix="${template%%%(*}"
  [ "$stage" = after_move ] && printf '%s%s\n' "$prefix" "$file"
done
exit 0
"##;

/// A daemon process (`xtract run`) with its own folders.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub dir: TempDir,
    pub log: PathBuf,
}

#[derive(Clone)]
pub struct DaemonOptions {
    pub ytdlp: PathBuf,
    pub concurrency: usize,
    pub poll_secs: f64,
    pub lease_secs: f64,
    pub grace_secs: f64,
    pub worker_id: String,
    pub extra_env: Vec<(String, String)>,
    /// A program and arguments to run the daemon under (the platform
    /// rehearsal's namespace: `Rehearsal::wrapper`); empty: none.
    pub wrapper: Vec<String>,
    /// Run as this (uid, gid), as the unit's `User=` does (tests run as
    /// root): the daemon's folder is handed to that user.
    pub user: Option<(u32, u32)>,
}

impl DaemonOptions {
    pub fn new(ytdlp: &Path) -> Self {
        DaemonOptions {
            ytdlp: ytdlp.to_path_buf(),
            concurrency: 2,
            poll_secs: 60.0,
            lease_secs: 30.0,
            grace_secs: 10.0,
            worker_id: format!("test-{}", Uuid::new_v4().simple()),
            extra_env: Vec::new(),
            wrapper: Vec::new(),
            user: None,
        }
    }
}

impl Daemon {
    pub fn start(db_url: &str, opts: &DaemonOptions) -> Daemon {
        Self::spawn(db_url, opts, &["run"])
    }

    /// An empty `db_url` puts no DATABASE_URL in the environment (an env
    /// file gives it).
    pub fn spawn(db_url: &str, opts: &DaemonOptions, args: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("xtract-daemon-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("daemon.log");
        let t = tools();
        let program = env!("CARGO_BIN_EXE_xtract");
        let mut cmd = match opts.wrapper.split_first() {
            // The wrapper ends by exec-ing the daemon: same pid.
            Some((first, rest)) => {
                let mut c = tokio::process::Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        };
        cmd.kill_on_drop(true);
        cmd.args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("XTRACT_STORAGE", "local")
            .env("XTRACT_LOCAL_STORAGE_DIR", dir.path().join("audio"))
            .env("XTRACT_WORK_DIR", dir.path().join("work"))
            .env("XTRACT_ALLOW_PRIVATE_URLS", "true")
            .env("XTRACT_YTDLP", &opts.ytdlp)
            .env("XTRACT_FFMPEG", &t.ffmpeg)
            .env("XTRACT_FFPROBE", &t.ffprobe)
            .env("XTRACT_CONCURRENCY", opts.concurrency.to_string())
            .env("XTRACT_POLL_INTERVAL_SECS", opts.poll_secs.to_string())
            .env("XTRACT_LEASE_SECS", opts.lease_secs.to_string())
            .env("XTRACT_SHUTDOWN_GRACE_SECS", opts.grace_secs.to_string())
            .env("XTRACT_RETRY_BASE_SECS", "0.2")
            .env("XTRACT_RETRY_MAX_SECS", "1")
            .env("XTRACT_WORKER_ID", &opts.worker_id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"));
        if !db_url.is_empty() {
            cmd.env("DATABASE_URL", db_url);
        }
        for (k, v) in &opts.extra_env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = opts.user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("start xtract");
        Daemon { child, dir, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("daemon still running") as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to a minute) until the log says `text`.
    pub async fn wait_for_log(&self, text: &str) {
        eventually(
            &format!("the daemon to log {text:?}"),
            Duration::from_secs(60),
            || async { self.log_text().contains(text).then_some(()) },
        )
        .await
    }

    /// Panics, showing the log, unless the log says `text`.
    pub fn assert_logged(&self, text: &str) {
        let log = self.log_text();
        assert!(log.contains(text), "no {text:?} in the log:\n{log}");
    }

    /// Waits for the process to exit; panics with its log after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for daemon"),
            Err(_) => panic!(
                "daemon did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// What the process printed on stdout (one-shot commands: doctor, jobs).
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub fn audio_dir(&self) -> PathBuf {
        self.dir.path().join("audio")
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }
}

pub fn process_alive(pid: i32) -> bool {
    // A zombie still answers kill(0); read its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits (up to a minute) until every process of `pids` has ended.
pub async fn wait_ended(what: &str, pids: &[i32]) {
    eventually(what, Duration::from_secs(60), || async {
        pids.iter().all(|pid| !process_alive(*pid)).then_some(())
    })
    .await
}

/// What a one-shot command printed, and how it exited.
pub struct Ran {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The lines of stdout that start with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `xtract <args>` with a daemon's environment (DATABASE_URL = `db_url`,
/// local storage, the real tools) and waits for it to exit.
pub async fn xtract(db_url: &str, opts: &DaemonOptions, args: &[&str]) -> Ran {
    let mut process = Daemon::spawn(db_url, opts, args);
    let status = process.wait_exit(Duration::from_secs(120)).await;
    Ran {
        status,
        stdout: process.stdout_text(),
        stderr: process.log_text(),
    }
}

/// A real pgbouncer in front of a test cluster: the stand-in for Supabase's
/// poolers (Supavisor on 6543 pools by transaction, on 5432 by session).
/// Stopped when dropped.
pub struct Pgbouncer {
    child: std::process::Child,
    pub port: u16,
    _dir: TempDir,
}

impl Pgbouncer {
    /// `pool_mode`: "transaction" or "session".
    pub fn start(db: &TestDb, pool_mode: &str) -> Pgbouncer {
        use std::os::unix::fs::PermissionsExt;
        let program = std::env::var_os("XTRACT_TEST_PGBOUNCER")
            .map(PathBuf::from)
            .or_else(|| xtract::ops::config::find_program("pgbouncer"))
            .or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|p| p.exists()))
            .expect("pgbouncer not found: run scripts/ensure-deps");
        let dir = tempfile::Builder::new()
            .prefix("xtract-pgbouncer-")
            .tempdir()
            .expect("temp dir");
        let port = xtract::ops::localpg::free_port().expect("free port");
        let path = |f: &str| dir.path().join(f);
        std::fs::write(
            path("users.txt"),
            "\"postgres\" \"\"\n\"xtract_worker\" \"\"\n",
        )
        .unwrap();
        std::fs::write(
            path("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 xtract = host=127.0.0.1 port={pg} dbname=xtract\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = {pool_mode}\n\
                 default_pool_size = 4\n\
                 logfile = {log}\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                pg = db.pg.port(),
                users = path("users.txt").display(),
                log = path("pgbouncer.log").display(),
            ),
        )
        .unwrap();
        // It refuses to run as root: as root, run it as the postgres user.
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = if root {
            for f in [
                dir.path().to_path_buf(),
                path("users.txt"),
                path("pgbouncer.ini"),
            ] {
                let mode = if f.is_dir() { 0o777 } else { 0o644 };
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        // Its own process group, so that dropping it stops runuser's child too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .arg(path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Pgbouncer {
            child,
            port,
            _dir: dir,
        };
        // Ready once it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {}",
                std::fs::read_to_string(bouncer._dir.path().join("pgbouncer.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// `db_url` with the pooler's port in place of the server's.
    pub fn url(&self, db_url: &str, pg_port: u16) -> String {
        db_url.replace(&format!(":{pg_port}/"), &format!(":{}/", self.port))
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
