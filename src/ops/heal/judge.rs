//! What to do about one platform, from what its jobs did: one pure
//! decision per tick, so that every rule reads (and is tested) on its own.
//! The loop (mod.rs) gathers the facts, applies the decision to the
//! platform's state under the tools folder's lock, and carries out the
//! actions it returns. Every change worth a log line says so once, when
//! the state changes: a platform that stays broken is not reported again
//! with every job.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::ErrorCode;
use crate::ops::tools::platforms::{Attempt, Broken, Canary, PlatformState, Probation};
use crate::ops::tools::{Channel, Found};

/// One yt-dlp run of a job (a row of `xtract.ytdlp_runs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub build: String,
    pub ok: bool,
    pub code: Option<String>,
    pub at: DateTime<Utc>,
}

impl Run {
    /// Failed in a way another build might not (see
    /// `ErrorCode::blames_the_extractor`).
    fn fault(&self) -> bool {
        !self.ok
            && self
                .code
                .as_deref()
                .and_then(ErrorCode::parse)
                .is_some_and(ErrorCode::blames_the_extractor)
    }
}

/// How a build did on a platform over its latest runs. Runs that neither
/// worked nor failed by the extractor's fault (a private video, a rate
/// limit) are counted in `runs` and judge nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub runs: u32,
    pub ok: u32,
    pub faults: u32,
    /// The earliest fault among them.
    pub first_fault: Option<DateTime<Utc>>,
}

impl Tally {
    /// The latest `window` runs of `build` among `runs` (newest first),
    /// only those from `since` on when given.
    pub fn of(runs: &[Run], build: &str, window: u32, since: Option<DateTime<Utc>>) -> Tally {
        let mut t = Tally::default();
        for run in runs
            .iter()
            .filter(|r| r.build == build && since.is_none_or(|s| r.at >= s))
            .take(window as usize)
        {
            t.runs += 1;
            if run.ok {
                t.ok += 1;
            } else if run.fault() {
                t.faults += 1;
                t.first_fault = Some(run.at);
            }
        }
        t
    }

    /// Successes among the runs that judge: None when none did.
    pub fn rate(&self) -> Option<f64> {
        let judged = self.ok + self.faults;
        (judged > 0).then(|| f64::from(self.ok) / f64::from(judged))
    }
}

/// A new build on probation: what to do with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough runs yet.
    Keep,
    /// It did as well as the old one over the window: it stays.
    Settled,
    /// It did worse: the old one takes over again, for this reason.
    RollBack(String),
}

/// Faults a new build must have before it is judged worse: one unlucky
/// link is not enough.
pub const ROLLBACK_FAULTS: u32 = 2;

/// Compares a new build's runs with the old one's. Without runs of the old
/// one to compare with, it is taken to have worked (a platform goes on
/// probation only while it is healthy).
pub fn probation(new: &Tally, old: &Tally, window: u32, names: (&str, &str)) -> Verdict {
    let (new_name, old_name) = names;
    let old_rate = old.rate().unwrap_or(1.0);
    let new_rate = new.rate().unwrap_or(1.0);
    if new.faults >= ROLLBACK_FAULTS && new_rate < old_rate {
        return Verdict::RollBack(format!(
            "{} of its {} jobs on {new_name} failed because yt-dlp could not read the site ({:.0}% worked), against {:.0}% on {old_name}",
            new.faults,
            new.runs,
            new_rate * 100.0,
            old_rate * 100.0
        ));
    }
    if new.ok + new.faults >= window {
        return Verdict::Settled;
    }
    Verdict::Keep
}

/// The settings the decision reads.
#[derive(Debug, Clone)]
pub struct Rules {
    /// XTRACT_AUTO_HEAL: act, or only report.
    pub auto: bool,
    /// yt-dlp is in a tools folder xtract manages (else nothing can be
    /// built or switched).
    pub managed: bool,
    /// N: faults among the last `window` runs that make a platform broken.
    pub failures: u32,
    /// M.
    pub window: u32,
    /// At most one upgrade per platform this often.
    pub interval: Duration,
    /// A canary job that has not finished this long after the build was
    /// chosen is given up.
    pub canary_deadline: Duration,
    /// Another upgrade was running: look again this soon.
    pub busy_retry: Duration,
    /// A build marked as running for this long was left by a daemon that
    /// stopped.
    pub build_stale: Duration,
}

