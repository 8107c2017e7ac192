//! The platform rehearsal as a table: every scenario of
//! tests/support/rehearsal/scenarios.rs once through the real daemon (the
//! pinned yt-dlp, warm; a few on the command line), one line per platform
//! and scenario, tab-separated:
//!
//!     platform  scenario  status  error_code  extractor  requests  detail
//!
//! `requests` is how many requests the platform saw for that job. Exits 1
//! when a row is not what the scenario expects. Run as root (a private
//! mount namespace and port 443):
//!
//!     scripts/rehearse            # cargo bench --bench rehearse
//!     scripts/rehearse heal       # TikTok breaks and heals (issue 21) alone

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::rehearsal::rig::{Outcome, Rig, RigOptions};
use support::rehearsal::scenarios::{self, Scenario};
use support::rehearsal::{Behaviour, Rehearsal, Site};

struct Row {
    site: Site,
    name: String,
    want_status: &'static str,
    want_code: Option<&'static str>,
    outcome: Outcome,
    requests: usize,
    note: String,
}

/// Adds every scenario's job at once and waits for them all.
async fn run(r: &Rehearsal, rig: &Rig, list: &[Scenario], suffix: &str) -> Vec<Row> {
    let mut jobs = Vec::new();
    for s in list {
        let (url, video) = r.video(s.site, s.behaviour);
        jobs.push((*s, video, rig.scenario_job(s, &url).await));
    }
    let mut rows = Vec::new();
    for (s, video, id) in jobs {
        let outcome = rig.finished(id, Duration::from_secs(180)).await;
        rows.push(Row {
            site: s.site,
            name: format!("{}{suffix}", s.name),
            want_status: s.want_status,
            want_code: s.want_code,
            requests: r.seen_for(&video).len(),
            note: s.note.to_string(),
            outcome,
        });
    }
    rows
}

/// The extractor yt-dlp named: the job's record, else the `[Name]` of its
/// error line (a job that failed before yt-dlp said what it found).
fn extractor(o: &Outcome) -> String {
    o.extractor
        .clone()
        .or_else(|| {
            let detail = o.error_detail.as_deref()?;
            let at = detail.find("ERROR: [")? + "ERROR: [".len();
            let end = detail[at..].find(']')?;
            Some(detail[at..at + end].to_string())
        })
        .unwrap_or_else(|| "-".into())
}

