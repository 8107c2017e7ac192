//! The real worker loop in the test's own process, with a job body of the
//! test's choosing (instead of the media pipeline).

use std::time::Duration;

use xtract::queue::worker::{Processor, Worker, WorkerSettings};

use super::TestDb;

/// One slot, a 5 s poll, a 30 s lease, every platform's defaults; tests
/// change what they are about (`WorkerSettings { lease, ..settings() }`).
pub fn settings() -> WorkerSettings {
    let secs = Duration::from_secs;
    WorkerSettings {
        concurrency: 1,
        poll_interval: secs(5),
        lease: secs(30),
        heartbeat_interval: secs(5),
        shutdown_grace: secs(5),
        retry_base: secs(1),
        retry_max: secs(10),
        job_timeout: secs(1800),
        max_pauses: 6,
        platforms: xtract::live::Live::new(xtract::domain::PlatformTable::default()),
        exit_when_idle: false,
    }
}

/// A worker named `id` on egress "test" running `body`.
pub fn worker<P: Processor>(db: &TestDb, id: &str, body: P, settings: WorkerSettings) -> Worker<P> {
    let queue = xtract::queue::Queue::new(db.pool(4), id, "test");
    Worker::new(
        queue,
        body,
        settings,
        Default::default(),
        Default::default(),
        Default::default(),
    )
}
