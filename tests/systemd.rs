//! The systemd unit and the service protocol.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/xtract.service");

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze verify` of `units`: it must pass and say nothing.
fn verify(units: &[std::path::PathBuf]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_unit_is_rated_ok_by_systemd_analyze_security() {
    if !have_systemd_analyze() {
        eprintln!("systemd-analyze is not installed here; skipping");
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", UNIT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for xtract.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        eprintln!("systemd-analyze is not installed here; skipping");
        return;
    }
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace("/usr/local/bin/xtract", env!("CARGO_BIN_EXE_xtract"));
    let path = dir.path().join("xtract.service");
    std::fs::write(&path, unit).unwrap();
    verify(&[path]);
}

#[test]
fn the_daily_upgrade_units_pass_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        eprintln!("systemd-analyze is not installed here; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["xtract-upgrade.service", "xtract-upgrade.timer"] {
        let text =
            std::fs::read_to_string(format!("{}/systemd/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .replace("/usr/local/bin/xtract", env!("CARGO_BIN_EXE_xtract"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let service = std::fs::read_to_string(dir.path().join("xtract-upgrade.service")).unwrap();
    assert!(service.contains("tools upgrade"), "{service}");
    assert!(service.contains("ReadWritePaths=/opt/xtract"), "{service}");
    let timer = std::fs::read_to_string(dir.path().join("xtract-upgrade.timer")).unwrap();
    assert!(timer.contains("OnCalendar=daily") && timer.contains("Persistent=true"));
    verify(&[
        dir.path().join("xtract-upgrade.service"),
        dir.path().join("xtract-upgrade.timer"),
    ]);
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_a_long_enough_stop_timeout() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing"))
            .to_string()
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("EnvironmentFile"), "/etc/xtract/xtract.env");
    assert_eq!(value("User"), "xtract");
    assert!(!value("WatchdogSec").is_empty());
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    let grace = xtract::ops::config::Config::from_lookup(|k| match k {
        "XTRACT_YTDLP" | "XTRACT_FFMPEG" | "XTRACT_FFPROBE" => Some("/bin/true".into()),
        _ => None,
    })
    .unwrap()
    .shutdown_grace;
    assert!(Duration::from_secs(stop) > grace + Duration::from_secs(10));
}

async fn receive(socket: &tokio::net::UnixDatagram, want: &str) -> String {
    let mut seen = String::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want} within 30 s; got: {seen}"))
            .unwrap();
        let message = String::from_utf8_lossy(&buf[..n]).to_string();
        seen.push_str(&message);
        seen.push('\n');
        if message.contains(want) {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_ready_status_and_watchdog_to_systemd() {
    let db = TestDb::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    let mut options = DaemonOptions::new(Path::new("/bin/true"));
    options.extra_env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "2000000".into()),
        ("XTRACT_EGRESS_KEY".into(), "vm-a".into()),
    ];
    // TikTok rate-limited this egress: the status line says so.
    db.client()
        .await
        .execute(
            "INSERT INTO xtract.platform_pacing (platform, egress_key, paused_until, pause_reason)
             VALUES ('tiktok', 'vm-a', now() + interval '1 hour', 'HTTP Error 429')",
            &[],
        )
        .await
        .unwrap();
    let mut daemon = Daemon::start(&db.url, &options);
    receive(&socket, "READY=1").await;
    let status = receive(&socket, "paused: tiktok on vm-a until").await;
    assert!(status.starts_with("STATUS=0 running"), "{status}");
    receive(&socket, "WATCHDOG=1").await;
    daemon.signal(libc::SIGTERM);
    receive(&socket, "STOPPING=1").await;
    assert!(daemon.wait_exit(Duration::from_secs(30)).await.success());
}
