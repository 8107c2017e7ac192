//! One yt-dlp run: download the best audio (or the best muxed file when the
//! site has no audio-only format), learning the metadata and the final path
//! from the same run, and the progress as it goes. It runs in a child of the
//! warm helper (`warm`), or as the command line, which prints them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::child_env;
use super::classify;
use super::process::{self, RunError};
use super::warm::{self, Gate, WarmError, WarmYtdlp};
use crate::domain::{ErrorCode, JobError, MediaMeta, Platform};

#[derive(Debug)]
pub struct Download {
    pub path: PathBuf,
    pub meta: MediaMeta,
}

/// How yt-dlp runs, which decides how it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The command line: facts, path and progress printed on stdout.
    Cli,
    /// A child of the warm helper: they come as structured events.
    Warm,
}

/// What one run left us with, however it ran.
struct Outcome {
    /// The exit code (None: killed by a signal).
    exit: Option<i32>,
    stdout_lines: Vec<String>,
    stderr: String,
    /// The facts of each item started (one, but for a post with several
    /// media).
    metas: Vec<MediaMeta>,
    path: Option<PathBuf>,
}

/// Limits enforced by yt-dlp before the download and by us during it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_duration: Duration,
    pub max_filesize_bytes: u64,
}

/// Receives download progress in percent.
pub type ProgressFn = Arc<dyn Fn(f32) + Send + Sync>;

const META_PREFIX: &str = "xtract-meta ";
const PATH_PREFIX: &str = "xtract-file ";
const PROGRESS_PREFIX: &str = "xtract-progress ";

/// The argument list, separate so tests can read it.
pub fn arguments(
    url: &str,
    dir: &Path,
    format: &str,
    limits: Limits,
    extra: &[String],
    mode: Mode,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ignore-config",
        // --print implies --quiet, which hides why a filter or the size
        // limit skipped the video; we need those lines.
        "--no-quiet",
        "--no-playlist",
        "--no-mtime",
        // The file's cover art (ffmpeg or the in-process cut attaches it
        // where the container holds one); a thumbnail that fails is only a
        // warning.
        "--write-thumbnail",
        "--socket-timeout",
        "30",
        "--retries",
        "3",
        "--fragment-retries",
        "3",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    match mode {
        Mode::Cli => args.extend([
            "--newline".into(),
            "--progress".into(),
            "--print".into(),
            format!(
                "video:{META_PREFIX}%(.{{id,title,duration,uploader,extractor_key,thumbnail,track,artists}})j"
            ),
            "--print".into(),
            format!("after_move:{PATH_PREFIX}%(filepath)s"),
            "--progress-template".into(),
            format!(
                "download:{PROGRESS_PREFIX}%(progress.downloaded_bytes)s %(progress.total_bytes)s %(progress.total_bytes_estimate)s"
            ),
        ]),
        // The helper's hooks report them.
        Mode::Warm => args.push("--no-progress".into()),
    }
    args.extend([
        "-f".into(),
        format.into(),
        "-o".into(),
        format!("{}/source.%(ext)s", dir.display()),
        // Refused before any media byte is fetched, when the site says how
        // long the video is; `<=?` lets videos of unknown length through.
        // Two filters, so that the rejection line names which one refused
        // (filter_rejection). The length filter *breaks*: a post with
        // several items must not hand us its second video because the
        // first was too long.
        "--match-filters".into(),
        "!is_live".into(),
        "--break-match-filters".into(),
        format!("duration <=? {}", limits.max_duration.as_secs()),
        // One job, one file. A link that yields several items (an Instagram
        // post with several media runs as a playlist whatever --no-playlist
        // says) stops after the first item downloaded; items without video
        // fail one by one on the way (yt-dlp goes on after an item's error),
        // and exit code 101 says the limit was reached.
        "--max-downloads".into(),
        "1".into(),
        // Only the plain HTTP downloader honours this; the progress watch
        // below covers HLS/DASH.
        "--max-filesize".into(),
        limits.max_filesize_bytes.to_string(),
    ]);
    args.extend(extra.iter().cloned());
    args.push("--".into());
    args.push(url.into());
    args
}

