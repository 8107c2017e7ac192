//! Platform rules: pacing shared by daemons, pauses after a rate limit,
//! download strategies, progress. The platforms are played by the stand-in
//! yt-dlp; platform links are accepted by name, with no DNS lookup.

mod support;

use std::time::Duration;

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

fn daemon_with(db: &TestDb, standin: &StandIn, toml: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut o = DaemonOptions::new(&standin.script);
    o.extra_env.push((
        "XTRACT_PLATFORMS_FILE".into(),
        platforms_file(standin.dir.path(), toml),
    ));
    for (k, v) in extra {
        o.extra_env.push((k.to_string(), v.to_string()));
    }
    Daemon::start(&db.url, &o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_one_pace_toward_a_platform() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let toml = "[tiktok]\nmin_interval_secs = 1.0\njitter_secs = [0.0, 0.0]\n";
    let mut daemons = Vec::new();
    for i in 0..2 {
        let mut o = DaemonOptions::new(&standin.script);
        o.concurrency = 3;
        o.worker_id = format!("pacer-{i}");
        o.extra_env.push((
            "XTRACT_PLATFORMS_FILE".into(),
            platforms_file(standin.dir.path(), toml),
        ));
        daemons.push(Daemon::start(&db.url, &o));
    }
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            db.enqueue(
                &client,
                &format!("https://www.tiktok.com/@someone/video/70000{n}"),
            )
            .await,
        );
    }
    for id in &ids {
        wait_status(&client, *id, "completed", SECS(60)).await;
    }
    let mut times: Vec<f64> = standin.times().into_iter().map(|(t, _)| t).collect();
    assert_eq!(times.len(), 6);
    times.sort_by(f64::total_cmp);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // The slot is 1 s; the stand-in's clock reading adds a little noise.
        assert!(gap >= 0.95, "requests {gap:.3}s apart: {times:?}");
    }
    let pacing: i64 = client
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("1001", "fail");
    standin.set_error(
        "1001",
        "WARNING: [TikTok] 1001: retrying\nERROR: [TikTok] 1001: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: Too Many Requests>)\n",
    );
    let client = db.client().await;
    let toml = format!("{QUICK}\n[tiktok]\ncooldown_secs = 3600.0\n").replace(
        "[tiktok]\nmin_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\nmax_attempts = 1\n",
        "",
    );
    let toml = format!("{toml}min_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\n");
    let _daemon = daemon_with(&db, &standin, &toml, &[]);

    let limited = db
        .enqueue(&client, "https://www.tiktok.com/@a/video/1001")
        .await;
    eventually("the rate-limited job to be put back", SECS(30), || async {
        let row = job(&client, limited).await;
        (row["error_code"] == "rate_limited").then_some(())
    })
    .await;
    let waiting = db
        .enqueue(&client, "https://www.tiktok.com/@a/video/1002")
        .await;
    let other = db
        .enqueue(&client, "https://www.youtube.com/watch?v=okokokokoko")
        .await;
    wait_status(&client, other, "completed", SECS(30)).await;

    let row = job(&client, limited).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0, "a platform pause spends no attempt");
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .contains("TikTok is limiting"),
        "{row}"
    );
    let waits: f64 = client
        .query_one(
            "SELECT extract(epoch FROM run_after - now())::float8 FROM processing_jobs WHERE id = $1",
            &[&limited],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        waits > 3500.0,
        "runs again after the cooldown, not {waits}s"
    );
    // The other TikTok job was not started (it would have gone before the
    // YouTube one, which was inserted later).
    let row = job(&client, waiting).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0);
    assert!(!standin.calls().iter().any(|c| c.contains("1002")));
    // Operators see the pause.
    let paused: f64 = client
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("2001", "needmuxed");
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let id = db
        .enqueue(&client, "https://www.tiktok.com/@b/video/2001")
        .await;
    wait_status(&client, id, "completed", SECS(30)).await;
    let args = standin.args();
    assert_eq!(args.len(), 2, "{args:?}");
    assert!(args[0].contains("-f ba[ext=m4a]/ba/b"), "{}", args[0]);
    assert!(args[1].contains("-f b/bv*+ba/ba"), "{}", args[1]);
}

