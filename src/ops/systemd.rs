//! The systemd service protocol (sd_notify): READY=1 once the daemon can do
//! its job, STATUS= with a one-line summary, WATCHDOG=1 while the worker
//! loop is alive (`supervise`). Outside systemd (no NOTIFY_SOCKET) every
//! notification does nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::queue::notifier::ListenerState;
use crate::queue::Queue;

/// Sends one notification; errors are ignored (a notification is a hint,
/// never a reason to stop).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    // A hint must never hold the daemon up: a receiver that stopped reading
    // (its queue full) loses it instead of blocking a runtime thread.
    let _ = socket.set_nonblocking(true);
    let path = path.to_string_lossy().into_owned();
    let _ = if let Some(abstract_name) = path.strip_prefix('@') {
        send_abstract(&socket, abstract_name, state)
    } else {
        socket.send_to(state.as_bytes(), &path).map(|_| ())
    };
}

fn send_abstract(socket: &UnixDatagram, name: &str, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

/// How often to send WATCHDOG=1: half the period systemd expects, if it
/// expects one (WatchdogSec= sets WATCHDOG_USEC).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// What the supervision watches.
pub struct Watched {
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    /// Turns of the worker loop.
    pub loop_turns: Arc<AtomicU64>,
    pub listener: Arc<ListenerState>,
    /// The loop turns at least once per poll interval.
    pub poll: Duration,
}

/// Tells systemd when the daemon is ready (listening), what it is doing,
/// and that the worker loop still turns (the watchdog restarts a wedged
/// daemon), until `stop`.
pub async fn supervise(w: Watched, stop: CancellationToken) {
    let watchdog = watchdog_interval();
    let mut tick = tokio::time::interval(
        watchdog
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5)),
    );
    let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let mut ready = false;
    let mut last_turns = 0;
    let mut last_turn_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let listening = w.listener.alive.load(Relaxed);
        if listening && !ready {
            notify("READY=1");
            ready = true;
        }
        let turns = w.loop_turns.load(Relaxed);
        if turns != last_turns {
            last_turns = turns;
            last_turn_at = tokio::time::Instant::now();
        }
        // Only systemd reads the status line: spare the query otherwise.
        let paused = if under_systemd && listening {
            match tokio::time::timeout(Duration::from_secs(2), w.queue.paused_platforms()).await {
                Ok(Ok(p)) if !p.is_empty() => format!(
                    "; paused: {}",
                    p.iter()
                        .map(|(name, egress, until)| format!("{name} on {egress} until {until}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            }
        } else {
            String::new()
        };
        // A platform yt-dlp no longer reads (ops/heal), named.
        let broken = match w.metrics.heal_summary() {
            s if s.is_empty() => s,
            s => format!("; {s}"),
        };
        let status = format!(
            "STATUS={} running, {} completed, {} failed{}{paused}{broken}",
            w.metrics.running.get(),
            w.metrics.completed_total(),
            w.metrics.failed_total(),
            if listening {
                ""
            } else {
                "; database unreachable, reconnecting"
            }
        );
        notify(&status);
        // The loop turns at least once per poll interval; a loop stuck for
        // three of them is wedged, and systemd should restart us.
        if watchdog.is_some() && last_turn_at.elapsed() < w.poll * 3 + Duration::from_secs(5) {
            notify("WATCHDOG=1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket_named_in_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // The only test in this binary that sets NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1\nSTATUS=ok");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }
}