/// Whether the yt-dlp at `ytdlp` can impersonate browsers: curl_cffi
/// installed beside it (`yt-dlp[default,curl-cffi]`, as `xtract tools
/// upgrade` installs it), looked for in the site-packages of the Python
/// its `#!` line names, without starting Python. A yt-dlp installed some
/// other way reads as unable, and TikTok's phone strategy then sends only a
/// phone's User-Agent, as the old service did.
pub fn can_impersonate(ytdlp: &Path) -> bool {
    let Some(python) = super::warm::interpreter_of(ytdlp) else {
        return false;
    };
    let Some(prefix) = Path::new(&python[0]).parent().and_then(Path::parent) else {
        return false;
    };
    let Ok(lib) = std::fs::read_dir(prefix.join("lib")) else {
        return false;
    };
    lib.flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("python"))
        .any(|d| {
            ["site-packages", "dist-packages"]
                .iter()
                .any(|p| d.path().join(p).join("curl_cffi/__init__.py").is_file())
        })
}

/// `--playlist-items` for the `n`-th item of a post with several media:
/// that item first, then the others from the start, so that a photo there
/// leads to the post's first video (items without video are skipped, and
/// `--max-downloads 1` stops after the first file). A link to a single
/// video ignores it.
pub fn playlist_items(n: u32) -> String {
    format!("{n},1:")
}

/// The file [`private_options`] writes, in a run's own folder.
const PRIVATE_OPTIONS: &str = "private.conf";

/// Options that must not appear on yt-dlp's command line, which `ps` shows
/// to every local user: credentials (the egress guard's per-download proxy
/// password, any proxy of the future with a user and password). They go
/// into a file in the run's own folder that only this user may read, named
/// by `--config-locations`, which yt-dlp reads even with `--ignore-config`
/// (and it hands a proxy on to ffmpeg in the environment, not the command
/// line). Returns the arguments that name the file.
pub fn private_options(dir: &Path, options: &[(&str, &str)]) -> std::io::Result<Vec<String>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(PRIVATE_OPTIONS);
    // yt-dlp splits the file as a POSIX shell would: each value quoted.
    let text: String = options
        .iter()
        .map(|(flag, value)| format!("{flag} '{}'\n", value.replace('\'', "'\"'\"'")))
        .collect();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?
        .write_all(text.as_bytes())?;
    Ok(vec![
        "--config-locations".into(),
        path.display().to_string(),
    ])
}

/// Downloads `url` into `dir`, in a child of the warm helper when there is
/// one (`warm`), else with the command line.
#[allow(clippy::too_many_arguments)]
pub async fn download(
    ytdlp: &Path,
    warm: Option<&WarmYtdlp>,
    url: &str,
    dir: &Path,
    format: &str,
    extra: &[String],
    platform: Platform,
    limits: Limits,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
    gate: Option<Gate>,
) -> Result<Download, JobError> {
    // Over the size limit during the download: stop it ourselves.
    let too_big = CancellationToken::new();
    let run_cancel = cancel.child_token();
    let watch = {
        let run_cancel = run_cancel.clone();
        let too_big = too_big.clone();
        move |done: u64, total: Option<u64>| {
            if done > limits.max_filesize_bytes
                || total.is_some_and(|t| t > limits.max_filesize_bytes)
            {
                too_big.cancel();
                run_cancel.cancel();
            } else if let (Some(total), Some(p)) = (total, progress.as_ref()) {
                if total > 0 {
                    p((done as f64 * 100.0 / total as f64).min(100.0) as f32);
                }
            }
        }
    };
    let stopped = |e: RunError| match e {
        RunError::Cancelled(_) if too_big.is_cancelled() => too_large(limits),
        e => JobError::internal(e.to_string()),
    };
    let mut outcome = None;
    if let Some(warm) = warm {
        let argv = arguments(url, dir, format, limits, extra, Mode::Warm);
        let watch = watch.clone();
        let on_event = move |e: &warm::Event| {
            if let warm::Event::Progress((done, total)) = e {
                watch(*done as u64, total.map(|t| t as u64));
            }
        };
        match warm
            .run(ytdlp, &argv, dir, &run_cancel, gate.as_ref(), on_event)
            .await
        {
            Ok(f) => {
                outcome = Some(Outcome {
                    exit: Some(f.exit),
                    metas: f.infos.into_iter().map(meta_of).collect(),
                    path: f.file,
                    stdout_lines: f.stdout_lines,
                    stderr: f.stderr,
                })
            }
            Err(WarmError::Unavailable) => {}
            Err(WarmError::Run(e)) => return Err(stopped(e)),
            Err(WarmError::Gate(e)) => return Err(e),
        }
    }
    let outcome = match outcome {
        Some(o) => o,
        None => {
            // The command line cannot be held at its first request: its
            // turn is taken as it starts (its first request follows after
            // Python's start-up).
            if let Some(gate) = &gate {
                gate().await?;
            }
            run_cli(ytdlp, url, dir, format, extra, limits, &run_cancel, watch)
                .await
                .map_err(stopped)?
        }
    };
    finish(outcome, platform, limits)
}