/// A canary job's row as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFacts {
    /// The job these facts are about (gathered before the state was
    /// locked: another daemon may have chosen another job meanwhile).
    pub job: uuid::Uuid,
    pub status: String,
    pub error_code: Option<String>,
    /// `ytdlp_canary` names the build being tried.
    pub marked: bool,
    /// The build its latest run used (`processing_jobs.ytdlp_build`): a
    /// verdict counts only when it is the build being tried. A daemon that
    /// did not know the build yet (it learns of a new candidate on its
    /// next tick; one on another machine never does) runs the job on the
    /// platform's build.
    pub ran_on: Option<String>,
}

/// A build this daemon finished for a platform.
#[derive(Debug, Clone, PartialEq)]
pub enum Built {
    Found(Found),
    /// Another upgrade holds the tools folder: not an attempt.
    Busy,
    Failed(String),
}

/// What is known about one platform this tick.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub platform: &'a str,
    /// The build `venv` leads to now (or XTRACT_YTDLP's name when yt-dlp
    /// is not managed).
    pub default: Option<&'a str>,
    /// What `venv` led to before, when the daily upgrade switched it since
    /// the last tick.
    pub default_before: Option<&'a str>,
    /// Its runs, newest first.
    pub runs: &'a [Run],
    /// Every egress it may use here is paused: pushback, not breakage.
    pub paused: bool,
    /// The canary job's row, when one is chosen.
    pub canary_job: Option<JobFacts>,
    /// Jobs of it that failed by the extractor's fault lately, newest
    /// first: what a canary runs on.
    pub failed_jobs: &'a [Uuid],
    /// A build this daemon finished for it since the last tick.
    pub built: Option<&'a Built>,
    /// This daemon is building (for any platform).
    pub building_here: bool,
    pub now: DateTime<Utc>,
}

/// What the loop carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A log line: a warning or news.
    Say { warn: bool, text: String },
    /// Build the newest yt-dlp, except these (name, why not).
    Build { skip: Vec<(String, String)> },
    /// Re-run `job` on `build`.
    MarkCanary { job: Uuid, build: String },
    /// The job is no longer a canary.
    Unmark { job: Uuid },
    /// Retry the jobs the extractor failed lately, but `except`.
    RetryFailed { except: Option<Uuid> },
    /// Retry those the extractor failed on another build than `serving`
    /// (jobs that started on the old build before a switch end after it).
    RetryOlder {
        serving: String,
        /// When the platform switched: only jobs first started before it
        /// (so each such job is retried once, and jobs another machine
        /// runs on its own build after the switch are left alone).
        switched: DateTime<Utc>,
    },
    /// For the metrics.
    Count(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Broke,
    Recovered,
    Switched,
    NothingNewer,
    UpgradeFailed,
    CanaryFailed,
    CanaryHung,
    RolledBack,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Broke => "broke",
            Event::Recovered => "recovered",
            Event::Switched => "switched",
            Event::NothingNewer => "nothing_newer",
            Event::UpgradeFailed => "upgrade_failed",
            Event::CanaryFailed => "canary_failed",
            Event::CanaryHung => "canary_hung",
            Event::RolledBack => "rolled_back",
        }
    }
}

fn say(out: &mut Vec<Action>, warn: bool, text: String) {
    out.push(Action::Say { warn, text });
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}

/// `build` as the platform's own, or None when it is what `venv` leads to
/// (the platform then follows `venv`).
fn own(build: &str, default: Option<&str>) -> Option<String> {
    (Some(build) != default).then(|| build.to_string())
}

