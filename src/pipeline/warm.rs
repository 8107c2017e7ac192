//! The warm yt-dlp: one helper process per daemon imports `yt_dlp` once,
//! warms it up (one real download from a local server, so that what the
//! first download in a process sets up is done once) and forks a child per
//! download (`ytdlp_helper.py`). A yt-dlp command line costs ~0.65 s of CPU
//! for a 30-second clip, nearly all of it Python starting and yt-dlp
//! setting up; a child of the warm helper does the same download for
//! ~0.05 s.
//!
//! A child runs yt-dlp's own command-line entry point with the arguments the
//! command line would get, so options, strategies, cookies, the proxy and
//! the error lines are the command line's; it leads its own process group,
//! which a cancel kills as it would a spawned yt-dlp's. The helper is
//! started with the Python of the yt-dlp installation (its script's
//! shebang), restarted when it dies or yt-dlp is upgraded, and when there
//! is no such Python (a standalone yt-dlp binary) or the helper will not
//! start, jobs run the command line as before. Platforms may run different
//! yt-dlp builds (pipeline/builds.rs): each build in use gets a helper of
//! its own, at most [`MAX_HELPERS`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdin};
use tokio_util::sync::CancellationToken;

use super::lines::Lines;
use super::process::{self, RunError};
use super::process_tree::{self, ProcessTree};

const SCRIPT: &str = include_str!("ytdlp_helper.py");

/// How long a helper may take to import yt_dlp and warm up (~0.6 s of CPU).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// After a helper would not start, the command line is used for this long
/// before the helper is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// One line the helper's child sends.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// First: the child's pid, which is also its process group.
    Pid(i32),
    /// A line yt-dlp wrote on stdout.
    Out(String),
    /// A line yt-dlp wrote on stderr.
    Err(String),
    /// Bytes downloaded, and the total when known.
    Progress((f64, Option<f64>)),
    /// The video's facts, before its download.
    Info(serde_json::Value),
    /// The final file.
    File(PathBuf),
    /// Last: the exit code yt-dlp's command line would have had.
    Exit(i32),
    /// yt-dlp waits at its first request for the daemon's go (`Gate`).
    Gate(String),
}

/// Holds yt-dlp's first request to the site until the platform's turn
/// (`Pacer::go`); an error gives the run up before any request.
pub type Gate = std::sync::Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<(), crate::domain::JobError>>
        + Send
        + Sync,
>;

/// What a warm run produced: the command line's output, and what the
/// helper reported besides.
#[derive(Debug, Default)]
pub struct Finished {
    pub exit: i32,
    pub stdout_lines: Vec<String>,
    pub stderr: String,
    /// The facts of every item yt-dlp started (one, but for a post with
    /// several media), in order.
    pub infos: Vec<serde_json::Value>,
    pub file: Option<PathBuf>,
}

/// Why a warm run did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// No helper for this yt-dlp: run the command line instead.
    #[error("the warm yt-dlp is not available")]
    Unavailable,
    #[error(transparent)]
    Run(#[from] RunError),
    /// The gate gave the run up before its first request.
    #[error("{0}")]
    Gate(crate::domain::JobError),
}

/// Identifies an installed yt-dlp: when its program or its package changes
/// (an upgrade), the helper has old code loaded and is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(u64, u64, i64, u64)>);

impl Stamp {
    fn of(files: &[&Path]) -> Option<Stamp> {
        files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok()?;
                Some((m.dev(), m.ino(), m.mtime(), m.size()))
            })
            .collect::<Option<Vec<_>>>()
            .map(Stamp)
    }
}

#[derive(Deserialize)]
struct Ready {
    version: String,
    /// The folder of the `yt_dlp` package the helper imported.
    module: PathBuf,
    #[serde(default)]
    import_cpu: f64,
    #[serde(default)]
    warm_up_cpu: f64,
    #[serde(default)]
    speedups: Vec<String>,
}

