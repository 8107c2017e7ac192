//! A busy app's table: finished jobs of many users (and their audio rows)
//! kept for ever, as `processing_jobs` is unless the operator turns
//! retention on, and jobs waiting for a retry. Made with one
//! INSERT … SELECT per table; xtract's triggers are off for the finished
//! rows (`session_replication_role = replica`), which only spares the
//! load the link check of a million links: the rows are what the triggers
//! and the daemon would have left.

use std::time::{Duration, Instant};

use crate::stats::median_ms;

/// Finished jobs over the last year, one every `365 days / jobs`, of
/// `users` users: 2% cancelled, about 8% failed, the rest completed with an
/// audio row; then 2,000 pending jobs of 500 users waiting for a retry an
/// hour from now (through the insert triggers, as a frontend adds them).
pub async fn fill(client: &tokio_postgres::Client, jobs: i64, users: i64) -> Duration {
    let started = Instant::now();
    client
        .batch_execute("SET session_replication_role = replica")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO public.processing_jobs
                (id, user_id, original_url, canonical_url, status, platform, attempts,
                 user_queue_position, created_at, updated_at, run_after, started_at, finished_at,
                 error_code, error_message, error_detail, result_audio_file_id, egress)
             SELECT md5('job' || g)::uuid,
                    md5('user' || (g % $2))::uuid,
                    'https://www.tiktok.com/@someone/video/' || (7000000000000000000 + g),
                    'https://www.tiktok.com/@someone/video/' || (7000000000000000000 + g),
                    s.status,
                    (ARRAY['tiktok', 'instagram', 'youtube', 'other'])[1 + g % 4],
                    1, 0,
                    t, t + interval '20 s', t, t + interval '1 s', t + interval '20 s',
                    CASE WHEN s.status = 'failed' THEN 'private' END,
                    CASE WHEN s.status = 'failed' THEN 'This video is private.' END,
                    CASE WHEN s.status = 'failed' THEN 'ERROR: [TikTok] private video' END,
                    CASE WHEN s.status = 'completed' THEN md5('audio' || g)::uuid END,
                    CASE WHEN s.status <> 'cancelled' THEN 'vm' END
             FROM generate_series(1, $1::bigint) AS g,
                  LATERAL (SELECT now() - interval '1 hour'
                                  - ($1 - g) * (interval '365 days' / $1) AS t) AS tt,
                  LATERAL (SELECT CASE WHEN g % 50 = 0 THEN 'cancelled'
                                       WHEN g % 12 = 0 THEN 'failed'
                                       ELSE 'completed' END AS status) AS s",
            &[&jobs, &users],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO public.audio_files
                (id, user_id, job_id, filename, file_url, file_size, duration, storage_path,
                 content_type, audio_format, platform, source_url, title, created_at, updated_at)
             SELECT j.result_audio_file_id, j.user_id, j.id, 'A video.m4a',
                    'https://example.supabase.co/storage/v1/object/audio-files/' || j.user_id || '/' || j.id || '.m4a',
                    800000, 30.0, j.user_id || '/' || j.id || '.m4a', 'audio/mp4', 'm4a',
                    j.platform, j.original_url, 'A video', j.finished_at, j.finished_at
             FROM public.processing_jobs AS j
             WHERE j.result_audio_file_id IS NOT NULL;
             RESET session_replication_role;",
        )
        .await
        .unwrap();
    add_waiting(client).await;
    // One statement a call: a multi-statement string is one transaction,
    // and VACUUM runs outside any.
    for table in ["processing_jobs", "audio_files"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }
    started.elapsed()
}

/// 2,000 pending jobs of 500 users, inserted as a frontend does, waiting
/// for a retry an hour from now.
pub async fn add_waiting(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "INSERT INTO processing_jobs (user_id, original_url)
             SELECT md5('waiting' || (g % 500))::uuid, 'https://www.tiktok.com/@a/video/' || g
             FROM generate_series(1, 2000) AS g;
             UPDATE processing_jobs
             SET run_after = now() + interval '1 hour', attempts = 1,
                 error_code = 'network', error_message = 'The platform could not be reached.'
             WHERE status = 'pending';",
        )
        .await
        .unwrap();
}

/// The dashboard views (and doctor's reads), each read `reps` times: the
/// median in ms and the rows it returned.
pub async fn views(
    client: &tokio_postgres::Client,
    reps: usize,
) -> Vec<(&'static str, f64, usize)> {
    let mut out = Vec::new();
    for (name, sql) in [
        ("xtract.queue_summary", "SELECT * FROM xtract.queue_summary"),
        (
            "xtract.recent_failures",
            "SELECT * FROM xtract.recent_failures",
        ),
        (
            "xtract.platform_status",
            "SELECT * FROM xtract.platform_status",
        ),
    ] {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..reps {
            let t = Instant::now();
            rows = client.query(sql, &[]).await.unwrap().len();
            times.push(t.elapsed());
        }
        out.push((name, median_ms(&times), rows));
    }
    out
}
