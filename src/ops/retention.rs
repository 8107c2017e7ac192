//! Retention (`XTRACT_RETENTION_DAYS`): finished jobs older than that are
//! deleted, in batches, oldest first; with `XTRACT_RETENTION_AUDIO` their
//! audio rows and stored objects go too. Pending and running jobs are never
//! touched. Every daemon runs it (at start, then hourly); the batches lock
//! with SKIP LOCKED, so daemons share the work instead of colliding.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, RetentionLabel};
use crate::queue::Queue;
use crate::storage::AudioStore;

/// Rows per transaction: small enough that the locks and the object
/// deletions of one batch take seconds, not minutes.
const BATCH: i64 = 200;
const EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    pub days: u32,
    pub audio: bool,
}

/// Runs until `stop`.
pub async fn run<S: AudioStore>(
    queue: Queue,
    store: S,
    settings: RetentionSettings,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let round = tokio::select! {
            r = sweep(&queue, &store, settings) => r,
            _ = stop.cancelled() => return,
        };
        match round {
            Ok((0, 0)) => {}
            Ok((jobs, audio)) => {
                metrics
                    .retention_deleted
                    .get_or_create(&RetentionLabel {
                        what: "jobs".into(),
                    })
                    .inc_by(jobs as u64);
                metrics
                    .retention_deleted
                    .get_or_create(&RetentionLabel {
                        what: "audio".into(),
                    })
                    .inc_by(audio as u64);
                tracing::info!(
                    jobs,
                    audio,
                    "retention: deleted finished jobs older than {} days{}",
                    settings.days,
                    if settings.audio {
                        " and their audio"
                    } else {
                        ""
                    }
                );
            }
            Err(e) => tracing::warn!("retention: {e}; trying again in an hour"),
        }
    }
}

/// Deletes batches until a batch comes back short.
async fn sweep<S: AudioStore>(
    queue: &Queue,
    store: &S,
    settings: RetentionSettings,
) -> Result<(usize, usize), crate::db::DbError> {
    let (mut jobs, mut audio) = (0, 0);
    loop {
        let (j, a) = queue
            .delete_expired(
                settings.days as i32,
                BATCH,
                settings.audio,
                |path| async move { store.delete(&path).await },
            )
            .await?;
        jobs += j;
        audio += a;
        if (j as i64) < BATCH {
            return Ok((jobs, audio));
        }
    }
}
