//! When a platform breaks (ops/heal). With fake yt-dlp builds that pip
//! installs from wheels a local server offers (tests/support/wheels.rs): a
//! build for which TikTok's links fail as an outdated extractor, and newer
//! ones that fail in every way a build can, then one that works. And in the
//! platform rehearsal (tests/support/rehearsal) with real yt-dlp builds:
//! the pinned one, and a nightly whose TikTok extractor reads TikTok's
//! redesigned page. Real pip, real virtualenvs, the real check, the real
//! daemon.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use support::rehearsal::rig::{Outcome, Rig, RigOptions, QUICK_PLATFORMS};
use support::rehearsal::{Behaviour, Rehearsal, Site};
use support::wheels::{self, Fake};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The heal interval of these tests: at most one upgrade per platform this
/// often (counted from the end of the one before).
const INTERVAL: Duration = Duration::from_secs(2);

/// A package index that is only a page of links (pip's `--find-links`),
/// served from a folder on 127.0.0.1; it can stop answering, as an index
/// that cannot be reached.
struct WheelServer {
    url: String,
    dir: tempfile::TempDir,
    down: Arc<AtomicBool>,
}

impl WheelServer {
    async fn start() -> WheelServer {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let (root, off) = (dir.path().to_path_buf(), down.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                if off.load(Ordering::SeqCst) {
                    // Closed at once: pip's request gets no answer.
                    drop(stream);
                    continue;
                }
                let root = root.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let n = stream.read(&mut head).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&head[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let name = path.trim_start_matches('/');
                    let (status, kind, body) = if name.is_empty() {
                        let mut links = String::from("<html><body>\n");
                        for e in std::fs::read_dir(&root).unwrap().flatten() {
                            let f = e.file_name().to_string_lossy().into_owned();
                            links.push_str(&format!("<a href=\"{f}\">{f}</a><br>\n"));
                        }
                        links.push_str("</body></html>\n");
                        ("200 OK", "text/html", links.into_bytes())
                    } else {
                        match std::fs::read(root.join(name)) {
                            Ok(bytes) => ("200 OK", "application/octet-stream", bytes),
                            Err(_) => ("404 Not Found", "text/plain", Vec::new()),
                        }
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        WheelServer { url, dir, down }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// A small disk of its own (tmpfs) for the builds, so that one can fill it.
/// Unmounted when dropped, a failed test included.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, megabytes: u32) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount a tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The Python that builds the tests' virtualenvs: python3, with the
/// project's pip linked into a new virtualenv instead of installed by
/// `ensurepip`, which takes ten seconds a virtualenv on a loaded machine.
/// What pip then installs is the same.
fn quick_python(dir: &Path) -> PathBuf {
    let pip = wheels::real::site_packages().join("pip");
    let path = dir.join("python3");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  python3 -m venv --without-pip "$3" || exit $?
  for site in "$3"/lib/python3*/site-packages; do ln -s '{}' "$site/pip"; done
  exit 0
fi
exec python3 "$@"
"#,
            pip.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Reads `platforms.json` of the tools folder.
fn state(tools: &Path) -> serde_json::Value {
    std::fs::read_to_string(tools.join("platforms.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// How an upgrade attempt ended, as the tools folder's state tells it.
struct Ended {
    /// When this test saw it end.
    seen: DateTime<Utc>,
    /// No attempt before this.
    next_try: DateTime<Utc>,
}

/// Waits until TikTok's latest upgrade attempt ended with an outcome
/// containing `text`.
async fn attempt_ended(tools: &Path, daemon: &Daemon, text: &str, timeout: Duration) -> Ended {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = state(tools);
        let a = &s["platforms"]["tiktok"]["attempt"];
        if a["running"] == false && a["outcome"].as_str().is_some_and(|o| o.contains(text)) {
            return Ended {
                seen: Utc::now(),
                next_try: a["next_try"].as_str().unwrap().parse().unwrap(),
            };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt ending with {text:?} within {timeout:?}: {s:#}\n--- daemon log\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// When the attempt after the one that ended at `ended` started.
async fn next_attempt_started(tools: &Path, after: DateTime<Utc>) -> DateTime<Utc> {
    eventually("the next attempt", SECS(60), || async {
        let s = state(tools);
        let at: DateTime<Utc> = s["platforms"]["tiktok"]["attempt"]["at"]
            .as_str()?
            .parse()
            .ok()?;
        (at > after).then_some(at)
    })
    .await
}

/// Waits until job `id` is `want`; the daemon's log when it is not.
async fn ends(
    client: &tokio_postgres::Client,
    daemon: &Daemon,
    id: Uuid,
    want: &str,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while status(client, id).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} is not {want} after {timeout:?}: {:#}\n--- daemon log\n{}",
            job(client, id).await,
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One failing upgrade: what it is, what makes it so, what the daemon says.
type Step<'a> = (&'static str, Box<dyn Fn() + 'a>, &'static str);

/// The latest status line systemd got.
fn sync_last(lines: &std::sync::Mutex<Vec<String>>) -> Option<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l.starts_with("STATUS="))
        .cloned()
}

/// The build a job's latest run used.
async fn build_of(client: &tokio_postgres::Client, id: Uuid) -> Option<String> {
    client
        .query_one(
            "SELECT ytdlp_build FROM processing_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut reply = Vec::new();
    tokio::time::timeout(SECS(10), stream.read_to_end(&mut reply))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// TikTok breaks on the build in use. Every way an upgrade can go wrong
/// leaves TikTok on that build, says why once in the log and the state,
/// and the next upgrade comes only after the interval: nothing newer (on
/// stable, nor on nightly), the wheel server unreachable, a build that
/// fails its check, one pip cannot install, one the disk cannot hold, one
/// whose canary hangs. Then a nightly that reads TikTok (and not YouTube)
/// serves TikTok once a failed TikTok job completed on it, and every
/// failed TikTok job completes; YouTube stays where it was. The operator
/// pins TikTok back; the dashboard, /metrics and systemd's status line
/// say what is going on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_stays_on_its_build_through_every_failed_upgrade_then_heals() {
    let server = WheelServer::start().await;
    let w = server.path();
    let broken_tiktok = Fake {
        platforms: vec![("tiktok", "outdated")],
        ..Fake::default()
    };
    wheels::fake_ytdlp(w, "2026.1.1", &broken_tiktok);
    wheels::deno(w, "2.5.0");
    let tools = tempfile::tempdir().unwrap();
    let t = tools.path();
    // The builds fit (without pip of their own, a few hundred KB each);
    // the one with 24 MB of padding does not.
    let _disk = SmallDisk::mount(&t.join("venvs"), 16);
    let bin = tempfile::tempdir().unwrap();
    let python = quick_python(bin.path());
    let platforms_dir = tempfile::tempdir().unwrap();
    let platforms = platforms_dir.path().join("platforms.toml");
    // TikTok's jobs stop after 10 s (the hanging canary).
    std::fs::write(
        &platforms,
        QUICK_PLATFORMS.replacen("max_runtime_secs = 20.0", "max_runtime_secs = 10.0", 1),
    )
    .unwrap();
    // systemd's end of the notification socket: every message, read as
    // systemd would (a receiver that stops reading loses messages).
    let notify = bin.path().join("notify.sock");
    let systemd = tokio::net::UnixDatagram::bind(&notify).unwrap();
    let status_lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let lines = status_lines.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = systemd.recv(&mut buf).await {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            lines.lock().unwrap().push(message);
        }
    });
    let health_addr = format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap());
    let mut o = DaemonOptions::new(&t.join("venv/bin/yt-dlp"));
    o.extra_env = vec![
        ("PIP_NO_INDEX".into(), "1".into()),
        ("PIP_FIND_LINKS".into(), server.url.clone()),
        ("PIP_TRUSTED_HOST".into(), "127.0.0.1".into()),
        ("PIP_RETRIES".into(), "0".into()),
        ("PIP_TIMEOUT".into(), "5".into()),
        ("PIP_NO_CACHE_DIR".into(), "1".into()),
        ("XTRACT_TOOLS_PYTHON".into(), python.display().to_string()),
        ("XTRACT_YTDLP_CHANNEL".into(), "stable".into()),
        ("XTRACT_HEAL_FAILURES".into(), "2".into()),
        ("XTRACT_HEAL_WINDOW".into(), "4".into()),
        (
            "XTRACT_HEAL_INTERVAL_SECS".into(),
            INTERVAL.as_secs_f64().to_string(),
        ),
        ("XTRACT_WARM_YTDLP".into(), "false".into()),
        ("XTRACT_DEDUP".into(), "false".into()),
        (
            "XTRACT_PLATFORMS_FILE".into(),
            platforms.display().to_string(),
        ),
        ("XTRACT_HEALTH_ADDR".into(), health_addr.clone()),
        ("NOTIFY_SOCKET".into(), notify.display().to_string()),
    ];
    let dir = t.display().to_string();
    let python_arg = python.display().to_string();
    let install = xtract(
        "postgres://127.0.0.1:9/unused",
        &o,
        &[
            "tools",
            "upgrade",
            "--channel",
            "stable",
            "--dir",
            &dir,
            "--python",
            &python_arg,
            "--no-reload",
        ],
    )
    .await;
    assert!(install.status.success(), "{install}");
    let pinned = std::fs::read_link(t.join("venv"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let db = TestDb::start().await;
    let client = db.client().await;
    let daemon = Daemon::start(&db.url, &o);
    let mut tiktok = Vec::new();
    for n in 0..2 {
        let url = format!("https://www.tiktok.com/@fake/video/70000000000000000{n:02}");
        tiktok.push(db.enqueue(&client, &url).await);
    }
    let youtube = db
        .enqueue(&client, "https://www.youtube.com/watch?v=aaaaaaaaaa1")
        .await;
    for id in &tiktok {
        ends(&client, &daemon, *id, "failed", SECS(60)).await;
        let row = job(&client, *id).await;
        assert_eq!(row["error_code"], "extractor_outdated", "{row:#}");
    }
    ends(&client, &daemon, youtube, "completed", SECS(60)).await;
    assert_eq!(
        build_of(&client, youtube).await.as_deref(),
        Some(pinned.as_str())
    );

    // Nothing newer on stable, nor on nightly (one attempt looks at both).
    let mut ended = attempt_ended(t, &daemon, "no newer yt-dlp to try", SECS(60)).await;
    let outcome = state(t)["platforms"]["tiktok"]["attempt"]["outcome"].clone();
    assert!(
        outcome
            .as_str()
            .unwrap()
            .contains(&format!("stable offers {pinned}"))
            && outcome
                .as_str()
                .unwrap()
                .contains(&format!("nightly offers {pinned}")),
        "{outcome}"
    );
    // Seen: systemd's status line, /metrics, the dashboard.
    let seen = eventually("a status line naming tiktok", SECS(30), || async {
        sync_last(&status_lines).filter(|l| l.contains("tiktok broken since"))
    })
    .await;
    assert!(seen.starts_with("STATUS="), "{seen}");
    let metrics = eventually("the metrics", SECS(30), || async {
        http_get(&health_addr, "/metrics")
            .await
            .filter(|m| m.contains("xtract_platform_broken{platform=\"tiktok\"} 1"))
    })
    .await;
    assert!(
        metrics.contains(&format!(
            "xtract_platform_ytdlp_build{{platform=\"youtube\",build=\"{pinned}\"}} 1"
        )),
        "{metrics}"
    );
    let row = client
        .query_one(
            "SELECT health, ytdlp_build, heal_tried FROM xtract.platform_status WHERE platform = 'tiktok'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("broken"));
    assert_eq!(row.get::<_, Option<String>>(1), Some(pinned.clone()));
    assert!(row
        .get::<_, Option<String>>(2)
        .unwrap_or_default()
        .contains("no newer yt-dlp"),);

    // Every failing upgrade in turn; each waits for the interval after the
    // one before.
    let fake = |platforms: Vec<(&'static str, &'static str)>| Fake {
        platforms,
        ..Fake::default()
    };
    let steps: Vec<Step> = vec![
        (
            "the wheel server unreachable",
            Box::new(|| server.set_down(true)),
            "pip install --dry-run failed",
        ),
        (
            "a build that fails its check",
            Box::new(|| {
                server.set_down(false);
                wheels::fake_ytdlp(
                    w,
                    "2026.1.2.100000.dev0",
                    &Fake {
                        broken: true,
                        ..Fake::default()
                    },
                );
            }),
            "failed its check",
        ),
        (
            "a build pip cannot install",
            Box::new(|| {
                wheels::fake_ytdlp(
                    w,
                    "2026.1.3.100000.dev0",
                    &Fake {
                        escapes: true,
                        ..Fake::default()
                    },
                )
            }),
            "pip install failed",
        ),
        (
            "a build the disk cannot hold",
            Box::new(|| {
                wheels::fake_ytdlp(
                    w,
                    "2026.1.4.100000.dev0",
                    &Fake {
                        padding: 24 << 20,
                        ..Fake::default()
                    },
                )
            }),
            "No space left on device",
        ),
        (
            "a build whose canary hangs",
            Box::new(|| {
                wheels::fake_ytdlp(w, "2026.1.5.100000.dev0", &fake(vec![("tiktok", "hang")]))
            }),
            "hung and was stopped at the job time limit",
        ),
    ];
    let said = |text: &str| {
        daemon
            .log_text()
            .lines()
            .filter(|l| !l.starts_with("DEBUG") && l.contains(text))
            .count()
    };
    let mut before: Option<(&str, &str)> = None;
    for (what, make, says) in &steps {
        make();
        let started = next_attempt_started(t, ended.seen).await;
        // The attempt before was said once, and not again in the interval
        // since.
        if let Some((what, says)) = before {
            assert_eq!(said(says), 1, "{what}: said once\n{}", daemon.log_text());
        }
        before = Some((what, says));
        // Not before the interval after the one before ended.
        assert!(started >= ended.next_try, "{what}");
        let gap = (ended.next_try - ended.seen).to_std().unwrap_or_default();
        assert!(
            gap + Duration::from_secs(1) >= INTERVAL,
            "{what}: the next upgrade was due {gap:?} after the one before"
        );
        ended = attempt_ended(t, &daemon, says, SECS(90)).await;
        let s = state(t);
        assert!(s["platforms"]["tiktok"]["build"].is_null(), "{what}: {s:#}");
        assert!(
            s["platforms"]["tiktok"]["canary"].is_null(),
            "{what}: {s:#}"
        );
        // The state is written before what was decided is said.
        support::eventually(&format!("{what}: said"), SECS(30), || async {
            (said(says) > 0).then_some(())
        })
        .await;
        assert_eq!(said(says), 1, "{what}: said once\n{}", daemon.log_text());
    }
    // The failed builds were removed; the one whose canary hung stays
    // (it passed its check).
    let mut builds: Vec<String> = std::fs::read_dir(t.join("venvs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    builds.sort();
    assert!(
        builds
            .iter()
            .all(|b| *b == pinned || b.starts_with("2026.1.5.100000.dev0-")),
        "{builds:?}"
    );
    assert!(
        builds
            .iter()
            .any(|b| b.starts_with("2026.1.5.100000.dev0-")),
        "{builds:?}"
    );

    // The nightly that reads TikTok (and breaks YouTube).
    wheels::fake_ytdlp(
        w,
        "2026.1.6.100000.dev0",
        &fake(vec![("youtube", "outdated")]),
    );
    for id in &tiktok {
        ends(&client, &daemon, *id, "completed", SECS(90)).await;
        let build = build_of(&client, *id).await.unwrap_or_default();
        assert!(build.starts_with("2026.1.6.100000.dev0-"), "{build}");
    }
    let healed = build_of(&client, tiktok[0]).await.unwrap();
    let log = daemon.log_text();
    assert!(
        log.contains(&format!("tiktok switched to yt-dlp {healed}")),
        "{log}"
    );
    let youtube = db
        .enqueue(&client, "https://www.youtube.com/watch?v=aaaaaaaaaa2")
        .await;
    ends(&client, &daemon, youtube, "completed", SECS(60)).await;
    assert_eq!(
        build_of(&client, youtube).await.as_deref(),
        Some(pinned.as_str())
    );

    // The operator pins TikTok back to the old build.
    let pin = xtract("", &o, &["tools", "pin", "tiktok", &pinned, "--dir", &dir]).await;
    assert!(pin.status.success(), "{pin}");
    eventually("tiktok pinned in the dashboard", SECS(30), || async {
        let row = client
            .query_one(
                "SELECT health, ytdlp_build FROM xtract.platform_status WHERE platform = 'tiktok'",
                &[],
            )
            .await
            .ok()?;
        (row.get::<_, Option<String>>(0).as_deref() == Some("pinned")
            && row.get::<_, Option<String>>(1).as_deref() == Some(pinned.as_str()))
        .then_some(())
    })
    .await;
    let id = db
        .enqueue(
            &client,
            "https://www.tiktok.com/@fake/video/7000000000000000099",
        )
        .await;
    ends(&client, &daemon, id, "failed", SECS(60)).await;
    assert_eq!(
        build_of(&client, id).await.as_deref(),
        Some(pinned.as_str())
    );
    let status = xtract("", &o, &["tools", "status", "--dir", &dir]).await;
    assert!(
        status.stdout.contains(&format!("runs {pinned} (pinned)")),
        "{status}"
    );
}

/// Waits until job `id` is completed (a job that fails first and is
/// retried later passes through `failed`).
async fn completes(rig: &Rig, id: Uuid, timeout: Duration) -> Outcome {
    let waited = tokio::time::timeout(timeout, async {
        loop {
            if support::status(&rig.client, id).await == "completed" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let o = rig.outcome(id).await;
    assert!(
        waited.is_ok(),
        "job {id} did not complete within {timeout:?}: {o:?}\n--- daemon log\n{}",
        rig.daemon.log_text()
    );
    o
}

/// Through the platform rehearsal, the real daemon and real yt-dlp builds:
/// TikTok ships a redesign that moves its data under a new script id
/// (tests/support/rehearsal/tiktok.rs), so the pinned yt-dlp fails every
/// TikTok job as an outdated extractor. A daemon with
/// XTRACT_AUTO_HEAL=off only reports it; one with it on builds the newest
/// nightly from the local wheel folder (one whose TikTok extractor reads
/// the new page and whose Instagram extractor is broken), re-runs a failed
/// TikTok job on it, and only then switches TikTok to it: the failed jobs
/// complete, while Instagram and YouTube stay on the pinned build. When
/// the daily upgrade later installs that nightly, Instagram and YouTube
/// try it on probation: Instagram fails where the pinned build worked and
/// goes back (the nightly is not used for it again), its jobs complete;
/// YouTube keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_platform_heals_on_a_newer_build_that_serves_it_alone() {
    use support::rehearsal::heal::{self, health, HealTools, FIXED_NIGHTLY};
    // Stand-ins of its own: the redesign is site-wide, and its load stays
    // out of the rehearsal's timing tests.
    let r = &Rehearsal::start();
    r.redesign(Site::TikTok, true);
    let t = HealTools::on_the_pinned_yt_dlp();
    let nightly = heal::fixed_nightly();
    let mut env = t.pip_env(&[&nightly]);
    env.extend([
        ("XTRACT_HEAL_FAILURES".to_string(), "2".to_string()),
        ("XTRACT_HEAL_WINDOW".to_string(), "5".to_string()),
    ]);
    let options = |auto: &str| RigOptions {
        extra_env: env
            .iter()
            .cloned()
            .chain([("XTRACT_AUTO_HEAL".to_string(), auto.to_string())])
            .collect(),
        ..Default::default()
    };

    // Only reported.
    let off = Rig::start(r, options("off")).await;
    let mut tiktok = Vec::new();
    for _ in 0..2 {
        let (url, video) = r.video(Site::TikTok, Behaviour::Ok);
        tiktok.push((video, off.job(&url).await));
    }
    for (video, id) in &tiktok {
        let o = off.finished(*id, SECS(60)).await;
        assert_eq!(
            o.error_code.as_deref(),
            Some("extractor_outdated"),
            "{video}: {o:?}"
        );
    }
    let reported = support::eventually("tiktok reported broken", SECS(30), || async {
        health(&off.client, "tiktok")
            .await
            .filter(|h| h.state == "broken")
    })
    .await;
    assert!(!reported.auto_heal);
    assert_eq!(reported.build.as_deref(), Some(t.pinned.as_str()));
    let log = off.daemon.log_text();
    assert_eq!(
        log.matches("tiktok is broken: 2 of its last 2 jobs")
            .count(),
        1,
        "said once: {log}"
    );
    assert!(log.contains("XTRACT_AUTO_HEAL=off: only reported"), "{log}");
    assert_eq!(t.builds(), std::slice::from_ref(&t.pinned), "nothing built");

    // Acting.
    let rig = Rig::start_on(r, off.into_db(), options("on")).await;
    let (url, _) = r.video(Site::Instagram, Behaviour::Ok);
    let instagram = rig.job(&url).await;
    let (url, _) = r.video(Site::YouTube, Behaviour::Ok);
    let youtube = rig.job(&url).await;
    for (video, id) in &tiktok {
        let o = completes(&rig, *id, SECS(300)).await;
        assert_eq!(o.extractor.as_deref(), Some("TikTok"), "{video}");
        assert!(o.audio.is_some(), "{video}");
        let build = build_of(&rig.client, *id).await.unwrap_or_default();
        assert!(build.starts_with(FIXED_NIGHTLY), "{video} ran on {build}");
    }
    for id in [instagram, youtube] {
        let o = completes(&rig, id, SECS(60)).await;
        assert!(o.audio.is_some());
        assert_eq!(
            build_of(&rig.client, id).await.as_deref(),
            Some(t.pinned.as_str())
        );
    }
    let nightly_build = build_of(&rig.client, tiktok[0].1).await.unwrap();
    let log = rig.daemon.log_text();
    assert!(
        log.contains(&format!("tiktok: trying {nightly_build} on job"))
            && log.contains(&format!("tiktok switched to yt-dlp {nightly_build}")),
        "{log}"
    );
    let h = support::eventually("tiktok healthy on the nightly", SECS(30), || async {
        health(&rig.client, "tiktok")
            .await
            .filter(|h| h.state == "healthy")
    })
    .await;
    assert_eq!(h.build.as_deref(), Some(nightly_build.as_str()));
    let h = health(&rig.client, "instagram").await.unwrap();
    assert_eq!(h.build.as_deref(), Some(t.pinned.as_str()));
    // The nightly breaks Instagram, which does not run it.
    let (url, _) = r.video(Site::Instagram, Behaviour::Ok);
    let id = rig.job(&url).await;
    completes(&rig, id, SECS(60)).await;
    assert_eq!(
        build_of(&rig.client, id).await.as_deref(),
        Some(t.pinned.as_str())
    );

    // The daily upgrade installs the nightly as `venv`.
    let mut o = support::DaemonOptions::new(&t.ytdlp());
    o.extra_env = env.clone();
    let dir = t.dir.path().display().to_string();
    let up = support::xtract("", &o, &["tools", "upgrade", "--dir", &dir, "--no-reload"]).await;
    assert!(up.status.success(), "{up}");
    assert!(up.stdout.contains("switched"), "{up}");
    support::eventually("instagram on probation", SECS(30), || async {
        health(&rig.client, "instagram")
            .await
            .filter(|h| h.state == "probation")
    })
    .await;
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (url, video) = r.video(Site::Instagram, Behaviour::Ok);
        jobs.push((video, rig.job(&url).await));
    }
    let (url, _) = r.video(Site::YouTube, Behaviour::Ok);
    let youtube = rig.job(&url).await;
    for (video, id) in &jobs {
        completes(&rig, *id, SECS(120)).await;
        assert_eq!(
            build_of(&rig.client, *id).await.as_deref(),
            Some(t.pinned.as_str()),
            "{video}: back on the pinned build"
        );
    }
    let h = health(&rig.client, "instagram").await.unwrap();
    assert_eq!(h.build.as_deref(), Some(t.pinned.as_str()), "{h:?}");
    assert_eq!(h.bad_builds, std::slice::from_ref(&nightly_build), "{h:?}");
    completes(&rig, youtube, SECS(60)).await;
    assert_eq!(
        build_of(&rig.client, youtube).await.as_deref(),
        Some(nightly_build.as_str()),
        "YouTube keeps the nightly"
    );
    let log = rig.daemon.log_text();
    assert!(
        log.contains(&format!("instagram went back to yt-dlp {}", t.pinned)),
        "{log}"
    );
    // `xtract tools status` says it too.
    let status = support::xtract("", &o, &["tools", "status", "--dir", &dir]).await;
    assert!(
        status
            .stdout
            .contains(&format!("tiktok: healthy; runs {nightly_build}"))
            && status
                .stdout
                .contains(&format!("instagram:   never again {nightly_build}")),
        "{status}"
    );
}
