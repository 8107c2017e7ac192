//! xtract's side: the real worker loop (claim, heartbeat, write-back,
//! LISTEN) with a job body that only records when it started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xtract::db::DbTarget;
use xtract::domain::{EgressRoutes, Job, PlatformTable};
use xtract::queue::notifier::{CancelRegistry, ListenerState, Notifier};
use xtract::queue::worker::{JobContext, JobReport, Processor, Shutdown, Worker, WorkerSettings};
use xtract::queue::Queue;

/// When a job's body started, by two clocks, and when its claim statement
/// started by the database's clock (the claim's `now()`, from the job's
/// `created_at` and `waited_secs`).
#[derive(Clone, Copy)]
pub struct Seen {
    pub at: Instant,
    pub wall: SystemTime,
    pub claim_started: DateTime<Utc>,
}

/// Records when each job started, and nothing else.
#[derive(Clone, Default)]
pub struct Noop {
    pub seen: Arc<Mutex<HashMap<Uuid, Seen>>>,
    pub tick: Arc<Notify>,
}

impl Processor for Noop {
    async fn process(&self, job: &Job, _ctx: &JobContext) -> JobReport {
        let seen = Seen {
            at: Instant::now(),
            wall: SystemTime::now(),
            claim_started: job.created_at
                + chrono::Duration::microseconds((job.waited_secs * 1e6) as i64),
        };
        self.seen.lock().unwrap().insert(job.id, seen);
        self.tick.notify_one();
        JobReport {
            platform: None,
            result: Ok(None),
        }
    }
}

impl Noop {
    /// Waits until job `id` has started.
    pub async fn started(&self, id: Uuid) -> Seen {
        loop {
            let notified = self.tick.notified();
            if let Some(seen) = self.seen.lock().unwrap().get(&id) {
                return *seen;
            }
            notified.await;
        }
    }
}

pub struct Running {
    stop: Vec<(Shutdown, CancellationToken)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub metrics: Vec<Arc<xtract::metrics::Metrics>>,
}

impl Running {
    pub async fn stop(self) {
        for (shutdown, listener) in &self.stop {
            shutdown.stop_claiming.cancel();
            listener.cancel();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn completed(&self) -> u64 {
        self.metrics.iter().map(|m| m.completed_total()).sum()
    }
}

/// `n` daemons of `concurrency` slots each, claiming by `routes`.
pub fn start(
    target: &DbTarget,
    n: usize,
    concurrency: usize,
    routes: &EgressRoutes,
    body: &Noop,
) -> Running {
    let mut stop = Vec::new();
    let mut tasks = Vec::new();
    let mut metrics = Vec::new();
    for i in 0..n {
        let pool = target.pool(concurrency + 4).unwrap();
        let queue = Queue::new(pool, &format!("bench-{i}"), "vm")
            .with_routes(xtract::live::Live::new(routes.clone()))
            .with_completer();
        let wake = Arc::new(Notify::new());
        let cancels = CancelRegistry::default();
        let notifier = Notifier {
            target: target.clone(),
            wake: wake.clone(),
            cancels: cancels.clone(),
            state: Arc::new(ListenerState::default()),
            ping_interval: Duration::from_secs(30),
            finished: None,
        };
        let listener = CancellationToken::new();
        tasks.push(tokio::spawn(notifier.run(listener.clone())));
        let settings = WorkerSettings {
            concurrency,
            poll_interval: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
            job_timeout: Duration::from_secs(1800),
            max_pauses: 6,
            platforms: xtract::live::Live::new(PlatformTable::default()),
            exit_when_idle: false,
        };
        let shutdown = Shutdown::default();
        let worker = Worker::new(
            queue,
            body.clone(),
            settings,
            wake,
            cancels,
            Default::default(),
        );
        metrics.push(worker.metrics());
        let s = shutdown.clone();
        tasks.push(tokio::spawn(worker.run(s)));
        stop.push((shutdown, listener));
    }
    Running {
        stop,
        tasks,
        metrics,
    }
}

/// Until `n` connections of this database LISTEN for jobs.
pub async fn wait_listening(client: &tokio_postgres::Client, n: i64) {
    loop {
        let listening: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query ILIKE 'LISTEN xtract_jobs%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if listening >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One egress for every platform (most deployments).
pub fn one_egress() -> EgressRoutes {
    EgressRoutes::single("vm")
}

/// Three egresses (two proxies and this machine) for instagram, tiktok and
/// youtube, this machine for `other`; `PAUSES` pauses some of them.
pub fn egress_pool() -> EgressRoutes {
    let mut routes = EgressRoutes::default();
    for platform in ["instagram", "tiktok", "youtube"] {
        for key in ["proxy-a", "proxy-b", "vm"] {
            routes.platforms.push(platform.into());
            routes.keys.push(key.into());
        }
    }
    routes.platforms.push("other".into());
    routes.keys.push("vm".into());
    routes
}

/// Pauses for the pool: TikTok (the benchmark's jobs) paused on proxy-a,
/// Instagram on both proxies, so the claim's route logic has work to do.
pub const PAUSES: &str = "
INSERT INTO xtract.platform_pacing (platform, egress_key, paused_until, pause_reason)
VALUES ('tiktok', 'proxy-a', now() + interval '1 day', 'rate_limited'),
       ('instagram', 'proxy-a', now() + interval '1 day', 'rate_limited'),
       ('instagram', 'proxy-b', now() + interval '1 day', 'rate_limited'),
       ('youtube', 'vm', now() - interval '1 hour', 'rate_limited')
ON CONFLICT (platform, egress_key) DO UPDATE SET paused_until = excluded.paused_until";

/// Jobs through `workers` daemons of 32 slots until `jobs` more completed:
/// the time from their start to the last completion. The jobs must be
/// queued already.
pub async fn drain(target: &DbTarget, workers: usize, jobs: u64) -> Duration {
    let body = Noop::default();
    let started = Instant::now();
    let running = start(target, workers, 32, &one_egress(), &body);
    // Completions are counted in-process: polling the table would load the
    // very database being measured.
    while running.completed() < jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    running.stop().await;
    elapsed
}

/// `n` ready jobs of `n` users in one statement, then ANALYZE: a live
/// database has statistics (autovacuum analyzes after a burst; see
/// README, "Benchmarks").
pub async fn queue_jobs(client: &tokio_postgres::Client, n: i64, url: &str) {
    client
        .execute(
            "INSERT INTO processing_jobs (user_id, original_url)
             SELECT gen_random_uuid(), $2 || g FROM generate_series(1, $1::bigint) AS g",
            &[&n, &url],
        )
        .await
        .unwrap();
    client
        .batch_execute("ANALYZE processing_jobs")
        .await
        .unwrap();
}
