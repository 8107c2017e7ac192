//! Memory benchmark: the real daemon processes one ~500 MB audio file
//! (yt-dlp download, ffmpeg stream copy, resumable upload to the in-process
//! Storage double) while we read its peak resident memory (VmHWM) from
//! /proc. The file must stream from disk: target ≤ 60 MB.
//!
//!     cargo bench --bench upload

#[path = "../tests/support/storage_double.rs"]
mod storage_double;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xtract::ops::localpg::LocalPostgres;
use xtract::ops::media_server::MediaServer;

fn tool(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| xtract::ops::config::find_program(name))
        .unwrap_or_else(|| panic!("{name} not found: run scripts/ensure-deps"))
}

fn ffmpeg(ffmpeg: &Path, args: &[&str]) {
    let status = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

/// ~500 MB of AAC: ten minutes encoded once, then copied end to end.
fn make_big_file(ff: &Path, dir: &Path) -> PathBuf {
    let big = dir.join("big500.m4a");
    if big.exists() {
        return big;
    }
    let part = dir.join("part.m4a");
    ffmpeg(
        ff,
        &[
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:duration=600:sample_rate=48000",
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-b:a",
            "320k",
            part.to_str().unwrap(),
        ],
    );
    let list = dir.join("list.txt");
    let line = format!("file '{}'\n", part.display());
    std::fs::write(&list, line.repeat(28)).unwrap();
    ffmpeg(
        ff,
        &[
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            list.to_str().unwrap(),
            "-c",
            "copy",
            big.to_str().unwrap(),
        ],
    );
    big
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("upload benchmark: run it with `cargo bench --bench upload`");
        return;
    }
    let (ytdlp, ff, ffprobe) = (
        tool("XTRACT_YTDLP", "yt-dlp"),
        tool("XTRACT_FFMPEG", "ffmpeg"),
        tool("XTRACT_FFPROBE", "ffprobe"),
    );
    let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&media).unwrap();
    let big = make_big_file(&ff, &media);
    let size = std::fs::metadata(&big).unwrap().len();
    let server = MediaServer::start(&media).await.unwrap();
    let storage = storage_double::StorageDouble::start(true, None).await;

    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(&dir.path().join("pg")).unwrap();
    pg.start(true).unwrap();
    pg.create_database("bench").await.unwrap();
    let db = pg.url("bench");
    xtract::ops::commands::migrate(&db).await.unwrap();
    xtract::ops::commands::enqueue(&db, &server.url("big500.m4a"), uuid::Uuid::new_v4(), None)
        .await
        .unwrap();

    let started = Instant::now();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_xtract"))
        .args(["run", "--exit-when-idle"])
        .current_dir(dir.path())
        .env("DATABASE_URL", &db)
        .env("XTRACT_STORAGE", "supabase")
        .env("SUPABASE_URL", &storage.url)
        .env("SUPABASE_SERVICE_ROLE_KEY", storage_double::KEY)
        .env("XTRACT_WORK_DIR", dir.path().join("work"))
        .env("XTRACT_ALLOW_PRIVATE_URLS", "true")
        .env("XTRACT_MAX_FILESIZE_MB", "2000")
        .env("XTRACT_MAX_DURATION_SECS", "86400")
        .env("XTRACT_YTDLP", &ytdlp)
        .env("XTRACT_FFMPEG", &ff)
        .env("XTRACT_FFPROBE", &ffprobe)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = started.elapsed();
    assert!(status.success(), "the daemon failed");
    let stored: usize = storage.object_count();
    assert_eq!(stored, 1, "the object was stored");
    println!(
        "one job, {:.0} MB audio file (download, stream copy, resumable upload in 6 MiB chunks): wall {:.1} s, daemon peak RSS {:.1} MB",
        size as f64 / 1e6,
        wall.as_secs_f64(),
        peak as f64 / 1024.0
    );
}
