//! `/health` and `/metrics` of a running daemon.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: fn(u64) -> Duration = Duration::from_secs;

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Waits until `/health` answers `status`; its report.
async fn health_answers(base: &str, status: u16) -> serde_json::Value {
    let (_, body) = eventually(&format!("/health to answer {status}"), SECS(30), || async {
        get(&format!("{base}/health"))
            .await
            .filter(|(s, _)| *s == status)
    })
    .await;
    serde_json::from_str(&body).unwrap()
}

/// Sends raw bytes and returns the status line of the reply.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(SECS(10), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_tell_the_truth() {
    let port = xtract::ops::localpg::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let (mut s, _daemon) = Stage::new().env("XTRACT_HEALTH_ADDR", &addr).start().await;
    let base = format!("http://{addr}");

    let health = health_answers(&base, 200).await;
    assert_eq!(health["database_connected"], true);
    assert_eq!(health["listener_alive"], true);

    let id = s.enqueue("http://127.0.0.1:9/ok/measured").await;
    s.wait(id, "completed").await;
    // One more, not due for an hour: it waits, visibly.
    s.client
        .execute(
            "INSERT INTO processing_jobs (user_id, original_url, run_after)
             VALUES ($1, 'http://127.0.0.1:9/ok/later', now() + interval '1 hour')",
            &[&USER],
        )
        .await
        .unwrap();
    // The row is committed a moment before the daemon counts it.
    let (status, text) = eventually("the completion to be counted", SECS(10), || async {
        get(&format!("{base}/metrics"))
            .await
            .filter(|(_, t)| t.contains("xtract_jobs_completed_total"))
    })
    .await;
    assert_eq!(status, 200);
    assert!(
        // A local link: no request left through an egress.
        text.contains("xtract_jobs_completed_total{platform=\"other\",egress=\"none\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("xtract_jobs_claimed_total{platform=\"other\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("xtract_pickup_latency_seconds_count 1"),
        "{text}"
    );
    // The queue's depth: waiting and running jobs (finished ones are the
    // counters' business, not a scan of the table per scrape).
    assert!(
        text.contains("xtract_queue_jobs{status=\"pending\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("xtract_queue_jobs{status=\"processing\"} 0"),
        "{text}"
    );
    assert!(
        !text.contains("xtract_queue_jobs{status=\"completed\""),
        "{text}"
    );
    assert!(text.contains("xtract_listener_up 1"), "{text}");
    assert!(
        text.contains("xtract_job_duration_seconds_count{platform=\"other\"} 1"),
        "{text}"
    );

    // Junk and oversized requests get a 4xx; the endpoint keeps serving.
    let junk = raw(&addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(junk.contains(" 400"), "{junk}");
    let mut huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(b"\r\n\r\n");
    let big = raw(&addr, &huge).await;
    assert!(big.contains(" 431") || big.contains(" 400"), "{big}");
    let (missing, _) = get(&format!("{base}/nope")).await.unwrap();
    assert_eq!(missing, 404);

    s.db.pg.stop(false).unwrap();
    let health = health_answers(&base, 503).await;
    assert_eq!(health["database_connected"], false);
}
