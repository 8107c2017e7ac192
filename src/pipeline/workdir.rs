//! Where jobs keep their temporary files: one folder per daemon process,
//! `<XTRACT_WORK_DIR>/run-<pid>`, each job in its own folder inside.
//!
//! A job removes its folder when it ends, whatever happened; a daemon killed
//! with -9 cannot. So a daemon starting up removes the run folders of
//! processes that no longer exist (several daemons may share one work
//! directory), and its own folder when it stops.

use std::path::{Path, PathBuf};

pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn create(work_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        sweep(work_dir);
        let path = work_dir.join(format!("run-{}", std::process::id()));
        // A folder left by an earlier process with our pid holds nothing
        // of ours.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(RunDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `run-<pid>` folders of processes that are gone.
fn sweep(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !alive(pid) {
            tracing::info!(
                "removing {}: left by a daemon that stopped without cleaning up",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM means it exists under another user.
    // SAFETY: kill with signal 0 sends nothing.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_dead_daemons_go_and_live_ones_stay() {
        let work = tempfile::tempdir().unwrap();
        // A process that has certainly exited, and one that runs.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        for pid in [dead_pid, live.id()] {
            let job = work.path().join(format!("run-{pid}/job-x"));
            std::fs::create_dir_all(&job).unwrap();
            std::fs::write(job.join("source.mp4"), b"partial").unwrap();
        }
        std::fs::create_dir_all(work.path().join("unrelated")).unwrap();

        let run = RunDir::create(work.path()).unwrap();
        assert!(!work.path().join(format!("run-{dead_pid}")).exists());
        assert!(work
            .path()
            .join(format!("run-{}/job-x", live.id()))
            .exists());
        assert!(work.path().join("unrelated").exists());
        assert!(run.path().is_dir());
        let own = run.path().to_path_buf();
        drop(run);
        assert!(!own.exists());
        live.kill().unwrap();
        live.wait().unwrap();
    }
}
