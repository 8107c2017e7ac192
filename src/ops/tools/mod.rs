//! `xtract tools`: keeps yt-dlp fresh. Sites change weekly and yt-dlp
//! follows within days; a daemon installed once and left alone stops working
//! within weeks.
//!
//! The layout under the tools folder (`/opt/xtract`):
//!
//! ```text
//! venvs/<yt-dlp version>-<hash>/   one virtualenv per resolved package set
//! venv          -> venvs/…         what the daemon runs (XTRACT_YTDLP=/opt/xtract/venv/bin/yt-dlp)
//! venv.previous -> venvs/…         what `xtract tools rollback` goes back to
//! ```
//!
//! An upgrade resolves what pip would install (yt-dlp with its extras,
//! deno, the configured plugins), builds a new virtualenv for it, checks it
//! (it runs, it extracts a clip served on 127.0.0.1 with the daemon's own
//! arguments, deno runs, its libraries import), and only then renames a new
//! `venv` symlink over the old one. A rename is atomic, and every job starts
//! a new yt-dlp process through the symlink, so a running daemon picks up
//! the new yt-dlp with its next job, and no job ever sees half an upgrade.
//! A virtualenv cannot be moved (pip writes its absolute path into the
//! scripts), which is why the folders are named before they are built.

mod check;
mod layout;
mod pip;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use layout::Layout;

/// Which yt-dlp releases to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Tagged releases, about monthly: often stale against site changes.
    Stable,
    /// Published on every day with changes; what yt-dlp's maintainers
    /// recommend ("the recommended channel for regular users", README,
    /// "Update channels"), available from PyPI as pre-releases.
    Nightly,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Nightly => "nightly",
        }
    }

    /// Older than this, `doctor` warns: a working upgrade timer never lets
    /// a release get this old (nightlies appear on most days).
    pub fn max_age_days(self) -> i64 {
        match self {
            Channel::Stable => 14,
            Channel::Nightly => 3,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "stable" => Ok(Channel::Stable),
            "nightly" => Ok(Channel::Nightly),
            other => Err(format!("'{other}' is not stable or nightly")),
        }
    }
}

/// The pip requirements of a virtualenv for `channel`, with `plugins`
/// (e.g. `bgutil-ytdlp-pot-provider`) installed beside yt-dlp, where it
/// finds them.
pub fn requirements(channel: Channel, plugins: &[String]) -> Vec<String> {
    // `default` brings yt-dlp-ejs (YouTube's player challenges), `curl-cffi`
    // browser impersonation (TikTok, Instagram). Nightlies are pre-releases
    // on PyPI; pip's `--pre` would take pre-releases of deno, curl_cffi
    // and every other package as well, while a pre-release in yt-dlp's own
    // specifier allows them for yt-dlp only (PEP 440).
    let ytdlp = match channel {
        Channel::Stable => "yt-dlp[default,curl-cffi]".to_string(),
        Channel::Nightly => "yt-dlp[default,curl-cffi]>=0.dev0".to_string(),
    };
    // The JavaScript runtime yt-dlp needs for YouTube, as a binary in the
    // virtualenv's bin/, where yt-dlp looks first. 2.3 is the oldest deno
    // yt-dlp accepts.
    let mut list = vec![ytdlp, "deno>=2.3".to_string()];
    list.extend(plugins.iter().cloned());
    list
}

