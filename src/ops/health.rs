//! `XTRACT_HEALTH_ADDR`: `GET /health` (JSON; 503 when the database or the
//! listener is down) and `GET /metrics` (Prometheus). It runs on its own
//! tasks: a slow or malformed request never holds up the daemon. It answers
//! from the daemon's first moment: while the daemon still waits for its
//! database, `/health` says so with a 503.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::daemon::Tasks;
use crate::metrics::{EgressLabels, Metrics, StatusLabel};
use crate::queue::notifier::ListenerState;
use crate::queue::Queue;
use crate::sync::lock;

/// What the endpoints read.
pub struct HealthState {
    pub queue: Queue,
    pub listener: Arc<ListenerState>,
    pub metrics: Arc<Metrics>,
    pub worker_id: String,
}

/// A database question must not keep a health check waiting.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint of a daemon: starting (waiting for what it needs), then
/// running.
pub struct Endpoint {
    slot: Arc<Slot>,
    stop: CancellationToken,
}

struct Slot {
    worker_id: String,
    /// What a starting daemon waits for.
    waiting: Mutex<String>,
    /// Set once the daemon runs.
    running: OnceLock<Arc<HealthState>>,
}

impl Endpoint {
    /// Listens on `addr` and answers at once (503 "starting"), on the
    /// daemon's task tracker; it stops when dropped or with the daemon.
    pub async fn start(addr: SocketAddr, worker_id: &str, tasks: &Tasks) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let slot = Arc::new(Slot {
            worker_id: worker_id.to_string(),
            waiting: Mutex::new("starting".into()),
            running: OnceLock::new(),
        });
        let stop = tasks.stop.child_token();
        tasks
            .tracker
            .spawn(serve(listener, slot.clone(), stop.clone()));
        Ok(Endpoint { slot, stop })
    }

    /// What the starting daemon waits for, as `/health` says it.
    pub fn waiting(&self, what: &str) {
        *lock(&self.slot.waiting) = what.to_string();
    }

    /// The daemon runs: answer from its state.
    pub fn running(&self, state: HealthState) {
        let _ = self.slot.running.set(Arc::new(state));
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: tokio::net::TcpListener, slot: Arc<Slot>, stop: CancellationToken) {
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(slot);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("health endpoint stopped: {e}");
    }
}

/// A database question, or None when it fails or takes too long.
async fn within<T, E>(question: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(DB_TIMEOUT, question).await.ok()?.ok()
}

async fn paused_platforms(state: &HealthState) -> Option<Vec<(String, String, String)>> {
    within(state.queue.paused_platforms()).await
}

/// A daemon that has not started yet: unhealthy, and what it waits for.
fn starting(slot: &Slot) -> Response {
    let waiting = lock(&slot.waiting).clone();
    let body = serde_json::json!({
        "status": "starting",
        "waiting_for": waiting,
        "database_connected": false,
        "listener_alive": false,
        "jobs_running": 0,
        "worker_id": slot.worker_id,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn health(State(slot): State<Arc<Slot>>) -> Response {
    let Some(state) = slot.running.get() else {
        return starting(&slot);
    };
    let database = within(state.queue.ping()).await.is_some();
    let listener = state.listener.alive.load(Ordering::SeqCst);
    let paused = paused_platforms(state).await.unwrap_or_default();
    let healthy = database && listener;
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database_connected": database,
        "listener_alive": listener,
        "jobs_running": state.metrics.running.get(),
        "jobs_completed": state.metrics.completed_total(),
        "jobs_failed": state.metrics.failed_total(),
        "platforms_paused": paused
            .iter()
            .map(|(p, egress, until)| serde_json::json!({"platform": p, "egress": egress, "until": until}))
            .collect::<Vec<_>>(),
        "worker_id": state.worker_id,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(slot): State<Arc<Slot>>) -> Response {
    let Some(state) = slot.running.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    let m = &state.metrics;
    m.listener_up
        .set(state.listener.alive.load(Ordering::SeqCst) as i64);
    m.listener_reconnects
        .set(state.listener.reconnects.load(Ordering::Relaxed) as i64);
    if let Some(counts) = within(state.queue.active_counts()).await {
        for status in ["pending", "processing"] {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            m.queue_depth
                .get_or_create(&StatusLabel {
                    status: status.into(),
                })
                .set(n);
        }
    }
    if let Some(paused) = paused_platforms(state).await {
        // Every pair this daemon may use, paused or not (0), so a pause's
        // end shows; none a reload removed.
        let routes = state.queue.routes();
        m.platform_paused.clear();
        for (platform, egress) in routes.pairs() {
            let is_paused = paused.iter().any(|(p, e, _)| p == platform && e == egress);
            m.platform_paused
                .get_or_create(&EgressLabels {
                    platform: platform.into(),
                    egress: egress.into(),
                })
                .set(is_paused as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
