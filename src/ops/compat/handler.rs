//! `POST /extract-audio`, one request from body to answer, in the order
//! FastAPI worked: the body (small, and in time), its JSON, the token, the
//! fields; then the link, a place among the waiting requests, the job (the
//! user's waiting one for this link, or a new one inserted as the app
//! would), and its outcome, awaited up to the bound. Nothing is inserted
//! for a request that is refused before the job.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::answer;
use super::request::{self, Problem, Unreadable};
use super::Shared;
use crate::metrics::HttpStatusLabel;
use crate::queue::old_api::{Outcome, Refusal, SubmitError};

/// The old request is two short strings: 16 KiB is plenty, and bounds
/// what a client can make us hold.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub(super) async fn extract_audio(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(m) = &shared.metrics.old_api {
        m.last_request.set(chrono::Utc::now().timestamp());
    }
    let response = answer_request(&shared, &headers, body).await;
    if let Some(m) = &shared.metrics.old_api {
        m.requests
            .get_or_create(&HttpStatusLabel {
                status: response.status().as_u16().to_string(),
            })
            .inc();
    }
    response
}

async fn answer_request(shared: &Shared, headers: &HeaderMap, body: Body) -> Response {
    let bytes = match read_body(headers, body, shared.settings.client_timeout).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let value = match request::decode(content_type, &bytes) {
        Ok(value) => value,
        Err(Unreadable::Invalid(problems)) => return answer::invalid(&problems),
        Err(Unreadable::NotText) => {
            return answer::detail(
                StatusCode::BAD_REQUEST,
                "There was an error parsing the body",
            )
        }
    };
    // Who is asking (unless the body is trusted: then the header is not read).
    let caller = if shared.settings.trust_body_user {
        None
    } else {
        match shared
            .verifier
            .verify(headers.get(header::AUTHORIZATION))
            .await
        {
            Ok(caller) => Some(caller),
            Err(e) => {
                tracing::debug!("old API: token refused: {}", e.why());
                let mut response = answer::detail(e.status(), &e.to_string());
                if e.status() == StatusCode::UNAUTHORIZED {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                return response;
            }
        }
    };
    let old = match request::validate(value, caller.is_none()) {
        Ok(old) => old,
        Err(problems) => return answer::invalid(&problems),
    };
    let user = match (caller, old.user_id.as_deref().map(str::trim)) {
        (Some(caller), None) => caller.user,
        (Some(caller), Some(named)) => match Uuid::parse_str(named) {
            Ok(user) if user == caller.user => user,
            _ => {
                tracing::info!(
                    signed_in = %caller.user,
                    "old API: refused a request whose user_id is another user"
                );
                return answer::detail(StatusCode::FORBIDDEN, "user_id is not the signed-in user.");
            }
        },
        (None, Some(named)) => match Uuid::parse_str(named) {
            Ok(user) => user,
            Err(_) => {
                return answer::invalid(&[Problem {
                    kind: "uuid_parsing",
                    loc: vec!["body".into(), "user_id".into()],
                    msg: "Input should be a valid UUID".into(),
                    input: named.into(),
                    ctx: None,
                }])
            }
        },
        // `validate` required the field when there is no caller.
        (None, None) => return answer::detail(StatusCode::UNAUTHORIZED, "Not authenticated"),
    };
    // The daemon's own judgement of the link, before a job exists for it.
    if let Err(why) = crate::ops::commands::check_link(&shared.config, &old.url) {
        return answer::detail(StatusCode::BAD_REQUEST, &why);
    }
    let Ok(permit) = shared.waits.clone().try_acquire_owned() else {
        return answer::unavailable("Too many requests are waiting. Please try again in a minute.");
    };
    let submitted = match shared.queue.submit(user, &old.url).await {
        Ok(submitted) => submitted,
        Err(SubmitError::Refused(Refusal::Link(why))) => {
            return answer::detail(StatusCode::BAD_REQUEST, &why)
        }
        Err(SubmitError::Refused(Refusal::Limit(why))) => {
            return answer::detail(StatusCode::TOO_MANY_REQUESTS, &why)
        }
        Err(SubmitError::Db(e)) => {
            tracing::warn!("old API: cannot add the job: {e}");
            return answer::unavailable(
                "The service is temporarily unavailable. Please try again in a minute.",
            );
        }
    };
    if submitted.created {
        if let Some(m) = &shared.metrics.old_api {
            m.jobs_created.inc();
        }
        tracing::info!(job_id = %submitted.id, user = %user, "old API: job added");
    } else {
        tracing::info!(job_id = %submitted.id, user = %user, "old API: waiting for the same link's job");
    }
    wait_for(shared, submitted.id, permit).await
}

/// The body, at most [`MAX_BODY_BYTES`], within `timeout`.
async fn read_body(headers: &HeaderMap, body: Body, timeout: Duration) -> Result<Bytes, Response> {
    let too_large = || answer::detail(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(answer::detail(
            StatusCode::BAD_REQUEST,
            "There was an error parsing the body",
        )),
        Err(_) => Err(answer::detail(
            StatusCode::REQUEST_TIMEOUT,
            "The request took too long to arrive.",
        )),
    }
}

/// Counts a request among the waiting while it lives.
struct Waiting<'a>(Option<&'a prometheus_client::metrics::gauge::Gauge>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            g.dec();
        }
    }
}

/// Holds the request until its job finishes, the bound passes or the
/// daemon stops. Woken by the job's finish notification (or a reconnect
/// of the listener), never by a timer: the row is read once now and once
/// per wake. If the client goes away, the connection drops this future and
/// its place; the job goes on.
async fn wait_for(shared: &Shared, id: Uuid, _place: OwnedSemaphorePermit) -> Response {
    let gauge = shared.metrics.old_api.as_ref().map(|m| &m.waiting);
    if let Some(g) = gauge {
        g.inc();
    }
    let _counted = Waiting(gauge);
    // Watch before the first read: a finish in between is not missed.
    let watch = shared.finished.watch(id);
    let deadline = tokio::time::Instant::now() + shared.settings.wait;
    loop {
        match shared.queue.outcome(id).await {
            Ok(Outcome::Unfinished) => {}
            // The database is away: wait for the listener's reconnect.
            Err(e) => tracing::warn!(job_id = %id, "old API: cannot read the job: {e}"),
            Ok(Outcome::Completed {
                audio_file_id: Some(audio),
            }) => return answer::done(id, audio),
            Ok(Outcome::Completed {
                audio_file_id: None,
            }) => {
                tracing::error!(job_id = %id, "old API: the job completed without an audio row");
                return answer::failed(Some("internal"), None);
            }
            Ok(Outcome::Failed { code, message }) => {
                return answer::failed(code.as_deref(), message.as_deref())
            }
            Ok(Outcome::Cancelled) => {
                return answer::detail(StatusCode::CONFLICT, "This job was cancelled.")
            }
            Ok(Outcome::Gone) => {
                return answer::detail(StatusCode::GONE, "This job was removed before it finished.")
            }
        }
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep_until(deadline) => return answer::still_running(id),
            _ = shared.stop_waiting.cancelled() => {
                return answer::unavailable("The service is restarting. Please try again in a minute.")
            }
        }
    }
}