/// Decides about one platform: changes `p` and says what to carry out.
pub fn decide(p: &mut PlatformState, f: &Facts, r: &Rules) -> Vec<Action> {
    let mut out = Vec::new();
    if p.pin.is_some() {
        // The operator chose: nothing is tried on it.
        if let Some(c) = p.canary.take() {
            out.extend(c.job.map(|job| Action::Unmark { job }));
        }
        p.probation = None;
    }
    if let (Some(before), Some(now_default)) = (f.default_before, f.default) {
        if r.auto && p.pin.is_none() && p.canary.is_none() {
            adopt(p, before, now_default, f, &mut out);
        }
    }
    let serving = p.serving(f.default).map(String::from);
    if let Some(serving) = &serving {
        judge_health(p, serving, f, r, &mut out);
    }
    if let Some(pin) = p.pin.clone() {
        if let (Some(built), Some(a)) = (f.built, p.attempt.as_mut()) {
            // A build that ended after the operator pinned the platform:
            // the attempt is over, and nothing is tried.
            a.running = false;
            a.outcome = match built {
                Built::Found(Found::Build { name, .. }) => {
                    format!("built {name}; not tried: pinned to {pin} meanwhile")
                }
                _ => format!("the upgrade ended; pinned to {pin} meanwhile"),
            };
        }
        return out;
    }
    let Some(serving) = serving else {
        return out;
    };
    if let Some(built) = f.built {
        record_build(p, built, &serving, f, r, &mut out);
    }
    if !r.auto {
        if let Some(c) = p.canary.take() {
            out.extend(c.job.map(|job| Action::Unmark { job }));
        }
        return out;
    }
    follow_canary(p, &serving, f, r, &mut out);
    follow_probation(p, f, r, &mut out);
    start_build(p, &serving, f, r, &mut out);
    // For a while after a switch, jobs that were running on the build it
    // left may still fail by its fault: they run again on the new one.
    let switched_lately = p.since.filter(|t| f.now < after(*t, r.canary_deadline));
    if let Some(switched) = switched_lately {
        if p.broken.is_none() && p.canary.is_none() {
            if let Some(serving) = p.serving(f.default) {
                out.push(Action::RetryOlder {
                    serving: serving.to_string(),
                    switched,
                });
            }
        }
    }
    out
}

/// The daily upgrade switched `venv` from `before` to `new`: a platform
/// that works tries the new build on probation (its next jobs run on it);
/// a broken one tries it as a canary first; one where it did worse before
/// stays where it is.
fn adopt(p: &mut PlatformState, before: &str, new: &str, f: &Facts, out: &mut Vec<Action>) {
    let name = f.platform;
    let Some(old) = p.serving(Some(before)).map(String::from) else {
        return;
    };
    if old == new {
        // Already on it (a build it switched to by itself).
        p.build = None;
        return;
    }
    if let Some(why) = p.bad.get(new) {
        p.build = Some(old.clone());
        say(
            out,
            false,
            format!("{name}: the upgrade installed {new}, which did worse on {name} before ({why}); {name} stays on {old}"),
        );
        return;
    }
    if p.broken.is_some() {
        p.build = Some(old.clone());
        p.canary = Some(Canary {
            build: new.to_string(),
            job: None,
            since: f.now,
            why: "the daily upgrade installed it".into(),
        });
        say(
            out,
            false,
            format!("{name}: the upgrade installed {new}; {name} is broken on {old}, so {new} is tried on a job that failed first"),
        );
        return;
    }
    p.build = None;
    p.probation = Some(Probation {
        build: new.to_string(),
        previous: old.clone(),
        since: f.now,
    });
    p.since = Some(f.now);
    p.why = Some(format!(
        "the upgrade installed it; {old} takes over again if it does worse on {name}"
    ));
    say(
        out,
        false,
        format!("{name}: the upgrade installed {new}; {name}'s next jobs run on it, and {old} takes over again if they fail where {old} worked"),
    );
}

