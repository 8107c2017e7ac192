//! `xtract dev`: the whole product on one machine with no Supabase account
//! and no internet. A local PostgreSQL under `.xtract-dev/` (kept between
//! runs; the demo makes its database anew), local
//! storage, and with `--demo` a generated clip served on 127.0.0.1, enqueued
//! and followed to the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::commands;
use super::config::{Config, StorageKind};
use super::daemon::{self, StartError};
use super::localpg::LocalPostgres;
use super::media_server::MediaServer;

const DEV_DIR: &str = ".xtract-dev";
/// The user the demo job belongs to.
pub const DEMO_USER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_de40);

pub async fn dev(mut config: Config, demo: bool) -> Result<(), StartError> {
    let dir = PathBuf::from(DEV_DIR);
    let mut pg = LocalPostgres::init(&dir.join("pg")).map_err(|e| StartError(e.to_string()))?;
    // The same port every run, so a DATABASE_URL printed once keeps working
    // (another free one when something else took it meanwhile).
    let port = dev_port(&dir.join("pg"));
    pg.use_port(port);
    eprintln!(
        "\n*** DEVELOPMENT MODE: a local PostgreSQL in {}/pg on port {port} ({}), local storage in {}. Not for production: set DATABASE_URL for that. ***\n",
        dir.display(),
        if demo {
            "the demo's database is made anew each run"
        } else {
            "its jobs are kept between runs; delete the folder to start afresh"
        },
        config.local_storage_dir.display()
    );
    pg.start(false).map_err(|e| StartError(e.to_string()))?;
    // `xtract dev` keeps its jobs between runs; the demo starts from an
    // empty database of its own, so no job of an earlier session runs in it.
    let database = if demo { "xtract_demo" } else { "xtract" };
    if demo {
        pg.drop_database(database)
            .await
            .map_err(|e| StartError(e.to_string()))?;
    }
    pg.create_database(database)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let url = pg.url(database);
    commands::migrate(&url)
        .await
        .map_err(|e| StartError(format!("migrating the local database: {e}")))?;
    config.storage = StorageKind::Local;
    eprintln!("database: {url}");
    if !demo {
        return Ok(daemon::run(&config, &url, false).await?);
    }
    // The demo clip is served from 127.0.0.1.
    config.allow_private_urls = true;

    let media_dir = dir.join("media");
    let clip = make_demo_clip(&config.ffmpeg, &media_dir).await?;
    let server = MediaServer::start(&media_dir)
        .await
        .map_err(|e| StartError(format!("cannot serve the demo clip: {e}")))?;
    let clip_url = server.url(
        clip.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("demo.mp4"),
    );
    let (job_id, _) = commands::enqueue(&url, &clip_url, DEMO_USER, None)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    eprintln!("enqueued job {job_id} for {clip_url}; processing…");
    daemon::run(&config, &url, true).await?;
    let (_, waited) = commands::enqueue_wait_existing(&url, job_id, Duration::from_secs(5))
        .await
        .map_err(|e| StartError(e.to_string()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&waited.row).unwrap_or_default()
    );
    if let Some(audio) = waited.audio {
        println!(
            "{}",
            serde_json::to_string_pretty(&audio).unwrap_or_default()
        );
    }
    if waited.succeeded {
        eprintln!(
            "\nThe demo job completed: the audio file is listed above (file_url).\n\n\
             What next (the binary scripts/demo built is target/release/xtract; `cargo install\n\
             --path .` puts an `xtract` on PATH):\n\
             - a real link: `target/release/xtract dev` runs the daemon on the local database;\n  \
             in another terminal, with DATABASE_URL as it printed,\n  \
             `target/release/xtract enqueue --wait --user <uuid> 'https://www.youtube.com/watch?v=…'`\n  \
             (needs internet)\n\
             - your Supabase project: docs/deploy.md (scripts/install, migrate, doctor)"
        );
        Ok(())
    } else {
        Err(StartError(
            "the demo job did not complete; see the row above".into(),
        ))
    }
}

/// The development cluster's port: the one it used last time (kept in
/// `port` beside it) while it is free, else a new free one.
fn dev_port(dir: &Path) -> u16 {
    let file = dir.join("port");
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    if let Some(p) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| free(*p))
    {
        return p;
    }
    let p = super::localpg::free_port().unwrap_or(54329);
    let _ = std::fs::write(&file, p.to_string());
    p
}

/// A 20-second test video with a tone, generated once.
async fn make_demo_clip(ffmpeg: &Path, dir: &Path) -> Result<PathBuf, StartError> {
    let clip = dir.join("demo.mp4");
    if clip.exists() {
        return Ok(clip);
    }
    std::fs::create_dir_all(dir).map_err(|e| StartError(e.to_string()))?;
    let status = crate::pipeline::child_env::command(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=440:duration=20")
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15:duration=20",
        ])
        .args([
            "-c:a",
            "aac",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-shortest",
        ])
        .arg(&clip)
        .status()
        .await
        .map_err(|e| StartError(format!("cannot run ffmpeg to make the demo clip: {e}")))?;
    if !status.success() {
        return Err(StartError("ffmpeg could not generate the demo clip".into()));
    }
    Ok(clip)
}
