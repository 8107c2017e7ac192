//! Queue benchmark: the real worker loop (claim, heartbeat, write-back,
//! LISTEN) with a job body that does nothing, against a throwaway local
//! PostgreSQL, beside graphile-worker 0.16 (a widely used Node.js queue on
//! PostgreSQL, benches/node_queue) against the same server, their rounds
//! alternating so that a busy machine weighs on both alike.
//!
//!     cargo bench --bench queue
//!
//! Sections: 1. pickup (insert commit to job start) of both queues, xtract
//! with one egress and with an egress pool with pauses; 2. where xtract's
//! pickup time goes, and the claim's plan; 3. throughput; 4. a busy app's
//! history (1,000,000 finished jobs) against an empty table: pickup,
//! throughput, the dashboard views; 5. a held horizon (another session idle
//! in a transaction); 6. bursts (one statement inserting many jobs), with
//! and without xtract's triggers.
//!
//! Environment: XTRACT_BENCH_SAMPLES (pickups a round, 200),
//! XTRACT_BENCH_ROUNDS (3), XTRACT_BENCH_GAP_MS (between pickups, 20),
//! XTRACT_BENCH_HISTORY_JOBS (1000000; 0 skips section 4),
//! XTRACT_BENCH_HORIZON_JOBS (jobs run under the held snapshot, 3000).
//!
//! Figures, not assertions: see README "Benchmarks".

mod burst;
mod graphile;
mod history;
mod horizon;
mod pickup;
mod plan;
mod stats;
mod workers;

use std::time::Duration;

use xtract::db::DbTarget;
use xtract::ops::localpg::LocalPostgres;

use graphile::Graphile;
use stats::{load, Ms};

struct Settings {
    samples: usize,
    rounds: usize,
    gap: Duration,
    history_jobs: i64,
    horizon_jobs: i64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One database of the server, with a target and a client.
struct Db {
    target: DbTarget,
    client: tokio_postgres::Client,
}

impl Db {
    async fn create(pg: &LocalPostgres, name: &str, migrate: bool) -> Db {
        pg.create_database(name).await.unwrap();
        let url = pg.url(name);
        if migrate {
            xtract::ops::commands::migrate(&url).await.unwrap();
        }
        let target = DbTarget::parse(&url).unwrap();
        let client = target.connect_simple().await.unwrap();
        Db { target, client }
    }

    async fn reset(&self) {
        self.client
            .batch_execute(
                "TRUNCATE processing_jobs, audio_files CASCADE;
                 DELETE FROM xtract.platform_pacing;",
            )
            .await
            .unwrap();
        // Its own call: VACUUM runs outside a transaction.
        self.client
            .batch_execute("VACUUM ANALYZE processing_jobs")
            .await
            .unwrap();
    }
}

const TIKTOK: &str = "https://www.tiktok.com/@bench/video/";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs this too; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("queue benchmark: run it with `cargo bench --bench queue`");
        return;
    }
    let s = Settings {
        samples: env_or("XTRACT_BENCH_SAMPLES", 200),
        rounds: env_or("XTRACT_BENCH_ROUNDS", 3),
        gap: Duration::from_millis(env_or("XTRACT_BENCH_GAP_MS", 20)),
        history_jobs: env_or("XTRACT_BENCH_HISTORY_JOBS", 1_000_000),
        horizon_jobs: env_or("XTRACT_BENCH_HORIZON_JOBS", 3000),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut pg = LocalPostgres::init(dir.path()).expect("initdb");
    pg.start(false).expect("start postgres");
    let empty = Db::create(&pg, "bench", true).await;
    let version: String = empty
        .client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "PostgreSQL {version}, default durability (fsync on); {}; {} pickups a round, {} rounds, {} ms between pickups",
        load(),
        s.samples,
        s.rounds,
        s.gap.as_millis()
    );
    let history = if s.history_jobs > 0 {
        let db = Db::create(&pg, "bench_history", true).await;
        let took = history::fill(&db.client, s.history_jobs, 50_000).await;
        println!(
            "history: {} finished jobs of 50,000 users with their audio rows, 2,000 waiting for a retry; made in {:.0} s",
            s.history_jobs,
            took.as_secs_f64()
        );
        Some(db)
    } else {
        println!("history: skipped (XTRACT_BENCH_HISTORY_JOBS=0)");
        None
    };
    pg.create_database("bench_node").await.unwrap();
    let node_target = DbTarget::parse(&pg.url("bench_node")).unwrap();
    let mut node = Graphile::start(&pg.url("bench_node"));

    pickup_section(&s, &empty, node.as_mut()).await;
    breakdown_section(&s, &empty, history.as_ref()).await;
    throughput_section(&empty, node.as_mut()).await;
    if let Some(history) = &history {
        history_section(&s, &empty, history).await;
    }
    horizon_section(&s, &empty, node.as_mut(), &node_target).await;
    burst_section(&pg, node.as_mut()).await;
    println!("\nend: {}", load());
}