/// Broken: N of its last M runs on the build that serves it failed by the
/// extractor's fault, while it was not paused. Works again: fewer.
fn judge_health(p: &mut PlatformState, serving: &str, f: &Facts, r: &Rules, out: &mut Vec<Action>) {
    let name = f.platform;
    if f.paused {
        return;
    }
    if p.probation.as_ref().is_some_and(|pr| pr.build == serving) {
        // A new build on probation is judged against the old one (and
        // goes back when it does worse), not on its own.
        return;
    }
    let t = Tally::of(f.runs, serving, r.window, None);
    let broken = t.faults >= r.failures;
    match (&p.broken, broken) {
        (None, true) => {
            let codes: Vec<String> = {
                let mut c: Vec<String> = f
                    .runs
                    .iter()
                    .filter(|run| run.build == serving && run.fault())
                    .take(r.window as usize)
                    .filter_map(|run| run.code.clone())
                    .collect();
                c.sort();
                c.dedup();
                c
            };
            let why = format!(
                "{} of its last {} jobs on {serving} failed because yt-dlp could not read the site ({})",
                t.faults,
                t.runs,
                codes.join(", ")
            );
            let next = if p.pin.is_some() {
                format!(
                    "; pinned to {} (xtract tools pin): nothing is done about it automatically",
                    p.pin.as_deref().unwrap_or("")
                )
            } else if !r.auto {
                "; XTRACT_AUTO_HEAL=off: only reported (xtract tools upgrade to act)".into()
            } else if !r.managed {
                "; yt-dlp is not in a tools folder xtract manages (XTRACT_TOOLS_DIR): upgrade it by hand".into()
            } else {
                String::new()
            };
            say(out, true, format!("{name} is broken: {why}{next}"));
            p.broken = Some(Broken {
                since: t.first_fault.unwrap_or(f.now),
                why,
            });
            out.push(Action::Count(Event::Broke));
        }
        // Fewer faults is not yet working: a build just switched to has no
        // runs, and a run that failed for the user's reasons (private,
        // removed) proves nothing. Its latest run on the build must have
        // read the site.
        (Some(_), false) if newest_ok(f.runs, serving) => {
            p.broken = None;
            say(out, false, format!("{name} works again on {serving}"));
            out.push(Action::Count(Event::Recovered));
            if r.auto && p.pin.is_none() {
                out.push(Action::RetryFailed { except: None });
            }
        }
        _ => {}
    }
}

/// Whether the newest of `runs` on `build` succeeded.
fn newest_ok(runs: &[Run], build: &str) -> bool {
    runs.iter()
        .find(|run| run.build == build)
        .is_some_and(|run| run.ok)
}

/// What came of a build this daemon ran for the platform.
fn record_build(
    p: &mut PlatformState,
    built: &Built,
    serving: &str,
    f: &Facts,
    r: &Rules,
    out: &mut Vec<Action>,
) {
    let name = f.platform;
    // The interval counts from the attempt's end: never two attempts
    // closer than that.
    let started = p.attempt.as_ref().map_or(f.now, |a| a.at);
    let attempt = |outcome: String, next: Duration| Attempt {
        at: started,
        outcome,
        running: false,
        next_try: Some(after(f.now, next)),
    };
    match built {
        Built::Found(Found::Build {
            name: build,
            channel,
        }) => {
            let why = match channel {
                Channel::Nightly => "the newest nightly",
                Channel::Stable => "the newest stable release",
            };
            p.attempt = Some(attempt(
                format!("built and checked {build} ({why}); trying it on a job that failed on {serving}"),
                r.interval,
            ));
            p.canary = Some(Canary {
                build: build.clone(),
                job: None,
                since: f.now,
                why: format!("{why}, built because {serving} failed"),
            });
            say(
                out,
                false,
                format!("{name}: built and checked yt-dlp {build} ({why}); it is tried on a {name} job that failed before {name} switches to it"),
            );
        }
        Built::Found(Found::NothingNewer(seen)) => {
            let outcome = format!(
                "no newer yt-dlp to try: {seen}; {name} stays on {serving}; next try in {}",
                secs(r.interval)
            );
            say(out, true, format!("{name}: {outcome}"));
            p.attempt = Some(attempt(outcome, r.interval));
            out.push(Action::Count(Event::NothingNewer));
        }
        Built::Busy => {
            p.attempt = Some(Attempt {
                at: started,
                outcome: "waiting: another upgrade is working in the tools folder".into(),
                running: false,
                next_try: Some(after(f.now, r.busy_retry)),
            });
        }
        Built::Failed(e) => {
            let outcome = format!(
                "the upgrade failed: {e}; {name} stays on {serving}; next try in {}",
                secs(r.interval)
            );
            say(out, true, format!("{name}: {outcome}"));
            p.attempt = Some(attempt(outcome, r.interval));
            out.push(Action::Count(Event::UpgradeFailed));
        }
    }
}

