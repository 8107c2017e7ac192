use super::*;

const B: &str = "2026.10.26-aaaa";
const X: &str = "2026.10.27.1.dev0-bbbb";

fn rules() -> Rules {
    Rules {
        auto: true,
        managed: true,
        failures: 3,
        window: 10,
        interval: Duration::from_secs(3600),
        canary_deadline: Duration::from_secs(600),
        busy_retry: Duration::from_secs(30),
        build_stale: Duration::from_secs(2700),
    }
}

fn t0() -> DateTime<Utc> {
    "2026-11-01T12:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// Runs of `build`, oldest first in `codes` (None: ok), returned newest
/// first as the database gives them.
fn runs(build: &str, codes: &[Option<&str>], from: i64) -> Vec<Run> {
    let mut v: Vec<Run> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| Run {
            build: build.into(),
            ok: c.is_none(),
            code: c.map(String::from),
            at: at(from + i as i64),
        })
        .collect();
    v.reverse();
    v
}

const OUTDATED: Option<&str> = Some("extractor_outdated");

fn facts<'a>(runs: &'a [Run], now: i64) -> Facts<'a> {
    Facts {
        platform: "tiktok",
        default: Some(B),
        default_before: None,
        runs,
        paused: false,
        canary_job: None,
        failed_jobs: &[],
        built: None,
        building_here: false,
        now: at(now),
    }
}

/// Canary job `job`, its status and code, its latest run on `build`.
fn ran(job: Uuid, status: &str, code: Option<&str>, build: &str) -> JobFacts {
    JobFacts {
        job,
        status: status.into(),
        error_code: code.map(String::from),
        marked: true,
        ran_on: Some(build.into()),
    }
}

/// Broken since t0, its last upgrade found nothing newer (the next in an
/// hour).
fn broken() -> PlatformState {
    PlatformState {
        broken: Some(Broken {
            since: at(0),
            why: "x".into(),
        }),
        attempt: Some(Attempt {
            at: at(0),
            outcome: "nothing newer".into(),
            running: false,
            next_try: Some(at(3600)),
        }),
        ..Default::default()
    }
}

/// Broken, and trying build X on canary job `job`.
fn trying(job: Uuid) -> PlatformState {
    PlatformState {
        canary: Some(Canary {
            build: X.into(),
            job: Some(job),
            since: at(0),
            why: String::new(),
        }),
        attempt: Some(Attempt {
            at: at(0),
            outcome: "built".into(),
            running: false,
            next_try: None,
        }),
        ..broken()
    }
}

fn said(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Say { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn builds(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Build { .. }))
        .count()
}

#[test]
fn one_unlucky_link_does_not_break_a_platform_and_n_of_m_do() {
    let r = rules();
    let mut p = PlatformState::default();
    // Private posts and rate limits are not breakage; two faults are not
    // enough.
    let list = runs(
        B,
        &[
            None,
            Some("private"),
            Some("rate_limited"),
            OUTDATED,
            None,
            OUTDATED,
        ],
        0,
    );
    let a = decide(&mut p, &facts(&list, 10), &r);
    assert!(p.broken.is_none() && a.is_empty(), "{a:?}");
    let list = runs(B, &[None, OUTDATED, OUTDATED, Some("no_formats")], 0);
    let a = decide(&mut p, &facts(&list, 10), &r);
    let broken = p.broken.clone().expect("broken");
    assert_eq!(broken.since, at(1), "since its first fault");
    assert!(
        said(&a)[0].starts_with("tiktok is broken: 3 of its last 4 jobs on 2026.10.26-aaaa failed"),
        "{a:?}"
    );
    assert_eq!(builds(&a), 1, "an upgrade at once: {a:?}");
    let Some(Action::Build { skip }) = a.iter().find(|a| matches!(a, Action::Build { .. })) else {
        unreachable!()
    };
    assert_eq!(skip[0].0, B);
    // While its egresses are paused nothing is judged.
    let mut q = PlatformState::default();
    let mut f = facts(&list, 10);
    f.paused = true;
    assert!(decide(&mut q, &f, &r).is_empty());
    assert!(q.broken.is_none());
}

