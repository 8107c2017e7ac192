//! Runs yt-dlp, ffmpeg and ffprobe as children that cannot outlive their job:
//! each child's whole tree is killed when it finishes, when the job is
//! cancelled or its future dropped (time limit, shutdown), and the child dies
//! with the daemon (PDEATHSIG) if the daemon is killed outright; what it
//! started then is ended by the next daemon (see process_tree.rs).

use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::lines::Lines;
use super::process_tree::ProcessTree;

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
        .kill_on_drop(true);
    let mark = ProcessTree::prepare(cmd.as_std_mut());
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    // Ends the tree however this function ends (a dropped future included).
    let mut tree = child.id().map(|pid| ProcessTree::spawned(pid, mark));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let read_stderr = tail(stderr);
    let read_stdout = async {
        let mut lines = Lines::new(BufReader::new(stdout));
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
    // Reaped: grandchildren (ffmpeg started by yt-dlp) must not outlive
    // the run.
    if let Some(tree) = tree.as_mut() {
        tree.end();
    }
    Ok(Finished {
        status,
        stdout_lines,
        stderr,
    })
}

/// Reads a stream to its end, keeping only the last `STDERR_TAIL` bytes.
async fn tail(stream: impl AsyncRead + Unpin) -> io::Result<String> {
    let mut lines = Lines::new(BufReader::new(stream));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that prints bytes that are not UTF-8 (a file name in
    /// another encoding) and a line without end: its run still reads.
    #[tokio::test]
    async fn output_that_is_not_utf8_or_has_no_newline_still_reads() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "printf 'caf\\351\\nok\\n'; printf 'err\\351\\n' >&2; printf tail",
        ]);
        let finished = run(cmd, &CancellationToken::new(), |_| {}).await.unwrap();
        assert_eq!(finished.stdout_lines, ["caf\u{FFFD}", "ok", "tail"]);
        assert_eq!(finished.stderr, "err\u{FFFD}\n");
    }
}