/// A new build being tried on a job that failed: choose the job, wait for
/// it, switch when it completes, drop the build when it fails.
fn follow_canary(
    p: &mut PlatformState,
    serving: &str,
    f: &Facts,
    r: &Rules,
    out: &mut Vec<Action>,
) {
    let name = f.platform;
    let Some(c) = p.canary.clone() else {
        return;
    };
    let give_up = |p: &mut PlatformState, out: &mut Vec<Action>, outcome: String| {
        let text = format!(
            "{outcome}; {name} stays on {serving}; next try in {}",
            secs(r.interval)
        );
        say(out, true, format!("{name}: {text}"));
        p.canary = None;
        if let Some(a) = &mut p.attempt {
            a.outcome = text;
            a.running = false;
            a.next_try = Some(after(f.now, r.interval));
        }
    };
    let late = f.now > after(c.since, r.canary_deadline);
    let Some(job) = c.job else {
        match f.failed_jobs.first() {
            Some(&job) => {
                if let Some(c) = &mut p.canary {
                    c.job = Some(job);
                }
                out.push(Action::MarkCanary {
                    job,
                    build: c.build.clone(),
                });
                say(
                    out,
                    false,
                    format!(
                        "{name}: trying {} on job {job}, which failed on {serving}",
                        c.build
                    ),
                );
            }
            None if late => give_up(
                p,
                out,
                format!(
                    "no job that failed on {serving} to try {} on within {}",
                    c.build,
                    secs(r.canary_deadline)
                ),
            ),
            None => {}
        }
        return;
    };
    let Some(j) = &f.canary_job else {
        // The job is gone (deleted): another one.
        if let Some(c) = &mut p.canary {
            c.job = None;
        }
        return;
    };
    if j.job != job {
        // Facts about a job chosen before another daemon chose this one:
        // judged on the next tick.
        return;
    }
    let finished = j.status == "completed" || j.status == "failed";
    // It ran, but not on the build being tried (a daemon that did not know
    // the build yet took it): no verdict, as if it had not run. Past the
    // deadline the try ends, the build not blamed (daemons on another
    // machine never have it).
    let ran_elsewhere = j.marked && finished && j.ran_on.as_deref() != Some(c.build.as_str());
    if ran_elsewhere && late {
        out.push(Action::Unmark { job });
        give_up(
            p,
            out,
            format!(
                "{} could not be tried: job {job} ran on other builds until the deadline (daemons that do not have it, on another machine?)",
                c.build
            ),
        );
        return;
    }
    if !j.marked || ran_elsewhere {
        if j.status == "completed" {
            // Done without being tried on the build (by hand, or on
            // another build): the user's gain; another job is chosen.
            if j.marked {
                out.push(Action::Unmark { job });
            }
            if let Some(c) = &mut p.canary {
                c.job = None;
            }
        } else {
            // Not marked yet (or no longer), or failed on another build:
            // it runs (again) on the build being tried.
            out.push(Action::MarkCanary {
                job,
                build: c.build.clone(),
            });
        }
        return;
    }
    if j.status == "completed" {
        out.push(Action::Unmark { job });
        let was = p
            .broken
            .as_ref()
            .map(|b| format!(" ({})", b.why))
            .unwrap_or_default();
        p.build = own(&c.build, f.default);
        p.since = Some(f.now);
        p.why = Some(format!(
            "job {job} completed on it after {serving} failed{was}"
        ));
        p.broken = None;
        p.canary = None;
        p.probation = None;
        if let Some(a) = &mut p.attempt {
            a.outcome = format!(
                "switched to {}: job {job}, which failed on {serving}, completed on it",
                c.build
            );
            a.running = false;
        }
        say(
            out,
            false,
            format!(
                "{name} switched to yt-dlp {}: job {job}, which failed on {serving}, completed on it; the jobs that failed lately are retried",
                c.build
            ),
        );
        out.push(Action::RetryFailed { except: Some(job) });
        out.push(Action::Count(Event::Switched));
        return;
    }
    match j.error_code.as_deref().and_then(ErrorCode::parse) {
        // A canary that failed or hung keeps its mark: the job is retried
        // with the others once the platform works again.
        Some(code) if code.blames_the_extractor() => {
            p.bad.insert(
                c.build.clone(),
                format!(
                    "job {job} failed on it ({code}), {}",
                    f.now.format("%Y-%m-%d %H:%M")
                ),
            );
            give_up(
                p,
                out,
                format!(
                    "{} failed on job {job} too ({code}): it is not used for {name}",
                    c.build
                ),
            );
            out.push(Action::Count(Event::CanaryFailed));
        }
        Some(ErrorCode::Timeout) => {
            give_up(
                p,
                out,
                format!(
                    "job {job} on {} hung and was stopped at the job time limit",
                    c.build
                ),
            );
            out.push(Action::Count(Event::CanaryHung));
        }
        Some(code) if code.retry() == crate::domain::Retry::Cooldown && !late => {
            // The platform pushed back: the job runs again after the pause.
        }
        Some(_) => {
            // The video's own fault (private, removed): it says nothing
            // about the build. Another job.
            out.push(Action::Unmark { job });
            if let Some(c) = &mut p.canary {
                c.job = None;
            }
        }
        None if late => {
            out.push(Action::Unmark { job });
            give_up(
                p,
                out,
                format!(
                    "job {job} did not finish on {} within {}",
                    c.build,
                    secs(r.canary_deadline)
                ),
            );
        }
        None => {}
    }
}

