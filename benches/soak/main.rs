//! `scripts/soak --jobs N`: the soak (engine.rs) as a program. Prints the
//! first and last tenth's averages and the slope of each counter, what the
//! jobs ended as, and ends with one line of figures; exits non-zero when a
//! counter grew beyond its limit (engine.rs, `LIMITS`).
//!
//!     scripts/soak --jobs 20000
//!
//! (`cargo bench --bench soak -- --jobs N` once `scripts/ensure-deps`'s
//! environment is set.)

#[path = "../../tests/support/mod.rs"]
mod support;

mod engine;

use std::process::ExitCode;

fn jobs_argument() -> Result<usize, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--jobs") {
        None => Ok(1000),
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|n| *n >= 100)
            .ok_or_else(|| "--jobs takes a number of jobs, at least 100".to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo test --all-targets` runs this too; only `cargo bench` soaks.
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: run it with scripts/soak --jobs N");
        return ExitCode::SUCCESS;
    }
    let jobs = match jobs_argument() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let options = engine::Options::new(jobs);
    println!(
        "soak: {jobs} jobs, {} at a time, a sample every {:.1} s; {} cores, load {}",
        options.concurrency,
        options.sample_every.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let report = engine::run(&options).await;
    println!(
        "{} samples over {:.0} s ({:.1} jobs/s); {} cancels, {} operator retries, {} copies of earlier audio",
        report.samples.len(),
        report.elapsed.as_secs_f64(),
        jobs as f64 / report.elapsed.as_secs_f64(),
        report.cancels,
        report.operator_retries,
        report.reused
    );
    for (outcome, n) in &report.outcomes {
        println!("  {n:>6}  {outcome}");
    }
    for detail in &report.internal {
        println!("  internal: {detail}");
    }
    print!("{}", report.table());
    let problems = report.problems(&engine::LIMITS);
    for p in &problems {
        println!("GROWTH: {p}");
    }
    println!("{}", report.summary());
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