struct Helper {
    child: Child,
    /// Closing it tells the helper to finish what runs and exit.
    stdin: ChildStdin,
    socket: PathBuf,
    /// The program and the package's version file.
    watched: [PathBuf; 2],
    stamp: Stamp,
}

enum State {
    Stopped,
    Ready(Box<Helper>),
    /// No helper for this yt-dlp (the slot's): not a Python script (until
    /// the program changes), or it would not start (tried again after a
    /// while).
    Unavailable {
        stamp: Option<Stamp>,
        until: Option<Instant>,
    },
}

/// At most this many helpers at once: one per yt-dlp program in use.
/// Platforms may run different builds (pipeline/builds.rs): the build
/// `venv` leads to (reached as `venv/bin/yt-dlp` by other sites' jobs and
/// as `venvs/<build>/bin/yt-dlp` by a platform that follows it: two
/// programs, one build), a platform's own build, and a new one being
/// tried make four. Fewer would retire and restart a helper (an import and
/// a warm-up) at every turn; each holds ~60 MB.
pub const MAX_HELPERS: usize = 4;

/// One yt-dlp program's helper.
struct Slot {
    ytdlp: PathBuf,
    state: std::sync::Arc<tokio::sync::Mutex<State>>,
    used: Instant,
}

/// The daemon's warm yt-dlp helpers, one per yt-dlp program in use, each
/// started on first use.
pub struct WarmYtdlp {
    dir: PathBuf,
    slots: std::sync::Mutex<Vec<Slot>>,
    generation: std::sync::atomic::AtomicU32,
}

impl WarmYtdlp {
    /// The helper's script and socket go into `dir` (the daemon's own work
    /// folder).
    pub fn new(dir: &Path) -> Self {
        WarmYtdlp {
            dir: dir.to_path_buf(),
            slots: std::sync::Mutex::new(Vec::new()),
            generation: Default::default(),
        }
    }

    /// The state of `ytdlp`'s helper. A program not seen yet gets a slot;
    /// beyond [`MAX_HELPERS`], the helper used least recently is retired
    /// (it finishes what it runs, as after an upgrade).
    fn slot(&self, ytdlp: &Path) -> std::sync::Arc<tokio::sync::Mutex<State>> {
        let mut slots = crate::sync::lock(&self.slots);
        if let Some(slot) = slots.iter_mut().find(|s| s.ytdlp == ytdlp) {
            slot.used = Instant::now();
            return slot.state.clone();
        }
        while slots.len() >= MAX_HELPERS {
            let oldest = (0..slots.len())
                .min_by_key(|i| slots[*i].used)
                .expect("not empty");
            let old = slots.remove(oldest);
            tracing::info!(
                "more than {MAX_HELPERS} yt-dlp builds in use: retiring the warm helper of {}",
                old.ytdlp.display()
            );
            tokio::spawn(async move {
                let mut state = old.state.lock().await;
                if let State::Ready(h) = std::mem::replace(&mut *state, State::Stopped) {
                    retire(h);
                }
            });
        }
        let state = std::sync::Arc::new(tokio::sync::Mutex::new(State::Stopped));
        slots.push(Slot {
            ytdlp: ytdlp.to_path_buf(),
            state: state.clone(),
            used: Instant::now(),
        });
        state
    }

    /// Starts the helper for `ytdlp` if it is not running, and waits until
    /// it is ready (or known to be unavailable). A job calls it before it
    /// takes its turn with the platform: a turn taken while the helper
    /// starts would be spent waiting, and the jobs whose turns came
    /// meanwhile would all reach the platform at once when it is ready.
    pub async fn ready(&self, ytdlp: &Path) -> bool {
        self.socket(ytdlp).await.is_some()
    }

