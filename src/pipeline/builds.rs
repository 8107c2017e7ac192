//! Which yt-dlp a job runs. Platforms may run different builds of yt-dlp
//! (virtualenvs under the tools folder, `venvs/<name>/`): a nightly that
//! fixes TikTok but breaks Instagram serves TikTok only. What serves which
//! platform is decided elsewhere (ops/heal) and handed to the pipeline as a
//! [`BuildTable`]; a job reads one snapshot of it when it starts. A
//! platform the table does not name runs `XTRACT_YTDLP`, as before.
//!
//! The pipeline tells the deciding side what each run did (the job's
//! handle records it in the database) and wakes it ([`Builds::ran`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::domain::Platform;
use crate::live::Live;

/// One yt-dlp build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Its name in runs and reports: the virtualenv's folder name
    /// (`2026.10.26-1a2b3c4d`), or the program's path for a yt-dlp that is
    /// not in a tools folder.
    pub name: String,
    pub program: PathBuf,
    /// curl_cffi is installed beside it (ytdlp::can_impersonate).
    pub can_impersonate: bool,
}

impl Build {
    /// The build in virtualenv `venvs/<name>` of the tools folder `dir`.
    pub fn in_tools(dir: &Path, name: &str) -> Build {
        let program = dir.join("venvs").join(name).join("bin/yt-dlp");
        Build {
            name: name.to_string(),
            can_impersonate: super::ytdlp::can_impersonate(&program),
            program,
        }
    }

    /// XTRACT_YTDLP as it is, named after where it leads.
    pub fn program(program: &Path, can_impersonate: bool) -> Build {
        Build {
            name: name_of(program),
            program: program.to_path_buf(),
            can_impersonate,
        }
    }
}

/// The name of the build `program` belongs to: the virtualenv folder of a
/// `…/venvs/<name>/bin/yt-dlp` (through symlinks such as `venv`), else the
/// program's own path.
pub fn name_of(program: &Path) -> String {
    let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let venv = real.parent().and_then(Path::parent);
    match venv.and_then(|v| Some((v.file_name()?, v.parent()?.file_name()?))) {
        Some((name, parent)) if parent == "venvs" => name.to_string_lossy().into_owned(),
        _ => real.display().to_string(),
    }
}

/// What serves each platform now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildTable {
    /// The build of each platform; one not named runs XTRACT_YTDLP.
    pub platforms: HashMap<Platform, Arc<Build>>,
    /// A new build waiting for its canary: only the jobs that name it
    /// (`processing_jobs.ytdlp_canary`) run on it.
    pub canaries: HashMap<Platform, Arc<Build>>,
}

impl BuildTable {
    /// The build for a job of `platform`; `canary`: the build the job is to
    /// be re-run on, honoured while it is the platform's candidate.
    pub fn choose(&self, platform: Platform, canary: Option<&str>) -> Option<Arc<Build>> {
        if let Some(name) = canary {
            if let Some(b) = self.canaries.get(&platform).filter(|b| b.name == name) {
                return Some(b.clone());
            }
        }
        self.platforms.get(&platform).cloned()
    }
}

/// The table, shared between the deciding side and the pipeline, and the
/// pipeline's word that a run ended.
#[derive(Clone)]
pub struct Builds {
    table: Live<BuildTable>,
    ran: Arc<Notify>,
}

impl Default for Builds {
    fn default() -> Self {
        Self::new()
    }
}

impl Builds {
    pub fn new() -> Self {
        Builds {
            table: Live::new(BuildTable::default()),
            ran: Arc::new(Notify::new()),
        }
    }

    pub fn get(&self) -> Arc<BuildTable> {
        self.table.get()
    }

    pub fn set(&self, table: BuildTable) {
        self.table.set(table);
    }

    /// Woken after a yt-dlp run was recorded.
    pub fn ran(&self) -> Arc<Notify> {
        self.ran.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_job_runs_on_the_candidate_and_others_on_the_platforms_build() {
        let dir = Path::new("/opt/xtract");
        let old = Arc::new(Build::in_tools(dir, "2026.10.26-aaaa"));
        let new = Arc::new(Build::in_tools(dir, "2026.10.27.1.dev0-bbbb"));
        assert_eq!(
            new.program,
            Path::new("/opt/xtract/venvs/2026.10.27.1.dev0-bbbb/bin/yt-dlp")
        );
        let mut t = BuildTable::default();
        t.platforms.insert(Platform::TikTok, old.clone());
        t.canaries.insert(Platform::TikTok, new.clone());
        assert_eq!(t.choose(Platform::TikTok, None), Some(old.clone()));
        assert_eq!(
            t.choose(Platform::TikTok, Some("2026.10.27.1.dev0-bbbb")),
            Some(new)
        );
        // A canary mark of a build that is no longer the candidate.
        assert_eq!(t.choose(Platform::TikTok, Some("gone")), Some(old));
        assert_eq!(t.choose(Platform::YouTube, None), None);
    }

    #[test]
    fn a_build_is_named_after_its_virtualenv() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("venvs/2026.10.26-aaaa/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("yt-dlp"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("venvs/2026.10.26-aaaa", dir.path().join("venv")).unwrap();
        assert_eq!(
            name_of(&dir.path().join("venv/bin/yt-dlp")),
            "2026.10.26-aaaa"
        );
        let plain = dir.path().join("yt-dlp");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(
            name_of(&plain),
            std::fs::canonicalize(&plain).unwrap().display().to_string()
        );
    }
}
