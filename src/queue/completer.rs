//! The completer: completions that write no audio row (the queue benchmark's
//! no-op body) are batched into one UPDATE, so that many jobs finishing at
//! once share one statement and one commit instead of one each.

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::sql;
use crate::db::{is_connection_error, DbError};

/// How many completions one statement carries at most.
const MAX_BATCH: usize = 256;
/// Statements in flight at once: while one waits for its commit, the next
/// batch gathers and goes out.
const IN_FLIGHT: usize = 4;

type Reply = oneshot::Sender<Result<bool, DbError>>;

#[derive(Clone)]
pub struct Completer {
    tx: mpsc::UnboundedSender<(Uuid, Reply)>,
}

impl Completer {
    /// Starts the batching task; it ends when every handle is dropped.
    pub fn start(pool: deadpool_postgres::Pool, worker_id: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Uuid, Reply)>();
        tokio::spawn(async move {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::with_capacity(MAX_BATCH);
                batch.push(first);
                // Whatever else is already waiting rides along.
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (pool, worker_id) = (pool.clone(), worker_id.clone());
                tokio::spawn(async move {
                    write_batch(&pool, &worker_id, batch).await;
                    drop(slot);
                });
            }
        });
        Completer { tx }
    }

    /// Marks the job completed (no audio row); false when it is not ours.
    pub async fn complete(&self, id: Uuid) -> Result<bool, DbError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((id, reply))
            .map_err(|_| DbError::Pool("the completer has stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Pool("the completer has stopped".into()))?
    }
}

/// Writes one batch and answers every waiter.
async fn write_batch(pool: &deadpool_postgres::Pool, worker_id: &str, batch: Vec<(Uuid, Reply)>) {
    let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
    match complete_many(pool, worker_id, &ids).await {
        Ok(done) => {
            for (id, reply) in batch {
                let _ = reply.send(Ok(done.contains(&id)));
            }
        }
        Err(e) => {
            let connection = is_connection_error(&e);
            let text = e.to_string();
            for (_, reply) in batch {
                let err = if connection {
                    DbError::Pool(text.clone())
                } else {
                    DbError::Statement(text.clone())
                };
                let _ = reply.send(Err(err));
            }
        }
    }
}

async fn complete_many(
    pool: &deadpool_postgres::Pool,
    worker_id: &str,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(sql::COMPLETE_MANY).await?;
    let rows = client.query(&stmt, &[&ids, &worker_id]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
