//! When a platform breaks. A platform changes its site, yt-dlp's extractor
//! stops reading it, and every job of that platform fails until yt-dlp is
//! upgraded; a new yt-dlp may also break a platform that worked. This task
//! of the daemon watches each platform's yt-dlp runs and acts, within the
//! bounds the operator set (XTRACT_AUTO_HEAL, XTRACT_HEAL_*):
//!
//! - **noticing**: a platform is broken when N of its last M runs on the
//!   build that serves it failed by the extractor's fault, while it was not
//!   paused (judge.rs);
//! - **upgrading** at once: the newest yt-dlp of the channel (then nightly,
//!   when stable has nothing newer), built and checked as `xtract tools
//!   upgrade` does, without switching `venv`; at most once per platform per
//!   interval, never while another upgrade holds the tools folder;
//! - **canary**: a job of that platform that failed runs again on the new
//!   build (through the queue, paced as any job); the platform switches to
//!   it only when that job completes, and the jobs that failed lately are
//!   retried then;
//! - **per-platform builds**: each platform runs its own build
//!   (pipeline/builds.rs); the daily upgrade's new `venv` is tried on each
//!   healthy platform on probation, and a build that does worse there than
//!   the old one did is rolled back for that platform and not used for it
//!   again;
//! - **reporting**: the log (once per change), `xtract.platform_health`
//!   (the dashboard's `xtract.platform_status`), `/metrics`, systemd's
//!   status line, and `platforms.json` in the tools folder (`xtract tools
//!   status`).
//!
//! The daemons of one machine share the tools folder and its
//! `platforms.json` (changed under its lock); the database holds the runs
//! of every machine.

pub mod judge;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{ErrorCode, Platform, PlatformTable};
use crate::live::Live;
use crate::metrics::{BuildLabels, HealLabels, Metrics, PlatformLabel};
use crate::ops::config::Config;
use crate::ops::tools::platforms::{PlatformState, State};
use crate::ops::tools::{self, Channel, Layout, ToolsError};
use crate::pipeline::builds::{self, Build, BuildTable, Builds};
use crate::queue::health::HealthRow;
use crate::queue::Queue;
use judge::{Action, Built, Facts, JobFacts, Rules, Run};

/// The platforms whose extractors xtract watches (`other` is the generic
/// extractor: no build reads an unknown site better than another).
pub const PLATFORMS: [Platform; 3] = [Platform::TikTok, Platform::Instagram, Platform::YouTube];

/// How often the platforms are looked at without a run to wake for.
const TICK: Duration = Duration::from_secs(5);
/// Never more often than this, however many runs end.
const MIN_TICK: Duration = Duration::from_millis(500);
/// Another upgrade held the tools folder: look again this soon.
const BUSY_RETRY: Duration = Duration::from_secs(30);
/// A build marked as running this long was left by a daemon that stopped
/// (pip's own limit is 15 minutes per step).
const BUILD_STALE: Duration = Duration::from_secs(45 * 60);
/// The report in the database is written when it changes, and this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The settings of platform health, as the daemon runs them.
#[derive(Debug, Clone)]
pub struct HealSettings {
    pub auto: bool,
    /// The tools folder xtract manages; None: yt-dlp is elsewhere, and
    /// platforms are only watched.
    pub tools_dir: Option<PathBuf>,
    pub python: PathBuf,
    pub channel: Channel,
    pub plugins: Vec<String>,
    pub failures: u32,
    pub window: u32,
    pub interval: Duration,
    pub retry_window: Duration,
    /// XTRACT_YTDLP: what a platform the tools folder does not name runs.
    pub ytdlp: PathBuf,
    pub can_impersonate: bool,
    /// The job time limit (a platform's own, else this): a canary job
    /// gets a few of them to finish.
    pub job_timeout: Duration,
    pub platforms: PlatformTable,
}

impl HealSettings {
    pub fn from_config(c: &Config, can_impersonate: bool) -> Self {
        HealSettings {
            auto: c.heal.auto,
            tools_dir: c.heal.tools_dir.clone().or_else(|| tools_dir_of(&c.ytdlp)),
            python: c.heal.python.clone(),
            channel: c.ytdlp_channel,
            plugins: c.ytdlp_plugins.clone(),
            failures: c.heal.failures,
            window: c.heal.window,
            interval: c.heal.interval,
            retry_window: c.heal.retry_window,
            ytdlp: c.ytdlp.clone(),
            can_impersonate,
            job_timeout: c.job_timeout,
            platforms: c.platforms.clone(),
        }
    }

