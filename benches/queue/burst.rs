//! A frontend's burst: one statement inserting many jobs, timed with
//! xtract's triggers and without them (disabled inside the transaction,
//! which is rolled back), so the triggers' share is plain.

use std::time::{Duration, Instant};

/// The insert triggers xtract owns on `processing_jobs`.
const OUR_INSERT_TRIGGERS: &str =
    "processing_jobs_before_insert, processing_jobs_check_choice, processing_jobs_notify_insert";

/// One user's `rows` jobs in one statement.
pub const ONE_USER: &str = "
INSERT INTO processing_jobs (user_id, original_url)
SELECT 'b0000000-0000-0000-0000-000000000001', 'https://www.tiktok.com/@a/video/' || g
FROM generate_series(1, $1::int) AS g";

/// `users` users with `rows / users` jobs each, in one statement, the
/// users' rows interleaved.
pub const MANY_USERS: &str = "
INSERT INTO processing_jobs (user_id, original_url)
SELECT md5('burst' || (g % 100))::uuid, 'https://www.tiktok.com/@a/video/' || g
FROM generate_series(1, $1::int) AS g";

/// The time of `sql` with `$1 = rows`, rolled back; with xtract's triggers
/// or without them.
pub async fn time(
    client: &mut tokio_postgres::Client,
    sql: &str,
    rows: i32,
    triggers: bool,
) -> Duration {
    let tx = client.transaction().await.unwrap();
    if !triggers {
        for t in OUR_INSERT_TRIGGERS.split(", ") {
            tx.batch_execute(&format!("ALTER TABLE processing_jobs DISABLE TRIGGER {t}"))
                .await
                .unwrap();
        }
    }
    let started = Instant::now();
    let n = tx.execute(sql, &[&rows]).await.unwrap();
    let took = started.elapsed();
    assert_eq!(n, rows as u64);
    tx.rollback().await.unwrap();
    took
}
