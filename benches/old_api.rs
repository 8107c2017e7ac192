//! Old-API benchmark: how many `POST /extract-audio` requests one daemon
//! holds open at once, and what each costs it in memory. A real daemon
//! (`xtract run`) on a throwaway PostgreSQL set up like a Supabase project;
//! its one worker slot runs a job that never ends, so every other request's
//! job waits and the request with it. Clients open N connections, each
//! sending the old request with a user's token, and the daemon's resident
//! memory is read once `xtract_old_api_waiting` says all N are held. Also:
//! how long a new request takes while they are held.
//!
//!     cargo bench --bench old_api
//!
//! Figures, not assertions: see README "Replacing the old service".

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;
use xtract::ops::localpg::{free_port, LocalPostgres};

const SUPABASE: &str = include_str!("../tests/support/supabase.sql");
const SECRET: &str = "legacy-jwt-secret-of-a-supabase-project-0123456789";
/// Requests held at each step.
const STEPS: [usize; 4] = [500, 1000, 2000, 4000];

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn metric(health: &str, name: &str) -> Option<i64> {
    let text = reqwest::get(format!("http://{health}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn request(token: &str, url: &str) -> Vec<u8> {
    let body = format!(r#"{{"url": "{url}"}}"#);
    format!(
        "POST /extract-audio HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends a request on a fresh connection and reads the status line.
async fn answered(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut reply = vec![0u8; 512];
    let n = s.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this too; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("old API benchmark: run it with `cargo bench --bench old_api`");
        return;
    }
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(&dir.path().join("pg")).expect("initdb");
    pg.start(true).expect("start postgres");
    pg.create_database("bench").await.unwrap();
    let owner = pg.url("bench");
    {
        let (client, conn) = tokio_postgres::connect(&owner, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(SUPABASE).await.unwrap();
        xtract::ops::commands::migrate(&owner).await.unwrap();
        client
            .batch_execute("ALTER ROLE xtract_worker LOGIN")
            .await
            .unwrap();
    }
    // A job that never ends: the one worker slot stays busy.
    let standin = dir.path().join("yt-dlp");
    std::fs::write(&standin, "#!/bin/sh\nexec sleep 3600\n").unwrap();
    make_executable(&standin);
    let api = format!("127.0.0.1:{}", free_port().unwrap());
    let health = format!("127.0.0.1:{}", free_port().unwrap());
    let most = *STEPS.last().unwrap();
    let program =
        |name: &str| xtract::ops::config::find_program(name).unwrap_or_else(|| "/bin/true".into());
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtract"))
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", owner.replace("postgres@", "xtract_worker@"))
        .env("XTRACT_STORAGE", "local")
        .env("XTRACT_LOCAL_STORAGE_DIR", dir.path().join("audio"))
        .env("XTRACT_WORK_DIR", dir.path().join("work"))
        .env("XTRACT_ALLOW_PRIVATE_URLS", "true")
        .env("XTRACT_YTDLP", &standin)
        .env("XTRACT_WARM_YTDLP", "false")
        .env("XTRACT_FFMPEG", program("ffmpeg"))
        .env("XTRACT_FFPROBE", program("ffprobe"))
        .env("XTRACT_CONCURRENCY", "1")
        .env("XTRACT_SHUTDOWN_GRACE_SECS", "0")
        .env("XTRACT_HEALTH_ADDR", &health)
        .env("XTRACT_COMPAT_ADDR", &api)
        .env("SUPABASE_JWT_SECRET", SECRET)
        .env("XTRACT_COMPAT_WAIT_SECS", "3600")
        .env("XTRACT_COMPAT_MAX_WAITING", (most + 10).to_string())
        .env("XTRACT_MAX_PENDING_PER_USER", (most + 10).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start xtract");
    let pid = daemon.id().unwrap();
    let user = Uuid::new_v4();
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": user, "aud": "authenticated", "role": "authenticated",
                            "exp": now + 7200, "iat": now}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    while metric(&health, "xtract_old_api_waiting").await.is_none()
        || TcpStream::connect(&api).await.is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = request(&token, "ftp://example.com/x");
    // A first request warms what is made once (pools, the key).
    answered(&api, &refused).await;
    let idle = rss_kib(pid);
    println!(
        "daemon at rest with the old API on: {:.1} MiB resident; {} cores",
        idle as f64 / 1024.0,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| requests held | daemon RSS (MiB) | per held request since the previous step (KiB) | a new request meanwhile (ms) | time to hold the step (s) |");
    println!("|---:|---:|---:|---:|---:|");
    let mut held: Vec<TcpStream> = Vec::new();
    let mut previous = (0usize, idle);
    for step in STEPS {
        let began = Instant::now();
        while held.len() < step {
            let mut s = TcpStream::connect(&api).await.unwrap();
            let url = format!("http://127.0.0.1:9/held/{}", held.len());
            s.write_all(&request(&token, &url)).await.unwrap();
            held.push(s);
        }
        // Held: the daemon counts them as waiting (the one running job's
        // request too).
        while metric(&health, "xtract_old_api_waiting").await != Some(step as i64) {
            assert!(
                began.elapsed() < Duration::from_secs(300),
                "requests not held"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = began.elapsed();
        let t = Instant::now();
        let status = answered(&api, &refused).await;
        let latency = t.elapsed();
        assert!(status.contains(" 400 "), "{status}");
        let rss = rss_kib(pid);
        let per = (rss as f64 - previous.1 as f64) / (step - previous.0) as f64;
        println!(
            "| {step} | {:.1} | {per:.1} | {:.1} | {:.1} |",
            rss as f64 / 1024.0,
            latency.as_secs_f64() * 1000.0,
            took.as_secs_f64()
        );
        previous = (step, rss);
    }
    let per_all = (previous.1 - idle) as f64 / most as f64;
    println!("over all {most} held requests: {per_all:.1} KiB of daemon memory each");
    drop(held);
    // SIGTERM: the running job's process goes with the daemon.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), daemon.wait()).await;
    pg.stop(true).ok();
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Both ends of every held request are sockets of this machine.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
