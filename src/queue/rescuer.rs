//! The rescuer, as River's: finds jobs whose worker went silent for a whole
//! lease (killed, VM lost) and takes them back, to pending or, with their
//! attempts spent, to failed `worker_lost`. Never this worker's own jobs
//! (held ones), and never across a database outage (sql.rs, REAP).

use super::worker::{Processor, Worker};
use crate::db::DbError;
use crate::domain::{ErrorCode, Job};

impl<P: Processor> Worker<P> {
    /// Takes back the jobs of silent workers, never this worker's own.
    pub(super) async fn reap(&self) -> Result<(), DbError> {
        let s = &self.shared.settings;
        let message = ErrorCode::WorkerLost.user_message(None);
        let held = self.shared.held.ids();
        match self
            .shared
            .queue
            .reap(
                s.lease,
                &s.platforms.get().max_attempts_json(),
                &message,
                &held,
            )
            .await
        {
            Ok(reaped) => {
                for (job, status) in &reaped {
                    tracing::warn!(job_id = %job.id, "worker of job stopped heart-beating; job is now {status}");
                }
                self.shared.metrics.reaped.inc_by(reaped.len() as u64);
                // A failed job keeps no audio: its dead worker may have
                // stored some before it could write the row. In the
                // background: storage requests must not hold up the loop.
                let failed: Vec<Job> = reaped
                    .into_iter()
                    .filter(|(_, status)| status == "failed")
                    .map(|(job, _)| job)
                    .collect();
                if !failed.is_empty() {
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        for job in &failed {
                            shared.processor.discard(job, None).await;
                        }
                    });
                }
                Ok(())
            }
            Err(e) => {
                tracing::debug!("reaper: {e}");
                Err(e)
            }
        }
    }
}
