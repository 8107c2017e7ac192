//! Pipeline benchmark, in one run, with real yt-dlp and ffmpeg on media
//! served on 127.0.0.1 (default m4a output):
//!
//! - short clips: N 30-second clips through `xtract run --exit-when-idle`
//!   beside the old service's way (`benches/old_service.py`: one Python
//!   process, `yt_dlp` imported once, `bestaudio/best` + FFmpegExtractAudio
//!   to m4a per link), alternating, several rounds;
//! - a 10-minute clip: one job through `xtract run` against `yt-dlp -x
//!   --audio-format mp3`.
//!
//! CPU is user + system time of each command and every process it waited
//! for.
//!
//!     cargo bench --bench pipeline
//!
//! `XTRACT_BENCH_CLIPS` (default 20) and `XTRACT_BENCH_ROUNDS` (default 3)
//! change the short-clip case. Needs the tools `scripts/ensure-deps`
//! installs (run it and eval its output first, or have them on PATH).

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

/// What one command cost.
struct Cost {
    wall: Duration,
    /// User + system time of the command and every process it waited for.
    cpu: Duration,
    /// Of that, the command's own process.
    own: Duration,
}

/// Runs a command to completion and measures it.
fn measure(cmd: &mut Command) -> Cost {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run command");
    // Wait without reaping, to read the process's own CPU time while it
    // is a zombie, then reap it.
    // SAFETY: waitid writes into the struct we pass.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        );
    }
    let wall = started.elapsed();
    let own = own_cpu(child.id());
    let status = child.wait().expect("wait for command");
    assert!(status.success(), "{cmd:?} failed");
    Cost {
        wall,
        cpu: children_cpu() - cpu_before,
        own,
    }
}

/// utime + stime of a process (not its children), from /proc.
fn own_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(ticks as f64 / hz)
}

fn tool(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| xtract::ops::config::find_program(name))
        .unwrap_or_else(|| panic!("{name} not found: run scripts/ensure-deps"))
}

fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// AAC 128 kb/s stereo (pink noise under a tone: closer to music for an
/// encoder than a pure mono tone, which MP3 encodes unrealistically
/// cheaply) with a small H.264 video, as reels and TikToks come.
fn make_clip(ffmpeg: &Path, out: &Path, secs: u32) {
    if out.exists() {
        return;
    }
    let status = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .arg("-f")
        .arg("lavfi")
        .arg("-i")
        .arg(format!(
            "anoisesrc=color=pink:amplitude=0.2:duration={secs}:sample_rate=44100"
        ))
        .arg("-f")
        .arg("lavfi")
        .arg("-i")
        .arg(format!(
            "sine=frequency=440:duration={secs}:sample_rate=44100"
        ))
        .arg("-f")
        .arg("lavfi")
        .arg("-i")
        .arg(format!("testsrc=size=160x120:rate=10:duration={secs}"))
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

struct Tools {
    ytdlp: PathBuf,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
}

/// `xtract run --exit-when-idle` on what is queued in `db`.
fn xtract_run(tools: &Tools, db: &str, dir: &Path) -> Cost {
    measure(
        Command::new(env!("CARGO_BIN_EXE_xtract"))
            .args(["run", "--exit-when-idle"])
            .current_dir(dir)
            .env("DATABASE_URL", db)
            .env("XTRACT_STORAGE", "local")
            .env("XTRACT_LOCAL_STORAGE_DIR", dir.join("audio"))
            .env("XTRACT_WORK_DIR", dir.join("work"))
            .env("XTRACT_ALLOW_PRIVATE_URLS", "true")
            .env("XTRACT_DEDUP", "false")
            .env("XTRACT_YTDLP", &tools.ytdlp)
            .env("XTRACT_FFMPEG", &tools.ffmpeg)
            .env("XTRACT_FFPROBE", &tools.ffprobe)
            .env("RUST_LOG", "warn"),
    )
}

fn per_job(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() / n as f64
}

fn range(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    format!("{lo:.3}–{hi:.3}")
}

/// The Python interpreter of the yt-dlp installation (the script's
/// shebang), which has `yt_dlp` importable.
fn python_of(ytdlp: &Path) -> PathBuf {
    let text = std::fs::read(ytdlp).expect("read yt-dlp");
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    let program = line
        .strip_prefix("#!")
        .and_then(|l| l.split_whitespace().next())
        .expect("yt-dlp is a Python script with a shebang");
    PathBuf::from(program)
}

async fn short_clips(tools: &Tools, media: &Path, server: &MediaServer, pg: &LocalPostgres) {
    let clips = env_number("XTRACT_BENCH_CLIPS", 20);
    let rounds = env_number("XTRACT_BENCH_ROUNDS", 3);
    make_clip(&tools.ffmpeg, &media.join("thirty-seconds.mp4"), 30);
    let python = python_of(&tools.ytdlp);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/old_service.py");
    println!(
        "short clips: {clips} jobs of 30 seconds (AAC 128 kb/s stereo + small H.264 video, 0.8 MB), {rounds} rounds"
    );
    let (mut xt_cpu, mut xt_wall, mut xt_own) = (vec![], vec![], vec![]);
    let (mut old_cpu, mut old_wall) = (vec![], vec![]);
    for round in 0..rounds {
        // Every job its own link (no reuse between rounds or jobs).
        let urls: Vec<String> = (0..clips)
            .map(|n| format!("{}?round={round}&job={n}", server.url("thirty-seconds.mp4")))
            .collect();
        let name = format!("short{round}");
        pg.create_database(&name).await.unwrap();
        let db = pg.url(&name);
        xtract::ops::commands::migrate(&db).await.unwrap();
        for url in &urls {
            xtract::ops::commands::enqueue(&db, url, uuid::Uuid::new_v4(), None)
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let cost = xtract_run(tools, &db, dir.path());
        let done = std::fs::read_dir(dir.path().join("audio"))
            .unwrap()
            .flat_map(|user| std::fs::read_dir(user.unwrap().path()).unwrap())
            .count();
        assert_eq!(done, clips, "every job stored its audio");
        xt_cpu.push(per_job(cost.cpu, clips));
        xt_wall.push(per_job(cost.wall, clips));
        xt_own.push(per_job(cost.own, clips));

        let out = dir.path().join("old");
        std::fs::create_dir_all(&out).unwrap();
        let cost = measure(
            Command::new(&python)
                .arg(&script)
                .arg(&out)
                .arg(tools.ffmpeg.parent().unwrap())
                .args(&urls),
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), clips);
        old_cpu.push(per_job(cost.cpu, clips));
        old_wall.push(per_job(cost.wall, clips));
        println!(
            "  round {}: xtract run CPU {:.3} s/job (the daemon's own process {:.3}), wall {:.3} s/job; warm yt_dlp CPU {:.3} s/job, wall {:.3} s/job; CPU ratio {:.2}",
            round + 1,
            xt_cpu[round],
            xt_own[round],
            xt_wall[round],
            old_cpu[round],
            old_wall[round],
            xt_cpu[round] / old_cpu[round],
        );
    }
    let ratios: Vec<f64> = xt_cpu.iter().zip(&old_cpu).map(|(x, o)| x / o).collect();
    println!("| per short job | CPU | wall |");
    println!("|---|---|---|");
    println!(
        "| `xtract run` (m4a) | {} s | {} s |",
        range(&xt_cpu),
        range(&xt_wall)
    );
    println!(
        "| warm `yt_dlp`, FFmpegExtractAudio (m4a) | {} s | {} s |",
        range(&old_cpu),
        range(&old_wall)
    );
    println!(
        "xtract's CPU per job is {} of the warm process's",
        range(&ratios)
    );
}

async fn ten_minutes(tools: &Tools, media: &Path, server: &MediaServer, pg: &LocalPostgres) {
    let clip = media.join("ten-minutes-stereo.mp4");
    make_clip(&tools.ffmpeg, &clip, 600);
    let url = server.url("ten-minutes-stereo.mp4");
    pg.create_database("long").await.unwrap();
    let db = pg.url("long");
    xtract::ops::commands::migrate(&db).await.unwrap();
    xtract::ops::commands::enqueue(&db, &url, uuid::Uuid::new_v4(), None)
        .await
        .unwrap();

    println!("10-minute clip: AAC 128 kb/s stereo (pink noise and a tone) + small H.264 video, served on 127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let xt = xtract_run(tools, &db, dir.path());
    let out = dir.path().join("ytdlp");
    std::fs::create_dir_all(&out).unwrap();
    let path_with_ffmpeg = format!(
        "{}:{}",
        tools.ffmpeg.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let yt = measure(
        Command::new(&tools.ytdlp)
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
        xt.wall.as_secs_f64(),
        xt.cpu.as_secs_f64()
    );
    println!(
        "yt-dlp -x --audio-format mp3:  wall {:.2} s, CPU {:.2} s",
        yt.wall.as_secs_f64(),
        yt.cpu.as_secs_f64()
    );
    println!(
        "xtract uses {:.1}x less CPU and {:.1}x less wall time",
        yt.cpu.as_secs_f64() / xt.cpu.as_secs_f64(),
        yt.wall.as_secs_f64() / xt.wall.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pipeline benchmark: run it with `cargo bench --bench pipeline`");
        return;
    }
    let tools = Tools {
        ytdlp: tool("XTRACT_YTDLP", "yt-dlp"),
        ffmpeg: tool("XTRACT_FFMPEG", "ffmpeg"),
        ffprobe: tool("XTRACT_FFPROBE", "ffprobe"),
    };
    let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&media).unwrap();
    let server = MediaServer::start(&media).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(&dir.path().join("pg")).unwrap();
    pg.start(true).unwrap();

    short_clips(&tools, &media, &server, &pg).await;
    println!();
    ten_minutes(&tools, &media, &server, &pg).await;
}