    /// The socket of a helper running for `ytdlp`, started or restarted as
    /// needed; None when the command line has to do.
    async fn socket(&self, ytdlp: &Path) -> Option<PathBuf> {
        let slot = self.slot(ytdlp);
        let mut state = slot.lock().await;
        if let State::Ready(h) = &mut *state {
            let alive = matches!(h.child.try_wait(), Ok(None));
            // The slot is this program's: only its files can have changed.
            let same = Stamp::of(&[&h.watched[0], &h.watched[1]]).as_ref() == Some(&h.stamp);
            if alive && same {
                return Some(h.socket.clone());
            }
            if alive {
                tracing::info!(
                    "yt-dlp changed ({}): starting a new warm helper",
                    ytdlp.display()
                );
            } else {
                tracing::warn!("the warm yt-dlp helper stopped; starting it again");
            }
            if let State::Ready(old) = std::mem::replace(&mut *state, State::Stopped) {
                retire(old);
            }
        }
        let program = Stamp::of(&[ytdlp]);
        if let State::Unavailable { stamp, until } = &*state {
            if *stamp == program && until.is_none_or(|until| Instant::now() < until) {
                return None;
            }
        }
        let unavailable = |until| State::Unavailable {
            stamp: program.clone(),
            until,
        };
        let Some(python) = interpreter_of(ytdlp) else {
            tracing::info!(
                "{} is not a Python script (a standalone build?): jobs run the yt-dlp command line",
                ytdlp.display()
            );
            *state = unavailable(None);
            return None;
        };
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match start_helper(ytdlp, &python, &self.dir, generation).await {
            Ok((h, ready)) => {
                tracing::info!(
                    "warm yt-dlp ready: {} loaded once, downloads run in its forked children",
                    ready.version
                );
                let socket = h.socket.clone();
                *state = State::Ready(Box::new(h));
                Some(socket)
            }
            Err(reason) => {
                tracing::warn!(
                    "no warm yt-dlp for {} ({reason}); jobs run the yt-dlp command line",
                    ytdlp.display()
                );
                *state = unavailable(Some(Instant::now() + RETRY_AFTER));
                None
            }
        }
    }

    /// The process id of the helper used last, while one runs (tests look
    /// at it).
    pub async fn helper_pid(&self) -> Option<u32> {
        let newest = crate::sync::lock(&self.slots)
            .iter()
            .max_by_key(|s| s.used)
            .map(|s| s.state.clone())?;
        let state = newest.lock().await;
        match &*state {
            State::Ready(h) => h.child.id(),
            _ => None,
        }
    }

    /// The process ids of every running helper, by yt-dlp program.
    pub async fn helper_pids(&self) -> Vec<(PathBuf, u32)> {
        let slots: Vec<(PathBuf, std::sync::Arc<tokio::sync::Mutex<State>>)> =
            crate::sync::lock(&self.slots)
                .iter()
                .map(|s| (s.ytdlp.clone(), s.state.clone()))
                .collect();
        let mut pids = Vec::new();
        for (ytdlp, state) in slots {
            if let State::Ready(h) = &*state.lock().await {
                if let Some(pid) = h.child.id() {
                    pids.push((ytdlp, pid));
                }
            }
        }
        pids
    }

    /// The slot of `ytdlp`'s helper, if it still has one (it may have been
    /// retired since): unlike [`Self::slot`], never makes one.
    fn existing(&self, ytdlp: &Path) -> Option<std::sync::Arc<tokio::sync::Mutex<State>>> {
        crate::sync::lock(&self.slots)
            .iter()
            .find(|s| s.ytdlp == ytdlp)
            .map(|s| s.state.clone())
    }

    /// Forgets `ytdlp`'s helper whose socket failed, so that the next run
    /// starts another. Only its own slot is locked: another build's helper
    /// may be starting meanwhile.
    async fn lost(&self, ytdlp: &Path, socket: &Path) {
        let Some(slot) = self.existing(ytdlp) else {
            return;
        };
        let mut state = slot.lock().await;
        if matches!(&*state, State::Ready(h) if h.socket == socket) {
            if let State::Ready(old) = std::mem::replace(&mut *state, State::Stopped) {
                retire(old);
            }
        }
    }

