//! A frontend's burst: one statement inserting many jobs, timed with
//! xtract's triggers and without them (disabled inside the transaction,
//! which is rolled back), so the triggers' share is plain.

use std::time::{Duration, Instant};

/// The insert triggers xtract owns on `processing_jobs`.
const OUR_INSERT_TRIGGERS: &str =
    "processing_jobs_before_insert, processing_jobs_check_choice, processing_jobs_notify_insert";

/// One user's `$1` jobs in one statement.
pub const ONE_USER: &str = "
INSERT INTO processing_jobs (user_id, original_url)
SELECT 'b0000000-0000-0000-0000-000000000001', 'https://www.tiktok.com/@a/video/' || g
FROM generate_series(1, $1::int) AS g";

/// User number `$1`'s 10 jobs in one statement.
pub const TEN_OF_ONE_USER: &str = "
INSERT INTO processing_jobs (user_id, original_url)
SELECT md5('burst' || $1::int)::uuid, 'https://www.tiktok.com/@a/video/' || g
FROM generate_series(1, 10) AS g";

/// The time of the statements `sql` with `$1` = each of `params`, in one
/// transaction that is rolled back; with xtract's triggers or without.
/// Returns the time and the rows inserted.
pub async fn time(
    client: &mut tokio_postgres::Client,
    sql: &str,
    params: &[i32],
    triggers: bool,
) -> (Duration, u64) {
    let tx = client.transaction().await.unwrap();
    if !triggers {
        for t in OUR_INSERT_TRIGGERS.split(", ") {
            tx.batch_execute(&format!("ALTER TABLE processing_jobs DISABLE TRIGGER {t}"))
                .await
                .unwrap();
        }
    }
    let stmt = tx.prepare(sql).await.unwrap();
    let started = Instant::now();
    let mut rows = 0;
    for p in params {
        rows += tx.execute(&stmt, &[p]).await.unwrap();
    }
    let took = started.elapsed();
    tx.rollback().await.unwrap();
    (took, rows)
}
