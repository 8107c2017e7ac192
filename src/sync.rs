//! Small tools the daemon's tasks share: a task that ends with its owner, a
//! lock that survives a panic elsewhere, and the one backoff schedule.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use backon::BackoffBuilder;

/// Aborts a task when dropped: a task tied to something (a job's heartbeat,
/// a connection's driver) must end with it however it ends, a panic
/// included.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks `m`, also when a thread panicked while holding it: every lock of
/// ours guards a map or a value that a panic cannot leave half-changed.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Delays for trying again: exponential from `min`, capped at `max`, with
/// jitter, for ever (the caller decides when to give up).
pub fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}
