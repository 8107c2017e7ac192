//! No process of a job outlives its job or its daemon.
//!
//! Every program a job starts leads its own process group and carries a
//! mark in its environment, `XTRACT_PROCESS_MARK=<run>.<child>`: `<run>` is
//! a random token of this daemon process (recorded in its run folder, see
//! workdir.rs), `<child>` one of this child. What the child starts in turn
//! (ffmpeg and deno under yt-dlp) inherits both the group and the mark.
//!
//! - Ending a child's tree ([`ProcessTree`]) kills its group, then every
//!   process still carrying its mark: that also catches a descendant that
//!   left the group (setsid, as a program that daemonizes does).
//! - After a `kill -9` of the daemon its children die with it
//!   (PR_SET_PDEATHSIG), but theirs would not: a daemon starting on the
//!   machine ends every process carrying the mark of a run whose daemon is
//!   gone ([`kill_run`]). A random token, unlike a process id, cannot be
//!   reused by some unrelated process.
//!
//! Under systemd the unit's control group ends them too; these rules hold
//! without it (several daemons on one machine, a shell, a container).

use std::collections::HashSet;
use std::io;
use std::sync::OnceLock;

/// The environment variable that marks the processes of jobs.
pub const MARK_VAR: &str = "XTRACT_PROCESS_MARK";

/// This daemon process's token: random, fixed for its life.
pub fn run_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The process tree of one child: its group and its mark. Dropping it ends
/// the tree.
/// A fresh mark of this daemon's run, for one tree of processes.
pub fn new_mark() -> String {
    format!("{}.{}", run_token(), uuid::Uuid::new_v4().simple())
}

pub struct ProcessTree {
    pgid: i32,
    mark: String,
    ended: bool,
}

impl ProcessTree {
    /// Makes `cmd` start a tree: the child leads a new process group, dies
    /// with this process, and carries a fresh mark. Call [`ProcessTree::spawned`]
    /// with the child's pid once it runs.
    pub fn prepare(cmd: &mut std::process::Command) -> String {
        use std::os::unix::process::CommandExt;
        let mark = new_mark();
        cmd.env(MARK_VAR, &mark).process_group(0);
        // SAFETY: prctl is async-signal-safe; it runs in the child between
        // fork and exec and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        mark
    }

    /// The tree of the child `pid`, started from a command `prepare`d with
    /// `mark`.
    pub fn spawned(pid: u32, mark: String) -> Self {
        ProcessTree {
            pgid: pid as i32,
            mark,
            ended: false,
        }
    }

    /// Kills the child's group and every process carrying its mark.
    pub fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        // SAFETY: killpg only sends a signal; a stale group id at worst
        // names no process.
        unsafe {
            libc::killpg(self.pgid, libc::SIGKILL);
        }
        kill_marked(|m| m == self.mark);
    }
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        self.end();
    }
}

/// Ends every process that a daemon run with `token` started, its
/// children's children included; returns how many there were.
pub fn kill_run(token: &str) -> usize {
    let prefix = format!("{token}.");
    kill_marked(|m| m.starts_with(&prefix))
}

/// Kills every process whose mark satisfies `wanted`, again until none is
/// left (a process may fork between a look and its kill).
fn kill_marked(wanted: impl Fn(&str) -> bool) -> usize {
    let mut killed = HashSet::new();
    for _ in 0..5 {
        let found = marked_processes(&wanted);
        if found.is_empty() {
            break;
        }
        for pid in found {
            // SAFETY: sending a signal to a process we just read.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed.insert(pid);
        }
    }
    killed.len()
}

/// Processes (other than this one) whose mark satisfies `wanted`. Only
/// processes whose environment we may read count: ours.
fn marked_processes(wanted: &impl Fn(&str) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let key = format!("{MARK_VAR}=");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .ok()
                .is_some_and(|env| {
                    env.split(|b| *b == 0)
                        .filter_map(|var| var.strip_prefix(key.as_bytes()))
                        .any(|value| std::str::from_utf8(value).is_ok_and(wanted))
                })
        })
        .collect()
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// /proc/<pid>/stat); None when it is gone or hidden from us. With its pid,
/// it names one process for the life of the machine.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: count after it.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    #[test]
    fn ending_a_tree_kills_its_group_and_what_left_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c").arg(format!(
            "sleep 300 & echo $! >> {p}; setsid sleep 300 & echo $! >> {p}; sleep 300",
            p = pids.display()
        ));
        let mark = ProcessTree::prepare(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let mut tree = ProcessTree::spawned(child.id(), mark);
        let started = std::time::Instant::now();
        let grandchildren: Vec<i32> = loop {
            let found: Vec<i32> = std::fs::read_to_string(&pids)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect();
            if found.len() == 2 {
                break found;
            }
            assert!(started.elapsed().as_secs() < 10, "the script did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(grandchildren.iter().all(|p| alive(*p)));
        tree.end();
        child.wait().unwrap();
        // Orphans are reaped by init: wait until they are gone.
        let started = std::time::Instant::now();
        while grandchildren.iter().any(|p| alive(*p)) {
            assert!(
                started.elapsed().as_secs() < 10,
                "{grandchildren:?} live on"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn the_start_time_names_a_process() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(i32::MAX), None);
    }
}
