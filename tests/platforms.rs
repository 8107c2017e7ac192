//! Platform rules: pacing shared by daemons, pauses after a rate limit,
//! download strategies, progress. The platforms are played by the stand-in
//! yt-dlp; platform links are accepted by name, with no DNS lookup.

mod support;

use std::time::Duration;

use support::row_log::{gaps, record_pacing, slots, through, turns, Paced};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn platforms_file(dir: &std::path::Path, toml: &str) -> String {
    let path = dir.join("platforms.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

/// No pacing delays, one attempt: strategy tests should not wait on timers.
const QUICK: &str = "
[tiktok]
min_interval_secs = 0.0
jitter_secs = [0.0, 0.0]
max_attempts = 1
[instagram]
min_interval_secs = 0.0
jitter_secs = [0.0, 0.0]
max_attempts = 1
[youtube]
min_interval_secs = 0.0
jitter_secs = [0.0, 0.0]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_pace_toward_a_platform() {
    let s = Stage::new()
        .platforms("[tiktok]\nmin_interval_secs = 1.0\njitter_secs = [0.0, 0.0]\n")
        .concurrency(3)
        .prepare()
        .await;
    record_pacing(&s.client).await;
    let _daemons = [s.daemon_as("pacer-0"), s.daemon_as("pacer-1")];
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            s.enqueue(&format!("https://www.tiktok.com/@someone/video/70000{n}"))
                .await,
        );
    }
    for id in &ids {
        s.wait(*id, "completed").await;
    }
    assert_eq!(s.standin.calls().len(), 6);
    // Each run's first request let go a whole interval after the last,
    // whichever daemon ran it (measured where the daemons take their turn).
    let turns = turns(&s.client, "tiktok").await;
    assert_eq!(turns.len(), 6, "{turns:?}");
    let times: Vec<f64> = turns.iter().map(|t| t.at).collect();
    for gap in gaps(&times) {
        assert!(gap >= 1.0, "requests {gap:.3}s apart: {turns:?}");
    }
    let pacing: i64 = s
        .client
        .query_one(
            "SELECT count(*) FROM xtract.platform_pacing WHERE platform = 'tiktok'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pacing, 1, "both daemons use the same row (same egress)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_platform_pauses_without_spending_attempts_while_others_flow() {
    let toml = format!("{QUICK}\n[tiktok]\ncooldown_secs = 3600.0\n").replace(
        "[tiktok]\nmin_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\nmax_attempts = 1\n",
        "",
    );
    let toml = format!("{toml}min_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\n");
    let (s, _daemon) = Stage::new().platforms(&toml).start().await;
    s.standin.fails_with("1001",
        "WARNING: [TikTok] 1001: retrying\nERROR: [TikTok] 1001: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: Too Many Requests>)\n",
    );

    let limited = s.enqueue("https://www.tiktok.com/@a/video/1001").await;
    eventually("the rate-limited job to be put back", SECS(30), || async {
        let row = s.job(limited).await;
        (row["error_code"] == "rate_limited").then_some(())
    })
    .await;
    let waiting = s.enqueue("https://www.tiktok.com/@a/video/1002").await;
    let other = s
        .enqueue("https://www.youtube.com/watch?v=okokokokoko")
        .await;
    s.wait(other, "completed").await;

    let row = s.job(limited).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0, "a platform pause spends no attempt");
    assert!(
        text_of(&row, "error_message").contains("TikTok is limiting"),
        "{row}"
    );
    let waits = s.secs_until_run(limited).await;
    assert!(
        waits > 3500.0,
        "runs again in {waits}s, not after the cooldown"
    );
    // The other TikTok job was not started (it would have gone before the
    // YouTube one, which was inserted later).
    let row = s.job(waiting).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0);
    assert!(!s.standin.calls().iter().any(|c| c.contains("1002")));
    // Operators see the pause.
    let paused: f64 = s.client
        .query_one(
            "SELECT extract(epoch FROM paused_until - now())::float8 FROM xtract.platform_pacing WHERE platform = 'tiktok'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(paused > 3500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_without_audio_only_formats_falls_back_to_a_muxed_file() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin.set_kind("2001", "needmuxed");
    let id = s.enqueue("https://www.tiktok.com/@b/video/2001").await;
    s.wait(id, "completed").await;
    let args = s.standin.args();
    assert_eq!(args.len(), 2, "{args:?}");
    // TikTok's selectors leave out the format of the post's sound (the
    // song TikTok names beside the video): the post's own audio is wanted.
    assert!(
        args[0].contains("-f ba[format_id!=audio][ext=m4a]/ba[format_id!=audio]/b "),
        "{}",
        args[0]
    );
    assert!(
        args[1].contains("-f b/bv*+ba[format_id!=audio] "),
        "{}",
        args[1]
    );
}

/// `ytdlp_args` of a platform reach yt-dlp on every strategy of that
/// platform, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platforms_ytdlp_args_reach_every_strategy_of_that_platform() {
    let toml = format!(
        "{QUICK}ytdlp_args = [\"--extractor-args\", \"youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416\", \"--sleep-requests\", \"1.5\"]\n"
    );
    let (s, _daemon) = Stage::new().platforms(&toml).start().await;
    s.standin.set_kind("muxedvideo1", "needmuxed");
    let yt = s
        .enqueue("https://www.youtube.com/watch?v=muxedvideo1")
        .await;
    s.wait(yt, "completed").await;
    let tt = s.enqueue("https://www.tiktok.com/@b/video/2004").await;
    s.wait(tt, "completed").await;
    let args = s.standin.args();
    assert_eq!(
        args.len(),
        3,
        "two YouTube strategies, one TikTok: {args:?}"
    );
    for line in &args[..2] {
        assert!(
            line.contains(
                "--extractor-args youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416 --sleep-requests 1.5"
            ),
            "{line}"
        );
        // Before the link, not after the `--` that ends the options.
        let (options, _) = line.split_once(" -- ").unwrap();
        assert!(options.contains("--sleep-requests 1.5"), "{line}");
    }
    assert!(!args[2].contains("--extractor-args"), "{}", args[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_file_with_an_option_that_runs_commands_stops_the_daemon() {
    let standin = StandIn::new();
    let mut o = DaemonOptions::new(&standin.script);
    o.extra_env.push((
        "XTRACT_PLATFORMS_FILE".into(),
        platforms_file(
            standin.dir.path(),
            "[youtube]\nytdlp_args = [\"--exec\", \"touch /tmp/pwned\"]\n",
        ),
    ));
    let mut daemon = Daemon::start("postgres://127.0.0.1:9/none", &o);
    assert_eq!(daemon.wait_exit(SECS(30)).await.code(), Some(2));
    let log = daemon.log_text();
    assert!(
        log.contains("[youtube] ytdlp_args") && log.contains("'--exec' is refused: runs commands"),
        "{log}"
    );
    assert!(standin.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_strategy_fails_the_user_is_told_so() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin.fails_with(
        "2002",
        "ERROR: unable to download video data: HTTP Error 403: Forbidden\n",
    );
    let (_, row) = s
        .run("https://www.tiktok.com/@b/video/2002", "failed")
        .await;
    assert!(
        text_of(&row, "error_message").starts_with("All download strategies failed"),
        "{row}"
    );
    assert_eq!(row["error_code"], "http_forbidden");
    assert_eq!(
        s.standin.calls().len(),
        3,
        "audio-only, best, mobile user agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_video_is_not_asked_for_again() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin
        .fails_with("2003", "ERROR: [TikTok] 2003: This account is private\n");
    let id = s.enqueue("https://www.tiktok.com/@b/video/2003").await;
    s.wait(id, "failed").await;
    assert_eq!(s.standin.calls().len(), 1);
    let row = s.job(id).await;
    assert!(
        text_of(&row, "error_message").starts_with("Video Processing Failed"),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instagram_gets_no_forced_user_agent_and_the_media_facts_are_kept() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    let id = s
        .enqueue("https://www.instagram.com/reel/Cabc123XYZ/?igsh=tracking")
        .await;
    s.wait(id, "completed").await;
    let args = s.standin.args();
    // yt-dlp impersonates a browser for Instagram itself (curl_cffi); a
    // forced phone User-Agent would contradict it (see strategy.rs).
    assert!(!args[0].contains("User-Agent"), "{}", args[0]);
    assert!(args[0].contains("--ignore-config") && args[0].contains("--no-playlist"));
    let row = s.job(id).await;
    assert_eq!(row["platform"], "instagram");
    assert_eq!(row["media_title"], "Stand-in Cabc123XYZ");
    assert_eq!(row["media_uploader"], "someone");
    assert_eq!(row["progress_percent"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_while_the_download_runs() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin.set_kind("3001", "slow");
    let id = s.enqueue("https://www.tiktok.com/@c/video/3001").await;
    eventually("progress of 50%", SECS(30), || async {
        let row = s.job(id).await;
        (row["progress_percent"] == 50 && row["status"] == "processing").then_some(())
    })
    .await;
    s.standin.release("3001");
    s.wait(id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_offered_last_and_each_job_gets_its_own_copy() {
    let cookies = tempfile::tempdir().unwrap();
    let original = "# Netscape HTTP Cookie File\n.instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\tsecret-session\n";
    std::fs::write(cookies.path().join("instagram.txt"), original).unwrap();
    let operators = cookies.path().display().to_string();
    let (s, daemon) = Stage::new()
        .platforms(QUICK)
        .env("XTRACT_COOKIES_DIR", &operators)
        .start()
        .await;
    // Two posts that need a signed-in session, run side by side.
    let posts = ["DEF456", "GHI789"];
    let mut ids = Vec::new();
    for post in posts {
        s.standin.set_kind(post, "needcookies");
        ids.push(
            s.enqueue(&format!("https://www.instagram.com/p/{post}/"))
                .await,
        );
    }
    for id in ids {
        s.wait(id, "completed").await;
    }
    let args = s.standin.args();
    let mut copies = Vec::new();
    for post in posts {
        let runs: Vec<&String> = args
            .iter()
            .filter(|a| a.ends_with(&format!("/{post}/")))
            .collect();
        assert!(
            !runs[0].contains("--cookies"),
            "cookies only as a last resort: {runs:?}"
        );
        let last = runs.last().unwrap();
        let (_, after) = last
            .split_once("--cookies ")
            .unwrap_or_else(|| panic!("no cookies for {post}: {last}"));
        let copy = after.split(' ').next().unwrap().to_string();
        // A copy in the job's own folder (yt-dlp rewrites it), gone with it.
        assert!(!copy.starts_with(&operators), "the operator's file: {copy}");
        assert!(
            std::path::Path::new(&copy).starts_with(daemon.work_dir()),
            "{copy}"
        );
        assert!(!std::path::Path::new(&copy).exists(), "{copy} left behind");
        copies.push(copy);
    }
    assert_ne!(copies[0], copies[1], "two jobs, one copy");
    assert_eq!(
        std::fs::read_to_string(cookies.path().join("instagram.txt")).unwrap(),
        original
    );
    assert!(!daemon.log_text().contains("secret-session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_video_is_downloaded_once_and_its_audio_reused() {
    let (s, daemon) = Stage::new().platforms(QUICK).start().await;
    let first = s
        .enqueue("https://www.youtube.com/watch?v=dQw4w9WgXcQ&si=share-token")
        .await;
    s.wait(first, "completed").await;
    let other_user = uuid::Uuid::new_v4();
    let second = s
        .enqueue_as(other_user, "https://youtu.be/dQw4w9WgXcQ")
        .await;
    s.wait(second, "completed").await;

    assert_eq!(s.standin.calls().len(), 1, "the platform was asked once");
    let (a, b) = (
        s.audio(first).await.unwrap(),
        s.audio(second).await.unwrap(),
    );
    assert_eq!(b["reused_from_job_id"], first.to_string());
    assert_eq!(b["user_id"], other_user.to_string());
    assert!(text_of(&b, "storage_path").starts_with(&other_user.to_string()));
    assert_eq!(a["file_size"], b["file_size"]);
    let copy = daemon.audio_dir().join(b["storage_path"].as_str().unwrap());
    let original = daemon.audio_dir().join(a["storage_path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(copy).unwrap(),
        std::fs::read(original).unwrap()
    );
    assert_eq!(s.job(second).await["media_title"], "Stand-in dQw4w9WgXcQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_can_be_turned_off() {
    let (s, _daemon) = Stage::new()
        .platforms(QUICK)
        .env("XTRACT_DEDUP", "false")
        .start()
        .await;
    for _ in 0..2 {
        let id = s
            .enqueue("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
            .await;
        s.wait(id, "completed").await;
    }
    assert_eq!(s.standin.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_meeting_a_rate_limit_fails_after_its_pauses() {
    let toml = QUICK.replace("[instagram]\n", "[instagram]\ncooldown_secs = 0.2\n");
    let (s, _daemon) = Stage::new()
        .platforms(&toml)
        .env("XTRACT_MAX_PAUSES", "2")
        .start()
        .await;
    s.standin.fails_with("Cpaused1234",
        "ERROR: [Instagram] Cpaused1234: Requested content is not available, rate-limit reached or login required. Use --cookies-from-browser or --cookies for the authentication.\n",
    );
    let (_, row) = s
        .run("https://www.instagram.com/p/Cpaused1234/", "failed")
        .await;
    assert_eq!(row["error_code"], "rate_limited");
    assert!(
        text_of(&row, "error_message").starts_with("Instagram Rate Limit Reached"),
        "{row}"
    );
    assert_eq!(row["pauses"], 2);
    assert_eq!(row["attempts"], 1, "pauses spend no attempts");
    assert_eq!(s.standin.calls().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_turned_off_fails_its_jobs_at_once_without_contacting_it() {
    let (s, _daemon) = Stage::new()
        .platforms("[tiktok]\nenabled = false\n")
        .start()
        .await;
    let off = s.enqueue("https://www.tiktok.com/@b/video/3003").await;
    let on = s
        .enqueue("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        .await;
    s.wait(off, "failed").await;
    s.wait(on, "completed").await;
    let row = s.job(off).await;
    assert_eq!(row["error_code"], "unsupported_url");
    assert_eq!(
        row["error_message"],
        "TikTok links are not accepted at the moment."
    );
    assert_eq!(row["attempts"], 1, "failed for good, not retried");
    assert!(
        s.standin.calls().iter().all(|c| !c.contains("3003")),
        "TikTok was asked: {:?}",
        s.standin.calls()
    );
}

/// A job whose turn is too far away is deferred without taking the slot:
/// slots nobody uses must not push every later request back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_job_leaves_the_next_slot_free() {
    use xtract::domain::{Platform, PlatformPolicy};
    let db = TestDb::start().await;
    let pacer = xtract::queue::Queue::new(db.pool(2), "worker", "test").pacer(uuid::Uuid::nil());
    let max_wait = SECS(15);
    let policy = PlatformPolicy {
        min_interval: SECS(10),
        jitter: (SECS(0), SECS(0)),
        max_attempts: 3,
        cooldown: SECS(60),
        enabled: true,
        ytdlp_args: Vec::new(),
        max_runtime: None,
    };
    let client = db.client().await;
    let next = || async {
        let secs: f64 = client
            .query_one(
                "SELECT extract(epoch FROM next_request_at - now())::float8
                 FROM xtract.platform_pacing WHERE platform = 'tiktok' AND egress_key = 'test'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        secs
    };
    let first = pacer
        .reserve(Platform::TikTok, &policy, &["test"], max_wait)
        .await
        .unwrap()
        .wait();
    assert!(first < SECS(1), "{first:?}");
    let second = pacer
        .reserve(Platform::TikTok, &policy, &["test"], max_wait)
        .await
        .unwrap()
        .wait();
    assert!((SECS(9)..=SECS(10)).contains(&second), "{second:?}");
    let booked = next().await;
    // The third slot would start in 20 s: more than 15, so deferred.
    for _ in 0..3 {
        let third = pacer
            .reserve(Platform::TikTok, &policy, &["test"], max_wait)
            .await
            .unwrap()
            .wait();
        assert!(third > SECS(15), "{third:?}");
    }
    let after = next().await;
    assert!(
        after <= booked,
        "deferred jobs moved the next slot from {booked:.1}s to {after:.1}s"
    );
}

/// An Instagram post with several media (a carousel) gives one audio: the
/// item the link names (`img_index`, 1-based), else the first video; photos
/// are skipped. Links to different items are different videos.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_several_items_gives_the_named_item_or_its_first_video() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin
        .set_kind("Ccarousel1", "carousel:photo,video,photo,video");
    let cases = [
        // (link, the item whose audio the job gets)
        ("https://www.instagram.com/p/Ccarousel1/", 2),
        ("https://www.instagram.com/p/Ccarousel1/?img_index=4", 4),
        // A photo: photos are skipped, the post's first video is taken.
        (
            "https://www.instagram.com/p/Ccarousel1/?img_index=3&igsh=x",
            2,
        ),
    ];
    for (link, item) in cases {
        let (id, row) = s.run(link, "completed").await;
        assert_eq!(
            row["media_title"],
            format!("Stand-in Ccarousel1 item {item}"),
            "{link}: {row}"
        );
        let audio: i64 = s
            .client
            .query_one("SELECT count(*) FROM audio_files WHERE job_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(audio, 1, "one job, one audio");
    }
    // Three links, three items asked for: none reused another's audio.
    let args = s.standin.args();
    assert_eq!(args.len(), 3, "{args:?}");
    assert!(
        args.iter().all(|a| a.contains("--max-downloads 1")),
        "{args:?}"
    );
    assert!(!args[0].contains("--playlist-items"), "{}", args[0]);
    assert!(args[1].contains("--playlist-items 4,1:"), "{}", args[1]);
    assert!(args[2].contains("--playlist-items 3,1:"), "{}", args[2]);
    // yt-dlp gets the canonical link (with the item), not the tracking.
    let calls = s.standin.calls();
    assert_eq!(
        calls[2],
        "https://www.instagram.com/p/Ccarousel1/?img_index=3"
    );
}

/// A post of photos only fails at once as having no video; a post whose
/// first video cannot be downloaded fails with that video's reason instead
/// of handing over the next video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_a_downloadable_first_video_fails_for_what_it_is() {
    let (s, _daemon) = Stage::new().platforms(QUICK).start().await;
    s.standin.set_kind("Cphotos1", "carousel:photo,photo");
    s.standin
        .set_kind("Cbroken1", "carousel:photo,video403,video");
    s.standin.set_kind("Clong1", "carousel:long,video");
    let photos = s.enqueue("https://www.instagram.com/p/Cphotos1/").await;
    let broken = s.enqueue("https://www.instagram.com/p/Cbroken1/").await;
    let long = s.enqueue("https://www.instagram.com/p/Clong1/").await;
    for id in [photos, broken, long] {
        s.wait(id, "failed").await;
    }
    let row = s.job(photos).await;
    assert_eq!(row["error_code"], "no_formats", "{row}");
    assert!(
        text_of(&row, "error_message").contains("only photos"),
        "{row}"
    );
    let row = s.job(broken).await;
    assert_eq!(row["error_code"], "http_forbidden", "{row}");
    assert!(row["result_audio_file_id"].is_null());
    let row = s.job(long).await;
    assert_eq!(row["error_code"], "too_long", "{row}");
}

/// yt-dlp blaming itself ("please report this issue") is not the user's
/// video: the job waits half an hour for an upgrade, spends an attempt, and
/// the operator's metric counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outdated_extractor_is_retried_after_a_cooldown_and_counted() {
    let addr = format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap());
    let toml = "[tiktok]\nmin_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\nmax_attempts = 2\n";
    let (s, _daemon) = Stage::new()
        .platforms(toml)
        .env("XTRACT_HEALTH_ADDR", &addr)
        .start()
        .await;
    s.standin.fails_with("7100",
        "ERROR: [TikTok] 7100: Unable to extract universal data for rehydration; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U\n",
    );
    let id = s.enqueue("https://www.tiktok.com/@a/video/7100").await;
    let row = eventually("the job to wait for its retry", SECS(30), || async {
        let row = s.job(id).await;
        (row["status"] == "pending" && row["error_code"] == "extractor_outdated").then_some(row)
    })
    .await;
    assert_eq!(row["attempts"], 1, "an attempt is spent: {row}");
    assert!(
        text_of(&row, "error_message").contains("TikTok has changed"),
        "{row}"
    );
    let waits = s.secs_until_run(id).await;
    assert!(
        waits > 1700.0,
        "retried in {waits}s, not after the cooldown"
    );
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("xtract_extractor_outdated_total{platform=\"tiktok\"} 1"),
        "{metrics}"
    );
}

/// What comes back to the app: the video's title, uploader, platform,
/// source link and thumbnail on the audio row, and the same title, artist
/// and cover inside the file, the AAC stream still copied. A user's choice
/// of format and bitrate is honoured, and repeats are reused only for the
/// same choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_choose_format_and_bitrate_and_get_a_tagged_file_with_its_facts() {
    let (s, daemon) = Stage::new().platforms(QUICK).start().await;
    let insert = |format: Option<&'static str>, bitrate: Option<i32>| {
        let s = &s;
        async move {
            let id: uuid::Uuid = s
                .client
                .query_one(
                    "INSERT INTO processing_jobs (user_id, original_url, audio_format, audio_bitrate_kbps)
                     VALUES ($1, 'https://www.youtube.com/watch?v=tagsTagsTag', $2, $3) RETURNING id",
                    &[&USER, &format, &bitrate],
                )
                .await
                .unwrap()
                .get(0);
            s.wait(id, "completed").await;
            s.audio(id).await.unwrap()
        }
    };
    let probe = |row: &serde_json::Value| {
        let path = daemon
            .audio_dir()
            .join(row["storage_path"].as_str().unwrap());
        let out = std::process::Command::new(&tools().ffprobe)
            .args([
                "-v",
                "error",
                "-of",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(path)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    // The default: m4a, the AAC stream copied, tagged, with a cover.
    let plain = insert(None, None).await;
    assert_eq!(plain["title"], "Stand-in tagsTagsTag");
    assert_eq!(plain["uploader"], "someone");
    assert_eq!(plain["platform"], "youtube");
    assert_eq!(
        plain["source_url"],
        "https://www.youtube.com/watch?v=tagsTagsTag"
    );
    assert_eq!(
        plain["thumbnail_url"],
        "https://img.example/tagsTagsTag.jpg"
    );
    assert_eq!(plain["audio_format"], "m4a");
    assert!(plain["audio_bitrate_kbps"].is_null());
    let file = probe(&plain);
    let tags = &file["format"]["tags"];
    assert_eq!(tags["title"], "Stand-in tagsTagsTag", "{file}");
    assert_eq!(tags["artist"], "someone", "{file}");
    let streams = file["streams"].as_array().unwrap();
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "aac");
    // tiny.m4a is 32 kb/s AAC: copied, not re-encoded at 192k.
    assert!(audio["bit_rate"].as_str().unwrap().parse::<u32>().unwrap() < 64_000);
    assert!(
        streams
            .iter()
            .any(|s| s["disposition"]["attached_pic"] == 1),
        "no cover: {file}"
    );

    // The user's choice: mp3 at 96 kb/s (not reused: another choice).
    let chosen = insert(Some("mp3"), Some(96)).await;
    assert_eq!(chosen["audio_format"], "mp3");
    assert_eq!(chosen["audio_bitrate_kbps"], 96);
    assert_eq!(chosen["content_type"], "audio/mpeg");
    assert!(chosen["reused_from_job_id"].is_null());
    let file = probe(&chosen);
    assert_eq!(file["format"]["format_name"], "mp3");
    // The audio stream's rate (the file's includes its cover picture).
    let stream = file["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap();
    let rate: u32 = stream["bit_rate"].as_str().unwrap().parse().unwrap();
    assert!((80_000..=112_000).contains(&rate), "{rate}");
    assert_eq!(file["format"]["tags"]["title"], "Stand-in tagsTagsTag");

    // The same choice again: reused, with the facts.
    let again = insert(Some("mp3"), Some(96)).await;
    assert!(!again["reused_from_job_id"].is_null(), "{again}");
    assert_eq!(again["title"], "Stand-in tagsTagsTag");
    assert_eq!(s.standin.calls().len(), 2, "the platform was asked twice");

    // A choice the daemon cannot honour is refused at insert, in words.
    for (format, bitrate, words) in [
        (Some("wav"), None, "Unknown audio format \"wav\""),
        (Some("mp3"), Some(1000), "between 32 and 320"),
        (Some("original"), Some(128), "keeps the source"),
    ] {
        let e = s.client
            .execute(
                "INSERT INTO processing_jobs (user_id, original_url, audio_format, audio_bitrate_kbps)
                 VALUES ($1, 'https://youtu.be/aaaaaaaaaaa', $2, $3)",
                &[&USER, &format, &bitrate],
            )
            .await
            .unwrap_err();
        let message = e.as_db_error().unwrap().message().to_string();
        assert!(message.contains(words), "{message}");
    }
}

// ---- the egress pool ----

use support::proxy_double::StandInProxy;

/// `[egress.NAME]` tables for these proxies, and TikTok paced at 2 s.
fn pool_toml(proxies: &[(&str, String)], tiktok: &str) -> String {
    let mut toml = format!("[tiktok]\nmin_interval_secs = 2.0\njitter_secs = [0.0, 0.0]\n{tiktok}");
    for (name, url) in proxies {
        toml.push_str(&format!("[egress.{name}]\nproxy = \"{url}\"\n"));
    }
    toml
}

/// The egress pool tests' TikTok links, less the video's number.
const TIKTOK_POOL: &str = "https://www.tiktok.com/@pool/video/";

/// Each job's `egress` column.
async fn egress_of(client: &tokio_postgres::Client, ids: &[uuid::Uuid]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(job(client, *id).await["egress"].as_str().map(String::from));
    }
    out
}

/// The numbers: three proxy egresses, TikTok paced at 2 s, twelve
/// jobs at once start within about 6 s (one egress would need 22 s), and no
/// egress sends two requests less than 2 s apart. One proxy is SOCKS5; two
/// take a user and password, which reach yt-dlp in its private options file
/// and never on its command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxy_egresses_start_twelve_tiktok_jobs_in_a_third_of_the_time() {
    let res1 = StandInProxy::http(Some(("alice", "s3cret-one")), "203.0.113.1").await;
    let res2 = StandInProxy::http(None, "203.0.113.2").await;
    let res3 = StandInProxy::socks5(Some(("bob", "s3cret-three")), "203.0.113.3").await;
    let toml = pool_toml(
        &[
            ("res1", res1.url()),
            ("res2", res2.url()),
            ("res3", res3.url()),
        ],
        "",
    );
    // Twelve at once: every job holds a worker slot while it waits its turn.
    let s = Stage::new()
        .platforms(&toml)
        .concurrency(12)
        .prepare()
        .await;
    record_pacing(&s.client).await;
    let _daemon = s.daemon();
    let ids = enqueue_burst(&s.client, USER, TIKTOK_POOL, 1..=12).await;
    for id in &ids {
        s.wait(*id, "completed").await;
    }

    let proxies = [("res1", &res1), ("res2", &res2), ("res3", &res3)];
    let turns = turns(&s.client, "tiktok").await;
    for (name, proxy) in proxies {
        let seen = proxy.seen();
        assert!(seen.iter().all(|s| s.authorized), "{name}: {seen:?}");
        let served = proxy.served();
        assert!(served.len() >= 3, "{name} served {}: uneven", served.len());
        // Each request through it let go 2 s after the one before (where
        // the daemon takes its turn; the proxy sees it after a process
        // start).
        let times = through(&turns, name);
        assert_eq!(times.len(), served.len(), "{name}: {turns:?}");
        for gap in gaps(&times) {
            assert!(gap >= 2.0, "{name}: requests {gap:.3}s apart");
        }
    }
    // A third of the time: no job was given a turn more than three slots
    // (6 s) after it asked; through one egress the last would wait eleven.
    let slots = slots(&s.client, "tiktok").await;
    assert_eq!(slots.len(), 12, "{slots:?}");
    let longest = slots.iter().map(Paced::wait).fold(0.0, f64::max);
    assert!(
        longest <= 6.0 + 1e-3,
        "a job waited {longest:.2}s for its turn: {slots:?}"
    );
    // Each job records the egress that served it, as the proxies saw.
    let served_by = egress_of(&s.client, &ids).await;
    for (name, proxy) in proxies {
        let recorded = served_by
            .iter()
            .filter(|e| e.as_deref() == Some(name))
            .count();
        assert_eq!(recorded, proxy.served().len(), "{name}: {served_by:?}");
    }
    // The passwords went in the private file only.
    let args = s.standin.args().join("\n");
    assert!(args.contains("--config-locations"), "{args}");
    assert!(
        !args.contains("s3cret") && !args.contains("--proxy"),
        "{args}"
    );
}

/// A 429 through one egress pauses TikTok on that egress only: the job that
/// met it goes out through another at once, without spending an attempt,
/// the paused egress gets no second request, and the other two keep their
/// full pace. Operators see the pause per egress (metrics, `xtract jobs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_through_one_egress_leaves_the_others_at_full_pace() {
    let res1 = StandInProxy::http(None, "203.0.113.1").await;
    let res2 = StandInProxy::http(None, "203.0.113.2").await;
    let res3 = StandInProxy::http(None, "203.0.113.3").await;
    res2.rate_limit();
    let toml = pool_toml(
        &[
            ("res1", res1.url()),
            ("res2", res2.url()),
            ("res3", res3.url()),
        ],
        "cooldown_secs = 3600.0\n",
    );
    let addr = format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap());
    let s = Stage::new()
        .platforms(&toml)
        .concurrency(6)
        .env("XTRACT_HEALTH_ADDR", &addr)
        .prepare()
        .await;
    record_pacing(&s.client).await;
    let _daemon = s.daemon();
    let ids = enqueue_burst(&s.client, USER, TIKTOK_POOL, 100..=108).await;
    for id in &ids {
        s.wait(*id, "completed").await;
    }

    let limited = res2.seen();
    assert_eq!(limited.len(), 1, "a paused egress got more: {limited:?}");
    assert_eq!(limited[0].status, 429);
    // Measured where the daemon reserves its slots and takes its turns.
    let (slots, turns) = (
        slots(&s.client, "tiktok").await,
        turns(&s.client, "tiktok").await,
    );
    let mut served = 0;
    for (name, proxy) in [("res1", &res1), ("res3", &res3)] {
        let (booked, taken) = (through(&slots, name), through(&turns, name));
        assert_eq!(taken.len(), proxy.served().len(), "{name}: {turns:?}");
        assert_eq!(booked.len(), taken.len(), "{name}: {slots:?}");
        served += taken.len();
        // Never faster than the pace...
        for gap in gaps(&taken) {
            assert!(gap >= 2.0, "{name}: requests {gap:.3}s apart");
        }
        // ...and never a slot left idle while its job waited: each turn
        // taken within an interval of its slot.
        for (slot, turn) in booked.iter().zip(&taken) {
            assert!(
                (0.0..2.0).contains(&(turn - slot)),
                "{name}: a turn {:.2}s after its slot: {slots:?} {turns:?}",
                turn - slot
            );
        }
    }
    assert_eq!(served, 9);
    // The job that met the 429 spent no attempt and went out elsewhere.
    let mut bounced = Vec::new();
    for id in &ids {
        let row = s.job(*id).await;
        if row["pauses"] == 1 {
            bounced.push(row);
        }
    }
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    let row = &bounced[0];
    assert!(
        limited[0].target.ends_with(
            row["original_url"]
                .as_str()
                .unwrap()
                .trim_start_matches("https://www.tiktok.com")
        ),
        "{row}"
    );
    assert_eq!(row["attempts"], 1, "{row}");
    assert!(row["egress"] == "res1" || row["egress"] == "res3", "{row}");
    // The pause is TikTok's on res2 alone.
    let paused: Vec<(String, bool)> = s
        .client
        .query(
            "SELECT egress_key, coalesce(paused_until > now() + interval '3500 seconds', false)
             FROM xtract.platform_pacing WHERE platform = 'tiktok' ORDER BY egress_key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        paused,
        [
            ("res1".into(), false),
            ("res2".into(), true),
            ("res3".into(), false)
        ]
    );
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "xtract_platform_paused{platform=\"tiktok\",egress=\"res2\"} 1",
        "xtract_platform_paused{platform=\"tiktok\",egress=\"res1\"} 0",
        "xtract_platform_pauses_total{platform=\"tiktok\",egress=\"res2\"} 1",
        "xtract_jobs_retried_total{platform=\"tiktok\",error_code=\"rate_limited\",egress=\"res2\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    let ran = s.xtract(&["jobs"]).await;
    assert!(ran.stdout.contains("paused: tiktok on res2 until"), "{ran}");
}

/// A proxy that is down fails every job sent through it, and yt-dlp's words
/// for it are the same as for a site refusing the connection: xtract asks
/// the proxy itself, pauses that egress for TikTok for a minute, and the
/// job goes out through the other egress at once without spending an
/// attempt; nothing else is sent to the dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_proxy_pauses_its_egress_and_its_job_goes_out_through_another() {
    let live = StandInProxy::http(None, "203.0.113.1").await;
    let closed = xtract::ops::localpg::free_port().unwrap();
    let dead = format!("http://carol:d34d-s3cret@127.0.0.1:{closed}");
    let toml = pool_toml(&[("dead", dead), ("live", live.url())], "");
    let (s, daemon) = Stage::new().platforms(&toml).concurrency(4).start().await;
    let ids = enqueue_burst(&s.client, USER, TIKTOK_POOL, 200..=203).await;
    for id in &ids {
        s.wait(*id, "completed").await;
    }

    assert_eq!(live.served().len(), 4, "{:?}", live.seen());
    let tried_dead: Vec<_> = s
        .standin
        .proxied()
        .into_iter()
        .filter(|(proxy, _, _)| *proxy == format!("127.0.0.1:{closed}"))
        .collect();
    assert_eq!(tried_dead.len(), 1, "{tried_dead:?}");
    let mut bounced = Vec::new();
    for id in &ids {
        let row = s.job(*id).await;
        assert_eq!(row["egress"], "live", "{row}");
        if row["pauses"] == 1 {
            bounced.push(row);
        }
    }
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    assert_eq!(bounced[0]["attempts"], 1, "{}", bounced[0]);
    let (paused_for, why): (f64, String) = s
        .client
        .query_one(
            "SELECT extract(epoch FROM paused_until - now())::float8, pause_reason
             FROM xtract.platform_pacing WHERE platform = 'tiktok' AND egress_key = 'dead'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!((30.0..=60.0).contains(&paused_for), "{paused_for}");
    assert!(
        why.contains(&format!("the proxy does not answer at 127.0.0.1:{closed}")),
        "{why}"
    );
    let log = daemon.log_text();
    assert!(log.contains("the proxy does not answer"), "{log}");
    assert!(!log.contains("d34d-s3cret") && !why.contains("d34d-s3cret"));
}

/// What yt-dlp prints about a proxy may carry its password: it is scrubbed
/// from the job's error and the log, and never on a command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_password_never_reaches_the_job_row_or_the_log() {
    let proxy = StandInProxy::http(Some(("alice", "the-right-one")), "203.0.113.1").await;
    // The file's password is not the one the proxy takes: it answers 407,
    // and the stand-in's error line names the proxy, password and all.
    let toml = pool_toml(
        &[("res1", proxy.url_with("alice", "w0rng-p4ss"))],
        "max_attempts = 1\n",
    );
    // A refusing proxy pauses its egress; with no pause allowed, the job
    // fails at once.
    let (s, daemon) = Stage::new()
        .platforms(&toml)
        .env("XTRACT_MAX_PAUSES", "0")
        .start()
        .await;
    let (_, row) = s.run("https://www.tiktok.com/@a/video/407", "failed").await;
    assert_eq!(row["error_code"], "network", "{row}");
    assert_eq!(row["egress"], "res1");
    let detail = row["error_detail"].as_str().unwrap();
    assert!(
        detail.contains("via http://alice:***@127.0.0.1:"),
        "{detail}"
    );
    assert!(detail.contains("the proxy refused the request"), "{detail}");
    assert!(!row.to_string().contains("w0rng-p4ss"), "{row}");
    assert!(!proxy.seen()[0].authorized);
    let log = daemon.log_text();
    assert!(log.contains("res1 (http://alice:***@127.0.0.1:"), "{log}");
    assert!(!log.contains("w0rng-p4ss"), "{log}");
    assert!(!s.standin.args().join(" ").contains("w0rng-p4ss"));
}

/// SIGHUP reads the egresses again: a removed one takes no new job, an
/// added one does, and a job running through the removed one finishes
/// with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_egresses_and_running_jobs_keep_theirs() {
    let old = StandInProxy::http(None, "203.0.113.1").await;
    let new = StandInProxy::http(None, "203.0.113.2").await;
    let (s, daemon) = Stage::new()
        .platforms(&pool_toml(&[("old", old.url())], ""))
        .start()
        .await;
    s.standin.set_kind("9001", "block");
    let running = s.enqueue("https://www.tiktok.com/@a/video/9001").await;
    s.standin.blocked_pid("9001").await;

    std::fs::write(s.platforms_file(), pool_toml(&[("new", new.url())], "")).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("configuration reloaded").await;
    let later = s.enqueue("https://www.tiktok.com/@a/video/9002").await;
    s.wait(later, "completed").await;
    assert_eq!(s.job(later).await["egress"], "new");
    s.standin.release("9001");
    s.wait(running, "completed").await;
    assert_eq!(s.job(running).await["egress"], "old");
    let targets =
        |p: &StandInProxy| -> Vec<String> { p.served().into_iter().map(|s| s.target).collect() };
    assert_eq!(targets(&old), ["http://www.tiktok.com/@a/video/9001"]);
    assert_eq!(targets(&new), ["http://www.tiktok.com/@a/video/9002"]);
}

/// Daemons racing for slots through several egresses: every slot is
/// taken once, each egress's slots follow each other at the pace, and the
/// slots taken are the first free ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reservations_never_share_a_slot_and_take_the_first_free_ones() {
    use xtract::domain::{Platform, PlatformPolicy};
    use xtract::queue::pacing::Turn;
    let db = TestDb::start().await;
    let pacer = xtract::queue::Queue::new(db.pool(8), "nobody", "vm").pacer(uuid::Uuid::nil());
    let policy = PlatformPolicy {
        min_interval: SECS(10),
        jitter: (SECS(0), SECS(0)),
        max_attempts: 3,
        cooldown: SECS(60),
        enabled: true,
        ytdlp_args: Vec::new(),
        max_runtime: None,
    };
    let keys = ["a", "b", "c"];
    let reserve = || async {
        let asked = std::time::Instant::now();
        let turn = pacer
            .reserve(Platform::TikTok, &policy, &keys, SECS(1000))
            .await
            .unwrap();
        (asked, turn, std::time::Instant::now())
    };
    let turns = futures::future::join_all((0..30).map(|_| reserve())).await;
    let origin = turns.iter().map(|(asked, _, _)| *asked).min().unwrap();
    let secs = |t: std::time::Instant| (t - origin).as_secs_f64();
    // Each slot starts `wait` after the database read its clock, which it
    // did between the asking and the answer: (earliest, latest) start.
    let mut slots: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for (asked, turn, answered) in turns {
        let Turn::Go { egress, wait } = turn else {
            panic!("deferred with 1000 s to wait");
        };
        let wait = wait.as_secs_f64();
        slots
            .entry(egress)
            .or_default()
            .push((secs(asked) + wait, secs(answered) + wait));
    }
    for (egress, taken) in &mut slots {
        taken.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
        // Each slot 10 s after the one before: none shared, none skipped.
        for pair in taken.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (least, most) = (b.0 - a.1, b.1 - a.0);
            assert!(
                least - 1e-3 <= 10.0 && 10.0 <= most + 1e-3,
                "{egress}: slots {least:.3}..{most:.3}s apart: {taken:?}"
            );
        }
    }
    // Thirty slots over three egresses: the first free ones are ten each.
    let counts: Vec<usize> = slots.values().map(Vec::len).collect();
    assert_eq!(counts, [10, 10, 10], "first free slots not taken");
}
