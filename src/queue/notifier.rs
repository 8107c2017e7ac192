//! The LISTEN connection. It wakes the worker loop when a job becomes
//! pending, tells running jobs when an operator cancels them, and reconnects
//! with capped backoff when the database goes away. After every (re)connect
//! it wakes the loop once, so work inserted while we were deaf is swept up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::types::Type;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::db_backoff;
use crate::db::{DbError, DbTarget};
use crate::sync::{lock, AbortOnDrop};

pub const JOBS_CHANNEL: &str = "xtract_jobs";

/// What to tell an operator whose connection cannot deliver notifications.
pub const POOLER_ADVICE: &str =
    "Supabase's transaction pooler (port 6543) cannot deliver LISTEN/NOTIFY; \
use the direct connection db.<ref>.supabase.co:5432 or the session pooler on port 5432";
pub const CANCEL_CHANNEL: &str = "xtract_cancel";
/// A job of the old API finished (sql/019): its id.
pub const FINISHED_CHANNEL: &str = "xtract_finished";

/// Running jobs by id, so a cancel notification can reach the right one.
#[derive(Clone, Default)]
pub struct CancelRegistry(Arc<Mutex<HashMap<Uuid, CancellationToken>>>);

impl CancelRegistry {
    pub fn register(&self, id: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(id, token.clone());
        token
    }

    pub fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    pub fn cancel(&self, id: Uuid) -> bool {
        match self.lock().get(&id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        lock(&self.0)
    }
}

/// Jobs someone waits to see finish (the old-API endpoint's requests), by
/// id. A notification on [`FINISHED_CHANNEL`] wakes that job's watchers; a
/// (re)connect of the listener wakes them all, since what finished while it
/// was deaf was never announced: each watcher reads its row again.
#[derive(Clone, Default)]
pub struct FinishedJobs(Arc<Mutex<HashMap<Uuid, Vec<Arc<Notify>>>>>);

/// One watcher of one job; it stops watching when dropped.
pub struct FinishWatch {
    id: Uuid,
    notify: Arc<Notify>,
    jobs: FinishedJobs,
}

impl FinishedJobs {
    /// Watches `id` from now on: a finish announced after this call is
    /// not missed, even before [`FinishWatch::changed`] is awaited. Read the
    /// job's row after this, then wait.
    pub fn watch(&self, id: Uuid) -> FinishWatch {
        let notify = Arc::new(Notify::new());
        lock(&self.0).entry(id).or_default().push(notify.clone());
        FinishWatch {
            id,
            notify,
            jobs: self.clone(),
        }
    }

    /// How many watchers there are (each a request held open).
    pub fn watchers(&self) -> usize {
        lock(&self.0).values().map(Vec::len).sum()
    }

    fn finished(&self, id: Uuid) {
        if let Some(watchers) = lock(&self.0).get(&id) {
            for w in watchers {
                w.notify_one();
            }
        }
    }

