//! The old service's HTTP API, for app versions that still call it:
//! `POST /extract-audio` with `{"url", "user_id"}`, answered
//! `{"job_id", "audio_file_id"}` once the audio is stored (and `GET
//! /health`). Off unless XTRACT_COMPAT_ADDR is set: then, and only then,
//! the daemon listens there, reads the project's signing keys and hears
//! about finished old-API jobs on its LISTEN connection.
//!
//! - `settings`: XTRACT_COMPAT_*.
//! - `auth`: the caller's Supabase access token.
//! - `request`: the old request, read as FastAPI read it.
//! - `handler`: one request, from body to answer.
//! - `answer`: the old service's answers, and a failed job's status.
//!
//! The job itself is the queue's (`queue::old_api`): inserted as the app
//! inserts it, under the same checks and limits.

pub mod answer;
pub mod auth;
mod handler;
pub mod request;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::CompatSettings;

use super::config::Config;
use super::daemon::{StartError, Tasks};
use crate::db::DbTarget;
use crate::metrics::Metrics;
use crate::queue::notifier::FinishedJobs;
use crate::queue::old_api::OldApi;

/// Request line and headers, at most (hyper's smallest buffer).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections the endpoint serves at once beyond the waiting requests:
/// requests being refused, idle keep-alives. More wait in the kernel's
/// backlog.
const SPARE_CONNECTIONS: usize = 64;
/// The endpoint's own connections to the database: short queries per
/// request, never the worker's pool.
const POOL_SIZE: usize = 4;

/// What every request reads.
struct Shared {
    settings: CompatSettings,
    /// For the daemon's link check (platforms turned off, private
    /// addresses), as at start.
    config: Config,
    verifier: auth::Verifier,
    queue: OldApi,
    finished: FinishedJobs,
    metrics: Arc<Metrics>,
    /// One permit per request waiting for its job.
    waits: Arc<Semaphore>,
    /// The daemon is stopping: waiting requests are answered now.
    stop_waiting: CancellationToken,
}

/// When the endpoint stops.
pub struct Stops {
    /// No new connections, and kept-alive ones close after their request
    /// (the daemon's first SIGTERM).
    pub accepting: CancellationToken,
    /// Waiting requests are answered 503 (the worker has drained).
    pub waiting: CancellationToken,
}

/// Listens on the settings' address and serves the old API on the daemon's
/// task tracker. Fails when the address cannot be had or the database
/// cannot take old-API jobs (see `OldApi::check`).
pub async fn start(
    config: &Config,
    settings: &CompatSettings,
    target: &DbTarget,
    finished: FinishedJobs,
    metrics: Arc<Metrics>,
    stops: Stops,
    tasks: &Tasks,
) -> Result<(), StartError> {
    let addr = settings.addr;
    let queue = OldApi::new(
        target
            .pool(POOL_SIZE)
            .map_err(|e| StartError(e.to_string()))?,
    );
    queue
        .check()
        .await
        .map_err(|e| StartError(format!("XTRACT_COMPAT_ADDR: {e}")))?;
    let verifier = auth::Verifier::new(settings).map_err(StartError)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError(format!("XTRACT_COMPAT_ADDR: cannot listen on {addr}: {e}")))?;
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        config: config.clone(),
        verifier,
        queue,
        finished,
        metrics,
        waits: Arc::new(Semaphore::new(settings.max_waiting)),
        stop_waiting: stops.waiting.clone(),
    });
    if settings.trust_body_user {
        tracing::warn!(
            "XTRACT_COMPAT_TRUST_BODY_USER=true: POST /extract-audio on {addr} believes the user_id it is sent, with no token. \
             Anyone who can reach {addr} can add jobs for any user. Keep it reachable from the app's own backend only."
        );
    } else if shared.verifier.jwks().is_some() {
        // The keys are read now, so a wrong URL shows in the log at start
        // rather than as refused users.
        let shared = shared.clone();
        let stop = stops.waiting.clone();
        tasks.tracker.spawn(async move {
            let Some(jwks) = shared.verifier.jwks() else {
                return;
            };
            tokio::select! {
                found = jwks.warm_up() => match found {
                    Ok(n) => tracing::info!("old API: {n} signing key(s) (ES256/RS256) at {}", jwks.url()),
                    Err(e) => tracing::warn!("old API: {e}; tokens signed with a key pair are refused until it can be read"),
                },
                _ = stop.cancelled() => {}
            }
        });
    }
    let app = Router::new()
        .route("/extract-audio", post(handler::extract_audio))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared);
    let connections = Arc::new(Semaphore::new(settings.max_waiting + SPARE_CONNECTIONS));
    tasks.tracker.spawn(serve(
        listener,
        app,
        connections,
        settings.client_timeout,
        stops,
        tasks.tracker.clone(),
    ));
    tracing::info!(
        "old service's API on http://{addr}/extract-audio (answers within {}s; at most {} waiting)",
        settings.wait.as_secs_f64(),
        settings.max_waiting
    );
    Ok(())
}

/// Accepts connections while a connection permit is free, each served on
/// its own task (on the daemon's tracker, so the daemon waits for them).
async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Arc<Semaphore>,
    client_timeout: Duration,
    stops: Stops,
    tracker: TaskTracker,
) {
    let stopping = |stops: &Stops| {
        let (a, w) = (stops.accepting.clone(), stops.waiting.clone());
        async move {
            tokio::select! {
                _ = a.cancelled() => {}
                _ = w.cancelled() => {}
            }
        }
    };
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stopping(&stops) => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: breathe, then go on.
                    tracing::warn!("old API: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&stops) => return,
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = stopping(&stops);
        tracker.spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                // Headers in time; an idle kept-alive connection is
                // closed after it too: a silent client holds nothing long.
                .header_read_timeout(client_timeout)
                .max_buf_size(MAX_HEADER_BYTES);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop => {
                    // The request in flight is answered; then the
                    // connection closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// The old service's health check.
async fn health() -> Response {
    answer_json(StatusCode::OK, r#"{"status":"healthy"}"#)
}

async fn not_found() -> Response {
    answer::detail(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    answer::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn answer_json(status: StatusCode, body: &'static str) -> Response {
    use axum::response::IntoResponse;
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
