//! The platform rehearsal: the real, pinned yt-dlp's TikTok, Instagram and
//! YouTube extractors against local stand-ins of the sites
//! (tests/support/rehearsal), driven through the real daemon. The tests
//! read the platform's record of what it was asked, not only xtract's rows.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::rehearsal::rig::{Outcome, Rig, RigOptions, QUICK_PLATFORMS, SESSION_COOKIE_VALUE};
use support::rehearsal::scenarios::{self, Scenario};
use support::rehearsal::{Behaviour, Rehearsal, Seen, Site};
use uuid::Uuid;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// No request may carry xtract's own identity to a platform: its name in a
/// User-Agent or any header, the service key, a database password.
fn assert_no_identity(seen: &[Seen]) {
    for s in seen {
        let ua = s.user_agent.to_lowercase();
        assert!(
            !ua.contains("xtract"),
            "{} {}: User-Agent {ua}",
            s.host,
            s.path
        );
        assert!(
            !ua.contains("python") && !ua.contains("yt-dlp"),
            "{} {}: {ua}",
            s.host,
            s.path
        );
        for (k, v) in &s.headers {
            assert!(
                !v.to_lowercase().contains("xtract") && k != "apikey" && k != "authorization",
                "{} {}: header {k}: {v}",
                s.host,
                s.path
            );
        }
        assert!(
            !s.path.to_lowercase().contains("xtract"),
            "{} {}",
            s.host,
            s.path
        );
    }
}

/// Starts every scenario's job and waits for them all.
async fn run(
    rig: &Rig,
    r: &Rehearsal,
    list: &[Scenario],
    timeout: Duration,
) -> Vec<(Scenario, String, Outcome)> {
    let mut jobs = Vec::new();
    for s in list {
        let (url, video) = r.video(s.site, s.behaviour);
        jobs.push((*s, video, rig.scenario_job(s, &url).await));
    }
    let mut done = Vec::new();
    for (s, video, id) in jobs {
        let outcome = rig.finished(id, timeout).await;
        done.push((s, video, outcome));
    }
    done
}

fn check(done: &[(Scenario, String, Outcome)], log: &str) {
    let mut wrong = Vec::new();
    for (s, video, o) in done {
        let code = o.error_code.as_deref();
        let as_wanted =
            o.status == s.want_status && (s.want_status == "completed" || code == s.want_code);
        if !as_wanted {
            wrong.push(format!(
                "{} {} ({video}): want {} {:?}, got {} {:?}: {:?} / {:?}",
                s.site.name(),
                s.name,
                s.want_status,
                s.want_code,
                o.status,
                code,
                o.error_message,
                o.error_detail
            ));
        }
        // `internal` is for xtract's own faults, never a platform's answer.
        assert_ne!(
            code,
            Some("internal"),
            "{} {}: {:?}",
            s.site.name(),
            s.name,
            o.error_detail
        );
    }
    assert!(
        wrong.is_empty(),
        "{}\n--- daemon log\n{log}",
        wrong.join("\n")
    );
}

