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
async fn instagram_is_asked_as_a_phone_and_the_media_facts_are_kept() {
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
    assert!(
        args[0].contains("User-Agent:Mozilla/5.0 (iPhone"),
        "{}",
        args[0]
    );
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
        egress_key: "test",
        max_wait: SECS(15),
    };
    let policy = PlatformPolicy {
        min_interval: SECS(10),
        jitter: (SECS(0), SECS(0)),
        max_attempts: 3,
        cooldown: SECS(60),
        enabled: true,
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
    let first = pacer.reserve(Platform::TikTok, &policy).await.unwrap();
    assert!(first < SECS(1), "{first:?}");
    let second = pacer.reserve(Platform::TikTok, &policy).await.unwrap();
    assert!((SECS(9)..=SECS(10)).contains(&second), "{second:?}");
    let booked = next().await;
    // The third slot would start in 20 s: more than 15, so deferred.
    for _ in 0..3 {
        let third = pacer.reserve(Platform::TikTok, &policy).await.unwrap();
        assert!(third > SECS(15), "{third:?}");
    }
    let after = next().await;
    assert!(
        after <= booked,
        "deferred jobs moved the next slot from {booked:.1}s to {after:.1}s"
    );
}
