//! The tools folder: `venvs/<name>/` virtualenvs, the `venv` symlink the
//! daemon runs through, `venv.previous` for rollbacks, and a lock so two
//! upgrades (the timer and a person) never build at once.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::pip::Resolved;
use super::{io, Channel, ToolsError};

/// Written into a virtualenv once it passed its check.
const COMPLETE: &str = "xtract-venv.json";
/// Written into a virtualenv that was rolled back from.
const ROLLED_BACK: &str = "xtract-rolled-back";
/// What `current` calls a `venv` that is a plain folder (installs before
/// this layout): it cannot be kept for rollback, as its scripts name
/// `…/venv/bin/python`, which will be the new virtualenv's.
pub const LEGACY: &str = "the plain venv folder of an earlier install";

pub struct Layout {
    dir: PathBuf,
}

/// Holds the folder's lock until dropped.
pub struct Lock(#[allow(dead_code)] File);

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// The tools folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn venvs(&self) -> PathBuf {
        self.dir.join("venvs")
    }

    pub fn venv_link(&self) -> PathBuf {
        self.dir.join("venv")
    }

    fn previous_link(&self) -> PathBuf {
        self.dir.join("venv.previous")
    }

    pub fn venv_dir(&self, name: &str) -> PathBuf {
        self.venvs().join(name)
    }

    /// Takes the folder's lock, or says another upgrade is running.
    pub fn lock(&self) -> Result<Lock, ToolsError> {
        std::fs::create_dir_all(self.venvs())
            .map_err(io(format!("cannot create {}", self.venvs().display())))?;
        let path = self.dir.join(".upgrade.lock");
        let file = super::platforms::open_for_lock(&path)?;
        // SAFETY: flock on a descriptor we own; released when it is closed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(ToolsError::Busy(format!(
                "another upgrade is working in {} (lock {})",
                self.dir.display(),
                path.display()
            )));
        }
        Ok(Lock(file))
    }

    /// The name a symlink points at (`venvs/<name>`).
    fn link_target(link: &Path) -> Option<String> {
        let target = std::fs::read_link(link).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// The virtualenv in use: its name, `LEGACY` for a plain folder, None
    /// when there is none.
    pub fn current(&self) -> Result<Option<String>, ToolsError> {
        let link = self.venv_link();
        match std::fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("cannot read {}", link.display()))(e)),
            Ok(m) if m.file_type().is_symlink() => Ok(Self::link_target(&link)),
            Ok(m) if m.is_dir() => Ok(Some(LEGACY.into())),
            Ok(_) => Err(ToolsError::Layout(format!(
                "{} is neither a symlink nor a folder",
                link.display()
            ))),
        }
    }

    pub fn previous(&self) -> Option<String> {
        Self::link_target(&self.previous_link())
    }

    pub fn is_complete(&self, name: &str) -> bool {
        self.venv_dir(name).join(COMPLETE).is_file()
    }

    pub fn mark_complete(
        &self,
        name: &str,
        resolved: &Resolved,
        channel: Channel,
    ) -> Result<(), ToolsError> {
        let record = serde_json::json!({
            "yt_dlp": resolved.ytdlp_version(),
            "channel": channel.as_str(),
            "checked_at": chrono::Utc::now().to_rfc3339(),
            "packages": resolved.packages(),
        });
        let path = self.venv_dir(name).join(COMPLETE);
        std::fs::write(&path, format!("{record:#}\n"))
            .map_err(io(format!("cannot write {}", path.display())))
    }

    /// When `name` was rolled back from, if it was.
    pub fn rolled_back(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.venv_dir(name).join(ROLLED_BACK))
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub fn mark_rolled_back(&self, name: &str) -> Result<(), ToolsError> {
        let path = self.venv_dir(name).join(ROLLED_BACK);
        std::fs::write(&path, format!("{}\n", chrono::Utc::now().to_rfc3339()))
            .map_err(io(format!("cannot write {}", path.display())))
    }

    pub fn clear_rolled_back(&self, name: &str) -> Result<(), ToolsError> {
        let path = self.venv_dir(name).join(ROLLED_BACK);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("cannot remove {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes a virtualenv that is neither in use nor the previous one.
    pub fn remove_venv(&self, name: &str) -> Result<(), ToolsError> {
        if self.current()?.as_deref() == Some(name)
            || self.previous().as_deref() == Some(name)
            || self.read_state()?.builds_in_use().iter().any(|b| b == name)
        {
            return Err(ToolsError::Layout(format!(
                "venvs/{name} is in use or kept for rollback; not removing it"
            )));
        }
        let dir = self.venv_dir(name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("cannot remove {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Points `link` at `venvs/<name>` atomically: a new symlink renamed
    /// over the old one.
    fn point(&self, link: &Path, name: &str) -> Result<(), ToolsError> {
        let tmp = self.dir.join(format!(
            ".{}.new-{}",
            link.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("venvs").join(name), &tmp)
            .map_err(io(format!("cannot create {}", tmp.display())))?;
        std::fs::rename(&tmp, link).map_err(io(format!("cannot replace {}", link.display())))
    }

    /// Makes `name` the virtualenv in use and the one it replaces the
    /// previous; returns the replaced one's name.
    pub fn switch_to(&self, name: &str) -> Result<Option<String>, ToolsError> {
        let link = self.venv_link();
        let old = self.current()?;
        if old.as_deref() == Some(LEGACY) {
            // A folder cannot be renamed over: move it aside, put the link
            // in its place, then remove it (a moment without `venv`, once).
            let aside = self.dir.join(format!("venv.legacy-{}", std::process::id()));
            std::fs::rename(&link, &aside)
                .map_err(io(format!("cannot move {} aside", link.display())))?;
            self.point(&link, name)?;
            std::fs::remove_dir_all(&aside)
                .map_err(io(format!("cannot remove {}", aside.display())))?;
            return Ok(None);
        }
        self.point(&link, name)?;
        match &old {
            Some(old) if old != name => self.point(&self.previous_link(), old)?,
            _ => {}
        }
        Ok(old.filter(|o| o != name))
    }

    /// Rollback: `venv` and `venv.previous` trade places. Returns (the one
    /// now in use, the one left).
    pub fn swap_with_previous(&self) -> Result<(String, String), ToolsError> {
        let current = match self.current()? {
            Some(c) if c != LEGACY => c,
            _ => {
                return Err(ToolsError::Layout(format!(
                    "{} is not managed by xtract tools yet: nothing to roll back",
                    self.venv_link().display()
                )))
            }
        };
        let previous = self
            .previous()
            .filter(|p| self.is_complete(p))
            .ok_or_else(|| {
                ToolsError::Layout(format!(
                    "no previous virtualenv in {} to roll back to",
                    self.dir.display()
                ))
            })?;
        self.point(&self.venv_link(), &previous)?;
        self.point(&self.previous_link(), &current)?;
        Ok((previous, current))
    }

    /// Removes every virtualenv but the one in use, the previous one and
    /// those the platforms' state names (platforms.rs), and anything a
    /// crashed run left behind. Returns what it removed.
    ///
    /// A job started on a virtualenv two upgrades old would lose its files;
    /// with a daily timer that needs a download running for more than a
    /// day, which XTRACT_MAX_DURATION_SECS (3 h) rules out.
    pub fn prune(&self) -> Result<Vec<String>, ToolsError> {
        // And whatever serves a platform, or is being tried on one.
        let mut keep = vec![self.current()?, self.previous()];
        keep.extend(self.read_state()?.builds_in_use().into_iter().map(Some));
        let mut removed = Vec::new();
        let entries = std::fs::read_dir(self.venvs())
            .map_err(io(format!("cannot read {}", self.venvs().display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.iter().flatten().any(|k| *k == name) {
                continue;
            }
            let path = entry.path();
            std::fs::remove_dir_all(&path)
                .map_err(io(format!("cannot remove {}", path.display())))?;
            removed.push(name);
        }
        removed.sort();
        Ok(removed)
    }

    /// What is there, one line each.
    pub fn describe(&self) -> Result<Vec<String>, ToolsError> {
        let current = self.current()?;
        let previous = self.previous();
        let mut lines = Vec::new();
        match &current {
            None => lines.push(format!("{}: none", self.venv_link().display())),
            Some(c) if c == LEGACY => lines.push(format!(
                "{}: {LEGACY} (the next upgrade replaces it)",
                self.venv_link().display()
            )),
            Some(_) => {}
        }
        let mut names: Vec<String> = std::fs::read_dir(self.venvs())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            let mut tags = Vec::new();
            if current.as_deref() == Some(name.as_str()) {
                tags.push("in use".to_string());
            }
            if previous.as_deref() == Some(name.as_str()) {
                tags.push("previous".to_string());
            }
            if let Some(when) = self.rolled_back(&name) {
                tags.push(format!("rolled back {when}"));
            }
            if !self.is_complete(&name) {
                tags.push("incomplete".to_string());
            }
            lines.push(
                format!("venvs/{name} {}", tags.join(", "))
                    .trim_end()
                    .to_string(),
            );
        }
        Ok(lines)
    }
}