/// A new build serving the platform on probation: back to the old one when
/// it does worse.
fn follow_probation(p: &mut PlatformState, f: &Facts, r: &Rules, out: &mut Vec<Action>) {
    let name = f.platform;
    let Some(pr) = p.probation.clone() else {
        return;
    };
    let new = Tally::of(f.runs, &pr.build, r.window, Some(pr.since));
    let old = Tally::of(f.runs, &pr.previous, r.window, None);
    match probation(&new, &old, r.window, (&pr.build, &pr.previous)) {
        Verdict::Keep => {}
        Verdict::Settled => {
            p.probation = None;
            say(
                out,
                false,
                format!(
                    "{name}: {} did as well as {} over {} jobs; it stays",
                    pr.build,
                    pr.previous,
                    new.ok + new.faults
                ),
            );
        }
        Verdict::RollBack(why) => {
            p.bad.insert(
                pr.build.clone(),
                format!("{why}, {}", f.now.format("%Y-%m-%d %H:%M")),
            );
            p.build = own(&pr.previous, f.default);
            p.probation = None;
            // Judged again on the build that serves it now.
            p.broken = None;
            p.since = Some(f.now);
            p.why = Some(format!("back from {}: {why}", pr.build));
            say(
                out,
                true,
                format!(
                    "{name} went back to yt-dlp {}: {why}; {} is not used for {name} again; the jobs it failed are retried",
                    pr.previous, pr.build
                ),
            );
            out.push(Action::RetryFailed { except: None });
            out.push(Action::Count(Event::RolledBack));
        }
    }
}

/// A broken platform gets an upgrade at once, at most once per interval,
/// and not while another build for it is being made or tried.
fn start_build(p: &mut PlatformState, serving: &str, f: &Facts, r: &Rules, out: &mut Vec<Action>) {
    if !r.managed || p.broken.is_none() || p.canary.is_some() || p.probation.is_some() {
        return;
    }
    if f.building_here || f.built.is_some() {
        // Not in the tick that took a build's result: the next attempt
        // counts its interval from there.
        return;
    }
    let due = match &p.attempt {
        None => true,
        Some(a) if a.running => f.now > after(a.at, r.build_stale),
        Some(a) => a.next_try.is_none_or(|t| f.now >= t),
    };
    if !due {
        return;
    }
    let name = f.platform;
    let mut skip = vec![(serving.to_string(), format!("what {name} runs now"))];
    for (build, why) in &p.bad {
        skip.push((build.clone(), format!("did worse on {name}: {why}")));
    }
    p.attempt = Some(Attempt {
        at: f.now,
        outcome: format!("building the newest yt-dlp, as {serving} fails"),
        running: true,
        next_try: Some(after(f.now, r.interval)),
    });
    say(
        out,
        false,
        format!("{name}: building the newest yt-dlp, as {serving} fails (at most one upgrade for {name} every {})", secs(r.interval)),
    );
    out.push(Action::Build { skip });
}

#[cfg(test)]
mod tests;
