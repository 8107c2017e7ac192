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
//!
//! Platforms may run different builds (`platforms.json`, see platforms.rs):
//! the daemons build a new one when a platform breaks ([`build_candidate`]:
//! the same resolution, build and check, without switching `venv`) and
//! decide which serves which platform (ops/heal); `venv` stays what the
//! upgrade installed, which the platforms try on probation.

mod check;
mod layout;
mod pip;
pub mod platforms;

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
    say: &mut (dyn FnMut(&str) + Send),
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
    let kept = current.clone().unwrap_or_else(|| "nothing".into());
    ensure_built(&layout, &o.python, &resolved, o.channel, &kept, say).await?;
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

/// Builds and checks the virtualenv of `resolved` unless it was built and
/// checked before (then it is checked again). A build that fails, or fails
/// its check, is removed at once: it would only take space (a full disk is
/// one way a build fails). `kept`: what stays in use if it fails.
async fn ensure_built(
    layout: &Layout,
    python: &Path,
    resolved: &pip::Resolved,
    channel: Channel,
    kept: &str,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ToolsError> {
    let name = resolved.name();
    let target = layout.venv_dir(&name);
    if !layout.is_complete(&name) {
        layout.remove_venv(&name)?;
        say(&format!("building {}", target.display()));
        if let Err(e) = pip::build(python, &target, resolved).await {
            let _ = layout.remove_venv(&name);
            return Err(e);
        }
    } else {
        say(&format!(
            "{} was built before; checking it again",
            target.display()
        ));
    }
    match check::check(&target).await {
        Ok(report) => say(&format!("check passed: {report}")),
        Err(reason) => {
            // A broken build is not kept: the next run builds it afresh.
            let _ = layout.remove_venv(&name);
            return Err(ToolsError::CheckFailed {
                name,
                kept: kept.to_string(),
                reason,
            });
        }
    }
    layout.mark_complete(&name, resolved, channel)
}

/// What [`build_candidate`] is asked to do: as [`UpgradeOptions`], for one
/// platform whose build no longer works.
#[derive(Debug, Clone)]
pub struct CandidateOptions {
    pub dir: PathBuf,
    /// The configured channel; on `stable` with nothing new, nightly too.
    pub channel: Channel,
    pub plugins: Vec<String>,
    pub python: PathBuf,
}

/// What [`build_candidate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A checked build to try: its name, and on which channel it was found.
    Build { name: String, channel: Channel },
    /// Every channel looked at offers what `skip` refused: what was seen.
    NothingNewer(String),
}

/// Resolves the newest yt-dlp of the configured channel (and, on `stable`
/// when that offers nothing `skip` accepts, of `nightly`), and builds and
/// checks it, as `upgrade` does, without switching `venv`: the daemons
/// decide which platform it serves. `skip` says why a build is not worth
/// trying (it is what serves the platform, or did worse there), or None.
/// Holds the folder's lock: another upgrade running is `Busy`.
pub async fn build_candidate(
    o: &CandidateOptions,
    skip: &(dyn Fn(&str) -> Option<String> + Sync),
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Found, ToolsError> {
    let layout = Layout::new(&o.dir);
    let _lock = layout.lock()?;
    let mut channels = vec![o.channel];
    if o.channel == Channel::Stable {
        channels.push(Channel::Nightly);
    }
    let mut seen = Vec::new();
    for channel in channels {
        let requirements = requirements(channel, &o.plugins);
        say(&format!(
            "resolving {} (channel {channel})",
            requirements.join(" ")
        ));
        let resolved = pip::resolve(&layout, &o.python, &requirements).await?;
        let name = resolved.name();
        let why_not = skip(&name).or_else(|| {
            layout
                .rolled_back(&name)
                .map(|when| format!("rolled back {when}"))
        });
        if let Some(why) = why_not {
            seen.push(format!("{channel} offers {name} ({why})"));
            continue;
        }
        let kept = layout.current()?.unwrap_or_else(|| "nothing".into());
        ensure_built(&layout, &o.python, &resolved, channel, &kept, say).await?;
        return Ok(Found::Build { name, channel });
    }
    Ok(Found::NothingNewer(seen.join("; ")))
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

/// One line per virtualenv (which one is in use, which is the previous),
/// then one per platform: the build that serves it, whether it is broken
/// and since when, what was tried last and what is under way.
pub fn status(dir: &Path) -> Result<Vec<String>, ToolsError> {
    let layout = Layout::new(dir);
    let mut lines = layout.describe()?;
    let state = layout.read_state()?;
    let default = layout.current()?;
    for (name, p) in &state.platforms {
        lines.extend(describe_platform(name, p, default.as_deref()));
    }
    Ok(lines)
}

/// What `status` says of one platform.
pub fn describe_platform(
    name: &str,
    p: &platforms::PlatformState,
    default: Option<&str>,
) -> Vec<String> {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let serving = p.serving(default).unwrap_or("nothing");
    let health = match &p.broken {
        Some(b) => format!("broken since {} ({})", time(&b.since), b.why),
        None => "healthy".to_string(),
    };
    let how = match (&p.pin, &p.build) {
        (Some(_), _) => "pinned".to_string(),
        (None, Some(_)) => "its own build".to_string(),
        (None, None) => "follows venv".to_string(),
    };
    let mut lines = vec![format!("{name}: {health}; runs {serving} ({how})")];
    if let Some(why) = &p.why {
        let since = p.since.as_ref().map(time).unwrap_or_default();
        lines.push(format!("{name}:   since {since}: {why}"));
    }
    if let Some(c) = &p.canary {
        let job = c
            .job
            .map(|j| format!("job {j}"))
            .unwrap_or_else(|| "a failed job".into());
        lines.push(format!(
            "{name}:   trying {} on {job} since {} ({})",
            c.build,
            time(&c.since),
            c.why
        ));
    }
    if let Some(pr) = &p.probation {
        lines.push(format!(
            "{name}:   on probation since {}: {} goes back to {} if it does worse",
            time(&pr.since),
            pr.build,
            pr.previous
        ));
    }
    if let Some(a) = &p.attempt {
        lines.push(format!(
            "{name}:   last upgrade {}: {}",
            time(&a.at),
            a.outcome
        ));
    }
    for (build, why) in &p.bad {
        lines.push(format!("{name}:   never again {build}: {why}"));
    }
    lines
}

/// Pins `platform` to the build `build` (a virtualenv under `dir` that
/// passed its check), or unpins it (None): a pinned platform runs that
/// build, and nothing is done about it automatically.
pub fn pin(dir: &Path, platform: &str, build: Option<&str>) -> Result<String, ToolsError> {
    let layout = Layout::new(dir);
    if let Some(name) = build {
        if !layout.is_complete(name) {
            return Err(ToolsError::Layout(format!(
                "there is no checked build venvs/{name} in {} (xtract tools status lists them)",
                dir.display()
            )));
        }
    }
    layout.edit_state(|s| {
        let p = s.platform_mut(platform);
        p.pin = build.map(String::from);
        match build {
            Some(name) => format!(
                "{platform} runs venvs/{name} from its next job; nothing is done about it automatically until `xtract tools pin {platform} --none`"
            ),
            None => format!("{platform} is no longer pinned: it runs what the daemons choose"),
        }
    })
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
