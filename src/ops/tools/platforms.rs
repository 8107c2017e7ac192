//! Which yt-dlp build serves each platform on this machine, and what was
//! tried: `platforms.json` in the tools folder. Every daemon on the machine
//! shares the folder and this file (the database says how the platforms
//! do; this file says what runs here); `xtract tools status` reads it and
//! `xtract tools pin` writes it. Changes are made under a lock of their own
//! (`.platforms.lock`, held for a read and a write, never during a build),
//! and the file is replaced whole, so a reader never sees half of one.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{io, Layout, ToolsError};

const FILE: &str = "platforms.json";
const LOCK: &str = ".platforms.lock";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The build `venv` led to when the daemons last looked: when it
    /// changes, the daily upgrade has switched it, and the platforms that
    /// follow it try the new build on probation.
    #[serde(default)]
    pub default_seen: Option<String>,
    #[serde(default)]
    pub platforms: BTreeMap<String, PlatformState>,
}

/// One platform on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformState {
    /// The build that serves it; None: whatever `venv` leads to.
    #[serde(default)]
    pub build: Option<String>,
    /// Since when, and why, it runs what it runs.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub why: Option<String>,
    /// An operator's choice (`xtract tools pin`): it serves the platform,
    /// and nothing is done automatically about the platform.
    #[serde(default)]
    pub pin: Option<String>,
    /// A new build serving it, watched against the one before.
    #[serde(default)]
    pub probation: Option<Probation>,
    /// A new build being tried on a job that failed on the platform's.
    #[serde(default)]
    pub canary: Option<Canary>,
    /// Builds that did worse here than the one before them, and why: never
    /// chosen again for this platform.
    #[serde(default)]
    pub bad: BTreeMap<String, String>,
    /// Since when its jobs fail on its build, as the daemons judged it.
    #[serde(default)]
    pub broken: Option<Broken>,
    /// The latest upgrade for it: when, and what came of it.
    #[serde(default)]
    pub attempt: Option<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probation {
    /// The new build (serving).
    pub build: String,
    /// The one before, which takes over again if the new one does worse.
    pub previous: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub build: String,
    /// The failed job re-run on it; None until one is chosen.
    #[serde(default)]
    pub job: Option<uuid::Uuid>,
    pub since: DateTime<Utc>,
    /// Why it is tried (`nightly: nothing newer on stable`, the daily
    /// upgrade).
    #[serde(default)]
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broken {
    pub since: DateTime<Utc>,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// What happened, in a sentence (`building …`, `no newer build…`,
    /// `… failed its check: …`).
    pub outcome: String,
    /// A build still under way.
    #[serde(default)]
    pub running: bool,
    /// No new attempt before this.
    #[serde(default)]
    pub next_try: Option<DateTime<Utc>>,
}

impl State {
    /// The state of `platform` (a default one when there is none).
    pub fn platform(&self, platform: &str) -> PlatformState {
        self.platforms.get(platform).cloned().unwrap_or_default()
    }

    pub fn platform_mut(&mut self, platform: &str) -> &mut PlatformState {
        self.platforms.entry(platform.to_string()).or_default()
    }

    /// Every build the file names: none of them may be removed.
    pub fn builds_in_use(&self) -> Vec<String> {
        let mut names: Vec<String> = self.default_seen.iter().cloned().collect();
        for p in self.platforms.values() {
            names.extend(p.build.iter().cloned());
            names.extend(p.pin.iter().cloned());
            if let Some(pr) = &p.probation {
                names.push(pr.build.clone());
                names.push(pr.previous.clone());
            }
            if let Some(c) = &p.canary {
                names.push(c.build.clone());
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

impl PlatformState {
    /// The build serving the platform, `default` for one that follows
    /// `venv`.
    pub fn serving<'a>(&'a self, default: Option<&'a str>) -> Option<&'a str> {
        self.pin.as_deref().or(self.build.as_deref()).or(default)
    }
}

/// Holds `.platforms.lock` until dropped.
struct StateLock(#[allow(dead_code)] File);

impl Layout {
    fn state_path(&self) -> PathBuf {
        self.dir().join(FILE)
    }

    fn state_lock(&self) -> Result<StateLock, ToolsError> {
        let path = self.dir().join(LOCK);
        let file = open_for_lock(&path)?;
        // SAFETY: flock on a descriptor we own; released when it is closed.
        // Held for a read and a write: waiting is short.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(io(format!("cannot lock {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(StateLock(file))
    }

    /// The platforms' state as it is (empty when there is no file yet).
    pub fn read_state(&self) -> Result<State, ToolsError> {
        let path = self.state_path();
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ToolsError::Layout(format!("{} is not what xtract wrote: {e}", path.display()))
            }),
        }
    }

    /// Changes the platforms' state under its lock: `change` gets the
    /// state as it is now; what it leaves is written (when it changed).
    pub fn edit_state<R>(&self, change: impl FnOnce(&mut State) -> R) -> Result<R, ToolsError> {
        std::fs::create_dir_all(self.dir())
            .map_err(io(format!("cannot create {}", self.dir().display())))?;
        let _lock = self.state_lock()?;
        let before = self.read_state()?;
        let mut state = before.clone();
        let result = change(&mut state);
        if state != before {
            self.write_state(&state)?;
        }
        Ok(result)
    }

    fn write_state(&self, state: &State) -> Result<(), ToolsError> {
        let path = self.state_path();
        let tmp = self
            .dir()
            .join(format!(".{FILE}.new-{}", std::process::id()));
        let text = serde_json::to_string_pretty(state).expect("the state is JSON");
        std::fs::write(&tmp, format!("{text}\n"))
            .map_err(io(format!("cannot write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("cannot replace {}", path.display())))
    }
}

/// A lock file: created when missing, opened read-only when it belongs to
/// someone else (flock works on any open file; a lock file made by root, by
/// `xtract tools` run by hand, must not lock the daemons out).
pub(super) fn open_for_lock(path: &std::path::Path) -> Result<File, ToolsError> {
    let write = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path);
    match write {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(path).map_err(io(format!("cannot open {}", path.display())))
        }
        Err(e) => Err(io(format!("cannot open {}", path.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_read_back_as_written_and_names_the_builds_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(layout.read_state().unwrap(), State::default());
        let now = Utc::now();
        layout
            .edit_state(|s| {
                s.default_seen = Some("a".into());
                let t = s.platform_mut("tiktok");
                t.build = Some("b".into());
                t.canary = Some(Canary {
                    build: "c".into(),
                    job: None,
                    since: now,
                    why: "nightly".into(),
                });
                t.bad.insert("x".into(), "broke tiktok".into());
                s.platform_mut("youtube").probation = Some(Probation {
                    build: "d".into(),
                    previous: "a".into(),
                    since: now,
                });
            })
            .unwrap();
        let s = layout.read_state().unwrap();
        assert_eq!(s.platform("tiktok").build.as_deref(), Some("b"));
        assert_eq!(s.platform("tiktok").serving(Some("a")), Some("b"));
        assert_eq!(s.platform("instagram").serving(Some("a")), Some("a"));
        assert_eq!(s.builds_in_use(), ["a", "b", "c", "d"]);
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(layout.read_state().is_err());
    }
}