    /// Runs yt-dlp with `argv` in `cwd` in a child of the warm helper.
    /// `on_event` sees each event as it comes (progress, facts).
    pub async fn run(
        &self,
        ytdlp: &Path,
        argv: &[String],
        cwd: &Path,
        cancel: &CancellationToken,
        gate: Option<&Gate>,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<Finished, WarmError> {
        // A helper that died a moment ago may not look dead yet: if it
        // cannot be reached, a new one is started once.
        let mut reached = None;
        for _ in 0..2 {
            let socket = tokio::select! {
                s = self.socket(ytdlp) => s.ok_or(WarmError::Unavailable)?,
                _ = cancel.cancelled() => return Err(RunError::Cancelled("yt-dlp".into()).into()),
            };
            match UnixStream::connect(&socket).await {
                Ok(stream) => {
                    reached = Some((stream, socket));
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot reach the warm yt-dlp helper: {e}");
                    self.lost(ytdlp, &socket).await;
                }
            }
        }
        let (mut stream, socket) = reached.ok_or(WarmError::Unavailable)?;
        // The download's own mark, as a spawned yt-dlp's (process_tree.rs).
        let mark = process_tree::new_mark();
        let request = serde_json::json!({
            "argv": argv,
            "cwd": cwd,
            "mark": mark,
            "gate": gate.is_some(),
        });
        let mut line = serde_json::to_vec(&request).expect("a request is JSON");
        line.push(b'\n');
        let io = |source| RunError::Io {
            program: "yt-dlp (warm)".into(),
            source,
        };
        if let Err(e) = stream.write_all(&line).await {
            self.lost(ytdlp, &socket).await;
            tracing::warn!("cannot reach the warm yt-dlp helper: {e}");
            return Err(WarmError::Unavailable);
        }

        // Ends the child's tree when the run ends, is cancelled or is
        // dropped, as for a spawned yt-dlp.
        let mut guard: Option<ProcessTree> = None;
        let mut finished = Finished::default();
        let mut exit = None;
        let (reader, mut writer) = stream.into_split();
        let mut lines = Lines::new(BufReader::new(reader));
        let mut refused = None;
        let work = async {
            while let Some(line) = lines.next_line().await.map_err(io)? {
                let event: Event = match serde_json::from_str(&line) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("unreadable line from the warm yt-dlp: {e}: {line}");
                        continue;
                    }
                };
                on_event(&event);
                match event {
                    Event::Pid(pgid) => {
                        guard = Some(ProcessTree::spawned(pgid as u32, mark.clone()))
                    }
                    Event::Out(l) => finished.stdout_lines.push(l),
                    Event::Err(l) => process::push_tail(&mut finished.stderr, &l),
                    Event::Progress(_) => {}
                    Event::Info(v) => finished.infos.push(v),
                    Event::File(p) => finished.file = Some(p),
                    Event::Exit(code) => exit = Some(code),
                    Event::Gate(_) => {
                        let go = match gate {
                            Some(gate) => gate().await,
                            None => Ok(()),
                        };
                        match go {
                            Ok(()) => writer.write_all(b"{\"go\": true}\n").await.map_err(io)?,
                            Err(e) => {
                                // Closing our side ends the child before
                                // its first request.
                                refused = Some(e);
                                break;
                            }
                        }
                    }
                }
            }
            Ok::<_, RunError>(())
        };
        tokio::select! {
            r = work => r?,
            _ = cancel.cancelled() => return Err(RunError::Cancelled("yt-dlp".into()).into()),
        }
        drop(guard);
        if let Some(e) = refused {
            return Err(WarmError::Gate(e));
        }
        match exit {
            Some(code) => {
                finished.exit = code;
                Ok(finished)
            }
            // Killed (the helper died, or someone killed it): no result.
            None => {
                self.lost_if_dead(ytdlp, &socket).await;
                Err(io(std::io::Error::other(format!(
                    "the warm yt-dlp stopped before it finished{}",
                    last_words(&finished.stderr)
                )))
                .into())
            }
        }
    }

    async fn lost_if_dead(&self, ytdlp: &Path, socket: &Path) {
        let Some(slot) = self.existing(ytdlp) else {
            return;
        };
        let mut state = slot.lock().await;
        if let State::Ready(h) = &mut *state {
            if h.socket == socket && !matches!(h.child.try_wait(), Ok(None)) {
                tracing::warn!("the warm yt-dlp helper stopped");
                *state = State::Stopped;
            }
        }
    }
}

