//! Pickup: a job inserted while the daemon is idle, from the insert's
//! commit (the INSERT returned to the client) to the start of the job's
//! body, one job at a time with a gap between them, as a busy app's users
//! add jobs. Optionally with a probe: a LISTEN connection of the
//! benchmark's own, which splits each pickup into NOTIFY delivery, the
//! daemon's wake-up until its claim statement starts (by the database's
//! clock) and the rest (the statement, its reply, the job's start).

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;
use xtract::db::DbTarget;
use xtract::domain::EgressRoutes;

use crate::stats::Ms;
use crate::workers::{self, Noop};

#[derive(Clone)]
pub struct Options {
    pub workers: usize,
    pub samples: usize,
    pub gap: Duration,
    pub routes: EgressRoutes,
    /// The link each job gets (its platform decides the routes it uses).
    pub url: &'static str,
}

/// Per job, in ms.
#[derive(Default)]
pub struct Pickups {
    /// Commit to body start.
    pub pickup: Vec<Duration>,
    /// The INSERT's round trip (triggers and commit included).
    pub insert: Vec<Duration>,
    /// Commit to the probe's notification.
    pub notify: Vec<Duration>,
    /// Probe's notification to the claim statement's start.
    pub wake_to_statement: Vec<Duration>,
    /// Claim statement's start to the body's start.
    pub statement_to_body: Vec<Duration>,
}

impl Pickups {
    pub fn pickup_ms(&self) -> Ms {
        Ms::of(&self.pickup)
    }
}

/// Runs `opts.samples` pickups against the database of `client` (its
/// table as the caller left it).
pub async fn run(
    target: &DbTarget,
    client: &tokio_postgres::Client,
    opts: &Options,
    probe: bool,
) -> Pickups {
    let body = Noop::default();
    let running = workers::start(target, opts.workers, 4, &opts.routes, &body);
    workers::wait_listening(client, opts.workers as i64).await;
    let mut probe = if probe {
        Some(Probe::start(target).await)
    } else {
        None
    };
    let insert = client
        .prepare("INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, $2) RETURNING id")
        .await
        .unwrap();
    let mut out = Pickups::default();
    for i in 0..opts.samples {
        if let Some(p) = probe.as_mut() {
            p.drain();
        }
        let url = format!("{}{i}", opts.url);
        let sent = Instant::now();
        let id: Uuid = client
            .query_one(&insert, &[&Uuid::new_v4(), &url])
            .await
            .unwrap()
            .get(0);
        let committed = Instant::now();
        let committed_wall = SystemTime::now();
        let seen = body.started(id).await;
        out.insert.push(committed - sent);
        out.pickup
            .push(seen.at.saturating_duration_since(committed));
        if let Some(p) = probe.as_mut() {
            if let Some((_, notified_wall)) = p.next().await {
                let claim: SystemTime = seen.claim_started.into();
                out.notify.push(since(committed_wall, notified_wall));
                out.wake_to_statement.push(since(notified_wall, claim));
                out.statement_to_body.push(since(claim, seen.wall));
            }
        }
        tokio::time::sleep(opts.gap).await;
    }
    running.stop().await;
    out
}

/// `to - from`, zero when `to` came first (clocks of two processes).
fn since(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

/// A LISTEN connection of the benchmark's own, on the daemon's channel.
struct Probe {
    rx: mpsc::UnboundedReceiver<(Instant, SystemTime)>,
    _client: tokio_postgres::Client,
}

impl Probe {
    async fn start(target: &DbTarget) -> Probe {
        let (client, mut connection) = target.connect().await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(_) = m {
                    if tx.send((Instant::now(), SystemTime::now())).is_err() {
                        return;
                    }
                }
            }
        });
        client.batch_execute("LISTEN xtract_jobs").await.unwrap();
        Probe {
            rx,
            _client: client,
        }
    }

    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    async fn next(&mut self) -> Option<(Instant, SystemTime)> {
        tokio::time::timeout(Duration::from_secs(1), self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}
