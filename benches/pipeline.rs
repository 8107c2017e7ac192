//! Pipeline benchmark: one job through `xtract run --exit-when-idle` (real
//! yt-dlp and ffmpeg, default m4a output) against `yt-dlp -x --audio-format
//! mp3` on the same 10-minute clip served on 127.0.0.1, in one run. CPU is
//! user + system time of each command and every process it waited for.
//!
//!     cargo bench --bench pipeline
//!
//! Needs the tools `scripts/ensure-deps` installs (run it and eval its
//! output first, or have them on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xtract::ops::localpg::LocalPostgres;
use xtract::ops::media_server::MediaServer;

fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs a command to completion; returns (wall, CPU of it and its children).
fn measure(cmd: &mut Command) -> (Duration, Duration) {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let status = cmd.status().expect("run command");
    let wall = started.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    (wall, children_cpu() - cpu_before)
}

fn tool(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| xtract::ops::config::find_program(name))
        .unwrap_or_else(|| panic!("{name} not found: run scripts/ensure-deps"))
}

fn make_clip(ffmpeg: &Path, out: &Path) {
    if out.exists() {
        return;
    }
    let status = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        // Stereo noise under a tone: closer to music for an encoder than a
        // pure mono tone, which MP3 encodes unrealistically cheaply.
        .args([
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:amplitude=0.2:duration=600:sample_rate=44100",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=600:sample_rate=44100",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10:duration=600",
        ])
        .args([
            "-filter_complex",
            "[0:a][1:a]amerge=inputs=2[a]",
            "-map",
            "[a]",
            "-map",
            "2:v",
        ])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-shortest",
        ])
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pipeline benchmark: run it with `cargo bench --bench pipeline`");
        return;
    }
    let ytdlp = tool("XTRACT_YTDLP", "yt-dlp");
    let ffmpeg = tool("XTRACT_FFMPEG", "ffmpeg");
    let ffprobe = tool("XTRACT_FFPROBE", "ffprobe");
    let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&media).unwrap();
    let clip = media.join("ten-minutes-stereo.mp4");
    make_clip(&ffmpeg, &clip);
    let server = MediaServer::start(&media).await.unwrap();
    let url = server.url("ten-minutes-stereo.mp4");

    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(&dir.path().join("pg")).unwrap();
    pg.start(true).unwrap();
    pg.create_database("bench").await.unwrap();
    let db = pg.url("bench");
    xtract::ops::commands::migrate(&db).await.unwrap();
    xtract::ops::commands::enqueue(&db, &url, uuid::Uuid::new_v4(), None)
        .await
        .unwrap();

    println!("clip: 10 minutes, AAC 128 kb/s stereo (pink noise and a tone) + small H.264 video, served on 127.0.0.1");
    let (xt_wall, xt_cpu) = measure(
        Command::new(env!("CARGO_BIN_EXE_xtract"))
            .args(["run", "--exit-when-idle"])
            .current_dir(dir.path())
            .env("DATABASE_URL", &db)
            .env("XTRACT_STORAGE", "local")
            .env("XTRACT_LOCAL_STORAGE_DIR", dir.path().join("audio"))
            .env("XTRACT_WORK_DIR", dir.path().join("work"))
            .env("XTRACT_ALLOW_PRIVATE_URLS", "true")
            .env("XTRACT_YTDLP", &ytdlp)
            .env("XTRACT_FFMPEG", &ffmpeg)
            .env("XTRACT_FFPROBE", &ffprobe)
            .env("RUST_LOG", "warn"),
    );
    let out = dir.path().join("ytdlp");
    std::fs::create_dir_all(&out).unwrap();
    let path_with_ffmpeg = format!(
        "{}:{}",
        ffmpeg.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (yt_wall, yt_cpu) = measure(
        Command::new(&ytdlp)
            .args([
                "--ignore-config",
                "--no-cache-dir",
                "-q",
                "-x",
                "--audio-format",
                "mp3",
                "-o",
            ])
            .arg(out.join("%(id)s.%(ext)s"))
            .arg(&url)
            .env("PATH", path_with_ffmpeg),
    );
    println!(
        "xtract run (m4a, AAC copied): wall {:.2} s, CPU {:.2} s",
        xt_wall.as_secs_f64(),
        xt_cpu.as_secs_f64()
    );
    println!(
        "yt-dlp -x --audio-format mp3:  wall {:.2} s, CPU {:.2} s",
        yt_wall.as_secs_f64(),
        yt_cpu.as_secs_f64()
    );
    println!(
        "xtract uses {:.1}x less CPU and {:.1}x less wall time",
        yt_cpu.as_secs_f64() / xt_cpu.as_secs_f64(),
        yt_wall.as_secs_f64() / xt_wall.as_secs_f64()
    );
}
