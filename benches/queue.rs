//! Queue benchmark: the real worker loop (claim, heartbeat, write-back,
//! LISTEN) with a job body that does nothing, against a throwaway local
//! PostgreSQL. Prints pickup latency (INSERT to claim, p50/p99) and
//! throughput (jobs/s) for 1 and 4 workers; then the same measures of
//! graphile-worker, a widely used Node.js queue on PostgreSQL, against the
//! same server (benches/node_queue; skipped, saying so, without Node.js).
//!
//!     cargo bench --bench queue
//!
//! Figures, not assertions: see README "Benchmarks".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use xtract::db::DbTarget;
use xtract::domain::Job;
use xtract::domain::PlatformTable;
use xtract::ops::localpg::LocalPostgres;
use xtract::queue::notifier::{CancelRegistry, ListenerState, Notifier};
use xtract::queue::worker::{JobContext, JobReport, Processor, Shutdown, Worker, WorkerSettings};
use xtract::queue::Queue;

/// Records when each job was claimed, and nothing else.
#[derive(Clone, Default)]
struct Noop {
    claimed: Arc<Mutex<HashMap<Uuid, Instant>>>,
    tick: Arc<Notify>,
}

impl Processor for Noop {
    async fn process(&self, job: &Job, _ctx: &JobContext) -> JobReport {
        self.claimed.lock().unwrap().insert(job.id, Instant::now());
        self.tick.notify_one();
        JobReport {
            platform: None,
            result: Ok(None),
        }
    }
}

struct Running {
    stop: Vec<(Shutdown, CancellationToken)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    metrics: Vec<Arc<xtract::metrics::Metrics>>,
}

impl Running {
    async fn stop(self) {
        for (shutdown, listener) in &self.stop {
            shutdown.stop_claiming.cancel();
            listener.cancel();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn start_workers(target: &DbTarget, n: usize, concurrency: usize, body: &Noop) -> Running {
    let mut stop = Vec::new();
    let mut tasks = Vec::new();
    let mut metrics = Vec::new();
    for i in 0..n {
        let pool = target.pool(concurrency + 4).unwrap();
        let queue = Queue::new(pool, &format!("bench-{i}"), "bench").with_completer();
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

async fn wait_listening(client: &tokio_postgres::Client, n: i64) {
    loop {
        let listening: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN xtract_jobs%'",
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn latency(
    target: &DbTarget,
    client: &tokio_postgres::Client,
    workers: usize,
    samples: usize,
) {
    client
        .batch_execute("TRUNCATE processing_jobs CASCADE")
        .await
        .unwrap();
    let body = Noop::default();
    let running = start_workers(target, workers, 4, &body);
    wait_listening(client, workers as i64).await;
    let insert = client
        .prepare(
            "INSERT INTO processing_jobs (user_id, original_url) VALUES ($1, 'https://example.com/bench') RETURNING id",
        )
        .await
        .unwrap();
    let user = Uuid::new_v4();
    let mut pickups = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let id: Uuid = client.query_one(&insert, &[&user]).await.unwrap().get(0);
        // Wait for the claim (the body signals it), then read its time.
        let claimed = loop {
            if let Some(t) = body.claimed.lock().unwrap().get(&id) {
                break *t;
            }
            body.tick.notified().await;
        };
        pickups.push(claimed.saturating_duration_since(started));
    }
    running.stop().await;
    pickups.sort();
    println!(
        "pickup latency, {workers} worker(s), {samples} jobs one at a time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&pickups, 0.5).as_secs_f64() * 1e3,
        percentile(&pickups, 0.99).as_secs_f64() * 1e3,
        pickups.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn throughput(target: &DbTarget, client: &tokio_postgres::Client, workers: usize, jobs: i64) {
    client
        .batch_execute("TRUNCATE processing_jobs CASCADE")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO processing_jobs (user_id, original_url)
             SELECT gen_random_uuid(), 'https://example.com/bench' FROM generate_series(1, $1::bigint)",
            &[&jobs],
        )
        .await
        .unwrap();
    // A live database has statistics (autovacuum analyzes a table within a
    // minute of a burst); a table truncated a moment ago has none, and the
    // planner would sort the whole backlog for the first claims.
    client
        .batch_execute("ANALYZE processing_jobs")
        .await
        .unwrap();
    let body = Noop::default();
    let started = Instant::now();
    let running = start_workers(target, workers, 32, &body);
    // Count completions in-process: polling the table would load the very
    // database being measured.
    loop {
        let done: u64 = running.metrics.iter().map(|m| m.completed_total()).sum();
        if done >= jobs as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    running.stop().await;
    println!(
        "throughput, {workers} worker(s) x 32 slots, {jobs} queued jobs: {:.0} jobs/s ({:.2} s)",
        jobs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs this too; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("queue benchmark: run it with `cargo bench --bench queue`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(dir.path()).expect("initdb");
    pg.start(false).expect("start postgres");
    pg.create_database("bench").await.unwrap();
    let url = pg.url("bench");
    xtract::ops::commands::migrate(&url).await.unwrap();
    let target = DbTarget::parse(&url).unwrap();
    let client = target.connect_simple().await.unwrap();
    println!(
        "PostgreSQL with default durability (fsync on); {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for workers in [1, 4] {
        latency(&target, &client, workers, 1000).await;
    }
    for workers in [1, 4] {
        throughput(&target, &client, workers, 20_000).await;
    }
    pg.create_database("bench_node").await.unwrap();
    node_queue(&pg.url("bench_node"));
}

/// graphile-worker, measured by benches/node_queue/bench.mjs against the
/// same server, after xtract (so neither runs beside the other).
fn node_queue(url: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node_queue");
    let (Some(node), Some(npm)) = (
        xtract::ops::config::find_program("node"),
        xtract::ops::config::find_program("npm"),
    ) else {
        println!("graphile-worker comparison skipped: Node.js (node, npm) not found");
        return;
    };
    // The versions package-lock.json names, installed once.
    if !dir.join("node_modules/graphile-worker").exists() {
        let installed = std::process::Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status();
        if !matches!(installed, Ok(s) if s.success()) {
            println!(
                "graphile-worker comparison skipped: `npm ci` in {} failed",
                dir.display()
            );
            return;
        }
    }
    let ran = std::process::Command::new(node)
        .arg("bench.mjs")
        .arg(url)
        .current_dir(&dir)
        .status();
    if !matches!(ran, Ok(s) if s.success()) {
        println!("graphile-worker comparison failed: {ran:?}");
    }
}
