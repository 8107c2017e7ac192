//! The warm yt-dlp (src/pipeline/warm.rs) with the real yt-dlp: it reports
//! what the command line reports, fails as the command line fails, shows
//! progress, dies at once on cancel, and comes back after a crash or an
//! upgrade. The command line itself stays tested by the platform tests
//! (the stand-in yt-dlp is not Python, so jobs fall back to it).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::stage::StageBuilder;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use xtract::domain::ErrorCode;
use xtract::domain::{MediaMeta, Platform};
use xtract::ops::media_server::MediaServer;
use xtract::pipeline::warm::WarmYtdlp;
use xtract::pipeline::ytdlp;

const SECS: fn(u64) -> Duration = Duration::from_secs;

const LIMITS: ytdlp::Limits = ytdlp::Limits {
    max_duration: Duration::from_secs(3600),
    max_filesize_bytes: 100 * 1024 * 1024,
};

/// Downloads `url` as a job would, warm (`warm` given) or with the command
/// line; returns the file's bytes and the media facts, or the job error.
async fn download(
    ytdlp: &Path,
    warm: Option<&WarmYtdlp>,
    url: &str,
) -> Result<(Vec<u8>, MediaMeta), xtract::domain::JobError> {
    download_with(ytdlp, warm, url, &[]).await
}

async fn download_with(
    ytdlp: &Path,
    warm: Option<&WarmYtdlp>,
    url: &str,
    more: &[&str],
) -> Result<(Vec<u8>, MediaMeta), xtract::domain::JobError> {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec![
        "--ffmpeg-location".to_string(),
        tools().ffmpeg.display().to_string(),
        "--no-cache-dir".to_string(),
    ];
    extra.extend(more.iter().map(|a| a.to_string()));
    let d = ytdlp::download(
        ytdlp,
        warm,
        url,
        dir.path(),
        "ba[ext=m4a]/ba/b",
        &extra,
        Platform::Other,
        LIMITS,
        &CancellationToken::new(),
        None,
        None,
    )
    .await?;
    Ok((std::fs::read(&d.path).unwrap(), d.meta))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_yt_dlp_downloads_and_fails_exactly_as_the_command_line() {
    let server = MediaServer::start(&media().dir).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());
    let ytdlp = &tools().ytdlp;

    let clip = server.url("clip.mp4");
    let (warm_bytes, warm_meta) = download(ytdlp, Some(&warm), &clip).await.unwrap();
    assert!(warm.helper_pid().await.is_some(), "the helper ran it");
    let (cli_bytes, cli_meta) = download(ytdlp, None, &clip).await.unwrap();
    assert_eq!(warm_bytes, cli_bytes);
    assert_eq!(
        warm_bytes,
        std::fs::read(media().dir.join("clip.mp4")).unwrap()
    );
    assert_eq!(warm_meta, cli_meta);
    assert_eq!(warm_meta.extractor_key.as_deref(), Some("Generic"));

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for (url, code) in [
        (server.url("no-such-video.mp4"), ErrorCode::NotFound),
        (format!("http://{closed}/clip.mp4"), ErrorCode::Network),
    ] {
        let w = download(ytdlp, Some(&warm), &url).await.unwrap_err();
        let c = download(ytdlp, None, &url).await.unwrap_err();
        assert_eq!(
            (w.code, &w.message, &w.detail),
            (c.code, &c.message, &c.detail),
            "{url}"
        );
        assert_eq!(w.code, code, "{w:?}");
    }
}

/// The egress guard's proxy reaches the warm child as it reaches the
/// command line: a redirect into the private network is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_download_goes_through_the_egress_guard() {
    use std::net::{IpAddr, Ipv4Addr};
    use xtract::pipeline::egress::EgressGuard;

    let server = MediaServer::start(&media().dir).await.unwrap();
    let redirector = redirector(server.url("clip.mp4").replace("127.0.0.1", "127.0.0.2")).await;
    let guard =
        EgressGuard::start(Arc::new(|ip: IpAddr| ip == IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());

    let pass = guard.pass();
    let refused = download_with(
        &tools().ytdlp,
        Some(&warm),
        &format!("http://{redirector}/watch.mp4"),
        &["--proxy", pass.proxy_url()],
    )
    .await;
    assert!(refused.is_err());
    assert_eq!(pass.refused().as_deref(), Some("127.0.0.2 (127.0.0.2)"));
    assert!(warm.helper_pid().await.is_some(), "the helper ran it");

    let pass = guard.pass();
    let (bytes, _) = download_with(
        &tools().ytdlp,
        Some(&warm),
        &server.url("clip.mp4"),
        &["--proxy", pass.proxy_url()],
    )
    .await
    .unwrap();
    assert_eq!(bytes, std::fs::read(media().dir.join("clip.mp4")).unwrap());
    assert_eq!(pass.refused(), None);
}