#[test]
fn a_broken_platform_gets_one_upgrade_per_interval_and_says_so_once() {
    let r = rules();
    let mut p = PlatformState::default();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let first = decide(&mut p, &facts(&list, 10), &r);
    assert_eq!(builds(&first), 1);
    // Under way: no second build, nothing said again.
    let again = decide(&mut p, &facts(&list, 20), &r);
    assert!(again.is_empty(), "{again:?}");
    // Nothing newer: said once, and no new build before the interval.
    let built = Built::Found(Found::NothingNewer(
        "nightly offers 2026.10.26-aaaa (what tiktok runs now)".into(),
    ));
    let mut f = facts(&list, 30);
    f.built = Some(&built);
    let a = decide(&mut p, &f, &r);
    assert_eq!(said(&a).len(), 1, "{a:?}");
    assert!(said(&a)[0].contains("no newer yt-dlp to try"), "{a:?}");
    assert!(decide(&mut p, &facts(&list, 1000), &r).is_empty());
    // The interval counts from the end of the attempt.
    assert!(decide(&mut p, &facts(&list, 3611), &r).is_empty());
    assert_eq!(builds(&decide(&mut p, &facts(&list, 3631), &r)), 1);
    // A failed build: said once, the same wait.
    let failed = Built::Failed("pip install failed: No space left on device".into());
    let mut f = facts(&list, 3700);
    f.built = Some(&failed);
    let a = decide(&mut p, &f, &r);
    assert!(
        said(&a)[0].contains("No space left on device")
            && said(&a)[0].contains("stays on 2026.10.26-aaaa"),
        "{a:?}"
    );
    assert!(decide(&mut p, &facts(&list, 5000), &r).is_empty());
    // Another upgrade held the folder: that was no attempt; soon again.
    let mut p = PlatformState::default();
    decide(&mut p, &facts(&list, 10), &r);
    let mut f = facts(&list, 20);
    f.built = Some(&Built::Busy);
    assert!(said(&decide(&mut p, &f, &r)).is_empty());
    assert_eq!(builds(&decide(&mut p, &facts(&list, 51), &r)), 1);
}

#[test]
fn a_new_build_serves_the_platform_once_a_failed_job_completes_on_it() {
    let r = rules();
    let mut p = PlatformState::default();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    decide(&mut p, &facts(&list, 10), &r);
    let built = Built::Found(Found::Build {
        name: X.into(),
        channel: Channel::Nightly,
    });
    let job = Uuid::from_u128(7);
    let jobs = [job];
    let mut f = facts(&list, 20);
    f.built = Some(&built);
    f.failed_jobs = &jobs;
    let a = decide(&mut p, &f, &r);
    assert!(
        a.contains(&Action::MarkCanary {
            job,
            build: X.into()
        }),
        "{a:?}"
    );
    assert_eq!(p.serving(Some(B)), Some(B), "not before the canary");
    // Running.
    let mut f = facts(&list, 30);
    f.canary_job = Some(ran(job, "processing", None, X));
    assert!(decide(&mut p, &f, &r).is_empty());
    // Completed: switched, the others retried.
    f.canary_job = Some(ran(job, "completed", None, X));
    let a = decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(B)), Some(X));
    assert!(p.broken.is_none() && p.canary.is_none());
    assert!(
        a.contains(&Action::RetryFailed { except: Some(job) }),
        "{a:?}"
    );
    assert!(a.contains(&Action::Unmark { job }));
    assert!(
        said(&a)[0].starts_with("tiktok switched to yt-dlp 2026.10.27.1.dev0-bbbb"),
        "{a:?}"
    );
}

#[test]
fn a_canary_that_fails_or_hangs_leaves_the_platform_where_it_was() {
    let r = rules();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let job = Uuid::from_u128(7);
    let jobs = [job];
    for (code, bad) in [("extractor_outdated", true), ("timeout", false)] {
        let mut p = PlatformState::default();
        decide(&mut p, &facts(&list, 10), &r);
        let built = Built::Found(Found::Build {
            name: X.into(),
            channel: Channel::Stable,
        });
        let mut f = facts(&list, 20);
        f.built = Some(&built);
        f.failed_jobs = &jobs;
        decide(&mut p, &f, &r);
        let mut f = facts(&list, 40);
        f.canary_job = Some(ran(job, "failed", Some(code), X));
        let a = decide(&mut p, &f, &r);
        assert_eq!(p.serving(Some(B)), Some(B), "{code}");
        assert!(p.canary.is_none() && p.broken.is_some(), "{code}");
        assert_eq!(p.bad.contains_key(X), bad, "{code}");
        assert_eq!(said(&a).len(), 1, "{code}: {a:?}");
        assert!(said(&a)[0].contains("stays on 2026.10.26-aaaa"), "{a:?}");
        // The next upgrade waits for the interval from this one's end.
        assert_eq!(builds(&decide(&mut p, &facts(&list, 3000), &r)), 0);
        assert_eq!(
            builds(&decide(&mut p, &facts(&list, 3641), &r)),
            1,
            "{code}"
        );
    }
    // A private video says nothing about the build: another job is taken.
    let mut p = trying(job);
    let mut f = facts(&list, 40);
    f.canary_job = Some(ran(job, "failed", Some("private"), X));
    let a = decide(&mut p, &f, &r);
    assert_eq!(p.canary.as_ref().unwrap().job, None, "{a:?}");
    assert!(p.bad.is_empty());
}

