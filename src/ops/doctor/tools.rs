//! The programs a job runs: yt-dlp (and how old it is), ffmpeg, ffprobe, and
//! the JavaScript runtime yt-dlp needs for YouTube.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;

use super::Check;
use crate::ops::config::find_program;

/// Platforms change their sites weekly and yt-dlp follows; a release older
/// than this has probably missed fixes we need.
pub const YTDLP_MAX_AGE_DAYS: i64 = 60;

/// A program that does not answer `--version` in this long is broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `program args…` and returns the first line of its output.
async fn first_line(program: &Path, args: &[&str]) -> Result<String, String> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(VERSION_TIMEOUT, run)
        .await
        .map_err(|_| format!("no answer within {}s", VERSION_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "exited with {}: {}",
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

/// yt-dlp versions are release dates: `2026.10.26`, nightlies
/// `2026.10.26.123456`.
pub fn ytdlp_release_date(version: &str) -> Option<NaiveDate> {
    let mut parts = version.trim().split('.');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// How to upgrade the yt-dlp at `program`: with the pip of its virtualenv
/// when it has one (as scripts/install makes it).
fn ytdlp_upgrade_command(program: &Path) -> String {
    match program.parent().map(|dir| dir.join("pip")) {
        Some(pip) if pip.exists() => format!("{} install -U 'yt-dlp[default]'", pip.display()),
        _ => format!(
            "{} -U (or pip install -U 'yt-dlp[default]' where it was installed)",
            program.display()
        ),
    }
}

pub async fn check_ytdlp(program: Option<&Path>, today: NaiveDate) -> Check {
    let Some(program) = program else {
        return Check::fail(
            "yt-dlp",
            "not found on PATH or in ./.venv",
            "run scripts/install, or set XTRACT_YTDLP to its path",
        );
    };
    let version = match first_line(program, &["--version"]).await {
        Ok(v) => v,
        Err(e) => {
            return Check::fail(
                "yt-dlp",
                format!("{} does not run: {e}", program.display()),
                "reinstall it (scripts/install) or fix XTRACT_YTDLP",
            )
        }
    };
    judge_ytdlp(program, &version, today)
}

/// The verdict on a yt-dlp of `version`: the age of the release.
fn judge_ytdlp(program: &Path, version: &str, today: NaiveDate) -> Check {
    let found = format!("{version} ({})", program.display());
    match ytdlp_release_date(version) {
        None => Check::warn(
            "yt-dlp",
            format!("{found}: cannot tell its age from the version"),
            ytdlp_upgrade_command(program),
        ),
        Some(date) => {
            let age = (today - date).num_days();
            if age > YTDLP_MAX_AGE_DAYS {
                Check::warn(
                    "yt-dlp",
                    format!("{found} is {age} days old; platforms change weekly"),
                    format!("upgrade: {}", ytdlp_upgrade_command(program)),
                )
            } else {
                Check::ok("yt-dlp", format!("{found}, {age} days old"))
            }
        }
    }
}

/// ffmpeg and ffprobe print `ffmpeg version 5.1.6-0+deb12u1 Copyright …`.
pub async fn check_ffmpeg(name: &'static str, var: &str, program: Option<&Path>) -> Check {
    let Some(program) = program else {
        return Check::fail(
            name,
            "not found on PATH",
            format!("apt-get install ffmpeg, or set {var}"),
        );
    };
    match first_line(program, &["-version"]).await {
        Ok(line) => {
            let version = line
                .split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .unwrap_or("(unknown version)");
            Check::ok(name, format!("{version} ({})", program.display()))
        }
        Err(e) => Check::fail(
            name,
            format!("{} does not run: {e}", program.display()),
            format!("reinstall ffmpeg, or fix {var}"),
        ),
    }
}

/// Runtimes yt-dlp can use for YouTube's JavaScript challenges, best first.
const JS_RUNTIMES: &[&str] = &["deno", "node", "bun", "qjs", "quickjs"];

pub fn check_js_runtime() -> Check {
    let found: Vec<String> = JS_RUNTIMES
        .iter()
        .filter_map(|name| find_program(name).map(|p| format!("{name} ({})", p.display())))
        .collect();
    if found.is_empty() {
        return Check::warn(
            "js runtime",
            "none of deno, node, bun, quickjs on PATH",
            "YouTube needs one: yt-dlp runs YouTube's player JavaScript to get download links; install deno (https://deno.com)",
        );
    }
    if found.iter().any(|f| f.starts_with("deno ")) {
        Check::ok("js runtime", found.join(", "))
    } else {
        // yt-dlp enables only deno unless given --js-runtimes, and xtract
        // runs it with --ignore-config and without that option.
        Check::warn(
            "js runtime",
            format!("{} but no deno", found.join(", ")),
            "yt-dlp uses only deno unless told otherwise: install deno (https://deno.com) for YouTube",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    #[test]
    fn release_dates_are_read_from_stable_and_nightly_versions() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 26);
        assert_eq!(ytdlp_release_date("2026.10.26"), d);
        assert_eq!(ytdlp_release_date("2026.10.26.233105\n"), d);
        assert_eq!(ytdlp_release_date("unknown"), None);
    }

    #[test]
    fn an_old_ytdlp_is_a_warning_with_the_upgrade_command() {
        let venv = tempfile::tempdir().unwrap();
        std::fs::write(venv.path().join("pip"), "").unwrap();
        let program = venv.path().join("yt-dlp");

        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let fresh = judge_ytdlp(&program, "2026.01.02", today);
        assert_eq!(fresh.level, Level::Ok, "{fresh}");

        let later = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let old = judge_ytdlp(&program, "2026.01.02", later);
        assert_eq!(old.level, Level::Warn, "{old}");
        let fix = old.fix.unwrap();
        assert!(fix.contains("/pip install -U 'yt-dlp[default]'"), "{fix}");
    }
}