/// `ytdlp_args` of a platform reach yt-dlp on every strategy of that
/// platform, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platforms_ytdlp_args_reach_every_strategy_of_that_platform() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("muxedvideo1", "needmuxed");
    let client = db.client().await;
    let toml = format!(
        "{QUICK}ytdlp_args = [\"--extractor-args\", \"youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416\", \"--sleep-requests\", \"1.5\"]\n"
    );
    let _daemon = daemon_with(&db, &standin, &toml, &[]);
    let yt = db
        .enqueue(&client, "https://www.youtube.com/watch?v=muxedvideo1")
        .await;
    wait_status(&client, yt, "completed", SECS(30)).await;
    let tt = db
        .enqueue(&client, "https://www.tiktok.com/@b/video/2004")
        .await;
    wait_status(&client, tt, "completed", SECS(30)).await;
    let args = standin.args();
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("2002", "fail");
    standin.set_error(
        "2002",
        "ERROR: unable to download video data: HTTP Error 403: Forbidden\n",
    );
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let id = db
        .enqueue(&client, "https://www.tiktok.com/@b/video/2002")
        .await;
    wait_status(&client, id, "failed", SECS(30)).await;
    let row = job(&client, id).await;
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .starts_with("All download strategies failed"),
        "{row}"
    );
    assert_eq!(row["error_code"], "http_forbidden");
    assert_eq!(
        standin.calls().len(),
        3,
        "audio-only, best, mobile user agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_video_is_not_asked_for_again() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("2003", "fail");
    standin.set_error("2003", "ERROR: [TikTok] 2003: This account is private\n");
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let id = db
        .enqueue(&client, "https://www.tiktok.com/@b/video/2003")
        .await;
    wait_status(&client, id, "failed", SECS(30)).await;
    assert_eq!(standin.calls().len(), 1);
    let row = job(&client, id).await;
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Video Processing Failed"),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instagram_gets_no_forced_user_agent_and_the_media_facts_are_kept() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let id = db
        .enqueue(
            &client,
            "https://www.instagram.com/reel/Cabc123XYZ/?igsh=tracking",
        )
        .await;
    wait_status(&client, id, "completed", SECS(30)).await;
    let args = standin.args();
    // yt-dlp impersonates a browser for Instagram itself (curl_cffi); a
    // forced phone User-Agent would contradict it (see strategy.rs).
    assert!(!args[0].contains("User-Agent"), "{}", args[0]);
    assert!(args[0].contains("--ignore-config") && args[0].contains("--no-playlist"));
    let row = job(&client, id).await;
    assert_eq!(row["platform"], "instagram");
    assert_eq!(row["media_title"], "Stand-in Cabc123XYZ");
    assert_eq!(row["media_uploader"], "someone");
    assert_eq!(row["progress_percent"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_while_the_download_runs() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("3001", "slow");
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let id = db
        .enqueue(&client, "https://www.tiktok.com/@c/video/3001")
        .await;
    eventually("progress of 50%", SECS(30), || async {
        let row = job(&client, id).await;
        (row["progress_percent"] == 50 && row["status"] == "processing").then_some(())
    })
    .await;
    standin.release("3001");
    wait_status(&client, id, "completed", SECS(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_offered_last_and_each_job_gets_its_own_copy() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("DEF456", "needcookies");
    let cookies = tempfile::tempdir().unwrap();
    let original = "# Netscape HTTP Cookie File\n.instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\tsecret-session\n";
    std::fs::write(cookies.path().join("instagram.txt"), original).unwrap();
    let client = db.client().await;
    let daemon = daemon_with(
        &db,
        &standin,
        QUICK,
        &[("XTRACT_COOKIES_DIR", &cookies.path().display().to_string())],
    );
    let id = db
        .enqueue(&client, "https://www.instagram.com/p/DEF456/")
        .await;
    wait_status(&client, id, "completed", SECS(30)).await;
    let args = standin.args();
    assert!(
        !args[0].contains("--cookies"),
        "cookies only as a last resort"
    );
    let last = args.last().unwrap();
    assert!(last.contains("--cookies"), "{last}");
    assert!(
        !last.contains(&cookies.path().display().to_string()),
        "a copy, not the operator's file"
    );
    assert_eq!(
        std::fs::read_to_string(cookies.path().join("instagram.txt")).unwrap(),
        original
    );
    assert!(!daemon.log_text().contains("secret-session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_video_is_downloaded_once_and_its_audio_reused() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let daemon = daemon_with(&db, &standin, QUICK, &[]);
    let first = db
        .enqueue(
            &client,
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&si=share-token",
        )
        .await;
    wait_status(&client, first, "completed", SECS(30)).await;
    let other_user = uuid::Uuid::new_v4();
    let second = db
        .enqueue_as(&client, other_user, "https://youtu.be/dQw4w9WgXcQ")
        .await;
    wait_status(&client, second, "completed", SECS(30)).await;

    assert_eq!(standin.calls().len(), 1, "the platform was asked once");
    let audio = |id: uuid::Uuid| {
        let client = &client;
        async move {
            let row: serde_json::Value = client
                .query_one(
                    "SELECT to_jsonb(a) FROM audio_files a WHERE job_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            row
        }
    };
    let (a, b) = (audio(first).await, audio(second).await);
    assert_eq!(b["reused_from_job_id"], first.to_string());
    assert_eq!(b["user_id"], other_user.to_string());
    assert!(b["storage_path"]
        .as_str()
        .unwrap()
        .starts_with(&other_user.to_string()));
    assert_eq!(a["file_size"], b["file_size"]);
    let copy = daemon.audio_dir().join(b["storage_path"].as_str().unwrap());
    let original = daemon.audio_dir().join(a["storage_path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(copy).unwrap(),
        std::fs::read(original).unwrap()
    );
    assert_eq!(
        job(&client, second).await["media_title"],
        "Stand-in dQw4w9WgXcQ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_can_be_turned_off() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[("XTRACT_DEDUP", "false")]);
    for _ in 0..2 {
        let id = db
            .enqueue(&client, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
            .await;
        wait_status(&client, id, "completed", SECS(30)).await;
    }
    assert_eq!(standin.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_meeting_a_rate_limit_fails_after_its_pauses() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("Cpaused1234", "fail");
    standin.set_error(
        "Cpaused1234",
        "ERROR: [Instagram] Cpaused1234: Requested content is not available, rate-limit reached or login required. Use --cookies-from-browser or --cookies for the authentication.\n",
    );
    let client = db.client().await;
    let toml = QUICK.replace("[instagram]\n", "[instagram]\ncooldown_secs = 0.2\n");
    let _daemon = daemon_with(&db, &standin, &toml, &[("XTRACT_MAX_PAUSES", "2")]);
    let id = db
        .enqueue(&client, "https://www.instagram.com/p/Cpaused1234/")
        .await;
    wait_status(&client, id, "failed", SECS(30)).await;
    let row = job(&client, id).await;
    assert_eq!(row["error_code"], "rate_limited");
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Instagram Rate Limit Reached"),
        "{row}"
    );
    assert_eq!(row["pauses"], 2);
    assert_eq!(row["attempts"], 1, "pauses spend no attempts");
    assert_eq!(standin.calls().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_turned_off_fails_its_jobs_at_once_without_contacting_it() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, "[tiktok]\nenabled = false\n", &[]);
    let off = db
        .enqueue(&client, "https://www.tiktok.com/@b/video/3003")
        .await;
    let on = db
        .enqueue(&client, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        .await;
    wait_status(&client, off, "failed", SECS(30)).await;
    wait_status(&client, on, "completed", SECS(30)).await;
    let row = job(&client, off).await;
    assert_eq!(row["error_code"], "unsupported_url");
    assert_eq!(
        row["error_message"],
        "TikTok links are not accepted at the moment."
    );
    assert_eq!(row["attempts"], 1, "failed for good, not retried");
    assert!(
        standin.calls().iter().all(|c| !c.contains("3003")),
        "TikTok was asked: {:?}",
        standin.calls()
    );
}

/// A job whose turn is too far away is deferred without taking the slot:
/// slots nobody uses must not push every later request back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_job_leaves_the_next_slot_free() {
    use xtract::pipeline::{pacing::Pacer, Platform, PlatformPolicy};
    let db = TestDb::start().await;
    let pool = xtract::db::DbTarget::parse(&db.url)
        .unwrap()
        .pool(2)
        .unwrap();
    let pacer = Pacer {
        pool: &pool,
        job_id: uuid::Uuid::nil(),
        worker_id: "nobody",
        max_wait: SECS(15),
    };
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
        .reserve(Platform::TikTok, &policy, &["test"])
        .await
        .unwrap()
        .wait();
    assert!(first < SECS(1), "{first:?}");
    let second = pacer
        .reserve(Platform::TikTok, &policy, &["test"])
        .await
        .unwrap()
        .wait();
    assert!((SECS(9)..=SECS(10)).contains(&second), "{second:?}");
    let booked = next().await;
    // The third slot would start in 20 s: more than 15, so deferred.
    for _ in 0..3 {
        let third = pacer
            .reserve(Platform::TikTok, &policy, &["test"])
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("Ccarousel1", "carousel:photo,video,photo,video");
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
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
        let id = db.enqueue(&client, link).await;
        wait_status(&client, id, "completed", SECS(30)).await;
        let row = job(&client, id).await;
        assert_eq!(
            row["media_title"],
            format!("Stand-in Ccarousel1 item {item}"),
            "{link}: {row}"
        );
        let audio: i64 = client
            .query_one("SELECT count(*) FROM audio_files WHERE job_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(audio, 1, "one job, one audio");
    }
    // Three links, three items asked for: none reused another's audio.
    let args = standin.args();
    assert_eq!(args.len(), 3, "{args:?}");
    assert!(
        args.iter().all(|a| a.contains("--max-downloads 1")),
        "{args:?}"
    );
    assert!(!args[0].contains("--playlist-items"), "{}", args[0]);
    assert!(args[1].contains("--playlist-items 4,1:"), "{}", args[1]);
    assert!(args[2].contains("--playlist-items 3,1:"), "{}", args[2]);
    // yt-dlp gets the canonical link (with the item), not the tracking.
    let calls = standin.calls();
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("Cphotos1", "carousel:photo,photo");
    standin.set_kind("Cbroken1", "carousel:photo,video403,video");
    standin.set_kind("Clong1", "carousel:long,video");
    let client = db.client().await;
    let _daemon = daemon_with(&db, &standin, QUICK, &[]);
    let photos = db
        .enqueue(&client, "https://www.instagram.com/p/Cphotos1/")
        .await;
    let broken = db
        .enqueue(&client, "https://www.instagram.com/p/Cbroken1/")
        .await;
    let long = db
        .enqueue(&client, "https://www.instagram.com/p/Clong1/")
        .await;
    for id in [photos, broken, long] {
        wait_status(&client, id, "failed", SECS(30)).await;
    }
    let row = job(&client, photos).await;
    assert_eq!(row["error_code"], "no_formats", "{row}");
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .contains("only photos"),
        "{row}"
    );
    let row = job(&client, broken).await;
    assert_eq!(row["error_code"], "http_forbidden", "{row}");
    assert!(row["result_audio_file_id"].is_null());
    let row = job(&client, long).await;
    assert_eq!(row["error_code"], "too_long", "{row}");
}

/// yt-dlp blaming itself ("please report this issue") is not the user's
/// video: the job waits half an hour for an upgrade, spends an attempt, and
/// the operator's metric counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outdated_extractor_is_retried_after_a_cooldown_and_counted() {
    let db = TestDb::start().await;
    let standin = StandIn::new();
    standin.set_kind("7100", "fail");
    standin.set_error(
        "7100",
        "ERROR: [TikTok] 7100: Unable to extract universal data for rehydration; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U\n",
    );
    let client = db.client().await;
    let addr = format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap());
    let toml = "[tiktok]\nmin_interval_secs = 0.0\njitter_secs = [0.0, 0.0]\nmax_attempts = 2\n";
    let _daemon = daemon_with(&db, &standin, toml, &[("XTRACT_HEALTH_ADDR", &addr)]);
    let id = db
        .enqueue(&client, "https://www.tiktok.com/@a/video/7100")
        .await;
    let row = eventually("the job to wait for its retry", SECS(30), || async {
        let row = job(&client, id).await;
        (row["status"] == "pending" && row["error_code"] == "extractor_outdated").then_some(row)
    })
    .await;
    assert_eq!(row["attempts"], 1, "an attempt is spent: {row}");
    assert!(
        row["error_message"]
            .as_str()
            .unwrap()
            .contains("TikTok has changed"),
        "{row}"
    );
    let waits: f64 = client
        .query_one(
            "SELECT extract(epoch FROM run_after - now())::float8 FROM processing_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        waits > 1700.0,
        "retried after the cooldown, not in {waits}s"
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
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let daemon = daemon_with(&db, &standin, QUICK, &[]);
    let insert = |format: Option<&'static str>, bitrate: Option<i32>| {
        let client = &client;
        async move {
            let id: uuid::Uuid = client
                .query_one(
                    "INSERT INTO processing_jobs (user_id, original_url, audio_format, audio_bitrate_kbps)
                     VALUES ($1, 'https://www.youtube.com/watch?v=tagsTagsTag', $2, $3) RETURNING id",
                    &[&USER, &format, &bitrate],
                )
                .await
                .unwrap()
                .get(0);
            wait_status(client, id, "completed", SECS(30)).await;
            let row: serde_json::Value = client
                .query_one(
                    "SELECT to_jsonb(a) FROM audio_files a WHERE job_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            row
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
    assert_eq!(standin.calls().len(), 2, "the platform was asked twice");

    // A choice the daemon cannot honour is refused at insert, in words.
    for (format, bitrate, words) in [
        (Some("wav"), None, "Unknown audio format \"wav\""),
        (Some("mp3"), Some(1000), "between 32 and 320"),
        (Some("original"), Some(128), "keeps the source"),
    ] {
        let e = client
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
