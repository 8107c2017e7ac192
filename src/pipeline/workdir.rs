//! Where jobs keep their temporary files: one folder per daemon process,
//! `<XTRACT_WORK_DIR>/run-<pid>`, each job in its own folder inside.
//!
//! A job removes its folder when it ends, whatever happened; a daemon killed
//! with -9 cannot. So a daemon starting up (and every running one, now and
//! then) removes the run folders of daemons that no longer exist (several
//! daemons may share one work directory), and its own when it stops.
//!
//! Each run folder names its daemon in `owner`: the process's start time
//! (so that a reused pid is not taken for the daemon) and its process-mark
//! token. Before a dead daemon's folder goes, the processes its jobs
//! started and that outlived it (ffmpeg, deno under a killed yt-dlp) are
//! ended (see process_tree.rs).

use std::path::{Path, PathBuf};

use super::process_tree;

/// How often a running daemon looks for what dead daemons left.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
        let me = std::process::id() as i32;
        std::fs::write(
            path.join(OWNER),
            format!(
                "{} {}\n",
                process_tree::start_time(me).unwrap_or(0),
                process_tree::run_token()
            ),
        )?;
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

/// The file of a run folder that names its daemon.
const OWNER: &str = "owner";

/// Ends what daemons that died left in `work_dir`: the processes of their
/// jobs, and their `run-<pid>` folders.
pub fn sweep(work_dir: &Path) {
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
        if pid == std::process::id() as i32 {
            continue;
        }
        // "<start time> <token>"; folders of older versions have none.
        let owner = std::fs::read_to_string(entry.path().join(OWNER)).ok();
        let mut owner = owner.as_deref().unwrap_or("").split_whitespace();
        let started: Option<u64> = owner.next().and_then(|t| t.parse().ok());
        let token = owner.next();
        // Gone, or the pid now belongs to another process.
        let reused = matches!(
            (started, process_tree::start_time(pid)),
            (Some(then), Some(now)) if then != now
        );
        if alive(pid) && !reused {
            continue;
        }
        if let Some(token) = token {
            let ended = process_tree::kill_run(token);
            if ended > 0 {
                tracing::warn!(
                    "ended {ended} processes left by a daemon that died (pid {pid}) while running jobs"
                );
            }
        }
        tracing::info!(
            "removing {}: left by a daemon that stopped without cleaning up",
            entry.path().display()
        );
        let _ = std::fs::remove_dir_all(entry.path());
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
        // The folder of a dead daemon whose pid a live process got since.
        let reused = work.path().join(format!("run-{}", live.id()));
        std::fs::write(reused.join("owner"), "1 sometoken\n").unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let kept = work.path().join(format!("run-{}", other.id()));
        std::fs::create_dir_all(&kept).unwrap();
        let started = crate::pipeline::process_tree::start_time(other.id() as i32).unwrap();
        std::fs::write(kept.join("owner"), format!("{started} othertoken\n")).unwrap();

        let run = RunDir::create(work.path()).unwrap();
        assert!(!work.path().join(format!("run-{dead_pid}")).exists());
        assert!(!reused.exists(), "its start time is not the live process's");
        assert!(kept.exists(), "a live daemon's folder stays");
        other.kill().unwrap();
        other.wait().unwrap();
        assert!(work.path().join("unrelated").exists());
        assert!(run.path().is_dir());
        let own = run.path().to_path_buf();
        drop(run);
        assert!(!own.exists());
        live.kill().unwrap();
        live.wait().unwrap();
    }
}