impl Drop for WarmYtdlp {
    /// The helpers go with the pipeline: told to stop (each kills and reaps
    /// its children), then reaped, so no process outlives the daemon and
    /// their CPU time is the daemon's.
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(|p| p.into_inner()));
        for slot in slots {
            // Nobody else holds it any more: the pipeline is going.
            if let Ok(mut state) = slot.state.try_lock() {
                if let State::Ready(h) = std::mem::replace(&mut *state, State::Stopped) {
                    stop(h.child);
                }
            }
        }
    }
}

fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    let started = Instant::now();
    let mut killed = false;
    while matches!(child.try_wait(), Ok(None)) {
        if !killed && started.elapsed() > Duration::from_secs(2) {
            let _ = child.start_kill();
            killed = true;
        }
        if started.elapsed() > Duration::from_secs(5) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn last_words(stderr: &str) -> String {
    match stderr.trim().lines().last() {
        Some(l) => format!(": {l}"),
        None => String::new(),
    }
}

/// Lets an old helper finish its downloads and exit on its own: closing
/// its stdin tells it to.
fn retire(old: Box<Helper>) {
    let Helper {
        mut child, stdin, ..
    } = *old;
    drop(stdin);
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
}

/// For `doctor`: starts a helper for `ytdlp` with its socket in `dir`,
/// as the daemon would, and stops it again. Says what it found (version,
/// time to ready, the CPU of import and warm-up) or why there is none.
pub async fn probe(ytdlp: &Path, dir: &Path) -> Result<String, String> {
    let python = interpreter_of(ytdlp).ok_or_else(|| {
        format!(
            "{} is not a Python script (a standalone build?)",
            ytdlp.display()
        )
    })?;
    let started = Instant::now();
    let (helper, ready) = start_helper(ytdlp, &python, dir, 0).await?;
    let took = started.elapsed();
    retire(Box::new(helper));
    Ok(format!(
        "yt-dlp {} loaded once and forked per download: ready in {:.1} s (import {:.2} s, warm-up {:.2} s of CPU)",
        ready.version,
        took.as_secs_f64(),
        ready.import_cpu,
        ready.warm_up_cpu
    ))
}

/// The Python that runs `ytdlp`, from its `#!` line, with the line's
/// arguments. None for anything else (a standalone binary).
pub fn interpreter_of(ytdlp: &Path) -> Option<Vec<String>> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let n = std::fs::File::open(ytdlp).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|b| *b == b'\n')?];
    let mut words = std::str::from_utf8(line).ok()?.split_whitespace();
    let mut program = words.next()?.to_string();
    let mut rest: Vec<String> = words.map(String::from).collect();
    if Path::new(&program).file_name()? == "env" && !rest.is_empty() {
        program = rest.remove(0);
    }
    let name = Path::new(&program).file_name()?.to_str()?;
    if !name.starts_with("python") {
        return None;
    }
    let mut command = vec![program];
    command.extend(rest);
    Some(command)
}

