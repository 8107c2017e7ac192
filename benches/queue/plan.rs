//! The claim statement on its own: its round trip from the daemon's side
//! when nothing is ready, and its plan (EXPLAIN (ANALYZE, BUFFERS)) on the
//! history table with one job ready, as the daemon's connection runs it
//! (a prepared statement, executed again and again).

use std::time::Instant;

use xtract::queue::Queue;

use crate::stats::Ms;
use crate::Db;

/// `Queue::claim(4)` 200 times with nothing ready: what every wake-up
/// that finds nothing costs, and the statement's share of a pickup.
pub async fn claim_round_trips(db: &Db, label: &str) {
    let queue = Queue::new(db.target.pool(1).unwrap(), "probe", "vm");
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let got = queue.claim(4).await.unwrap();
        times.push(t.elapsed());
        assert!(got.is_empty(), "nothing is ready in the {label}");
    }
    println!(
        "{:<40} {}",
        format!("claim round trip, nothing ready ({label})"),
        Ms::of(&times).summary()
    );
}

/// Claiming one ready job, 100 times each way, alternating: as the daemon
/// does (`Queue::claim`: its commit does not wait for the WAL flush), and
/// the same prepared statement committed as any statement is (waiting for
/// the flush, as graphile-worker's claim does). The difference is the
/// disk's flush.
pub async fn claim_one_ready(db: &Db) {
    let queue = Queue::new(db.target.pool(1).unwrap(), "probe", "vm");
    let sync = db.target.connect_simple().await.unwrap();
    let stmt = sync
        .prepare(&xtract::queue::sql::claim_up_to(4))
        .await
        .unwrap();
    let routes = xtract::domain::EgressRoutes::single("vm");
    let (mut flush_later, mut flush_now) = (Vec::new(), Vec::new());
    for i in 0..200 {
        db.client
            .batch_execute(
                "INSERT INTO processing_jobs (user_id, original_url)
                 VALUES (gen_random_uuid(), 'https://www.tiktok.com/@plan/video/2')",
            )
            .await
            .unwrap();
        let t = Instant::now();
        let n = if i % 2 == 0 {
            queue.claim(4).await.unwrap().len()
        } else {
            sync.query(&stmt, &[&"probe", &routes.platforms, &routes.keys])
                .await
                .unwrap()
                .len()
        };
        let took = t.elapsed();
        assert_eq!(n, 1);
        if i % 2 == 0 {
            flush_later.push(took);
        } else {
            flush_now.push(took);
        }
    }
    db.client
        .batch_execute("DELETE FROM processing_jobs WHERE original_url = 'https://www.tiktok.com/@plan/video/2'")
        .await
        .unwrap();
    println!(
        "{:<40} {}",
        "claim one job, commit not flushed",
        Ms::of(&flush_later).summary()
    );
    println!(
        "{:<40} {}",
        "claim one job, commit flushed",
        Ms::of(&flush_now).summary()
    );
}

/// The claim's plan with one job ready, the seventh execution of the
/// prepared statement (PostgreSQL decides after five whether to keep a
/// generic plan), each in a rolled-back transaction.
pub async fn explain_claim(db: &Db) {
    let c = &db.client;
    c.batch_execute(&format!(
        "PREPARE bench_claim AS {}",
        xtract::queue::sql::claim_up_to(4)
    ))
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO processing_jobs (user_id, original_url)
         VALUES (gen_random_uuid(), 'https://www.tiktok.com/@plan/video/1')",
    )
    .await
    .unwrap();
    let mut plan = Vec::new();
    let mut timings = Vec::new();
    for _ in 0..7 {
        let rows = c
            .simple_query(
                "BEGIN;
                 EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim('bench',
                     ARRAY['instagram', 'tiktok', 'youtube', 'other'], ARRAY['vm', 'vm', 'vm', 'vm']);
                 ROLLBACK;",
            )
            .await
            .unwrap();
        plan = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
                _ => None,
            })
            .collect();
        timings.push(
            plan.iter()
                .filter(|l| l.starts_with("Planning Time") || l.starts_with("Execution Time"))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    c.batch_execute(
        "DEALLOCATE bench_claim;
         DELETE FROM processing_jobs WHERE original_url = 'https://www.tiktok.com/@plan/video/1';",
    )
    .await
    .unwrap();
    println!("claim's plan on the history, one job ready (EXPLAIN (ANALYZE, BUFFERS), 7th execution of the prepared statement):");
    for line in &plan {
        println!("    {line}");
    }
    println!("    executions 1-7: {}", timings.join(" | "));
}