    fn rules(&self) -> Rules {
        let longest = PLATFORMS
            .iter()
            .map(|p| {
                self.platforms
                    .get(*p)
                    .max_runtime
                    .unwrap_or(self.job_timeout)
            })
            .max()
            .unwrap_or(self.job_timeout);
        Rules {
            auto: self.auto,
            managed: self.tools_dir.is_some(),
            failures: self.failures,
            window: self.window,
            interval: self.interval,
            // Time to reach the job in the queue, and its time limit twice.
            canary_deadline: (longest * 3).max(Duration::from_secs(600)),
            busy_retry: BUSY_RETRY,
            build_stale: BUILD_STALE,
        }
    }
}

/// The tools folder XTRACT_YTDLP is in: `<dir>/venv/bin/yt-dlp` with
/// `<dir>/venvs/` beside (what `xtract tools upgrade` makes).
pub fn tools_dir_of(ytdlp: &Path) -> Option<PathBuf> {
    let bin = ytdlp.parent()?;
    let venv = bin.parent()?;
    if bin.file_name()? != "bin" || venv.file_name()? != "venv" {
        return None;
    }
    let dir = venv.parent()?;
    dir.join("venvs").is_dir().then(|| dir.to_path_buf())
}

/// What the task needs.
pub struct Heal {
    pub settings: Live<HealSettings>,
    /// The statements (a pool of its own), and this daemon's routes (for
    /// the pauses).
    pub queue: Queue,
    pub builds: Builds,
    pub metrics: Arc<Metrics>,
    /// This machine, in the dashboard's report.
    pub host: String,
}

/// The build table the tools folder's state gives, before the first tick
/// (so that no job starts on the wrong build).
pub fn initial_table(settings: &HealSettings) -> BuildTable {
    let Some(dir) = &settings.tools_dir else {
        return BuildTable::default();
    };
    let layout = Layout::new(dir);
    let state = layout.read_state().unwrap_or_default();
    table(&layout, &state, managed_default(&layout).as_deref())
}

/// What `venv` leads to, when it is a checked build of the folder.
fn managed_default(layout: &Layout) -> Option<String> {
    layout
        .current()
        .ok()
        .flatten()
        .filter(|name| layout.is_complete(name))
}

/// Each platform's build, and the candidates waiting for their canary.
fn table(layout: &Layout, state: &State, default: Option<&str>) -> BuildTable {
    let mut t = BuildTable::default();
    for platform in PLATFORMS {
        let p = state.platform(platform.as_str());
        if let Some(name) = p.serving(default).filter(|n| layout.is_complete(n)) {
            t.platforms
                .insert(platform, Arc::new(Build::in_tools(layout.dir(), name)));
        }
        if let Some(c) = p.canary.as_ref().filter(|c| layout.is_complete(&c.build)) {
            t.canaries
                .insert(platform, Arc::new(Build::in_tools(layout.dir(), &c.build)));
        }
    }
    t
}

/// Runs until `stop`: a tick every few seconds, and soon after a run ends.
pub async fn run(heal: Heal, stop: CancellationToken) {
    let mut w = Watcher {
        heal,
        memory: State::default(),
        building: None,
        built: HashMap::new(),
        reported: HashMap::new(),
        pruned: None,
    };
    w.introduce();
    let ran = w.heal.builds.ran();
    // A fault that lasts (a tools folder this user may not write) is said
    // once, and again when it changes or ends.
    let mut last_error: Option<String> = None;
    loop {
        match w.tick().await {
            Ok(()) if last_error.is_some() => {
                last_error = None;
                tracing::info!(target: "xtract::heal", "the platforms' health is looked at again");
            }
            Ok(()) => {}
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!(
                    target: "xtract::heal",
                    "could not look at the platforms' health: {e} (the daemon's user must own the tools folder: scripts/install hands it over)"
                );
                last_error = Some(e);
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(TICK) => {}
            _ = ran.notified() => {}
        }
        // Runs that end together are looked at together.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(MIN_TICK) => {}
        }
    }
    w.interrupted();
}

