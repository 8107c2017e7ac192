//! Runs yt-dlp, ffmpeg and ffprobe as children that cannot outlive their job:
//! each child leads its own process group, which is killed when the job is
//! cancelled or its future dropped, and dies with the daemon (PDEATHSIG) if
//! the daemon is killed outright.

use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How much of a child's stderr we keep: the end is where the error is.
const STDERR_TAIL: usize = 64 * 1024;

pub struct Finished {
    pub status: ExitStatus,
    pub stdout_lines: Vec<String>,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{0} was stopped")]
    Cancelled(String),
    #[error("reading the output of {program}: {source}")]
    Io { program: String, source: io::Error },
}

/// Kills a process group when dropped: a job's yt-dlp (spawned, or a child
/// of the warm helper) and whatever it started.
pub(crate) struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    pub(crate) fn new(pgid: i32) -> Self {
        GroupGuard { pgid: Some(pgid) }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg only sends a signal; a stale group id at worst
            // names no process.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

/// Runs `cmd` to completion. `on_stdout` sees each stdout line as it comes
/// (progress); every line is also returned.
pub async fn run(
    mut cmd: Command,
    cancel: &CancellationToken,
    mut on_stdout: impl FnMut(&str) + Send,
) -> Result<Finished, RunError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let mut guard = GroupGuard {
        pgid: child.id().map(|id| id as i32),
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let read_stderr = tail(stderr);
    let read_stdout = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut all = Vec::new();
        while let Some(line) = lines.next_line().await? {
            on_stdout(&line);
            all.push(line);
        }
        Ok::<_, io::Error>(all)
    };
    let work = async {
        let (out, err) = tokio::try_join!(read_stdout, read_stderr)?;
        let status = child.wait().await?;
        Ok::<_, io::Error>((status, out, err))
    };
    let result = tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => return Err(RunError::Cancelled(program)),
    };
    let (status, stdout_lines, stderr) =
        result.map_err(|source| RunError::Io { program, source })?;
    // Reaped: the group id may be reused now, but grandchildren (ffmpeg
    // started by yt-dlp) still in the group must not outlive the run.
    if let Some(pgid) = guard.pgid.take() {
        // SAFETY: as above.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    Ok(Finished {
        status,
        stdout_lines,
        stderr,
    })
}

/// The child gets SIGKILL when the daemon dies.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork
    // and exec and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reads a stream to its end, keeping only the last `STDERR_TAIL` bytes.
async fn tail(stream: impl AsyncRead + Unpin) -> io::Result<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut kept = String::new();
    while let Some(line) = lines.next_line().await? {
        push_tail(&mut kept, &line);
    }
    Ok(kept)
}

/// Appends a line to `kept`, keeping about the last `STDERR_TAIL` bytes.
pub(crate) fn push_tail(kept: &mut String, line: &str) {
    kept.push_str(line);
    kept.push('\n');
    if kept.len() > 2 * STDERR_TAIL {
        let cut = kept.len() - STDERR_TAIL;
        let cut = (cut..kept.len())
            .find(|&i| kept.is_char_boundary(i))
            .unwrap_or(kept.len());
        kept.drain(..cut);
    }
}