/// Starts a helper and waits until it is ready: the helper, and what it
/// said when it was.
async fn start_helper(
    ytdlp: &Path,
    python: &[String],
    dir: &Path,
    generation: u32,
) -> Result<(Helper, Ready), String> {
    let script = dir.join("ytdlp_helper.py");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
    let socket = dir.join(format!("ytdlp-{generation}.sock"));
    let started = Instant::now();
    // What it forks inherits this environment: the allow-list's, with the
    // mark of each download added by the child (ytdlp_helper.py).
    let mut cmd = super::child_env::command(&python[0]);
    cmd.args(&python[1..])
        .arg(&script)
        .arg(&socket)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own group, dies with the daemon, and carries a mark of this
    // daemon's run: a daemon starting after a kill -9 ends it too.
    let _mark = ProcessTree::prepare(cmd.as_std_mut());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python[0]))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // What the helper says on stderr (Python's own complaints) is logged.
    let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = stderr_lines.clone();
    tokio::spawn(async move {
        let mut lines = Lines::new(BufReader::new(stderr));
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::warn!(target: "xtract::ytdlp_helper", "{line}");
            process::push_tail(&mut kept.lock().expect("not poisoned"), &line);
        }
    });
    let mut stdout = Lines::new(BufReader::new(stdout));
    let first = tokio::time::timeout(START_TIMEOUT, stdout.next_line()).await;
    // After its first line the helper has nothing to say on stdout; keep
    // the pipe drained all the same.
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            tracing::info!(target: "xtract::ytdlp_helper", "{line}");
        }
    });
    let ready: Ready = match first {
        Ok(Ok(Some(line))) => serde_json::from_str(&line)
            .map_err(|e| format!("unexpected first line {line:?}: {e}"))?,
        Ok(_) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            // The stderr reader may still be on its last lines.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let said = stderr_lines.lock().expect("not poisoned").clone();
            return Err(format!("it exited ({status}){}", last_words(&said)));
        }
        Err(_) => return Err(format!("not ready within {START_TIMEOUT:?}")),
    };
    let version_file = ready.module.join("version.py");
    let watched = [ytdlp.to_path_buf(), version_file];
    let stamp = Stamp::of(&[&watched[0], &watched[1]]).ok_or("cannot read the yt-dlp files")?;
    tracing::info!(
        version = %ready.version,
        import_cpu_secs = ready.import_cpu,
        warm_up_cpu_secs = ready.warm_up_cpu,
        speedups = ?ready.speedups,
        "warm yt-dlp ready in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok((
        Helper {
            child,
            stdin,
            socket,
            watched,
            stamp,
        },
        ready,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_comes_from_the_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let venv = write(
            "venv",
            b"#!/opt/xtract/venv/bin/python3\nimport sys\nfrom yt_dlp import main\n",
        );
        assert_eq!(
            interpreter_of(&venv),
            Some(vec!["/opt/xtract/venv/bin/python3".to_string()])
        );
        let env = write("env", b"#!/usr/bin/env python3 -s\n");
        assert_eq!(
            interpreter_of(&env),
            Some(vec!["python3".to_string(), "-s".to_string()])
        );
        let bash = write("bash", b"#!/usr/bin/env bash\necho\n");
        assert_eq!(interpreter_of(&bash), None);
        let binary = write("elf", b"\x7fELF\x02\x01\x01\0\0\0");
        assert_eq!(interpreter_of(&binary), None);
    }

    #[test]
    fn events_read_as_the_helper_writes_them() {
        let read = |s: &str| serde_json::from_str::<Event>(s).unwrap();
        assert_eq!(read(r#"{"pid": 42}"#), Event::Pid(42));
        assert_eq!(
            read(r#"{"progress": [10, 1000]}"#),
            Event::Progress((10.0, Some(1000.0)))
        );
        assert_eq!(
            read(r#"{"progress": [10, null]}"#),
            Event::Progress((10.0, None))
        );
        assert_eq!(
            read(r#"{"err": "ERROR: x"}"#),
            Event::Err("ERROR: x".into())
        );
        assert_eq!(read(r#"{"exit": 1}"#), Event::Exit(1));
    }
}
