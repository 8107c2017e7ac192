//! What the old API answers, in the old service's shapes: 200 with
//! `{"job_id", "audio_file_id"}`, an error as an HTTP status with
//! FastAPI's `{"detail": "<message>"}`, a validation error as FastAPI's 422
//! list. JSON as FastAPI writes it: compact, keys in the model's order.
//!
//! A failed job's status follows what failed (README, "Replacing the old
//! service"): the platform pushing back is 429 (the old "Instagram Rate
//! Limit Reached"); a fact about the video or the link is 400 (private,
//! deleted, too long: asking again gives the same answer); the platform or
//! the network failing us is 502; our own faults are 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::request::Problem;
use crate::domain::ErrorCode;

/// How long a client is asked to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 30;

#[derive(Serialize)]
struct Done {
    job_id: Uuid,
    audio_file_id: Uuid,
}

#[derive(Serialize)]
struct Detail<'a> {
    detail: &'a str,
}

#[derive(Serialize)]
struct Invalid<'a> {
    detail: &'a [Problem],
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The old service's answer once the audio is stored.
pub fn done(job_id: Uuid, audio_file_id: Uuid) -> Response {
    let body = serde_json::to_vec(&Done {
        job_id,
        audio_file_id,
    })
    .expect("two ids serialise");
    json(StatusCode::OK, body)
}

/// FastAPI's HTTPException: the status and `{"detail": message}`.
pub fn detail(status: StatusCode, message: &str) -> Response {
    let body = serde_json::to_vec(&Detail { detail: message }).expect("a string serialises");
    json(status, body)
}

/// FastAPI's 422 for a request that is not the model.
pub fn invalid(problems: &[Problem]) -> Response {
    let body = serde_json::to_vec(&Invalid { detail: problems }).expect("problems serialise");
    json(StatusCode::UNPROCESSABLE_ENTITY, body)
}

/// A job still running at the bound: 504, as a proxy in front of the old
/// service answered a request that took too long, and `Retry-After`. The
/// job goes on; the same request again waits for it (README).
pub fn still_running(job_id: Uuid) -> Response {
    let mut response = detail(
        StatusCode::GATEWAY_TIMEOUT,
        "The audio is still being prepared. Please try again in a minute.",
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    if let Ok(id) = HeaderValue::from_str(&job_id.to_string()) {
        headers.insert("x-job-id", id);
    }
    response
}

/// Busy or stopping, try again: 503 with `Retry-After`.
pub fn unavailable(message: &str) -> Response {
    let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// The status of a failed job, by its error code. Every code is decided
/// here (the match is exhaustive): a new code must be placed.
pub fn failure_status(code: Option<ErrorCode>) -> StatusCode {
    use ErrorCode::*;
    let Some(code) = code else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match code {
        RateLimited | BotCheck => StatusCode::TOO_MANY_REQUESTS,
        LoginRequired | Private | Unavailable | Copyright | GeoBlocked | AgeRestricted
        | LiveNotStarted | UnsupportedUrl | InvalidUrl | NoFormats | NoAudio | TooLong
        | TooLarge | NotFound | DrmProtected => StatusCode::BAD_REQUEST,
        HttpForbidden | Network | ExtractorOutdated => StatusCode::BAD_GATEWAY,
        Storage | Internal | WorkerLost | Timeout => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failed job's answer: its status and the sentence its user reads.
pub fn failed(code: Option<&str>, message: Option<&str>) -> Response {
    let status = failure_status(code.and_then(ErrorCode::parse));
    // The old service's sentence for a job that failed without one.
    let message = message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("Video Processing Failed");
    detail(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response) -> (u16, String) {
        let status = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn bodies_are_fastapis_byte_for_byte() {
        let job = Uuid::from_u128(1);
        let audio = Uuid::from_u128(2);
        assert_eq!(
            text(done(job, audio)).await,
            (
                200,
                r#"{"job_id":"00000000-0000-0000-0000-000000000001","audio_file_id":"00000000-0000-0000-0000-000000000002"}"#
                    .into()
            )
        );
        assert_eq!(
            text(failed(
                Some("rate_limited"),
                Some("Instagram is limiting requests: wait «5» minutes.")
            ))
            .await,
            (
                429,
                r#"{"detail":"Instagram is limiting requests: wait «5» minutes."}"#.into()
            )
        );
        assert_eq!(
            text(failed(None, None)).await,
            (500, r#"{"detail":"Video Processing Failed"}"#.into())
        );
    }

    #[test]
    fn every_error_code_has_a_status_of_its_kind() {
        for code in ErrorCode::ALL {
            let status = failure_status(Some(code));
            let expected = match code.retry() {
                crate::Retry::Never => StatusCode::BAD_REQUEST,
                crate::Retry::Cooldown => StatusCode::TOO_MANY_REQUESTS,
                _ => status, // passing faults: ours (500) or upstream's (502)
            };
            assert_eq!(status, expected, "{code:?}");
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}"
            );
        }
        assert_eq!(
            failure_status(Some(ErrorCode::Network)),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            failure_status(Some(ErrorCode::Storage)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