/// What `upgrade` is asked to do.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    pub dir: PathBuf,
    pub channel: Channel,
    pub plugins: Vec<String>,
    /// The Python that builds the virtualenvs.
    pub python: PathBuf,
    /// Install even a release that was rolled back.
    pub force: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Upgraded {
    /// The virtualenv in use already has what pip would install.
    Current { name: String },
    /// Switched to a new virtualenv.
    Switched {
        name: String,
        previous: Option<String>,
    },
    /// pip would install a set that was rolled back; kept the current one.
    Held { name: String, current: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Pip(String),
    /// The new yt-dlp failed its check; the old one stays in use.
    #[error("the new yt-dlp ({name}) failed its check, so {kept} stays in use: {reason}")]
    CheckFailed {
        name: String,
        kept: String,
        reason: String,
    },
    #[error("{0}")]
    Layout(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolsError {
    let what = what.into();
    move |source| ToolsError::Io { what, source }
}

/// Brings the virtualenv up to date: resolve, build, check, switch.
/// `say` receives one line per step, for the person or the journal.
pub async fn upgrade(
    o: &UpgradeOptions,
    say: &mut dyn FnMut(&str),
) -> Result<Upgraded, ToolsError> {
    let layout = Layout::new(&o.dir);
    let _lock = layout.lock()?;
    let requirements = requirements(o.channel, &o.plugins);
    say(&format!(
        "resolving {} (channel {})",
        requirements.join(" "),
        o.channel
    ));
    let resolved = pip::resolve(&layout, &o.python, &requirements).await?;
    let name = resolved.name();
    let current = layout.current()?;
    if current.as_deref() == Some(name.as_str()) {
        say(&format!("{name} is in use and current"));
        return Ok(Upgraded::Current { name });
    }
    let target = layout.venv_dir(&name);
    if let Some(when) = layout.rolled_back(&name) {
        if !o.force {
            let current = current.unwrap_or_else(|| "nothing".into());
            say(&format!(
                "{name} was rolled back ({when}); keeping {current} until a newer release (--force installs it anyway)"
            ));
            return Ok(Upgraded::Held { name, current });
        }
        layout.clear_rolled_back(&name)?;
    }
    if !layout.is_complete(&name) {
        layout.remove_venv(&name)?;
        say(&format!("building {}", target.display()));
        pip::build(&o.python, &target, &resolved).await?;
    } else {
        say(&format!(
            "{} was built before; checking it again",
            target.display()
        ));
    }
    let kept = current.clone().unwrap_or_else(|| "nothing".into());
    match check::check(&target).await {
        Ok(report) => say(&format!("check passed: {report}")),
        Err(reason) => {
            // A broken build is not kept: the next run builds it afresh.
            let _ = layout.remove_venv(&name);
            return Err(ToolsError::CheckFailed { name, kept, reason });
        }
    }
    layout.mark_complete(&name, &resolved, o.channel)?;
    let previous = layout.switch_to(&name)?;
    say(&format!(
        "switched {} -> venvs/{name}{}",
        layout.venv_link().display(),
        previous
            .as_ref()
            .map(|p| format!(" (previous: venvs/{p})"))
            .unwrap_or_default()
    ));
    for removed in layout.prune()? {
        say(&format!("removed venvs/{removed}"));
    }
    Ok(Upgraded::Switched { name, previous })
}

/// Goes back to the previous virtualenv and marks the one left as rolled
/// back, so the daily upgrade does not install the same set again.
pub fn rollback(dir: &Path, say: &mut dyn FnMut(&str)) -> Result<String, ToolsError> {
    let layout = Layout::new(dir);
    let _lock = layout.lock()?;
    let (back_to, left) = layout.swap_with_previous()?;
    layout.mark_rolled_back(&left)?;
    say(&format!(
        "rolled back {} -> venvs/{back_to} (left venvs/{left}, which the upgrade now skips until a newer release)",
        layout.venv_link().display()
    ));
    Ok(back_to)
}

/// One line per virtualenv: which one is in use, which is the previous.
pub fn status(dir: &Path) -> Result<Vec<String>, ToolsError> {
    Layout::new(dir).describe()
}

/// After a switch, tells the daemons. New jobs already use the new yt-dlp
/// (the symlink); the reload makes the daemon log which yt-dlp it now runs
/// and re-read its env file. Under systemd: `systemctl
/// try-reload-or-restart xtract.service` (reload, as the unit supports it;
/// nothing when it is not running). Elsewhere the caller's own hook runs
/// after `xtract tools upgrade` exits 0.
pub async fn reload_daemons() -> String {
    if !Path::new("/run/systemd/system").exists() {
        return "systemd is not running here: nothing reloaded (new jobs use the new yt-dlp anyway)"
            .into();
    }
    let out = crate::pipeline::child_env::command("systemctl")
        .args(["try-reload-or-restart", "xtract.service"])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => "reloaded xtract.service (if it was running)".into(),
        Ok(o) => format!(
            "could not reload xtract.service: {} (new jobs use the new yt-dlp anyway)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("could not run systemctl: {e} (new jobs use the new yt-dlp anyway)"),
    }
}

/// `yt-dlp --version` and where the path leads, for the daemon's log at
/// start and on reload.
pub async fn describe_ytdlp(program: &Path) -> String {
    let version = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        crate::pipeline::child_env::command(program)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let version = match version {
        Ok(Ok(o)) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(Ok(o)) => format!("(--version failed: {})", o.status),
        Ok(Err(e)) => format!("(does not run: {e})"),
        Err(_) => "(--version did not answer)".into(),
    };
    match std::fs::canonicalize(program) {
        Ok(real) if real != program => format!(
            "yt-dlp {version} ({} -> {})",
            program.display(),
            real.display()
        ),
        _ => format!("yt-dlp {version} ({})", program.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_and_have_their_age_limits() {
        assert_eq!("nightly".parse::<Channel>(), Ok(Channel::Nightly));
        assert_eq!(" stable ".parse::<Channel>(), Ok(Channel::Stable));
        assert!("master".parse::<Channel>().is_err());
        assert_eq!(Channel::Stable.max_age_days(), 14);
        assert_eq!(Channel::Nightly.max_age_days(), 3);
    }

    #[test]
    fn nightly_allows_pre_releases_of_yt_dlp_only() {
        let plugins = vec!["bgutil-ytdlp-pot-provider".to_string()];
        let stable = requirements(Channel::Stable, &plugins);
        assert_eq!(
            stable,
            [
                "yt-dlp[default,curl-cffi]",
                "deno>=2.3",
                "bgutil-ytdlp-pot-provider"
            ]
        );
        let nightly = requirements(Channel::Nightly, &[]);
        assert_eq!(nightly[0], "yt-dlp[default,curl-cffi]>=0.dev0");
        assert_eq!(nightly[1], "deno>=2.3");
    }
}
