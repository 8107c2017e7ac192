//! The soak, short (benches/soak/engine.rs; `scripts/soak` runs it long):
//! a few hundred jobs of every outcome through the real daemon, with a
//! PostgreSQL restart and a Storage outage in the middle, and no counter
//! that grows.

mod support;

#[path = "../benches/soak/engine.rs"]
mod engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_hundred_jobs_leave_nothing_growing() {
    let report = engine::run(&engine::Options::new(300)).await;
    let summary = format!(
        "{}\n{}{:?}, {} cancels in {:?}; internal: {:?}",
        report.summary(),
        report.table(),
        report.outcomes,
        report.cancels,
        report.elapsed,
        report.internal
    );
    println!("{summary}");
    // Every outcome the run is made of happened.
    for outcome in [
        "completed",
        "cancelled",
        "failed/not_found",
        "failed/no_audio",
        "failed/too_large",
        "failed/network",
        "failed/invalid_url",
    ] {
        assert!(
            report.outcomes.keys().any(|k| k.starts_with(outcome)),
            "no job ended {outcome}: {summary}"
        );
    }
    assert!(report.operator_retries > 0, "{summary}");
    assert!(report.reused > 0, "no copy of earlier audio: {summary}");
    let problems = report.problems(&engine::LIMITS);
    assert!(problems.is_empty(), "{}\n{summary}", problems.join("\n"));
}
