//! The media pipeline with the real yt-dlp and ffmpeg, against media served
//! on 127.0.0.1 (the platforms themselves cannot be reached from here).

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;
use xtract::ops::media_server::MediaServer;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Runs one job through a daemon with the real yt-dlp; returns the final
/// job row, the audio row (if any) and the daemon (for its folders).
async fn run_one(
    file: &str,
    env: &[(&str, &str)],
) -> (serde_json::Value, Option<serde_json::Value>, Daemon) {
    let db = TestDb::start().await;
    let server = MediaServer::start(&media().dir).await.unwrap();
    let client = db.client().await;
    let id = db.enqueue(&client, &server.url(file)).await;
    let mut options = DaemonOptions::new(&tools().ytdlp);
    options.extra_env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut daemon = Daemon::spawn(&db.url, &options, &["run", "--exit-when-idle"]);
    let status = daemon.wait_exit(SECS(120)).await;
    assert!(status.success(), "daemon failed:\n{}", daemon.log_text());
    let row = job(&client, id).await;
    let audio = client
        .query_opt(
            "SELECT to_jsonb(a) FROM audio_files a WHERE job_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0));
    (row, audio, daemon)
}

fn probe_codec(path: &Path) -> String {
    let out = std::process::Command::new(&tools().ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn leftover_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn stored_file(daemon: &Daemon, audio: &serde_json::Value) -> std::path::PathBuf {
    daemon
        .audio_dir()
        .join(audio["storage_path"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_link_becomes_an_m4a_file_with_its_aac_copied() {
    let (row, audio, daemon) = run_one("clip.mp4", &[]).await;
    assert_eq!(row["status"], "completed", "{row}");
    let audio = audio.expect("an audio_files row");
    assert_eq!(row["result_audio_file_id"], audio["id"]);
    assert_eq!(audio["content_type"], "audio/mp4");
    assert_eq!(audio["user_id"], USER.to_string());
    let path = stored_file(&daemon, &audio);
    assert_eq!(
        audio["storage_path"],
        format!("{}/{}.m4a", USER, row["id"].as_str().unwrap())
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 1000);
    assert_eq!(audio["file_size"], size);
    assert_eq!(audio["file_url"], format!("file://{}", path.display()));
    assert_eq!(probe_codec(&path), "aac");
    let duration = audio["duration"].as_f64().unwrap();
    assert!((2.5..3.5).contains(&duration), "duration {duration}");
    assert_eq!(row["platform"], "other");
    assert!(
        leftover_files(&daemon.work_dir()).is_empty(),
        "temp files left: {:?}",
        leftover_files(&daemon.work_dir())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audio_format_is_written_with_the_right_codec() {
    for (format, file, codec, ext, mime) in [
        ("mp3", "clip.mp4", "mp3", "mp3", "audio/mpeg"),
        ("opus", "clip.mp4", "opus", "opus", "audio/ogg"),
        ("m4a", "opus.webm", "aac", "m4a", "audio/mp4"),
        ("original", "opus.webm", "opus", "opus", "audio/ogg"),
        ("original", "song.mp3", "mp3", "mp3", "audio/mpeg"),
    ] {
        let (row, audio, daemon) = run_one(file, &[("XTRACT_AUDIO_FORMAT", format)]).await;
        assert_eq!(row["status"], "completed", "{format} from {file}: {row}");
        let audio = audio.unwrap();
        assert_eq!(audio["content_type"], mime, "{format} from {file}");
        let path = stored_file(&daemon, &audio);
        assert!(
            path.to_string_lossy().ends_with(&format!(".{ext}")),
            "{}",
            path.display()
        );
        assert_eq!(probe_codec(&path), codec, "{format} from {file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_without_sound_fails_with_no_audio() {
    let (row, audio, daemon) = run_one("silent.mp4", &[]).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], "no_audio");
    assert_eq!(row["error_message"], "This video has no sound to extract.");
    assert_eq!(row["attempts"], 1, "not retried");
    assert!(audio.is_none());
    assert!(leftover_files(&daemon.audio_dir()).is_empty());
    assert!(leftover_files(&daemon.work_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_fails_cleanly_and_leaves_nothing() {
    let (row, audio, daemon) = run_one("corrupt.mp4", &[]).await;
    assert_eq!(row["status"], "failed", "{row}");
    // The file is at fault, not the video's privacy.
    assert_eq!(
        row["error_message"],
        "Video Processing Failed: the video file is damaged or in a format we cannot read.",
        "{row}"
    );
    assert!(audio.is_none());
    assert!(row["error_detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(leftover_files(&daemon.audio_dir()).is_empty());
    assert!(leftover_files(&daemon.work_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_video_fails_with_not_found() {
    let (row, audio, _daemon) = run_one("no-such-video.mp4", &[]).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], "not_found");
    assert_eq!(row["attempts"], 1);
    assert!(text_of(&row, "error_detail").contains("404"));
    assert!(audio.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_limit_fails_with_too_large() {
    // clip.mp4 is ~37 KB: a 0.01 MB limit is below it. (MB are whole numbers
    // in configuration; use the smallest, 1, with a bigger file instead.)
    let big = media().dir.join("big.mp4");
    if !big.exists() {
        let tmp = media().dir.join(format!(".{}.big.mp4", std::process::id()));
        std::fs::write(&tmp, vec![0u8; 0]).unwrap();
        let status = std::process::Command::new(&tools().ffmpeg)
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "anoisesrc=duration=40:sample_rate=48000",
                "-c:a",
                "pcm_s16le",
                "-f",
                "matroska",
            ])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::rename(&tmp, &big).unwrap();
    }
    assert!(std::fs::metadata(&big).unwrap().len() > 2 * 1024 * 1024);
    let (row, audio, daemon) = run_one("big.mp4", &[("XTRACT_MAX_FILESIZE_MB", "1")]).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["error_code"], "too_large", "{row}");
    assert!(text_of(&row, "error_message").contains("1 MB"), "{row}");
    assert!(audio.is_none());
    assert!(leftover_files(&daemon.work_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_an_unsupported_site_fails_at_once_with_a_clear_message() {
    let db = TestDb::start().await;
    let client = db.client().await;
    let id = db.enqueue(&client, "https://example.com/some/video").await;
    let mut daemon = Daemon::spawn(
        &db.url,
        &DaemonOptions::new(&tools().ytdlp),
        &["run", "--exit-when-idle"],
    );
    assert!(daemon.wait_exit(SECS(60)).await.success());
    let row = job(&client, id).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], "unsupported_url");
    assert!(text_of(&row, "error_message").contains("not supported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_grows_past_the_limit_is_stopped_midway() {
    // Streams (HLS/DASH) have no size up front: the bytes are watched.
    let db = TestDb::start().await;
    let standin = StandIn::new();
    let client = db.client().await;
    let mut options = DaemonOptions::new(&standin.script);
    options
        .extra_env
        .push(("XTRACT_MAX_FILESIZE_MB".into(), "1".into()));
    let _daemon = Daemon::start(&db.url, &options);
    let id = db.enqueue(&client, "http://127.0.0.1:9/huge/stream").await;
    let pid = standin.blocked_pid("stream").await;
    wait_status(&client, id, "failed", SECS(30)).await;
    let row = job(&client, id).await;
    assert_eq!(row["error_code"], "too_large");
    assert!(text_of(&row, "error_message").contains("1 MB"), "{row}");
    assert!(!process_alive(pid), "the download was stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_over_the_length_limit_fails_with_too_long() {
    let (row, audio, daemon) = run_one("clip.mp4", &[("XTRACT_MAX_DURATION_SECS", "1")]).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], "too_long");
    assert_eq!(
        row["error_message"],
        "This video is too long: the limit is 1 second."
    );
    assert!(audio.is_none());
    assert!(leftover_files(&daemon.work_dir()).is_empty());
}

/// The egress guard with the real yt-dlp: a page on an allowed address
/// redirects to one the guard forbids (here 127.0.0.2, standing in for the
/// cloud metadata service or the VM's private network). yt-dlp follows the
/// redirect, the guard refuses it, and the refusal is recorded on the
/// download's pass. The allowed clip itself comes through the guard whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_guard_stops_a_redirect_into_the_private_network() {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use xtract::pipeline::egress::EgressGuard;

    let server = MediaServer::start(&media().dir).await.unwrap();
    let clip = server.url("clip.mp4");
    let redirector = redirector(clip.replace("127.0.0.1", "127.0.0.2")).await;
    let guard =
        EgressGuard::start(Arc::new(|ip: IpAddr| ip == IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();

    // The proxy as the daemon hands it over: in a private options file
    // (never on the command line), read by the real yt-dlp despite
    // --ignore-config. The refusal recorded on the pass proves it was used.
    let ytdlp = |url: String, dir: &Path, proxy: &str| {
        let private = xtract::pipeline::ytdlp::private_options(dir, &[("--proxy", proxy)]).unwrap();
        std::process::Command::new(&tools().ytdlp)
            .args(["--ignore-config", "--no-playlist"])
            .args(&private)
            .arg("-o")
            .arg(dir.join("out.%(ext)s"))
            .args(["--", &url])
            .output()
            .unwrap()
    };

    let dir = tempfile::tempdir().unwrap();
    let pass = guard.pass();
    let out = ytdlp(
        format!("http://{redirector}/watch.mp4"),
        dir.path(),
        pass.proxy_url(),
    );
    assert!(!out.status.success(), "the redirect was followed");
    assert_eq!(pass.refused().as_deref(), Some("127.0.0.2 (127.0.0.2)"));
    assert_eq!(leftover_files(dir.path()), vec!["private.conf".to_string()]);

    let dir = tempfile::tempdir().unwrap();
    let pass = guard.pass();
    let out = ytdlp(clip, dir.path(), pass.proxy_url());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pass.refused(), None);
    let got = std::fs::read(dir.path().join("out.mp4")).unwrap();
    assert_eq!(got, std::fs::read(media().dir.join("clip.mp4")).unwrap());
}

/// A retried job whose earlier attempt stored another format (an `original`
/// file of another codec, or a format changed by a reload) leaves one
/// object, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_leaves_only_its_final_format_behind() {
    let db = TestDb::start().await;
    let server = MediaServer::start(&media().dir).await.unwrap();
    let client = db.client().await;
    let id = db.enqueue(&client, &server.url("clip.mp4")).await;
    // The first attempt stored an mp3, then its worker was lost.
    client
        .execute(
            "UPDATE processing_jobs SET attempts = 1 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let folder = store.path().join(USER.to_string());
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{id}.mp3")), b"earlier attempt").unwrap();

    let mut options = DaemonOptions::new(&tools().ytdlp);
    options.extra_env.push((
        "XTRACT_LOCAL_STORAGE_DIR".into(),
        store.path().display().to_string(),
    ));
    let mut daemon = Daemon::spawn(&db.url, &options, &["run", "--exit-when-idle"]);
    assert!(
        daemon.wait_exit(SECS(120)).await.success(),
        "{}",
        daemon.log_text()
    );
    assert_eq!(status(&client, id).await, "completed");
    let mut left: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![format!("{id}.m4a")]);
}

/// A yt-dlp extractor plugin that answers like yt-dlp's Instagram extractor
/// on a post with several media: a playlist whose photo items have no
/// formats. Loaded by the real yt-dlp from its plugin folder under HOME
/// (`~/.config/yt-dlp/plugins/`): HOME is one of the few variables the
/// programs of a job get (pipeline/child_env.rs), PYTHONPATH is not.
const CAROUSEL_PLUGIN: &str = r#"
from yt_dlp.extractor.common import InfoExtractor


class XtractTestCarouselIE(InfoExtractor):
    _VALID_URL = r'https?://127\.0\.0\.1:\d+/carousel/(?P<port>\d+)/(?P<id>[a-z0-9-]+)'

    def _real_extract(self, url):
        port, post = self._match_valid_url(url).group('port', 'id')
        entries = []
        for k, kind in enumerate(post.split('-'), 1):
            entry = {'id': f'{post}_{k}', 'title': f'item {k}', 'formats': [], 'duration': None}
            if kind == 'video':
                entry['duration'] = 3.0
                entry['formats'] = [{
                    'url': f'http://127.0.0.1:{port}/item{k}.mp4', 'ext': 'mp4', 'format_id': 'mp4',
                    'vcodec': 'h264', 'acodec': 'aac',
                }]
            entries.append(entry)
        return self.playlist_result(entries, post, 'Post by someone')
"#;

/// Serves clip.mp4 at every path, and keeps the paths asked for.
async fn clip_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let asked: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let clip = std::fs::read(media().dir.join("clip.mp4")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = asked.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        log.lock().unwrap().push(uri.path().to_string());
        let clip = clip.clone();
        async move { clip }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, asked)
}

/// The real yt-dlp on a post shaped like an Instagram carousel: the photo
/// item fails on its own, the first video is downloaded, and yt-dlp stops
/// there (exit 101 from --max-downloads): one job, one file, and the next
/// video never asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_yt_dlp_gives_the_first_video_of_a_post_with_several_items() {
    let home = tempfile::tempdir().unwrap();
    let dir = home
        .path()
        .join(".config/yt-dlp/plugins/xtract-test/yt_dlp_plugins/extractor");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("xtract_test_carousel.py"), CAROUSEL_PLUGIN).unwrap();
    let home = home.path().display().to_string();
    let (port, asked) = clip_server().await;
    let post = format!("carousel/{port}/photo-video-video");
    let (row, audio, daemon) = run_one(&post, &[("HOME", &home)]).await;
    assert_eq!(row["status"], "completed", "{row}\n{}", daemon.log_text());
    assert_eq!(row["media_title"], "item 2", "{row}");
    let audio = audio.expect("an audio_files row");
    assert_eq!(probe_codec(&stored_file(&daemon, &audio)), "aac");
    let asked = std::mem::take(&mut *asked.lock().unwrap());
    assert!(!asked.is_empty(), "the first video was not downloaded");
    assert!(
        asked.iter().all(|p| p == "/item2.mp4"),
        "yt-dlp went on past the first video: {asked:?}"
    );

    // Photos only: no video to take the audio from, said once.
    let post = format!("carousel/{port}/photo-photo");
    let (row, audio, _daemon) = run_one(&post, &[("HOME", &home)]).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["error_code"], "no_formats", "{row}");
    assert!(
        text_of(&row, "error_message").contains("only photos"),
        "{row}"
    );
    assert!(audio.is_none());
}

/// The stand-in yt-dlp is no more lenient than the real one: every option
/// it accepts is the real yt-dlp's, with a value where the real one takes
/// one, and an option it does not know ends it as the real one ends:
/// usage error, exit code 2.
#[test]
fn the_stand_in_yt_dlp_knows_only_the_real_ones_options() {
    let help = std::process::Command::new(&tools().ytdlp)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    // "  -f, --format FORMAT   Video format code…": the spellings before the
    // description, a metavar after the last when a value follows; aliases
    // named in the description take the same.
    let mut real: std::collections::BTreeMap<String, bool> = Default::default();
    let mut last_takes = false;
    for line in help.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
            let spec = trimmed.split("  ").next().unwrap();
            let takes = spec
                .rsplit(", ")
                .next()
                .is_some_and(|last| last.contains(' '));
            for name in spec.split(", ") {
                real.insert(name.split(' ').next().unwrap().to_string(), takes);
            }
            last_takes = takes;
        }
        if let Some((_, alias)) = line.split_once("(Alias: ") {
            for name in alias.trim_end_matches(')').split(", ") {
                real.insert(name.to_string(), last_takes);
            }
        }
    }
    assert!(real.len() > 200, "{help}");
    for (name, takes) in STANDIN_OPTIONS {
        assert_eq!(
            real.get(*name),
            Some(takes),
            "{name}: the real yt-dlp's --help says {:?}",
            real.get(*name)
        );
    }

    let standin = StandIn::new();
    let run = |args: &[&str]| {
        std::process::Command::new(&standin.script)
            .args(args)
            .output()
            .unwrap()
    };
    // Unknown to both, and a value missing: both refuse alike. (A real
    // option xtract never passes, such as --exec, the stand-in refuses
    // too: stricter is safe.)
    for (args, error) in [
        (
            &["--no-such-option", "--", "http://127.0.0.1:9/ok/x"][..],
            "yt-dlp: error: no such option: --no-such-option",
        ),
        (&["-f"], "yt-dlp: error: -f option requires 1 argument"),
        (
            &["--exec=touch x", "--", "http://127.0.0.1:9/ok/x"],
            "yt-dlp: error: no such option: --exec",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{args:?}: {stderr}");
        if args[0] == "--exec=touch x" {
            continue;
        }
        let real = std::process::Command::new(&tools().ytdlp)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(real.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&real.stderr).contains(error),
            "{args:?}"
        );
    }
    assert!(standin.calls().is_empty(), "refused before it began");
}