/// yt-dlp's command line, reporting progress to `watch`.
#[allow(clippy::too_many_arguments)]
async fn run_cli(
    ytdlp: &Path,
    url: &str,
    dir: &Path,
    format: &str,
    extra: &[String],
    limits: Limits,
    cancel: &CancellationToken,
    mut watch: impl FnMut(u64, Option<u64>) + Send,
) -> Result<Outcome, RunError> {
    let mut cmd = child_env::command(ytdlp);
    cmd.args(arguments(url, dir, format, limits, extra, Mode::Cli))
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1");
    let on_line = move |line: &str| {
        if let Some((done, total)) = parse_progress(line) {
            watch(done, total);
        }
    };
    let finished = process::run(cmd, cancel, on_line).await?;
    let (metas, path) = read_stdout(&finished.stdout_lines);
    Ok(Outcome {
        exit: finished.status.code(),
        stdout_lines: finished.stdout_lines,
        stderr: finished.stderr,
        metas,
        path,
    })
}

/// The file, or why there is none, from what the run left (however it ran).
fn finish(outcome: Outcome, platform: Platform, limits: Limits) -> Result<Download, JobError> {
    // The facts of the item downloaded: the last one yt-dlp started.
    let meta = outcome.metas.last().cloned().unwrap_or_default();
    let path = outcome
        .path
        .filter(|p| p.metadata().map(|m| m.len() > 0).unwrap_or(false));
    // 101: --max-downloads stopped yt-dlp after the file we asked for.
    let exited_well = matches!(outcome.exit, Some(0 | MAX_DOWNLOADS_REACHED));
    let post = Post::read(&outcome.stdout_lines, &outcome.stderr);
    // More than one item started: an earlier video of the post failed and
    // yt-dlp went on to the next, whose audio is not what the link names.
    if let Some(p) = path.filter(|_| exited_well && outcome.metas.len() <= 1) {
        return Ok(Download { path: p, meta });
    }
    let stderr = if post.is_some() {
        without_photo_items(&outcome.stderr)
    } else {
        outcome.stderr.clone()
    };
    if stderr.contains("ERROR:") {
        return Err(classify::classify_ytdlp(&stderr).job_error(platform));
    }
    // No error of its own: a filter or the size limit turned the video down
    // (exit 0, or 101 for the breaking length filter), or every item of a
    // post was a photo.
    let all_output = format!("{}\n{}", outcome.stdout_lines.join("\n"), outcome.stderr);
    if meta
        .duration
        .is_some_and(|d| d > limits.max_duration.as_secs_f64())
    {
        return Err(too_long(limits));
    }
    if let Some(d) = classify::filter_rejection(&all_output) {
        return Err(match d.code {
            ErrorCode::TooLarge => too_large(limits),
            ErrorCode::TooLong => too_long(limits),
            code => JobError::new(code, Some(platform), d.detail),
        });
    }
    if let Some(post) = post {
        if post.photo_items > 0 {
            return Err(JobError::new(
                ErrorCode::NoFormats,
                Some(platform),
                format!(
                    "none of the post's items has a video ({} without formats)",
                    post.photo_items
                ),
            )
            .with_message("This post has only photos: there is no video to take the audio from."));
        }
    }
    if !exited_well {
        return Err(classify::classify_ytdlp(&outcome.stderr).job_error(platform));
    }
    Err(JobError::internal(format!(
        "yt-dlp exited {} but wrote no file; output: {}",
        outcome.exit.unwrap_or(-1),
        last_chars(&all_output, 500)
    )))
}

/// yt-dlp's exit code when `--max-downloads` (or a breaking filter) stopped
/// it.
const MAX_DOWNLOADS_REACHED: i32 = 101;

/// What yt-dlp said about a link that yields several items (a playlist):
/// an Instagram post with several media.
struct Post {
    /// Items that failed for having no formats: photos.
    photo_items: usize,
}

impl Post {
    fn read(stdout: &[String], stderr: &str) -> Option<Post> {
        let playlist = stdout
            .iter()
            .any(|l| l.starts_with("[download] Downloading playlist:"));
        playlist.then(|| Post {
            photo_items: stderr.lines().filter(|l| is_photo_item_error(l)).count(),
        })
    }
}

/// The error lines of a post's photo items: yt-dlp's format check fails
/// them ("No video formats found!"), and goes on to the next item.
fn is_photo_item_error(line: &str) -> bool {
    line.starts_with("ERROR:") && line.contains("No video formats found!")
}

