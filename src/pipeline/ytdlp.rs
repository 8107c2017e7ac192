//! One yt-dlp run: download the best audio (or the best muxed file when the
//! site has no audio-only format), learning the metadata and the final path
//! from the same run, and the progress as it goes. It runs in a child of the
//! warm helper (`warm`), or as the command line, which prints them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::classify;
use super::process::{self, RunError};
use super::warm::{self, WarmError, WarmYtdlp};
use super::Platform;
use crate::error::{ErrorCode, JobError};

/// Media facts printed by yt-dlp before it downloads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MediaMeta {
    pub id: Option<String>,
    pub title: Option<String>,
    pub duration: Option<f64>,
    pub uploader: Option<String>,
    pub extractor_key: Option<String>,
}

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
    success: bool,
    stdout_lines: Vec<String>,
    stderr: String,
    meta: Option<MediaMeta>,
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
                "video:{META_PREFIX}%(.{{id,title,duration,uploader,extractor_key}})j"
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
        "--match-filters".into(),
        format!("!is_live & duration <=? {}", limits.max_duration.as_secs()),
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
        match warm.run(ytdlp, &argv, dir, &run_cancel, on_event).await {
            Ok(f) => {
                outcome = Some(Outcome {
                    success: f.exit == 0,
                    meta: f.info.and_then(|v| serde_json::from_value(v).ok()),
                    path: f.file,
                    stdout_lines: f.stdout_lines,
                    stderr: f.stderr,
                })
            }
            Err(WarmError::Unavailable) => {}
            Err(WarmError::Run(e)) => return Err(stopped(e)),
        }
    }
    let outcome = match outcome {
        Some(o) => o,
        None => run_cli(ytdlp, url, dir, format, extra, limits, &run_cancel, watch)
            .await
            .map_err(stopped)?,
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
    let mut cmd = Command::new(ytdlp);
    cmd.args(arguments(url, dir, format, limits, extra, Mode::Cli))
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1");
    let on_line = move |line: &str| {
        if let Some((done, total)) = parse_progress(line) {
            watch(done, total);
        }
    };
    let finished = process::run(cmd, cancel, on_line).await?;
    let meta = finished
        .stdout_lines
        .iter()
        .find_map(|l| l.strip_prefix(META_PREFIX))
        .and_then(|json| serde_json::from_str::<MediaMeta>(json).ok());
    let path = finished
        .stdout_lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(PATH_PREFIX))
        .map(PathBuf::from);
    Ok(Outcome {
        success: finished.status.success(),
        stdout_lines: finished.stdout_lines,
        stderr: finished.stderr,
        meta,
        path,
    })
}

/// The file, or why there is none.
fn finish(outcome: Outcome, platform: Platform, limits: Limits) -> Result<Download, JobError> {
    let meta = outcome.meta.unwrap_or_default();
    if !outcome.success {
        let d = classify::classify_ytdlp(&outcome.stderr);
        return Err(JobError::new(d.code, Some(platform), d.detail));
    }
    // yt-dlp exits 0 having written nothing when a filter or the size limit
    // rejected the video.
    let all_output = format!("{}\n{}", outcome.stdout_lines.join("\n"), outcome.stderr);
    match outcome.path {
        Some(p) if p.metadata().map(|m| m.len() > 0).unwrap_or(false) => {
            Ok(Download { path: p, meta })
        }
        _ => {
            if meta
                .duration
                .is_some_and(|d| d > limits.max_duration.as_secs_f64())
            {
                return Err(too_long(limits));
            }
            if let Some(d) = classify::filter_rejection(&all_output) {
                return Err(match d.code {
                    ErrorCode::TooLarge => too_large(limits),
                    // Our filter is "!is_live & duration <=? N": a video
                    // within the limit (or of unknown length, as live
                    // streams are) was turned down for being live.
                    _ if meta
                        .duration
                        .is_some_and(|d| d > limits.max_duration.as_secs_f64()) =>
                    {
                        too_long(limits)
                    }
                    _ => JobError::new(ErrorCode::LiveNotStarted, Some(platform), d.detail),
                });
            }
            Err(JobError::internal(format!(
                "yt-dlp exited 0 but wrote no file; output: {}",
                last_chars(&all_output, 500)
            )))
        }
    }
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
        assert!(args.contains(&"!is_live & duration <=? 60".to_string()));
    }

    #[test]
    fn limits_read_like_people_say_them() {
        assert_eq!(human(Duration::from_secs(1)), "1 second");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human(Duration::from_secs(45 * 60)), "45 minutes");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3 hours");
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