/// An egress pool's proxy reaches the warm child as the pipeline passes
/// it: in the download's private options file (`--config-locations`),
/// per download, credentials included, never in the helper's environment
/// or on a command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_download_goes_out_through_the_proxy_of_its_private_options() {
    use support::proxy_double::StandInProxy;
    let proxy = StandInProxy::http(Some(("alice", "s3cret-one")), "203.0.113.1").await;
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());
    let options = tempfile::tempdir().unwrap();
    let private = ytdlp::private_options(options.path(), &[("--proxy", &proxy.url())]).unwrap();
    let private: Vec<&str> = private.iter().map(String::as_str).collect();
    // The stand-in proxy answers for the site itself ("ok"): a host that
    // does not exist, so only the proxy could have given the file.
    let (bytes, _) = download_with(
        &tools().ytdlp,
        Some(&warm),
        "http://media.example/clip.mp4",
        &private,
    )
    .await
    .unwrap();
    assert_eq!(bytes, b"ok");
    assert!(warm.helper_pid().await.is_some(), "the helper ran it");
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
    assert_eq!(seen[0].target, "http://media.example/clip.mp4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yt_dlp_that_is_not_python_runs_as_the_command_line() {
    let standin = StandIn::new();
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());
    let (bytes, meta) = download(&standin.script, Some(&warm), "http://127.0.0.1:9/ok/plain")
        .await
        .unwrap();
    assert_eq!(bytes, std::fs::read(media().dir.join("tiny.m4a")).unwrap());
    assert_eq!(meta.extractor_key.as_deref(), Some("StandIn"));
    assert_eq!(warm.helper_pid().await, None);
    assert_eq!(standin.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_yt_dlp_gets_a_new_helper_and_the_old_one_leaves() {
    let server = MediaServer::start(&media().dir).await.unwrap();
    // A yt-dlp of our own to "upgrade": the same script, elsewhere.
    let bin = tempfile::tempdir().unwrap();
    let program = bin.path().join("yt-dlp");
    let script = std::fs::read(&tools().ytdlp).unwrap();
    std::fs::write(&program, &script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());
    let clip = server.url("clip.mp4");

    download(&program, Some(&warm), &clip).await.unwrap();
    let first = warm.helper_pid().await.expect("a helper");
    download(&program, Some(&warm), &clip).await.unwrap();
    assert_eq!(warm.helper_pid().await, Some(first), "kept while unchanged");

    let mut upgraded = script.clone();
    upgraded.extend_from_slice(b"\n# upgraded\n");
    std::fs::write(&program, upgraded).unwrap();
    download(&program, Some(&warm), &clip).await.unwrap();
    let second = warm.helper_pid().await.expect("a helper");
    assert_ne!(second, first);
    eventually("the old helper to exit", SECS(10), || async {
        (!process_alive(first as i32)).then_some(())
    })
    .await;
}

/// Platforms may run different yt-dlp builds (pipeline/builds.rs): each
/// build in use keeps a helper of its own, so jobs alternating between two
/// builds do not restart one helper over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_builds_in_use_keep_a_helper_each() {
    let server = MediaServer::start(&media().dir).await.unwrap();
    let script = std::fs::read(&tools().ytdlp).unwrap();
    let bins = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let programs: Vec<std::path::PathBuf> = bins
        .iter()
        .map(|b| {
            let program = b.path().join("yt-dlp");
            std::fs::write(&program, &script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
            program
        })
        .collect();
    let work = tempfile::tempdir().unwrap();
    let warm = WarmYtdlp::new(work.path());
    let clip = server.url("clip.mp4");
    for program in &programs {
        download(program, Some(&warm), &clip).await.unwrap();
    }
    let first = warm.helper_pids().await;
    assert_eq!(first.len(), 2, "{first:?}");
    for program in programs.iter().rev() {
        download(program, Some(&warm), &clip).await.unwrap();
    }
    let mut again = warm.helper_pids().await;
    let mut first = first;
    first.sort();
    again.sort();
    assert_eq!(again, first, "the same helpers served again");
}

/// Serves `body` for any path; each response stops halfway until released.
struct HeldServer {
    addr: std::net::SocketAddr,
    release: Arc<tokio::sync::Notify>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl HeldServer {
    async fn start(body: Vec<u8>) -> HeldServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = Arc::new(body);
        let (r, d) = (release.clone(), released.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (body, release, released) = (body.clone(), r.clone(), d.clone());
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ = stream.read(&mut head).await;
                    let header = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let half = body.len() / 2;
                    if stream.write_all(header.as_bytes()).await.is_err()
                        || stream.write_all(&body[..half]).await.is_err()
                    {
                        return;
                    }
                    while !released.load(std::sync::atomic::Ordering::SeqCst) {
                        let notified = release.notified();
                        if released.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        notified.await;
                    }
                    let _ = stream.write_all(&body[half..]).await;
                });
            }
        });
        HeldServer {
            addr,
            release,
            released,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

/// (parent pid, process group) of a live process.
fn stat(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit(')').next()?.split_whitespace().skip(1);
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

fn children(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_alive(*pid) && stat(*pid).is_some_and(|(pp, _)| pp == parent))
        .collect()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The daemon's warm helper and the child it forked for the running job.
async fn helper_and_child(daemon: &Daemon) -> (i32, i32) {
    let daemon_pid = daemon.pid();
    eventually("the helper's child for the job", SECS(60), || async {
        let helper = children(daemon_pid)
            .into_iter()
            .find(|p| cmdline(*p).contains("ytdlp_helper.py"))?;
        // A forked child runs the helper's script too; anything else is a
        // program yt-dlp runs while the helper warms up (deno's version,
        // with yt-dlp-ejs installed), not the job's download.
        let child = children(helper)
            .into_iter()
            .find(|p| cmdline(*p).contains("ytdlp_helper.py"))?;
        Some((helper, child))
    })
    .await
}

async fn progress(client: &tokio_postgres::Client, id: uuid::Uuid) -> Option<i16> {
    client
        .query_one(
            "SELECT progress_percent FROM processing_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// A job downloading clip.mp4 in a warm child, with the real yt-dlp, from
/// a server that sends half the file and holds the rest back; once the
/// row shows how far it got (yt-dlp counts whole blocks, so below half).
/// Its server, stage, daemon and id.
async fn a_held_download(stage: StageBuilder) -> (HeldServer, Stage, Daemon, uuid::Uuid) {
    let server = HeldServer::start(std::fs::read(media().dir.join("clip.mp4")).unwrap()).await;
    let (s, daemon) = stage.real_ytdlp().start().await;
    let id = s.enqueue(&server.url("held.mp4")).await;
    eventually("progress on the job row", SECS(60), || async {
        progress(&s.client, id)
            .await
            .filter(|p| (1..=50).contains(p))
    })
    .await;
    (server, s, daemon, id)
}

/// "At once": the cancel reaches the running job by notification; the
/// heartbeat, which would notice it too, is five minutes away here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_download_shows_progress_and_a_cancel_kills_its_group_at_once() {
    let quiet = Stage::new()
        .lease(900.0)
        .env("XTRACT_HEARTBEAT_SECS", "300");
    let (server, s, daemon, id) = a_held_download(quiet).await;
    let (_helper, child) = helper_and_child(&daemon).await;
    assert_eq!(stat(child).map(|(_, g)| g), Some(child), "leads its group");

    s.operator_sets(id, "cancelled").await;
    wait_ended("the child to be killed", &[child]).await;
    daemon.assert_logged("operator cancelled the job");
    assert_eq!(s.status(id).await, "cancelled");
    server.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_killed_mid_download_is_started_again_and_the_job_completes() {
    // The download under way in the helper's child (a child seen while the
    // helper still warms up is not the job's: killing the helper then
    // fails its start, and the command line takes over).
    let (server, s, daemon, id) = a_held_download(Stage::new()).await;
    let (helper, child) = helper_and_child(&daemon).await;
    // SAFETY: a signal to a process this test started (through the daemon).
    unsafe {
        libc::kill(helper, libc::SIGKILL);
    }
    wait_ended("the child to die with its helper", &[child]).await;
    server.release();
    s.wait(id, "completed").await;
    let again = children(daemon.pid())
        .into_iter()
        .find(|p| cmdline(*p).contains("ytdlp_helper.py"));
    let log = daemon.log_text();
    let again = again.unwrap_or_else(|| panic!("no new helper; the daemon said:\n{log}"));
    assert_ne!(again, helper);
    assert!(log.contains("warm yt-dlp helper stopped"), "{log}");
}