/// The loop's own memory.
struct Watcher {
    heal: Heal,
    /// The platforms' state when there is no tools folder to keep it in.
    memory: State,
    /// The build under way in this daemon: for which platform.
    building: Option<(String, tokio::task::JoinHandle<Built>)>,
    /// Builds finished since the last tick, by platform.
    built: HashMap<String, Built>,
    /// The last report written, by platform, and when.
    reported: HashMap<String, (HealthRow, std::time::Instant)>,
    pruned: Option<std::time::Instant>,
}

/// A platform's facts, gathered before the decision.
#[derive(Default)]
struct Gathered {
    runs: Vec<Run>,
    paused: bool,
    canary_job: Option<JobFacts>,
    failed_jobs: Vec<Uuid>,
}

impl Watcher {
    fn introduce(&self) {
        let s = self.heal.settings.get();
        let what = match (&s.tools_dir, s.auto) {
            (None, _) => format!(
                "only reported: {} is not in a tools folder xtract manages (XTRACT_TOOLS_DIR)",
                s.ytdlp.display()
            ),
            (Some(dir), true) => format!(
                "upgrades on breakage on (tools folder {}, channel {}; at most one per platform every {:.0} s)",
                dir.display(),
                s.channel,
                s.interval.as_secs_f64()
            ),
            (Some(dir), false) => format!(
                "XTRACT_AUTO_HEAL=off: only reported (tools folder {})",
                dir.display()
            ),
        };
        tracing::info!(
            target: "xtract::heal",
            "watching yt-dlp on tiktok, instagram and youtube: broken after {} of a platform's last {} jobs fail by the extractor's fault; {what}",
            s.failures,
            s.window
        );
    }

    async fn tick(&mut self) -> Result<(), String> {
        let s = self.heal.settings.get();
        let rules = s.rules();
        let layout = s.tools_dir.as_ref().map(|d| Layout::new(d));
        let default = match &layout {
            Some(l) => managed_default(l),
            None => None,
        };
        // A yt-dlp the folder does not hold is judged by its own name.
        let default_name = default.clone().unwrap_or_else(|| builds::name_of(&s.ytdlp));
        let before = match &layout {
            Some(l) => l.read_state().map_err(|e| e.to_string())?,
            None => self.memory.clone(),
        };
        self.collect_build();
        let gathered = self.gather(&s, &before, &default_name).await?;
        let built = std::mem::take(&mut self.built);
        // One build at a time here: a platform deciding to build makes the
        // platforms after it wait for the next tick (they break together
        // when yt-dlp itself is out of date, and the one build serves them).
        let building_before = self.building.is_some();
        let now = Utc::now();
        let decide_all = |state: &mut State| {
            let default_before = match (&state.default_seen, &default) {
                (Some(seen), Some(now_default)) if seen != now_default => Some(seen.clone()),
                _ => None,
            };
            let mut actions = Vec::new();
            let mut building_here = building_before;
            for platform in PLATFORMS {
                let name = platform.as_str();
                let g = &gathered[name];
                let facts = Facts {
                    platform: name,
                    default: Some(default_name.as_str()),
                    default_before: default_before.as_deref(),
                    runs: &g.runs,
                    paused: g.paused,
                    canary_job: g.canary_job.clone(),
                    failed_jobs: &g.failed_jobs,
                    built: built.get(name),
                    building_here,
                    now,
                };
                let p = state.platform_mut(name);
                let decided = judge::decide(p, &facts, &rules);
                building_here |= decided.iter().any(|a| matches!(a, Action::Build { .. }));
                actions.push((platform, decided));
            }
            if default.is_some() {
                state.default_seen = default.clone();
            }
            (actions, state.clone())
        };
        let edited = match &layout {
            Some(l) => l.edit_state(decide_all).map_err(|e| e.to_string()),
            None => Ok(decide_all(&mut self.memory)),
        };
        let (actions, state) = match edited {
            Ok(done) => done,
            Err(e) => {
                // Not decided: the finished builds wait for the next tick.
                self.built = built;
                return Err(e);
            }
        };
        if let Some(l) = &layout {
            self.heal.builds.set(table(l, &state, default.as_deref()));
        }
        tracing::debug!(target: "xtract::heal", ?actions, "decided");
        for (platform, list) in actions {
            for action in list {
                self.carry_out(&s, platform, action).await;
            }
        }
        self.report(&s, &state, &default_name).await;
        self.prune().await;
        Ok(())
    }

