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

    println!("platform\tscenario\tstatus\terror_code\textractor\trequests\tdetail");
    let mut wrong = 0;
    for row in &rows {
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