#[test]
fn a_build_that_does_worse_on_probation_is_rolled_back_and_not_used_again() {
    let r = rules();
    let mut p = PlatformState::default();
    // The daily upgrade switched venv from B to X.
    let list = runs(B, &[None, None, None, None], 0);
    let mut f = facts(&list, 10);
    f.default = Some(X);
    f.default_before = Some(B);
    let a = decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(X)), Some(X), "its next jobs run on X: {a:?}");
    assert_eq!(p.probation.as_ref().unwrap().previous, B);
    // One fault on X is not enough; two, where B worked, are.
    let mut list = runs(X, &[None, OUTDATED], 20);
    list.extend(runs(B, &[None, None, None, None], 0));
    let mut f = facts(&list, 30);
    f.default = Some(X);
    // Nothing but the retry of jobs that failed on B around the switch.
    assert_eq!(
        decide(&mut p, &f, &r),
        [Action::RetryOlder {
            serving: X.into(),
            switched: at(10)
        }]
    );
    let mut list = runs(X, &[None, OUTDATED, OUTDATED], 20);
    list.extend(runs(B, &[None, None, None, None], 0));
    let mut f = facts(&list, 40);
    f.default = Some(X);
    let a = decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(X)), Some(B), "{a:?}");
    assert!(p.bad.contains_key(X));
    assert!(a.contains(&Action::RetryFailed { except: None }));
    assert!(
        said(&a)[0].starts_with("tiktok went back to yt-dlp 2026.10.26-aaaa"),
        "{a:?}"
    );
    // A later upgrade to the same build leaves it where it is.
    let mut f = facts(&list, 50);
    f.default = Some(X);
    f.default_before = Some(X);
    decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(X)), Some(B));

    // A build that does as well settles.
    let mut p = PlatformState::default();
    let mut f = facts(&[], 10);
    f.default = Some(X);
    f.default_before = Some(B);
    decide(&mut p, &f, &r);
    let mut list = runs(X, &[None; 10], 20);
    list.extend(runs(B, &[None, OUTDATED], 0));
    let mut f = facts(&list, 40);
    f.default = Some(X);
    let a = decide(&mut p, &f, &r);
    assert!(p.probation.is_none(), "{a:?}");
    assert_eq!(p.serving(Some(X)), Some(X));
}

#[test]
fn the_daily_upgrade_is_tried_first_on_a_broken_platform_and_not_where_it_did_worse() {
    let r = rules();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let mut p = PlatformState::default();
    decide(&mut p, &facts(&list, 5), &r);
    assert!(p.broken.is_some());
    p.attempt = None;
    let mut f = facts(&list, 10);
    f.default = Some(X);
    f.default_before = Some(B);
    let a = decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(X)), Some(B), "not before its canary: {a:?}");
    assert_eq!(p.canary.as_ref().unwrap().build, X);
    assert_eq!(builds(&a), 0, "no build while one is tried");

    let mut p = PlatformState::default();
    p.bad.insert(X.into(), "did worse".into());
    let mut f = facts(&[], 10);
    f.default = Some(X);
    f.default_before = Some(B);
    decide(&mut p, &f, &r);
    assert_eq!(p.serving(Some(X)), Some(B));
    assert!(p.probation.is_none());
}

#[test]
fn with_auto_heal_off_or_a_pin_a_broken_platform_is_only_reported() {
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let off = Rules {
        auto: false,
        ..rules()
    };
    let mut p = PlatformState::default();
    let a = decide(&mut p, &facts(&list, 10), &off);
    assert!(p.broken.is_some());
    assert_eq!(builds(&a), 0);
    assert!(
        said(&a)[0].ends_with("XTRACT_AUTO_HEAL=off: only reported (xtract tools upgrade to act)"),
        "{a:?}"
    );
    // The daily upgrade: followed as before, nothing tried.
    let mut f = facts(&[], 20);
    f.default = Some(X);
    f.default_before = Some(B);
    decide(&mut p, &f, &off);
    assert!(p.probation.is_none() && p.canary.is_none());

    let mut p = PlatformState {
        pin: Some(B.into()),
        ..Default::default()
    };
    let a = decide(&mut p, &facts(&list, 10), &rules());
    assert_eq!(builds(&a), 0);
    assert!(said(&a)[0].contains("pinned to 2026.10.26-aaaa"), "{a:?}");
    let mut f = facts(&list, 20);
    f.default = Some(X);
    f.default_before = Some(B);
    decide(&mut p, &f, &rules());
    assert_eq!(p.serving(Some(X)), Some(B));
}