    /// The runs, pauses and jobs each platform's decision reads.
    async fn gather(
        &self,
        s: &HealSettings,
        state: &State,
        default: &str,
    ) -> Result<HashMap<&'static str, Gathered>, String> {
        let q = &self.heal.queue;
        let mut pairs = Vec::new();
        for platform in PLATFORMS {
            let p = state.platform(platform.as_str());
            let mut names: Vec<String> = p
                .serving(Some(default))
                .map(String::from)
                .into_iter()
                .collect();
            if let Some(pr) = &p.probation {
                names.extend([pr.build.clone(), pr.previous.clone()]);
            }
            if let Some(c) = &p.canary {
                names.push(c.build.clone());
            }
            names.sort();
            names.dedup();
            pairs.extend(
                names
                    .into_iter()
                    .map(|n| (platform.as_str().to_string(), n)),
            );
        }
        // The probation's window is over the runs since it began: enough
        // of them to judge the window after.
        let runs = q
            .heal_runs(&pairs, s.window.max(1) * 2)
            .await
            .map_err(|e| e.to_string())?;
        let paused = self.paused().await;
        let codes = ErrorCode::extractor_faults();
        let mut out = HashMap::new();
        for platform in PLATFORMS {
            let name = platform.as_str();
            let p = state.platform(name);
            let mut g = Gathered {
                runs: runs
                    .iter()
                    .filter(|r| r.platform == name)
                    .map(|r| Run {
                        build: r.build.clone(),
                        ok: r.ok,
                        code: r.error_code.clone(),
                        at: r.at,
                    })
                    .collect(),
                paused: paused.contains(&name),
                ..Gathered::default()
            };
            if let Some(job) = p.canary.as_ref().and_then(|c| c.job) {
                let build = p.canary.as_ref().map(|c| c.build.clone());
                g.canary_job = q
                    .heal_job(job)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|row| JobFacts {
                        job,
                        ran_on: row.ran_on,
                        status: row.status,
                        error_code: row.error_code,
                        marked: row.canary.is_some() && row.canary == build,
                    });
            }
            // A canary may be chosen this tick: for a broken platform, or
            // one trying a build.
            if p.broken.is_some() || p.canary.is_some() || self.built.contains_key(name) {
                g.failed_jobs = q
                    .heal_failed_jobs(name, &codes, s.retry_window)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            out.insert(name, g);
        }
        Ok(out)
    }

    /// The platforms paused on every egress they may use here.
    async fn paused(&self) -> Vec<&'static str> {
        let q = &self.heal.queue;
        let Ok(paused) = q.paused_platforms().await else {
            return Vec::new();
        };
        let routes = q.routes();
        PLATFORMS
            .iter()
            .map(|p| p.as_str())
            .filter(|name| {
                let mut pairs = routes.pairs().filter(|(p, _)| p == name).peekable();
                pairs.peek().is_some()
                    && pairs.all(|(p, k)| paused.iter().any(|(pp, pk, _)| pp == p && pk == k))
            })
            .collect()
    }

    /// Takes the result of a build that finished.
    fn collect_build(&mut self) {
        let finished = self
            .building
            .as_ref()
            .is_some_and(|(_, handle)| handle.is_finished());
        if !finished {
            return;
        }
        let Some((platform, handle)) = self.building.take() else {
            return;
        };
        let result = futures::FutureExt::now_or_never(handle)
            .map(|r| r.unwrap_or_else(|e| Built::Failed(format!("the build stopped: {e}"))))
            .unwrap_or_else(|| Built::Failed("the build stopped".into()));
        self.built.insert(platform, result);
    }

    async fn carry_out(&mut self, s: &HealSettings, platform: Platform, action: Action) {
        let name = platform.as_str();
        let q = &self.heal.queue;
        let codes = ErrorCode::extractor_faults();
        match action {
            Action::Say { warn: true, text } => {
                tracing::warn!(target: "xtract::heal", platform = name, "{text}")
            }
            Action::Say { warn: false, text } => {
                tracing::info!(target: "xtract::heal", platform = name, "{text}")
            }
            Action::Build { skip } => self.start_build(s, name, skip),
            Action::MarkCanary { job, build } => match q.heal_mark_canary(job, &build).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(target: "xtract::heal", "job {job} could not be marked now")
                }
                Err(e) => {
                    tracing::warn!(target: "xtract::heal", "could not mark job {job} as a canary: {e}")
                }
            },
            Action::Unmark { job } => {
                if let Err(e) = q.heal_unmark_canary(job).await {
                    tracing::warn!(target: "xtract::heal", "could not unmark job {job}: {e}");
                }
            }
            Action::RetryOlder { serving, switched } => {
                match q
                    .heal_retry_failed(
                        name,
                        &codes,
                        s.retry_window,
                        None,
                        Some((&serving, switched)),
                    )
                    .await
                {
                    Ok((0, 0)) => {}
                    Ok((failed, waiting)) => tracing::info!(
                        target: "xtract::heal",
                        platform = name,
                        "{name}: {} job(s) that failed on the build it left run again on {serving}",
                        failed + waiting
                    ),
                    Err(e) => {
                        tracing::warn!(target: "xtract::heal", "could not retry the {name} jobs that failed: {e}")
                    }
                }
            }
            Action::RetryFailed { except } => {
                match q
                    .heal_retry_failed(name, &codes, s.retry_window, except, None)
                    .await
                {
                    Ok((0, 0)) => {}
                    Ok((failed, waiting)) => tracing::info!(
                        target: "xtract::heal",
                        platform = name,
                        "{name}: {failed} failed job(s) set back to pending and {waiting} waiting one(s) brought forward"
                    ),
                    Err(e) => {
                        tracing::warn!(target: "xtract::heal", "could not retry the {name} jobs that failed: {e}")
                    }
                }
            }
            Action::Count(event) => {
                self.heal
                    .metrics
                    .heal_events
                    .get_or_create(&HealLabels {
                        platform: name.into(),
                        event: event.as_str().into(),
                    })
                    .inc();
            }
        }
    }

    /// Builds the newest yt-dlp for `platform` in a task of its own: the
    /// other platforms are looked after meanwhile.
    fn start_build(&mut self, s: &HealSettings, platform: &str, skip: Vec<(String, String)>) {
        let Some(dir) = s.tools_dir.clone() else {
            return;
        };
        let options = tools::CandidateOptions {
            dir,
            channel: s.channel,
            plugins: s.plugins.clone(),
            python: s.python.clone(),
        };
        let name = platform.to_string();
        // The loop looks again as soon as it ends.
        let ran = self.heal.builds.ran();
        let handle = tokio::spawn(async move {
            let skip_fn = move |build: &str| {
                skip.iter()
                    .find(|(b, _)| b == build)
                    .map(|(_, why)| why.clone())
            };
            let mut say =
                |line: &str| tracing::info!(target: "xtract::heal", platform = %name, "{line}");
            let built = match tools::build_candidate(&options, &skip_fn, &mut say).await {
                Ok(found) => Built::Found(found),
                Err(ToolsError::Busy(_)) => Built::Busy,
                Err(e) => Built::Failed(e.to_string()),
            };
            ran.notify_one();
            built
        });
        self.building = Some((platform.to_string(), handle));
    }

    /// The dashboard's rows, the metrics and systemd's line.
    async fn report(&mut self, s: &HealSettings, state: &State, default: &str) {
        let mut summary = Vec::new();
        for platform in PLATFORMS {
            let name = platform.as_str();
            let p = state.platform(name);
            let row = health_row(name, &p, s.auto, default);
            let label = PlatformLabel {
                platform: name.into(),
            };
            self.heal
                .metrics
                .platform_broken
                .get_or_create(&label)
                .set(i64::from(p.broken.is_some()));
            let previous = self.reported.get(name).map(|(r, _)| r.build.clone());
            if previous.as_ref() != Some(&row.build) {
                if let Some(Some(old)) = previous {
                    self.heal.metrics.platform_build.remove(&BuildLabels {
                        platform: name.into(),
                        build: old,
                    });
                }
                if let Some(build) = &row.build {
                    self.heal
                        .metrics
                        .platform_build
                        .get_or_create(&BuildLabels {
                            platform: name.into(),
                            build: build.clone(),
                        })
                        .set(1);
                }
            }
            if let Some(b) = &p.broken {
                let trying = p
                    .canary
                    .as_ref()
                    .map(|c| format!(", trying {}", c.build))
                    .unwrap_or_default();
                summary.push(format!(
                    "{name} broken since {}{trying}",
                    b.since.format("%Y-%m-%d %H:%M:%SZ")
                ));
            }
            let due = match self.reported.get(name) {
                Some((last, at)) => *last != row || at.elapsed() >= REPORT_EVERY,
                None => true,
            };
            if due {
                match self.heal.queue.heal_report(&self.heal.host, &row).await {
                    Ok(()) => {
                        self.reported
                            .insert(name.to_string(), (row, std::time::Instant::now()));
                    }
                    Err(e) => tracing::debug!("could not write the platform health report: {e}"),
                }
            }
        }
        self.heal.metrics.set_heal_summary(summary.join(", "));
    }

    /// Runs older than 30 days go, once an hour.
    async fn prune(&mut self) {
        if self
            .pruned
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.pruned = Some(std::time::Instant::now());
        if let Err(e) = self.heal.queue.heal_prune_runs().await {
            tracing::debug!("could not remove old yt-dlp runs: {e}");
        }
    }

    /// Stopping: a build under way is abandoned, and the state says so
    /// (another daemon may start it at once).
    fn interrupted(&mut self) {
        let Some((platform, handle)) = self.building.take() else {
            return;
        };
        handle.abort();
        let s = self.heal.settings.get();
        if let Some(dir) = &s.tools_dir {
            let _ = Layout::new(dir).edit_state(|state| {
                let p = state.platform_mut(&platform);
                if let Some(a) = p.attempt.as_mut().filter(|a| a.running) {
                    a.running = false;
                    a.outcome = "the build was stopped with the daemon".into();
                    a.next_try = Some(Utc::now());
                }
            });
        }
    }
}