/// Pickup with 1 daemon of 4 slots, rounds alternating.
async fn pickup_section(s: &Settings, db: &Db, mut node: Option<&mut Graphile>) {
    println!(
        "\n== 1. Pickup: INSERT commit to job start, one job at a time, 1 daemon x 4 slots ({})",
        load()
    );
    let one = pickup_options(s);
    let pool = pickup::Options {
        routes: workers::egress_pool(),
        ..one.clone()
    };
    let (mut xs, mut ps, mut gs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=s.rounds {
        db.reset().await;
        let x = pickup::run(&db.target, &db.client, &one, false)
            .await
            .pickup_ms();
        db.reset().await;
        db.client.batch_execute(workers::PAUSES).await.unwrap();
        let p = pickup::run(&db.target, &db.client, &pool, false)
            .await
            .pickup_ms();
        println!(
            "round {round}: xtract, one egress:               {}",
            x.summary()
        );
        println!(
            "round {round}: xtract, 3 egresses, some paused:  {}",
            p.summary()
        );
        if let Some(node) = node.as_deref_mut() {
            let g = node.pickup(1, s.samples, s.gap);
            println!(
                "round {round}: graphile-worker:                  {}",
                g.summary()
            );
            gs.push(g);
        }
        xs.push(x);
        ps.push(p);
    }
    let (x, p) = (Ms::pooled(&xs), Ms::pooled(&ps));
    println!(
        "all rounds: xtract, one egress:               {}",
        x.summary()
    );
    println!(
        "all rounds: xtract, 3 egresses, some paused:  {}",
        p.summary()
    );
    if !gs.is_empty() {
        let g = Ms::pooled(&gs);
        println!(
            "all rounds: graphile-worker:                  {}",
            g.summary()
        );
        for (name, m, rounds) in [("one egress", &x, &xs), ("egress pool", &p, &ps)] {
            println!(
                "xtract ({name}) against graphile-worker: p50 {:.2} (target <= 0.8), p90 {:.2} (target <= 1.0); per round p50 {}",
                m.p50() / g.p50(),
                m.p90() / g.p90(),
                rounds
                    .iter()
                    .zip(&gs)
                    .map(|(a, b)| format!("{:.2}", a.p50() / b.p50()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// Where xtract's pickup time goes, and what its claim costs.
async fn breakdown_section(s: &Settings, db: &Db, history: Option<&Db>) {
    println!(
        "\n== 2. Where xtract's pickup goes (one egress; a LISTEN probe of the benchmark's own; {})",
        load()
    );
    db.reset().await;
    let opts = pickup_options(s);
    let b = pickup::run(&db.target, &db.client, &opts, true).await;
    for (what, v) in [
        ("INSERT round trip (triggers, commit)", &b.insert),
        ("pickup: commit to job start", &b.pickup),
        ("  commit to NOTIFY delivered (probe)", &b.notify),
        ("  NOTIFY to claim statement start", &b.wake_to_statement),
        ("  claim statement start to job start", &b.statement_to_body),
    ] {
        println!("{what:<40} {}", Ms::of(v).summary());
    }
    plan::claim_round_trips(db, "empty table").await;
    plan::claim_one_ready(db).await;
    if let Some(h) = history {
        plan::claim_round_trips(h, "history").await;
        plan::explain_claim(h).await;
    }
}

async fn throughput_section(db: &Db, mut node: Option<&mut Graphile>) {
    println!(
        "\n== 3. Throughput: 20,000 queued jobs, daemons of 32 slots, start to last completion ({})",
        load()
    );
    for workers in [1, 4] {
        db.reset().await;
        workers::queue_jobs(&db.client, 20_000, "https://example.com/bench/").await;
        let took = workers::drain(&db.target, workers, 20_000).await;
        println!(
            "xtract, {workers} daemon(s):          {:>6.0} jobs/s ({:.2} s)",
            20_000.0 / took.as_secs_f64(),
            took.as_secs_f64()
        );
        if let Some(node) = node.as_deref_mut() {
            let secs = node.throughput(workers, 20_000);
            println!(
                "graphile-worker, {workers} worker(s): {:>6.0} jobs/s ({secs:.2} s)",
                20_000.0 / secs
            );
        }
    }
}

/// One daemon's pickups of TikTok links with one egress (most
/// deployments), as the settings size them.
fn pickup_options(s: &Settings) -> pickup::Options {
    pickup::Options {
        workers: 1,
        samples: s.samples,
        gap: s.gap,
        routes: workers::one_egress(),
        url: TIKTOK,
    }
}

/// The same measures on an empty table and on the history, alternating.
async fn history_section(s: &Settings, empty: &Db, history: &Db) {
    println!(
        "\n== 4. History: an empty table against {} finished jobs (+ audio rows) and 2,000 waiting ({})",
        s.history_jobs,
        load()
    );
    let opts = pickup_options(s);
    let (mut pe, mut ph, mut te, mut th) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=s.rounds {
        empty.reset().await;
        let e = pickup::run(&empty.target, &empty.client, &opts, false).await;
        let h = pickup::run(&history.target, &history.client, &opts, false).await;
        println!(
            "round {round}: pickup, empty table: {}",
            e.pickup_ms().summary()
        );
        println!(
            "round {round}: pickup, history:     {}",
            h.pickup_ms().summary()
        );
        pe.push(e.pickup_ms());
        ph.push(h.pickup_ms());
        empty.reset().await;
        let url = "https://example.com/throughput/";
        workers::queue_jobs(&empty.client, 20_000, url).await;
        let e = 20_000.0 / workers::drain(&empty.target, 1, 20_000).await.as_secs_f64();
        workers::queue_jobs(&history.client, 20_000, url).await;
        let h = 20_000.0
            / workers::drain(&history.target, 1, 20_000)
                .await
                .as_secs_f64();
        // The history stays as it was: the benchmark's own jobs go (left
        // to autovacuum, as on a live database; a VACUUM of the whole
        // table each round would take longer than the round).
        history
            .client
            .batch_execute(&format!(
                "DELETE FROM processing_jobs WHERE original_url LIKE '{url}%' OR original_url LIKE '{TIKTOK}%'"
            ))
            .await
            .unwrap();
        println!("round {round}: throughput (1 daemon x 32), empty table {e:.0} jobs/s, history {h:.0} jobs/s");
        te.push(e);
        th.push(h);
    }
    let (e, h) = (Ms::pooled(&pe), Ms::pooled(&ph));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "history against empty: pickup p50 {:.2}, p90 {:.2}; throughput {:.2} (target: within 0.8-1.2)",
        h.p50() / e.p50(),
        h.p90() / e.p90(),
        mean(&th) / mean(&te)
    );
    empty.reset().await;
    history::add_waiting(&empty.client).await;
    // The views read the waiting and running jobs through their partial
    // index, so the versions the rounds' jobs left there count until
    // autovacuum removes them: measured right after the rounds (their jobs
    // ran and were deleted), then after a VACUUM.
    for vacuumed in [false, true] {
        if vacuumed {
            for db in [empty, history] {
                db.client
                    .batch_execute("VACUUM ANALYZE processing_jobs")
                    .await
                    .unwrap();
            }
        }
        let when = if vacuumed {
            "after VACUUM"
        } else {
            "after the rounds"
        };
        for (label, db) in [
            ("empty table (+2,000 waiting)", empty),
            ("history", history),
        ] {
            let dead = horizon::dead_rows(&db.client, "processing_jobs").await;
            for (view, ms, rows) in history::views(&db.client, 5).await {
                println!(
                    "{label:<29} {when:<17} {view:<24} {ms:>7.1} ms ({rows} rows; median of 5; {dead} dead row versions)"
                );
            }
        }
    }
}

async fn horizon_section(
    s: &Settings,
    db: &Db,
    node: Option<&mut Graphile>,
    node_target: &DbTarget,
) {
    println!(
        "\n== 5. Held horizon: pickup before, and after {} jobs went through while another session sat idle in a REPEATABLE READ transaction ({})",
        s.horizon_jobs,
        load()
    );
    let opts = pickup_options(s);
    db.reset().await;
    let before = pickup::run(&db.target, &db.client, &opts, false)
        .await
        .pickup_ms();
    let holder = horizon::Holder::start(&db.target, "processing_jobs").await;
    workers::queue_jobs(&db.client, s.horizon_jobs, "https://example.com/held/").await;
    workers::drain(&db.target, 1, s.horizon_jobs as u64).await;
    let held = pickup::run(&db.target, &db.client, &opts, false)
        .await
        .pickup_ms();
    let dead = horizon::dead_rows(&db.client, "processing_jobs").await;
    // What `xtract doctor` and the daemon's log say meanwhile.
    let seen = xtract::ops::horizon::read(&db.client).await.unwrap();
    if let xtract::ops::horizon::Finding::Held(h) =
        xtract::ops::horizon::finding(&seen, Duration::ZERO)
    {
        println!(
            "doctor says: {}; {}",
            xtract::ops::horizon::held_sentence(&seen, h, h.held_for.unwrap_or_default(), false),
            xtract::ops::horizon::end_it(h)
        );
    }
    holder.end().await;
    println!("xtract, no holder:        {}", before.summary());
    println!("xtract, horizon held:     {}", held.summary());
    println!(
        "xtract: p90 {:.2}x without the holder (target < 3); {dead} dead row versions in processing_jobs",
        held.p90() / before.p90()
    );
    if let Some(node) = node {
        let before = node.pickup(1, s.samples, s.gap);
        let holder = horizon::Holder::start(node_target, "graphile_worker._private_jobs").await;
        node.throughput(1, s.horizon_jobs as u64);
        let held = node.pickup(1, s.samples, s.gap);
        let dead = node.dead_rows();
        holder.end().await;
        println!("graphile-worker, no holder:    {}", before.summary());
        println!("graphile-worker, horizon held: {}", held.summary());
        println!(
            "graphile-worker: p90 {:.2}x without the holder; {dead} dead row versions in its jobs table",
            held.p90() / before.p90()
        );
    }
}

async fn burst_section(pg: &LocalPostgres, node: Option<&mut Graphile>) {
    println!(
        "\n== 6. Bursts: one INSERT of many jobs, with and without xtract's insert triggers, rolled back ({})",
        load()
    );
    let target = DbTarget::parse(&pg.url("bench")).unwrap();
    let mut client = target.connect_simple().await.unwrap();
    let users: Vec<i32> = (1..=100).collect();
    for (what, sql, params) in [
        (
            "one user's 10,000 jobs, one statement",
            burst::ONE_USER,
            &[10_000][..],
        ),
        (
            "100 users' 10 jobs, a statement each",
            burst::TEN_OF_ONE_USER,
            &users[..],
        ),
    ] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for _ in 0..3 {
            let (t, n) = burst::time(&mut client, sql, params, true).await;
            with.push(t);
            without.push(burst::time(&mut client, sql, params, false).await.0);
            rows = n;
        }
        let (w, wo) = (stats::median_ms(&with), stats::median_ms(&without));
        println!(
            "{what}: {w:.0} ms with xtract's triggers, {wo:.0} ms without ({:.1} µs a row for the triggers; median of 3)",
            (w - wo) * 1e3 / rows as f64
        );
    }
    if let Some(node) = node {
        let secs: Vec<Duration> = (0..3)
            .map(|_| Duration::from_secs_f64(node.burst(10_000)))
            .collect();
        println!(
            "graphile-worker add_jobs of 10,000 jobs: {:.0} ms (median of 3)",
            stats::median_ms(&secs)
        );
    }
}