async fn success_paths(warm: bool) {
    let r = Rehearsal::shared();
    let rig = Rig::start(
        r,
        RigOptions {
            warm,
            cookies: vec!["tiktok", "instagram"],
            ..Default::default()
        },
    )
    .await;
    let list = scenarios::successes();
    let done = run(&rig, r, &list, SECS(90)).await;
    check(&done, &rig.daemon.log_text());
    for (s, video, o) in &done {
        let what = format!("{} {}", s.site.name(), s.name);
        // The platform's own extractor read it, not the generic one.
        let want = match s.site {
            Site::TikTok => "TikTok",
            Site::Instagram => "Instagram",
            Site::YouTube => "Youtube",
        };
        assert_eq!(o.extractor.as_deref(), Some(want), "{what}");
        let audio = o.audio.as_ref().expect("an audio row");
        assert_eq!(audio["platform"], s.site.name(), "{what}");
        assert_eq!(
            audio["uploader"].as_str().map(|u| !u.is_empty()),
            Some(true),
            "{what}: {audio}"
        );
        // The title as each extractor makes it: TikTok's post text (or
        // the song's, for its sound), Instagram's "Video by <account>"
        // (its reels carry no title).
        let title = audio["title"].as_str().unwrap_or("");
        match s.site {
            Site::Instagram => assert_eq!(title, "Video by rehearsal", "{what}"),
            _ if s.sound => assert_eq!(title, support::rehearsal::tiktok::SOUND_TITLE, "{what}"),
            _ => assert!(title.contains(video.as_str()), "{what}: {audio}"),
        }
        assert!(
            audio["file_size"].as_i64().unwrap_or(0) > 1000,
            "{what}: {audio}"
        );
        let file = o.file.as_ref().unwrap();
        assert!(file.is_file(), "{what}: {}", file.display());
        // The platform's view of it.
        let seen = r.seen_for(video);
        assert_no_identity(&seen);
        match s.name {
            "phone" => {
                // The desktop strategies got the page without formats; the
                // phone asked for the page and the media as one iPhone.
                let phone: Vec<&Seen> = seen
                    .iter()
                    .filter(|q| q.user_agent.contains("iPhone"))
                    .collect();
                assert!(
                    phone
                        .iter()
                        .any(|q| q.path.contains("/video/") && q.host == "www.tiktok.com")
                        && phone.iter().any(|q| q.path.ends_with("post.mp4")),
                    "{what}: {seen:#?}"
                );
                let uas: std::collections::HashSet<&str> =
                    phone.iter().map(|q| q.user_agent.as_str()).collect();
                assert_eq!(uas.len(), 1, "one phone on every request: {uas:?}");
                assert!(
                    seen.iter().any(|q| q.answer.contains("without formats")),
                    "{what}"
                );
            }
            "cookies" => {
                let signed_in: Vec<&Seen> = seen
                    .iter()
                    .filter(|q| q.cookies.iter().any(|c| c == "sessionid"))
                    .collect();
                assert!(
                    !signed_in.is_empty(),
                    "{what}: the platform saw no session cookie: {seen:#?}"
                );
                let _ = SESSION_COOKIE_VALUE;
            }
            _ => {
                // Without a cookie file nothing is signed in.
                assert!(
                    seen.iter()
                        .all(|q| !q.cookies.iter().any(|c| c == "sessionid")),
                    "{what}"
                );
            }
        }
    }
    // The warm path really ran warm (and the command line did not).
    let log = rig.daemon.log_text();
    assert_eq!(log.contains("warm yt-dlp ready"), warm, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_completes_through_its_own_extractor_warm() {
    success_paths(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_completes_through_its_own_extractor_on_the_command_line() {
    success_paths(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_ends_with_the_code_a_user_should_see() {
    let r = Rehearsal::shared();
    let rig = Rig::start(
        r,
        RigOptions {
            concurrency: 4,
            // A pushback that does not end fails after one pause.
            extra_env: vec![("XTRACT_MAX_PAUSES".into(), "1".into())],
            ..Default::default()
        },
    )
    .await;
    let list = scenarios::failures();
    let done = run(&rig, r, &list, SECS(120)).await;
    check(&done, &rig.daemon.log_text());
    for (_, video, _) in &done {
        assert_no_identity(&r.seen_for(video));
    }
}

/// A redesign that breaks the whole site at once (Instagram's session
/// set-up without its LSD token) is an outdated extractor, not the user's
/// fault. Its own stand-ins: the change is site-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_wide_redesign_reads_as_an_outdated_extractor() {
    let r = Rehearsal::start();
    r.redesign(Site::Instagram, true);
    let rig = Rig::start(&r, RigOptions::default()).await;
    let (url, _) = r.video(Site::Instagram, Behaviour::Ok);
    let id = rig.job(&url).await;
    let o = rig.finished(id, SECS(60)).await;
    assert_eq!(o.error_code.as_deref(), Some("extractor_outdated"), "{o:?}");
    assert!(
        o.error_detail
            .as_deref()
            .unwrap_or("")
            .contains("LSD token"),
        "{o:?}"
    );
    assert!(
        o.error_message
            .as_deref()
            .unwrap_or("")
            .contains("Instagram has changed"),
        "{o:?}"
    );
}

/// The first request of each job, by the client (egress) that sent it.
fn first_requests(r: &Rehearsal, videos: &[String]) -> BTreeMap<IpAddr, Vec<std::time::Instant>> {
    let mut by_client: BTreeMap<IpAddr, Vec<std::time::Instant>> = BTreeMap::new();
    for v in videos {
        let seen = r.seen_for(v);
        let first = seen
            .iter()
            .min_by_key(|s| s.at)
            .expect("the job reached the platform");
        by_client.entry(first.client).or_default().push(first.at);
    }
    for times in by_client.values_mut() {
        times.sort();
    }
    by_client
}

fn gaps(times: &[std::time::Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

/// Adds `jobs` jobs per platform at once and waits for them all.
async fn burst(r: &Rehearsal, rig: &Rig, jobs: usize) -> Vec<(Site, String, Uuid)> {
    let mut videos: Vec<(Site, String, Uuid)> = Vec::new();
    for _ in 0..jobs {
        for site in Site::ALL {
            let (url, video) = r.video(site, Behaviour::Ok);
            videos.push((site, video, rig.job(&url).await));
        }
    }
    for (_, _, id) in &videos {
        let o = rig.finished(*id, SECS(120)).await;
        assert_eq!(o.status, "completed", "{o:?}\n{}", rig.daemon.log_text());
    }
    videos
}

/// A burst of jobs per platform, as the platform sees it: each job's first
/// request from one egress comes at least the platform's interval after the
/// one before, with one egress and with two (each keeping its own spacing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_spaced_as_the_platform_sees_it() {
    use support::rehearsal::egress::EgressProxy;
    let r = Rehearsal::shared();
    const JOBS: usize = 6;
    // One egress: this machine.
    let rig = Rig::start(
        r,
        RigOptions {
            concurrency: 6,
            ..Default::default()
        },
    )
    .await;
    let videos = burst(r, &rig, JOBS).await;
    check_spacing(
        r,
        &videos,
        &[IpAddr::from(Ipv4Addr::LOCALHOST)],
        "one egress",
    );
    drop(rig);
    // Two proxies, nothing from this machine.
    let a = EgressProxy::start(r, Ipv4Addr::new(127, 0, 0, 11), "alice", "pw-a");
    let b = EgressProxy::start(r, Ipv4Addr::new(127, 0, 0, 12), "bob", "pw-b");
    let platforms = format!(
        "{QUICK_PLATFORMS}\n[egress.a]\nproxy = \"{}\"\n[egress.b]\nproxy = \"{}\"\n",
        a.url(),
        b.url()
    );
    let rig = Rig::start(
        r,
        RigOptions {
            concurrency: 6,
            platforms,
            ..Default::default()
        },
    )
    .await;
    let videos = burst(r, &rig, JOBS).await;
    check_spacing(
        r,
        &videos,
        &[IpAddr::from(a.exit), IpAddr::from(b.exit)],
        "two egresses",
    );
    // The platform saw only the proxies' exits, and each job went out
    // through the egress its row names.
    for (_, video, id) in &videos {
        let o = rig.outcome(*id).await;
        let exit = match o.egress.as_deref() {
            Some("a") => a.exit,
            Some("b") => b.exit,
            other => panic!("egress {other:?}"),
        };
        assert!(
            r.seen_for(video)
                .iter()
                .all(|s| s.client == IpAddr::from(exit)),
            "{video}"
        );
    }
}

/// Every egress in `exits` carried jobs of every platform, and no two
/// first requests of one platform from one egress came closer than the
/// interval (1 s in QUICK_PLATFORMS), as the platform's clock saw them.
fn check_spacing(r: &Rehearsal, videos: &[(Site, String, Uuid)], exits: &[IpAddr], what: &str) {
    for site in Site::ALL {
        let v: Vec<String> = videos
            .iter()
            .filter(|(s, _, _)| *s == site)
            .map(|(_, v, _)| v.clone())
            .collect();
        let by = first_requests(r, &v);
        assert_eq!(
            by.keys().copied().collect::<Vec<_>>(),
            exits,
            "{} {what}",
            site.name()
        );
        for (client, times) in &by {
            let mut gaps = gaps(times);
            // The daemon holds each run's first request until the interval
            // (and REQUEST_MARGIN) after the one before; what it cannot hold
            // is the operating system waking the run on a loaded machine,
            // which shows as a gap a little short of the interval now and
            // then (measured: 0.964 s with the load average at 12 on two
            // cores). A burst, what pacing exists to prevent, would show
            // gaps near zero.
            gaps.sort_by(f64::total_cmp);
            assert!(
                gaps[0] >= 0.9 && gaps[gaps.len() / 2] >= 1.0,
                "{} {what}: first requests from {client} came {gaps:.3?} s apart",
                site.name()
            );
        }
        // A job asks more than once (page, API calls, media, thumbnail):
        // per-job pacing spaces the jobs' first requests, and the rest of a
        // job's follow at once (docs/development.md, "The platform rehearsal").
        for video in &v {
            assert!(r.seen_for(video).len() >= 3, "{video}");
        }
    }
}

/// The platform's view of a pause: after the answer that pushed back (a
/// 429, a login wall, a bot check) at `t0`, nothing from `client` to the
/// platform about this test's `videos` until the pause (QUICK_PLATFORMS'
/// 2 s) is over. Only this test's requests count: the stand-ins are shared
/// with the tests running beside it, whose daemons (and pauses) are their
/// own but whose requests come from 127.0.0.1 too.
fn assert_quiet_after_pushback(
    r: &Rehearsal,
    site: Site,
    client: IpAddr,
    video: &str,
    videos: &[&str],
) {
    let seen: Vec<Seen> = videos.iter().flat_map(|v| r.seen_for(v)).collect();
    let pushed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.site == Some(site) && s.client == client && s.video.as_deref() == Some(video))
        .filter(|s| s.status == 429 || s.answer.contains("login") || s.answer.contains("bot check"))
        .collect();
    let t0 = pushed
        .iter()
        .map(|s| s.at)
        .max()
        .unwrap_or_else(|| panic!("{video}: no pushback seen"));
    let next = seen
        .iter()
        .filter(|s| s.site == Some(site) && s.client == client && s.connected > t0)
        .map(|s| s.connected)
        .min()
        .unwrap_or_else(|| panic!("{video}: nothing after the pause"));
    let quiet = (next - t0).as_secs_f64();
    assert!(
        quiet >= 1.95,
        "{} asked again {quiet:.2}s after pushing back on {video}",
        site.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushback_pauses_the_platform_spends_no_attempt_and_the_job_completes_after() {
    let r = Rehearsal::shared();
    let rig = Rig::start(
        r,
        RigOptions {
            concurrency: 4,
            ..Default::default()
        },
    )
    .await;
    // A 429, Instagram's redirect to its login page, YouTube's bot check,
    // and (after the 429's pause) TikTok's login wall.
    let cases = [
        (Site::TikTok, Behaviour::TooManyRequestsFirst(1)),
        (Site::Instagram, Behaviour::LoginWallFirst(1)),
        (Site::YouTube, Behaviour::LoginWallFirst(1)),
    ];
    let mut jobs = Vec::new();
    for (site, behaviour) in cases {
        let (url, video) = r.video(site, behaviour);
        jobs.push((site, video, rig.job(&url).await));
    }
    // TikTok's login wall, after its rate limit (one pause at a time).
    let (url, wall) = r.video(Site::TikTok, Behaviour::LoginWallFirst(1));
    jobs.push((Site::TikTok, wall, rig.job(&url).await));
    for (site, video, id) in &jobs {
        let o = rig.finished(*id, SECS(90)).await;
        assert_eq!(o.status, "completed", "{} {video}: {o:?}", site.name());
        assert_eq!(
            (o.pauses, o.attempts),
            (1, 1),
            "{} {video}: one pause, no attempt spent: {o:?}",
            site.name()
        );
        // The pause left its reason on the platform's pacing row meanwhile;
        // the job's own last error is cleared by its success.
        let videos: Vec<&str> = jobs.iter().map(|(_, v, _)| v.as_str()).collect();
        assert_quiet_after_pushback(r, *site, IpAddr::from(Ipv4Addr::LOCALHOST), video, &videos);
        assert_no_identity(&r.seen_for(video));
    }
}

/// With two egresses, a platform that limits one of them is paused there
/// only: the job goes out through the other at once, and the limiting
/// egress hears nothing more of that platform during its pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushback_on_one_egress_sends_the_job_through_another() {
    use support::rehearsal::egress::EgressProxy;
    let r = Rehearsal::shared();
    let a = EgressProxy::start(r, Ipv4Addr::new(127, 0, 0, 21), "alice", "pw-a");
    let b = EgressProxy::start(r, Ipv4Addr::new(127, 0, 0, 22), "bob", "pw-b");
    // A long pause for TikTok (the first table of QUICK_PLATFORMS): the
    // jobs cannot be waiting it out.
    let quick = QUICK_PLATFORMS.replacen("cooldown_secs = 2.0", "cooldown_secs = 60.0", 1);
    let platforms = format!(
        "{quick}\n[egress.a]\nproxy = \"{}\"\n[egress.b]\nproxy = \"{}\"\n",
        a.url(),
        b.url()
    );
    let rig = Rig::start(
        r,
        RigOptions {
            platforms,
            ..Default::default()
        },
    )
    .await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let (url, video) = r.video(Site::TikTok, Behaviour::TooManyRequestsFrom(a.exit));
        jobs.push((video, rig.job(&url).await));
    }
    for (video, id) in &jobs {
        let o = rig.finished(*id, SECS(60)).await;
        assert_eq!(o.status, "completed", "{video}: {o:?}");
        assert_eq!(o.egress.as_deref(), Some("b"), "{video}: {o:?}");
        assert_eq!(o.attempts, 1, "{video}: {o:?}");
    }
    // Egress a met the 429 once, then was left alone for TikTok.
    let from_a: Vec<Seen> = r
        .seen()
        .into_iter()
        .filter(|s| s.site == Some(Site::TikTok) && s.client == IpAddr::from(a.exit))
        .filter(|s| {
            jobs.iter()
                .any(|(v, _)| s.video.as_deref() == Some(v.as_str()))
        })
        .collect();
    assert_eq!(from_a.len(), 1, "{from_a:#?}");
    assert_eq!(from_a[0].status, 429);
}

/// Every message yt-dlp's TikTok, Instagram and YouTube extractors, its
/// extractor base class and its networking layer can end a download with
/// (`scripts/ytdlp-error-sources`, read from the pinned yt-dlp's source),
/// printed as yt-dlp prints it, gets a code of its own: none lands on
/// `internal`, which is for xtract's own faults.
#[test]
fn every_message_the_extractors_can_end_with_gets_a_code() {
    use xtract::pipeline::classify::classify_ytdlp;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ytdlp-error-sources");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    const BUG_REPORT: &str = "; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U";
    let (mut checked, mut dynamic, mut internal) = (0, 0, Vec::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let Some((site, rest)) = line.split_once("  ") else {
            continue;
        };
        let file = site.split(':').next().unwrap_or("");
        let extractor = match file {
            "extractor/tiktok.py" => "TikTok",
            "extractor/instagram.py" => "Instagram",
            f if f.starts_with("extractor/youtube/") => "youtube",
            "extractor/common.py" => "youtube",
            f if f.starts_with("networking/") => "TikTok",
            _ => continue,
        };
        let (raiser, message) = rest.split_once("  ").unwrap_or((rest, ""));
        // The message with its f-string holes filled in.
        let mut text = String::new();
        let mut hole = false;
        for c in message.chars() {
            match c {
                '{' => hole = true,
                '}' if hole => {
                    hole = false;
                    text.push('x');
                }
                _ if hole => {}
                c => text.push(c),
            }
        }
        if text.chars().filter(|c| c.is_alphabetic()).count() < 3 {
            // All of it comes from elsewhere (the site's own words, a
            // cause's): the table in tests/data/ytdlp-errors.toml has those.
            dynamic += 1;
            continue;
        }
        let expected = raiser.ends_with("expected")
            || raiser.starts_with("raise_")
            || raiser.starts_with("def ");
        let body = if file.starts_with("networking/") {
            format!("Unable to download webpage: {text}")
        } else {
            text.clone()
        };
        let printed = format!(
            "ERROR: [{extractor}] 7106594312292453675: {body}{}",
            if expected { "" } else { BUG_REPORT }
        );
        checked += 1;
        let code = classify_ytdlp(&printed).code;
        if code == xtract::domain::ErrorCode::Internal {
            internal.push(format!("{site}  {raiser}  {text}"));
        }
    }
    println!("{checked} messages classified, {dynamic} wholly dynamic");
    assert!(
        checked > 40,
        "only {checked} messages: did the script's output change?"
    );
    assert!(
        internal.is_empty(),
        "these land on `internal`:\n{}",
        internal.join("\n")
    );
}

/// Issue 27: a TikTok post set to a licensed song. By default the job
/// keeps what the post sounds like (the video's own track: 523 Hz, 3 s,
/// the creator's voice in real life); asked for its `sound`, the song TikTok
/// names beside it (1500 Hz, 5 s) with the song's title and artist. Checked
/// on the decoded audio itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiktok_job_keeps_what_the_post_sounds_like_and_the_sound_when_asked() {
    use support::rehearsal::media::{self, dominant_frequency};
    let r = Rehearsal::shared();
    let rig = Rig::start(
        r,
        RigOptions {
            extra_env: vec![("XTRACT_DEDUP".into(), "true".into())],
            ..Default::default()
        },
    )
    .await;
    let insert = |url: String, source: &'static str| {
        let client = &rig.client;
        async move {
            client
                .query_one(
                    "INSERT INTO processing_jobs (user_id, original_url, audio_source) VALUES ($1, $2, $3) RETURNING id",
                    &[&support::USER, &url, &source],
                )
                .await
                .map(|row| row.get::<_, Uuid>(0))
        }
    };
    let (url, video) = r.video(Site::TikTok, Behaviour::OkWithSound);
    let post = rig.job(&url).await;
    let post = rig.finished(post, SECS(60)).await;
    assert_eq!(post.status, "completed", "{post:?}");
    let sound = insert(url.clone(), "sound").await.unwrap();
    let sound = rig.finished(sound, SECS(60)).await;
    assert_eq!(sound.status, "completed", "{sound:?}");

    let hz = |o: &Outcome| dominant_frequency(o.file.as_ref().unwrap());
    let secs = |o: &Outcome| o.audio.as_ref().unwrap()["duration"].as_f64().unwrap();
    let near = |got: f64, want: f64| (got - want).abs() < want * 0.03;
    assert!(
        near(hz(&post), media::TIKTOK_POST_HZ),
        "post: {} Hz",
        hz(&post)
    );
    assert!((secs(&post) - 3.0).abs() < 0.2, "post: {} s", secs(&post));
    assert!(
        near(hz(&sound), media::TIKTOK_SOUND_HZ),
        "sound: {} Hz",
        hz(&sound)
    );
    assert!(
        (secs(&sound) - 5.0).abs() < 0.2,
        "sound: {} s",
        secs(&sound)
    );
    // The audio rows say what each is.
    let post_row = post.audio.as_ref().unwrap();
    let sound_row = sound.audio.as_ref().unwrap();
    assert!(
        post_row["title"].as_str().unwrap().contains(&video),
        "{post_row}"
    );
    assert_eq!(post_row["uploader"], "rehearsal");
    assert_eq!(sound_row["title"], support::rehearsal::tiktok::SOUND_TITLE);
    assert_eq!(
        sound_row["uploader"],
        support::rehearsal::tiktok::SOUND_ARTIST
    );
    // Different audio of one link: the sound job did not reuse the post's.
    assert!(sound_row["reused_from_job_id"].is_null(), "{sound_row}");
    // The platform's view: the post's media for the first, the song for the
    // second, nothing else.
    let media_asked = |file: &str| {
        r.seen_for(&video)
            .iter()
            .filter(|s| s.path.split('?').next().unwrap_or("").ends_with(file))
            .count()
    };
    assert_eq!((media_asked("post.mp4"), media_asked("sound.m4a")), (1, 1));

    // A second post job for the link reuses the first's audio (same
    // source), without asking the platform.
    let again = rig.job(&url).await;
    let again = rig.finished(again, SECS(60)).await;
    assert_eq!(
        again.audio.as_ref().unwrap()["reused_from_job_id"].as_str(),
        Some(post_row["job_id"].as_str().unwrap()),
        "{again:?}"
    );

    // A post with an original sound has no song of its own to give.
    let (plain, _) = r.video(Site::TikTok, Behaviour::Ok);
    let none = insert(plain, "sound").await.unwrap();
    let none = rig.finished(none, SECS(60)).await;
    assert_eq!(none.error_code.as_deref(), Some("no_audio"), "{none:?}");
    assert!(
        none.error_message
            .as_deref()
            .unwrap()
            .contains("no separate sound"),
        "{none:?}"
    );

    // Instagram and YouTube name no separate sound yt-dlp can fetch: the
    // insert says so, and nothing is queued.
    for url in [
        "https://www.instagram.com/reel/Cabcdefghij/",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    ] {
        let e = insert(url.to_string(), "sound").await.unwrap_err();
        let db = e.as_db_error().expect("a refusal");
        assert!(
            db.message()
                .starts_with("Only TikTok posts have a separate sound"),
            "{db:?}"
        );
    }
}
