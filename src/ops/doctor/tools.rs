//! The programs a job runs: yt-dlp (and how old it is), ffmpeg, ffprobe, and
//! the JavaScript runtime yt-dlp needs for YouTube.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;

use super::Check;
use crate::ops::config::find_program;
use crate::ops::tools::Channel;

/// A program that does not answer `--version` in this long is broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `program args…` and returns the first line of its output.
async fn first_line(program: &Path, args: &[&str]) -> Result<String, String> {
    let run = crate::pipeline::child_env::command(program)
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

/// How to upgrade the yt-dlp at `program`: `xtract tools upgrade` where it
/// manages the virtualenv (`<dir>/venv` beside `<dir>/venvs`, as
/// scripts/install sets it up), else the pip of its virtualenv.
fn ytdlp_upgrade_command(program: &Path, channel: Channel) -> String {
    let bin = program.parent();
    let venv = bin.and_then(Path::parent);
    if let Some(venv) = venv.filter(|v| v.file_name().is_some_and(|n| n == "venv")) {
        if let Some(dir) = venv.parent().filter(|d| d.join("venvs").is_dir()) {
            let flag = if dir == Path::new("/opt/xtract") {
                String::new()
            } else {
                format!(" --dir {}", dir.display())
            };
            return format!(
                "xtract tools upgrade{flag} (xtract-upgrade.timer runs it daily: systemctl status xtract-upgrade.timer)"
            );
        }
    }
    let pre = match channel {
        Channel::Nightly => " --pre",
        Channel::Stable => "",
    };
    match bin.map(|dir| dir.join("pip")) {
        Some(pip) if pip.exists() => format!(
            "{} install -U{pre} 'yt-dlp[default,curl-cffi]'",
            pip.display()
        ),
        _ => format!(
            "pip install -U{pre} 'yt-dlp[default,curl-cffi]' where {} was installed",
            program.display()
        ),
    }
}

pub async fn check_ytdlp(program: Option<&Path>, today: NaiveDate, channel: Channel) -> Check {
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
    judge_ytdlp(program, &version, today, channel)
}

/// The verdict on a yt-dlp of `version`: the age of the release against
/// the channel's limit (XTRACT_YTDLP_CHANNEL). Sites change weekly and
/// yt-dlp follows within days: nightlies come out on most days, so one
/// older than 3 days means the upgrade is not running; a stable release is
/// about monthly.
fn judge_ytdlp(program: &Path, version: &str, today: NaiveDate, channel: Channel) -> Check {
    let found = format!(
        "{version} ({}: {})",
        program.display(),
        crate::ops::config::program_origin("XTRACT_YTDLP", program)
    );
    let limit = channel.max_age_days();
    match ytdlp_release_date(version) {
        None => Check::warn(
            "yt-dlp",
            format!("{found}: cannot tell its age from the version ({channel} channel)"),
            ytdlp_upgrade_command(program, channel),
        ),
        Some(date) => {
            let age = (today - date).num_days();
            if age > limit {
                Check::warn(
                    "yt-dlp",
                    format!(
                        "{found} is {age} days old, over {limit} on the {channel} channel; platforms change weekly"
                    ),
                    format!("upgrade: {}", ytdlp_upgrade_command(program, channel)),
                )
            } else {
                Check::ok(
                    "yt-dlp",
                    format!("{found}, {age} days old ({channel} channel)"),
                )
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

/// yt-dlp looks for a runtime in its own virtualenv's bin/ first (where
/// `xtract tools upgrade` installs deno from PyPI), then on PATH
/// (yt_dlp/utils/_jsruntime.py, `_find_exe`); so does this check.
pub fn check_js_runtime(ytdlp: Option<&Path>) -> Check {
    let beside = ytdlp.and_then(Path::parent);
    let find = |name: &str| {
        beside
            .map(|bin| bin.join(name))
            .filter(|p| p.is_file())
            .or_else(|| find_program(name))
    };
    let found: Vec<String> = JS_RUNTIMES
        .iter()
        .filter_map(|name| find(name).map(|p| format!("{name} ({})", p.display())))
        .collect();
    if found.is_empty() {
        return Check::warn(
            "js runtime",
            "none of deno, node, bun, quickjs beside yt-dlp or on PATH",
            "YouTube needs one: yt-dlp runs YouTube's player JavaScript to get download links; `xtract tools upgrade` installs deno into yt-dlp's virtualenv",
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
            "yt-dlp uses only deno unless told otherwise: `xtract tools upgrade` installs it into yt-dlp's virtualenv",
        )
    }
}

/// The warm yt-dlp helper (pipeline/warm.rs): started once as the daemon
/// would, so an operator sees whether jobs get it or pay for a yt-dlp
/// start each (about 0.6 s of CPU more per short clip).
pub async fn check_warm_ytdlp(ytdlp: Option<&Path>, enabled: bool) -> Check {
    if !enabled {
        return Check::ok(
            "warm yt-dlp",
            "off (XTRACT_WARM_YTDLP=false): every download starts yt-dlp",
        );
    }
    let Some(ytdlp) = ytdlp else {
        return Check::warn("warm yt-dlp", "no yt-dlp to load", "see the yt-dlp line");
    };
    // A short path: a Unix socket's path has a length limit.
    let dir = match tempfile::Builder::new().prefix("xtract-doctor-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return Check::warn(
                "warm yt-dlp",
                format!("no folder to try it in: {e}"),
                "check /tmp",
            )
        }
    };
    match crate::pipeline::warm::probe(ytdlp, dir.path()).await {
        Ok(said) => Check::ok("warm yt-dlp", said),
        Err(why) => Check::warn(
            "warm yt-dlp",
            format!("not available ({why}); jobs run the yt-dlp command line"),
            "install yt-dlp from PyPI in a virtualenv (`xtract tools upgrade`, as scripts/install does): a standalone yt-dlp binary cannot be kept loaded",
        ),
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

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[test]
    fn a_stable_ytdlp_is_old_after_14_days_and_the_line_names_the_channel() {
        let program = Path::new("/usr/local/bin/yt-dlp");
        let fresh = judge_ytdlp(program, "2026.01.02", day(1, 16), Channel::Stable);
        assert_eq!(fresh.level, Level::Ok, "{fresh}");
        assert!(
            fresh.found.contains("14 days old (stable channel)"),
            "{fresh}"
        );
        let old = judge_ytdlp(program, "2026.01.02", day(1, 17), Channel::Stable);
        assert_eq!(old.level, Level::Warn, "{old}");
        assert!(old.found.contains("over 14 on the stable channel"), "{old}");
        assert!(old
            .fix
            .unwrap()
            .contains("pip install -U 'yt-dlp[default,curl-cffi]'"));
    }

    #[test]
    fn a_nightly_ytdlp_is_old_after_3_days() {
        let program = Path::new("/usr/local/bin/yt-dlp");
        let fresh = judge_ytdlp(program, "2026.01.02.233105", day(1, 5), Channel::Nightly);
        assert_eq!(fresh.level, Level::Ok, "{fresh}");
        let old = judge_ytdlp(program, "2026.01.02.233105", day(1, 6), Channel::Nightly);
        assert_eq!(old.level, Level::Warn, "{old}");
        assert!(
            old.found
                .contains("4 days old, over 3 on the nightly channel"),
            "{old}"
        );
        assert!(old.fix.unwrap().contains("install -U --pre"));
    }

    #[test]
    fn a_managed_virtualenv_is_upgraded_with_xtract_tools() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("venvs/v1/bin")).unwrap();
        std::os::unix::fs::symlink("venvs/v1", dir.path().join("venv")).unwrap();
        let program = dir.path().join("venv/bin/yt-dlp");
        let old = judge_ytdlp(&program, "2026.01.02", day(3, 1), Channel::Nightly);
        let fix = old.fix.unwrap();
        assert!(
            fix.starts_with(&format!(
                "upgrade: xtract tools upgrade --dir {}",
                dir.path().display()
            )),
            "{fix}"
        );

        // A plain virtualenv: its own pip.
        let plain = tempfile::tempdir().unwrap();
        std::fs::write(plain.path().join("pip"), "").unwrap();
        let old = judge_ytdlp(
            &plain.path().join("yt-dlp"),
            "2026.01.02",
            day(3, 1),
            Channel::Stable,
        );
        assert!(old
            .fix
            .unwrap()
            .contains("/pip install -U 'yt-dlp[default,curl-cffi]'"));
    }

    #[test]
    fn deno_beside_yt_dlp_is_found_without_path() {
        let bin = tempfile::tempdir().unwrap();
        let deno = bin.path().join("deno");
        std::fs::write(&deno, "").unwrap();
        let check = check_js_runtime(Some(&bin.path().join("yt-dlp")));
        assert_eq!(check.level, Level::Ok, "{check}");
        assert!(check.found.contains(&deno.display().to_string()), "{check}");
    }
}