/// One platform's line for the dashboard.
fn health_row(name: &str, p: &PlatformState, auto: bool, default: &str) -> HealthRow {
    let state = if p.pin.is_some() {
        "pinned"
    } else if p.broken.is_some() {
        "broken"
    } else if p.canary.is_some() {
        "canary"
    } else if p.probation.is_some() {
        "probation"
    } else {
        "healthy"
    };
    let (tried, tried_at) = if let Some(c) = &p.canary {
        let job = c
            .job
            .map(|j| format!("job {j}"))
            .unwrap_or_else(|| "a job that failed".into());
        (
            Some(format!("trying {} on {job} ({})", c.build, c.why)),
            Some(c.since),
        )
    } else if let Some(pr) = &p.probation {
        (
            Some(format!(
                "{} serves on probation; {} takes over again if it does worse",
                pr.build, pr.previous
            )),
            Some(pr.since),
        )
    } else if let Some(a) = &p.attempt {
        (Some(a.outcome.clone()), Some(a.at))
    } else {
        (p.why.clone(), p.since)
    };
    HealthRow {
        platform: name.to_string(),
        state: state.to_string(),
        since: p.broken.as_ref().map(|b| b.since).or(p.since),
        build: p.serving(Some(default)).map(String::from),
        auto_heal: auto,
        pinned: p.pin.clone(),
        tried,
        tried_at,
        bad_builds: p.bad.keys().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_folder_is_where_the_venv_link_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("venvs")).unwrap();
        assert_eq!(
            tools_dir_of(&dir.path().join("venv/bin/yt-dlp")),
            Some(dir.path().to_path_buf())
        );
        assert_eq!(tools_dir_of(Path::new("/usr/bin/yt-dlp")), None);
        assert_eq!(tools_dir_of(&dir.path().join("other/bin/yt-dlp")), None);
    }
}
