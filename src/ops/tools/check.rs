//! Is a new virtualenv fit to switch to? Its yt-dlp runs and prints its
//! version, then downloads a short clip served on 127.0.0.1 through the
//! daemon's own yt-dlp call (`pipeline::ytdlp::download`: the same options,
//! the same output reading), so a release that dropped an option xtract
//! passes, or whose generic extractor or downloader broke, fails here
//! instead of on users' jobs. deno must run, and the impersonation and
//! YouTube libraries must import, when they are there.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::Platform;
use crate::ops::media_server::MediaServer;
use crate::pipeline::ytdlp;

/// Half a second of a 440 Hz tone, AAC in MP4 (2 KB), made with ffmpeg.
const CLIP: &[u8] = include_bytes!("check.m4a");

/// Each step gets this long; a healthy one takes a second or two.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Libraries worth importing when pip put them there: without them yt-dlp
/// quietly loses impersonation (TikTok, Instagram) or YouTube's challenges.
const IMPORTS: &[(&str, &str)] = &[("curl_cffi", "curl_cffi"), ("yt_dlp_ejs", "yt_dlp_ejs")];

async fn first_line(program: &Path, args: &[&str]) -> Result<String, String> {
    let run = crate::pipeline::child_env::command(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(STEP_TIMEOUT, run)
        .await
        .map_err(|_| format!("{} {} did not answer", program.display(), args.join(" ")))?
        .map_err(|e| format!("{} does not run: {e}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} {} exited with {}: {}",
            program.display(),
            args.join(" "),
            out.status,
            stderr.lines().last().unwrap_or("").trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Checks the virtualenv at `venv`; a one-line account of what passed, or
/// what failed.
pub async fn check(venv: &Path) -> Result<String, String> {
    let bin = venv.join("bin");
    let ytdlp = bin.join("yt-dlp");
    let version = first_line(&ytdlp, &["--version"]).await?;
    if version.is_empty() {
        return Err("yt-dlp --version printed nothing".into());
    }
    let mut report = vec![format!("yt-dlp {version} runs")];
    report.push(extract_clip(&ytdlp).await?);
    let deno = bin.join("deno");
    if deno.exists() {
        let line = first_line(&deno, &["--version"]).await?;
        report.push(format!("{line} runs"));
    }
    let present: Vec<&str> = IMPORTS
        .iter()
        .filter(|(_, module)| has_module(venv, module))
        .map(|(_, module)| *module)
        .collect();
    if !present.is_empty() {
        let code = format!("import {}", present.join(", "));
        first_line(&bin.join("python"), &["-c", &code]).await?;
        report.push(format!("{} import", present.join(" and ")));
    }
    Ok(report.join("; "))
}

/// Whether pip installed `module` (a folder in site-packages).
fn has_module(venv: &Path, module: &str) -> bool {
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten()
        .any(|py| py.path().join("site-packages").join(module).is_dir())
}

/// Serves the clip on 127.0.0.1 and downloads it as a job would.
async fn extract_clip(ytdlp: &Path) -> Result<String, String> {
    let served = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    std::fs::write(served.path().join("check.m4a"), CLIP)
        .map_err(|e| format!("cannot write the clip: {e}"))?;
    let server = MediaServer::start(served.path())
        .await
        .map_err(|e| format!("cannot serve the clip on 127.0.0.1: {e}"))?;
    let url = server.url("check.m4a");
    let work = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let limits = ytdlp::Limits {
        max_duration: Duration::from_secs(60),
        max_filesize_bytes: 10 * 1024 * 1024,
    };
    let cancel = CancellationToken::new();
    let download = ytdlp::download(
        ytdlp,
        None,
        &url,
        work.path(),
        "ba[ext=m4a]/ba/b",
        &[],
        Platform::Other,
        limits,
        &cancel,
        None,
        None,
    );
    // Dropping the download on timeout kills yt-dlp's process group.
    let got = tokio::time::timeout(STEP_TIMEOUT, download)
        .await
        .map_err(|_| format!("downloading {url} took over {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("could not download {url}: {} ({})", e.detail, e.code))?;
    let bytes =
        std::fs::read(&got.path).map_err(|e| format!("cannot read what it downloaded: {e}"))?;
    if bytes != CLIP {
        return Err(format!(
            "it downloaded {} bytes that differ from the {}-byte clip",
            bytes.len(),
            CLIP.len()
        ));
    }
    Ok(format!(
        "extracted a {}-byte clip from 127.0.0.1 as a job would",
        CLIP.len()
    ))
}