/// Issue 21: TikTok ships a redesign (every page moves its data under a
/// new script id), the pinned yt-dlp fails TikTok's jobs, and a nightly
/// that reads the new page waits in a local wheel folder. Users keep adding
/// TikTok links (one every 3 s) with the default heal settings (3 of the
/// last 10 jobs; upgrade at once on the nightly channel; a canary on a
/// failed job) and TikTok's default attempts; the row completes when every
/// one of them has. Its detail: seconds from the first failure to the first
/// job completed again, the build's own share of it, and how many users'
/// jobs failed meanwhile.
async fn heal(r: &Rehearsal) -> Row {
    use support::rehearsal::heal::{fixed_nightly, HealTools};
    r.redesign(Site::TikTok, true);
    let t = HealTools::on_the_pinned_yt_dlp();
    let nightly = fixed_nightly();
    // The rehearsal's pacing, with TikTok's default attempts: a job that
    // fails by the extractor waits for a retry instead of failing for good.
    let platforms = support::rehearsal::rig::QUICK_PLATFORMS.replacen("max_attempts = 1\n", "", 1);
    let rig = Rig::start(
        r,
        RigOptions {
            platforms,
            extra_env: t.pip_env(&[&nightly]),
            ..Default::default()
        },
    )
    .await;
    let started = std::time::Instant::now();
    let mut jobs = Vec::new();
    let mut build: (Option<String>, Option<String>) = (None, None);
    let first_completed = loop {
        let (url, video) = r.video(Site::TikTok, Behaviour::Ok);
        jobs.push((video, rig.job(&url).await));
        // Meanwhile: when the build started and when it was ready.
        let state = t.state();
        let tiktok = &state["platforms"]["tiktok"];
        if let Some(at) = tiktok["attempt"]["at"].as_str() {
            build.0.get_or_insert(at.to_string());
        }
        if let Some(at) = tiktok["canary"]["since"].as_str() {
            build.1.get_or_insert(at.to_string());
        }
        let done: Option<chrono::DateTime<chrono::Utc>> = rig
            .client
            .query_one(
                "SELECT min(finished_at) FROM processing_jobs WHERE platform = 'tiktok' AND status = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if let Some(done) = done {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "TikTok did not heal within 10 minutes\n{}",
            rig.daemon.log_text()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    // Every job completes, the ones that failed before the heal too.
    let mut outcomes = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    for (_, id) in &jobs {
        let o = loop {
            let o = rig.outcome(*id).await;
            if o.status == "completed" || std::time::Instant::now() > deadline {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        outcomes.push(o);
    }
    let first_failure: chrono::DateTime<chrono::Utc> = rig
        .client
        .query_one(
            "SELECT min(at) FROM xtract.ytdlp_runs WHERE platform = 'tiktok' AND NOT ok",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Users' jobs that ended an attempt failed before the heal, and those
    // that ended failed for good.
    let (attempts_failed, failed_for_good): (i64, i64) = {
        let row = rig
            .client
            .query_one(
                "SELECT count(DISTINCT job_id), count(DISTINCT job_id) FILTER (WHERE j.status = 'failed')
                 FROM xtract.ytdlp_runs AS r JOIN processing_jobs AS j ON j.id = r.job_id
                 WHERE r.platform = 'tiktok' AND NOT r.ok AND r.at < $1",
                &[&first_completed],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let secs = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
        (b - a).num_milliseconds() as f64 / 1000.0
    };
    let build_secs = match (&build.0, &build.1) {
        (Some(a), Some(b)) => match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => format!("{:.1} s", secs(a, b)),
            _ => "?".into(),
        },
        _ => "not seen".into(),
    };
    let completed = outcomes.iter().filter(|o| o.status == "completed").count();
    let all = outcomes.len();
    let outcome = outcomes
        .iter()
        .find(|o| o.status != "completed")
        .cloned()
        .unwrap_or_else(|| outcomes[0].clone());
    let requests = jobs.iter().map(|(v, _)| r.seen_for(v).len()).sum();
    r.redesign(Site::TikTok, false);
    Row {
        site: Site::TikTok,
        name: "heal".into(),
        want_status: "completed",
        want_code: None,
        outcome,
        requests,
        note: format!(
            "first failure to first job completed again: {:.1} s (the build and its check: {build_secs}); {attempts_failed} users' jobs failed meanwhile ({failed_for_good} for good: the others waited for their retry), {completed} of {all} completed; defaults: 3 of the last 10 jobs, nightly channel, a TikTok link every 3 s",
            secs(first_failure, first_completed)
        ),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "platform rehearsal: run it with `scripts/rehearse` (cargo bench --bench rehearse)"
        );
        return;
    }
    let r = Rehearsal::start();
    let mut rows = Vec::new();
    // `scripts/rehearse heal`: that row alone.
    let only_heal = std::env::args().skip(1).any(|a| a == "heal");
    if only_heal {
        eprintln!("rehearse: TikTok breaks and heals");
        rows.push(heal(&r).await);
        print_table(&rows);
        return;
    }
    // Failures fail after one attempt and one pause, so the table shows
    // the code a user ends with.
    let quick = || RigOptions {
        concurrency: 4,
        extra_env: vec![("XTRACT_MAX_PAUSES".into(), "1".into())],
        ..Default::default()
    };
    eprintln!("rehearse: successes, warm and on the command line");
    let successes = scenarios::successes();
    {
        let rig = Rig::start(
            &r,
            RigOptions {
                cookies: vec!["tiktok", "instagram"],
                ..quick()
            },
        )
        .await;
        rows.extend(run(&r, &rig, &successes, "").await);
    }
    {
        let rig = Rig::start(
            &r,
            RigOptions {
                warm: false,
                cookies: vec!["tiktok", "instagram"],
                ..quick()
            },
        )
        .await;
        rows.extend(run(&r, &rig, &successes, " (command line)").await);
    }
    eprintln!("rehearse: failures and pushback");
    {
        let rig = Rig::start(&r, quick()).await;
        let mut list = scenarios::failures();
        // Pushback that ends: the job completes after the pause.
        for site in Site::ALL {
            list.push(Scenario {
                site,
                name: "429-then-ok",
                behaviour: Behaviour::TooManyRequestsFirst(1),
                cookies: false,
                sound: false,
                want_status: "completed",
                want_code: None,
                note: "one 429: paused on the egress (no attempt spent), then completed",
            });
        }
        rows.extend(run(&r, &rig, &list, "").await);
    }
    eprintln!("rehearse: a site-wide redesign");
    {
        r.redesign(Site::Instagram, true);
        let before = r.seen().len();
        let rig = Rig::start(&r, quick()).await;
        let list = [Scenario {
            site: Site::Instagram,
            name: "redesign",
            behaviour: Behaviour::Ok,
            cookies: false,
            sound: false,
            want_status: "failed",
            want_code: Some("extractor_outdated"),
            note: "site-wide: the session set-up page lost its LSD token ('Unable to extract LSD token')",
        }];
        let mut redesign = run(&r, &rig, &list, "").await;
        // The run stopped at the session set-up, which names no video: the
        // job's requests are the site's since the block began (it ran alone).
        redesign[0].requests = r.seen()[before..]
            .iter()
            .filter(|s| s.site == Some(Site::Instagram))
            .count();
        rows.extend(redesign);
        r.redesign(Site::Instagram, false);
    }

    eprintln!("rehearse: TikTok breaks and heals");
    rows.push(heal(&r).await);

    print_table(&rows);
}

/// Prints the table; exits 1 when a row is not as its scenario expects.
fn print_table(rows: &[Row]) {
    println!("platform\tscenario\tstatus\terror_code\textractor\trequests\tdetail");
    let mut wrong = 0;
    for row in rows {
        let o = &row.outcome;
        let code = o.error_code.as_deref();
        let ok = o.status == row.want_status
            && (row.want_status == "completed" || code == row.want_code);
        let mut detail = row.note.clone();
        if !ok {
            wrong += 1;
            detail = format!(
                "UNEXPECTED (wanted {} {}): {}",
                row.want_status,
                row.want_code.unwrap_or(""),
                o.error_detail.as_deref().unwrap_or("")
            );
        }
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            row.site.name(),
            row.name,
            o.status,
            code.unwrap_or("-"),
            extractor(o),
            row.requests,
            detail.replace('\t', " ")
        );
    }
    eprintln!("rehearse: {} rows, {wrong} not as expected", rows.len());
    if wrong > 0 {
        std::process::exit(1);
    }
}