/// stderr without the errors of photo items, which are no failure of the
/// job: the item it wanted is elsewhere in the post.
fn without_photo_items(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !is_photo_item_error(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// "90 seconds", "45 minutes", "3 hours": limits as people say them.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs < 120 {
        (secs, "second")
    } else if secs < 2 * 3600 {
        (secs / 60, "minute")
    } else {
        (secs / 3600, "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

pub fn too_long(limits: Limits) -> JobError {
    JobError::new(
        ErrorCode::TooLong,
        None,
        format!(
            "longer than XTRACT_MAX_DURATION_SECS={}",
            limits.max_duration.as_secs()
        ),
    )
    .with_message(format!(
        "This video is too long: the limit is {}.",
        human(limits.max_duration)
    ))
}

pub fn too_large(limits: Limits) -> JobError {
    let mb = limits.max_filesize_bytes / (1024 * 1024);
    JobError::new(
        ErrorCode::TooLarge,
        None,
        format!("larger than XTRACT_MAX_FILESIZE_MB={mb}"),
    )
    .with_message(format!("This video is too large: the limit is {mb} MB."))
}

/// What the command line printed on stdout: the facts of each item it
/// started, and the final file (the last one it moved into place).
fn read_stdout(lines: &[String]) -> (Vec<MediaMeta>, Option<PathBuf>) {
    let metas = lines
        .iter()
        .filter_map(|l| l.strip_prefix(META_PREFIX))
        .map(|json| meta_of(serde_json::from_str(json).unwrap_or_default()))
        .collect();
    let path = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(PATH_PREFIX))
        .map(PathBuf::from);
    (metas, path)
}

/// A video's facts from yt-dlp's info JSON (the command line's line or
/// the warm helper's event): what does not read as facts is no facts.
fn meta_of(info: serde_json::Value) -> MediaMeta {
    serde_json::from_value::<MediaMeta>(info)
        .unwrap_or_default()
        .cleaned()
}

/// `xtract-progress <done> <total|NA> <estimate|NA>` → (done, total).
fn parse_progress(line: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = line.strip_prefix(PROGRESS_PREFIX)?.split_whitespace();
    let done = parts.next()?.parse::<f64>().ok()? as u64;
    let total = parts.next().and_then(|t| t.parse::<f64>().ok());
    let estimate = parts.next().and_then(|t| t.parse::<f64>().ok());
    Some((done, total.or(estimate).map(|t| t as u64)))
}

fn last_chars(s: &str, n: usize) -> &str {
    let s = s.trim();
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_is_read_from_the_site_packages_of_yt_dlps_python() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let python = venv.join("bin/python3");
        std::fs::write(&python, "").unwrap();
        let ytdlp = venv.join("bin/yt-dlp");
        std::fs::write(
            &ytdlp,
            format!("#!{}\nfrom yt_dlp import main\n", python.display()),
        )
        .unwrap();
        let site = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(site.join("yt_dlp")).unwrap();
        assert!(!can_impersonate(&ytdlp), "yt-dlp alone");
        std::fs::create_dir_all(site.join("curl_cffi")).unwrap();
        std::fs::write(site.join("curl_cffi/__init__.py"), "").unwrap();
        assert!(can_impersonate(&ytdlp));
        let standalone = dir.path().join("yt-dlp_linux");
        std::fs::write(&standalone, "\x7fELF").unwrap();
        assert!(!can_impersonate(&standalone));
    }

    #[test]
    fn the_url_comes_after_a_double_dash() {
        let limits = Limits {
            max_duration: Duration::from_secs(60),
            max_filesize_bytes: 1000,
        };
        let args = arguments(
            "-x.example",
            Path::new("/tmp/j"),
            "ba/b",
            limits,
            &[],
            Mode::Cli,
        );
        assert_eq!(args[args.len() - 2], "--");
        assert_eq!(args[args.len() - 1], "-x.example");
        assert!(args.contains(&"--ignore-config".to_string()));
        assert!(args.contains(&"--no-playlist".to_string()));
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("--match-filters"), "!is_live");
        assert_eq!(after("--break-match-filters"), "duration <=? 60");
        assert_eq!(after("--max-downloads"), "1");
    }

    #[test]
    fn private_options_go_to_a_file_only_we_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let args = private_options(
            dir.path(),
            &[
                ("--proxy", "http://xtract:s3cret@127.0.0.1:9"),
                ("--x", "it's"),
            ],
        )
        .unwrap();
        assert_eq!(args[0], "--config-locations");
        assert!(!args.join(" ").contains("s3cret"));
        let file = Path::new(&args[1]);
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "--proxy 'http://xtract:s3cret@127.0.0.1:9'\n--x 'it'\"'\"'s'\n"
        );
    }

    #[test]
    fn limits_read_like_people_say_them() {
        assert_eq!(human(Duration::from_secs(1)), "1 second");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human(Duration::from_secs(45 * 60)), "45 minutes");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3 hours");
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        /// JSON values as a site's metadata may hold them: text with any
        /// character (NUL among them), huge text, numbers of any size and
        /// sign, and values of the wrong kind.
        fn value() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                ".{0,30}".prop_map(serde_json::Value::from),
                "[a-z\\x00\\n]{0,10}".prop_map(serde_json::Value::from),
                (1usize..4).prop_map(|k| serde_json::Value::from("t\0".repeat(k * 2_000))),
                any::<f64>()
                    .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                    .prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
                Just(serde_json::json!([1, "x"])),
                Just(serde_json::json!({"nested": {"x": 1}})),
            ]
        }

        fn info() -> impl Strategy<Value = serde_json::Value> {
            proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "id",
                    "title",
                    "duration",
                    "uploader",
                    "extractor_key",
                    "thumbnail",
                    "other",
                ]),
                value(),
                0..7,
            )
            .prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            })
        }

        /// Lines as yt-dlp's command line prints them with our templates,
        /// and anything else it prints.
        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                info().prop_map(|i| format!("{META_PREFIX}{i}")),
                ".{0,40}".prop_map(|t| format!("{META_PREFIX}{t}")),
                ".{0,40}".prop_map(|t| format!("{PATH_PREFIX}{t}")),
                (".{0,12}", ".{0,12}", ".{0,12}")
                    .prop_map(|(a, b, c)| format!("{PROGRESS_PREFIX}{a} {b} {c}")),
                (any::<f64>(), any::<f64>())
                    .prop_map(|(a, b)| format!("{PROGRESS_PREFIX}{a} {b} NA")),
                ".{0,60}",
            ]
        }

        proptest! {
            #![proptest_config(crate::proptest_config(300))]

            /// Whatever yt-dlp prints, reading it never panics; the facts
            /// taken from it can be stored (no NUL, which PostgreSQL's text
            /// refuses: the audio row would be refused and the job fail)
            /// and are of bounded length; a length is a number of seconds;
            /// the file is the last one announced.
            #[test]
            fn any_output_reads_as_storable_facts(lines in proptest::collection::vec(line(), 0..8)) {
                for l in &lines {
                    if let Some((done, total)) = parse_progress(l) {
                        let _ = (done, total);
                    }
                }
                let (metas, path) = read_stdout(&lines);
                prop_assert_eq!(
                    metas.len(),
                    lines.iter().filter(|l| l.starts_with(META_PREFIX)).count()
                );
                for m in &metas {
                    for text in [&m.id, &m.title, &m.uploader, &m.extractor_key, &m.thumbnail]
                        .into_iter()
                        .flatten()
                    {
                        prop_assert!(!text.contains('\0'), "NUL in {:?}", &text[..text.len().min(40)]);
                        prop_assert!(text.chars().count() <= 2048, "{} characters", text.len());
                    }
                    if let Some(d) = m.duration {
                        prop_assert!(d.is_finite() && d >= 0.0, "duration {}", d);
                    }
                }
                let announced = lines.iter().rev().find_map(|l| l.strip_prefix(PATH_PREFIX));
                prop_assert_eq!(path.as_deref(), announced.map(Path::new));
            }

            /// The warm helper's lines: any of them reads as an event or is
            /// skipped, and an info event gives the same facts.
            #[test]
            fn any_helper_line_reads_as_an_event_or_nothing(i in info(), junk in ".{0,60}") {
                let _ = serde_json::from_str::<warm::Event>(&junk);
                let line = serde_json::json!({ "info": i }).to_string();
                let Ok(warm::Event::Info(v)) = serde_json::from_str::<warm::Event>(&line) else {
                    panic!("an info line did not read as one: {line:.80}");
                };
                let from_helper = meta_of(v);
                let (from_cli, _) = read_stdout(&[format!("{META_PREFIX}{i}")]);
                prop_assert_eq!(&from_cli[0], &from_helper);
            }
        }
    }

    #[test]
    fn progress_lines_parse_with_and_without_totals() {
        assert_eq!(
            parse_progress("xtract-progress 100 1000 NA"),
            Some((100, Some(1000)))
        );
        assert_eq!(
            parse_progress("xtract-progress 100 NA 2000.5"),
            Some((100, Some(2000)))
        );
        assert_eq!(parse_progress("xtract-progress 7 NA NA"), Some((7, None)));
        assert_eq!(parse_progress("[download] 5%"), None);
    }
}