#[test]
fn a_platform_that_works_again_on_its_own_retries_what_failed() {
    let r = rules();
    let mut p = broken();
    let list = runs(
        B,
        &[
            OUTDATED, OUTDATED, OUTDATED, None, None, None, None, None, None, None, None,
        ],
        0,
    );
    let a = decide(&mut p, &facts(&list, 20), &r);
    assert!(p.broken.is_none(), "{a:?}");
    assert!(a.contains(&Action::RetryFailed { except: None }));
}

/// A canary job a daemon ran before it knew the build (or one on another
/// machine, which never does) ran on the platform's build: no verdict. A
/// failure runs again on the build being tried; a success is the user's
/// gain, and another job is chosen. Facts gathered about another job than
/// the one chosen meanwhile wait for the next tick.
#[test]
fn a_canary_run_on_another_build_gives_no_verdict() {
    let r = rules();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let job = Uuid::from_u128(7);
    let mut p = trying(job);
    let mut f = facts(&list, 40);
    f.canary_job = Some(ran(job, "failed", OUTDATED, B));
    let a = decide(&mut p, &f, &r);
    assert_eq!(
        a,
        [Action::MarkCanary {
            job,
            build: X.into()
        }]
    );
    assert!(p.bad.is_empty() && p.canary.is_some() && p.broken.is_some());
    let mut p = trying(job);
    f.canary_job = Some(ran(job, "completed", None, B));
    let a = decide(&mut p, &f, &r);
    assert_eq!(a, [Action::Unmark { job }]);
    assert_eq!(p.serving(Some(B)), Some(B), "not switched: {a:?}");
    assert_eq!(p.canary.as_ref().unwrap().job, None);
    // Past the deadline the try ends, without blaming the build, and says
    // why once.
    let mut p = trying(job);
    let mut f = facts(&list, 700);
    f.canary_job = Some(ran(job, "failed", OUTDATED, B));
    let a = decide(&mut p, &f, &r);
    assert!(
        a.contains(&Action::Unmark { job }) && p.bad.is_empty(),
        "{a:?}"
    );
    assert!(p.canary.is_none() && p.broken.is_some(), "{a:?}");
    assert_eq!(said(&a).len(), 1, "{a:?}");
    assert!(said(&a)[0].contains("could not be tried"), "{a:?}");
    // Facts about job 8 while job 7 is the canary.
    let mut p = trying(job);
    let mut f = facts(&list, 40);
    f.canary_job = Some(ran(Uuid::from_u128(8), "failed", OUTDATED, X));
    assert!(decide(&mut p, &f, &r).is_empty());
    assert!(p.bad.is_empty() && p.canary.as_ref().unwrap().job == Some(job));
}

/// Fewer faults than N is not working again: the platform's latest run on
/// its build must have read the site.
#[test]
fn a_broken_platform_works_again_only_after_a_success() {
    let r = rules();
    // No runs on the build that serves it now (pinned to a new one, say).
    let mut p = broken();
    let list = runs(X, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let a = decide(&mut p, &facts(&list, 20), &r);
    assert!(p.broken.is_some(), "{a:?}");
    // Only private videos since: nothing proves it reads the site.
    let mut p = broken();
    let list = runs(
        B,
        &[
            OUTDATED,
            OUTDATED,
            OUTDATED,
            Some("private"),
            Some("private"),
            Some("private"),
            Some("private"),
            Some("private"),
            Some("private"),
            Some("private"),
            Some("private"),
        ],
        0,
    );
    let a = decide(&mut p, &facts(&list, 20), &r);
    assert!(p.broken.is_some(), "{a:?}");
    assert!(!a.contains(&Action::RetryFailed { except: None }));
}

/// A build that ends after the operator pinned the platform ends the
/// attempt (no build left "running" until it is stale) and is not tried.
#[test]
fn a_build_that_ends_after_a_pin_is_not_tried_and_not_left_running() {
    let r = rules();
    let list = runs(B, &[OUTDATED, OUTDATED, OUTDATED], 0);
    let mut p = PlatformState::default();
    let a = decide(&mut p, &facts(&list, 10), &r);
    assert_eq!(builds(&a), 1, "{a:?}");
    assert!(p.attempt.as_ref().unwrap().running);
    p.pin = Some(B.into());
    let built = Built::Found(Found::Build {
        name: X.into(),
        channel: Channel::Nightly,
    });
    let jobs = [Uuid::from_u128(7)];
    let mut f = facts(&list, 20);
    f.built = Some(&built);
    f.failed_jobs = &jobs;
    let a = decide(&mut p, &f, &r);
    let attempt = p.attempt.as_ref().unwrap();
    assert!(!attempt.running, "{attempt:?}");
    assert!(attempt.outcome.contains("not tried: pinned"), "{attempt:?}");
    assert!(p.canary.is_none(), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, Action::MarkCanary { .. })));
}