    fn wake_all(&self) {
        for w in lock(&self.0).values().flatten() {
            w.notify_one();
        }
    }
}

impl FinishWatch {
    /// Returns once the job may have finished (announced, or the listener
    /// reconnected): read its row again.
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for FinishWatch {
    fn drop(&mut self) {
        let mut jobs = lock(&self.jobs.0);
        if let Some(watchers) = jobs.get_mut(&self.id) {
            watchers.retain(|w| !Arc::ptr_eq(w, &self.notify));
            if watchers.is_empty() {
                jobs.remove(&self.id);
            }
        }
    }
}

/// What the rest of the daemon can see of the listener.
#[derive(Default)]
pub struct ListenerState {
    pub alive: AtomicBool,
    pub reconnects: AtomicU64,
}

pub struct Notifier {
    pub target: DbTarget,
    pub wake: Arc<Notify>,
    pub cancels: CancelRegistry,
    pub state: Arc<ListenerState>,
    /// How often to check the connection is still alive when it is quiet.
    pub ping_interval: Duration,
    /// With the old-API endpoint on: the jobs its requests wait for (one
    /// more channel on the same connection). None: not listened to.
    pub finished: Option<FinishedJobs>,
}

impl Notifier {
    /// Runs until `stop` is cancelled. Never fails: a lost connection is
    /// logged and re-established.
    pub async fn run(self, stop: CancellationToken) {
        let mut delays = db_backoff();
        loop {
            let session = self.session(&stop);
            let result = tokio::select! {
                r = session => r,
                _ = stop.cancelled() => return,
            };
            // A session that got as far as LISTEN starts the backoff afresh.
            if self.state.alive.swap(false, Ordering::SeqCst) {
                delays = db_backoff();
            }
            match result {
                Ok(()) => return,
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        "listener lost the database ({e}); reconnecting in {:.1}s",
                        delay.as_secs_f64()
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return,
                    }
                    self.state.reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One connection's life: LISTEN, then dispatch until it breaks.
    async fn session(&self, stop: &CancellationToken) -> Result<(), DbError> {
        let (client, connection) = self.target.connect().await?;
        let (mut rx, _driver) = drive(connection, Some(self.wake.clone()));
        let mut listen = format!("LISTEN {JOBS_CHANNEL}; LISTEN {CANCEL_CHANNEL};");
        if self.finished.is_some() {
            listen.push_str(&format!(" LISTEN {FINISHED_CHANNEL};"));
        }
        client.batch_execute(&listen).await?;
        self.state.alive.store(true, Ordering::SeqCst);
        tracing::info!("listening for jobs on channel {JOBS_CHANNEL}");
        // Anything inserted, or finished, while we were not listening.
        self.wake.notify_one();
        if let Some(finished) = &self.finished {
            finished.wake_all();
        }

        let mut ping = tokio::time::interval(self.ping_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Ok(n)) if n.channel() == CANCEL_CHANNEL => {
                        if let Ok(id) = n.payload().parse::<Uuid>() {
                            if self.cancels.cancel(id) {
                                tracing::info!(job_id = %id, "operator cancelled the job");
                            }
                        }
                    }
                    Some(Ok(n)) if n.channel() == FINISHED_CHANNEL => {
                        if let (Some(finished), Ok(id)) = (&self.finished, n.payload().parse::<Uuid>()) {
                            finished.finished(id);
                        }
                    }
                    // The jobs channel wakes the loop from the driver
                    // (`drive`) and never arrives here; a channel this
                    // session did not expect wakes it too, which costs a
                    // claim that finds nothing at worst.
                    Some(Ok(_)) => self.wake.notify_one(),
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(DbError::Pool("listener connection closed".into())),
                },
                _ = ping.tick() => {
                    // A half-open TCP connection reports nothing; a query
                    // on it fails or times out.
                    match tokio::time::timeout(self.ping_interval.max(Duration::from_secs(5)), client.simple_query("")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => return Err(DbError::Pool("listener ping timed out".into())),
                    }
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }
}

/// Drives a connection (which must be polled for the client's own queries
/// to complete, and yields the notifications): each notification, or the
/// error that ended the connection, arrives on the receiver, except those
/// of the jobs channel when `jobs` is given: they wake the worker loop from
/// the driver itself, one task hop less between a NOTIFY and the claim
/// (every pickup waits for it). The driver task ends when the returned
/// guard is dropped.
fn drive(
    mut connection: tokio_postgres::Connection<
        tokio_postgres::Socket,
        postgres_native_tls::TlsStream<tokio_postgres::Socket>,
    >,
    jobs: Option<Arc<Notify>>,
) -> (
    mpsc::UnboundedReceiver<Result<tokio_postgres::Notification, tokio_postgres::Error>>,
    AbortOnDrop,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            let sent = match message {
                Ok(AsyncMessage::Notification(n)) => match &jobs {
                    Some(wake) if n.channel() == JOBS_CHANNEL => {
                        wake.notify_one();
                        Ok(())
                    }
                    _ => tx.send(Ok(n)),
                },
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
    (rx, AbortOnDrop(driver))
}

/// How long the LISTEN self-test waits for its own notification.
pub const LISTEN_SELF_TEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot open the listening connection: {0}")]
    Connect(DbError),
    #[error("LISTEN failed: {0}")]
    Listen(DbError),
    #[error("NOTIFY from a second connection failed: {0}")]
    Notify(DbError),
    #[error("the listening connection closed before the notification arrived")]
    Closed,
    /// The classic symptom of a transaction pooler: LISTEN and NOTIFY both
    /// succeed, but the notification goes to a server connection nobody reads.
    #[error("no notification arrived within {}s of NOTIFY", .0.as_secs())]
    NoDelivery(Duration),
}

/// Round-trip self-test: LISTEN on one connection, NOTIFY from another, and
/// wait for the notification. Succeeds only when this database path can wake
/// the daemon; returns how long the round trip took. Uses a channel of its
/// own, so running daemons never see the test.
pub async fn listen_works(target: &DbTarget) -> Result<Duration, ListenError> {
    let channel = format!("xtract_selftest_{}", Uuid::new_v4().simple());
    let token = Uuid::new_v4().to_string();

    let (listener, connection) = target.connect().await.map_err(ListenError::Connect)?;
    let (mut rx, _driver) = drive(connection, None);
    listener
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .map_err(|e| ListenError::Listen(e.into()))?;

    let started = tokio::time::Instant::now();
    let notifier = target
        .connect_simple()
        .await
        .map_err(ListenError::Connect)?;
    // One unnamed statement: a named prepared statement can itself fail
    // behind a transaction pooler, and hide the failure we test for.
    notifier
        .query_typed(
            crate::queue::sql::SELF_TEST_NOTIFY,
            &[(&channel, Type::TEXT), (&token, Type::TEXT)],
        )
        .await
        .map_err(|e| ListenError::Notify(e.into()))?;

    let arrived = async {
        while let Some(Ok(n)) = rx.recv().await {
            if n.channel() == channel && n.payload() == token {
                return Ok(started.elapsed());
            }
        }
        Err(ListenError::Closed)
    };
    tokio::time::timeout(LISTEN_SELF_TEST_TIMEOUT, arrived)
        .await
        .unwrap_or(Err(ListenError::NoDelivery(LISTEN_SELF_TEST_TIMEOUT)))
}
