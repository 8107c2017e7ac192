//! Storage's replies, read the way the real server writes them: its own
//! errors mostly come as HTTP 400 with the true status in the JSON body's
//! `statusCode` (a string); framework errors carry their real status; the
//! gateway answers a bad key with a bare `{"message": …}`.

use reqwest::Response;

use crate::domain::{ErrorCode, JobError, Retry};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("the service role key is not a valid HTTP header value")]
    BadKey,
    /// A key a browser may hold (never the key itself, only its kind).
    #[error("SUPABASE_SERVICE_ROLE_KEY holds a {0}: this is the public key; use the secret (service role) key")]
    PublicKey(String),
    /// SUPABASE_URL leads somewhere that is not Storage's API.
    #[error("SUPABASE_URL looks wrong: {0}")]
    WrongUrl(String),
    #[error("cannot reach Supabase Storage: {0}")]
    Transport(String),
    #[error("Supabase Storage answered {status}{}: {message}", if code.is_empty() { String::new() } else { format!(" {code}") })]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected reply from Supabase Storage: {0}")]
    Protocol(String),
    #[error("cannot read the audio file: {0}")]
    LocalFile(String),
}

impl StorageError {
    /// Worth trying again: the network, rate limits, server trouble, and a
    /// concurrent upload holding the same path's lock.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Transport(_) => true,
            // A concurrent upload to the same path holds its lock: the real
            // server says so with statusCode "423" (code ResourceLocked).
            StorageError::Status { status, code, .. } => {
                *status == 429 || *status == 423 || *status >= 500 || code == "ResourceLocked"
            }
            _ => false,
        }
    }

    /// The key was refused: by the gateway (401 with a bare message) or by
    /// Storage itself, whose body may say so under another status.
    pub fn is_auth(&self) -> bool {
        match self {
            StorageError::BadKey | StorageError::PublicKey(_) => true,
            StorageError::Status { status, code, .. } => {
                matches!(status, 401 | 403)
                    || matches!(
                        code.as_str(),
                        "InvalidJWT" | "AccessDenied" | "Unauthorized"
                    )
            }
            _ => false,
        }
    }

    /// The bucket is not there. Storage says so with the code
    /// `NoSuchBucket` (older versions: `error: "Bucket not found"`), and in
    /// plain text on the TUS routes ("Bucket not found"); a missing object or
    /// upload, or a route the server does not have, is not this.
    pub fn is_missing_bucket(&self) -> bool {
        match self {
            StorageError::Status { code, message, .. } => {
                code == "NoSuchBucket"
                    || code.eq_ignore_ascii_case("bucket not found")
                    || message.eq_ignore_ascii_case("bucket not found")
            }
            _ => false,
        }
    }

    /// A 404 about something other than a bucket, an object or an upload:
    /// the request reached a server without Storage's routes there
    /// (`Route GET:/storage/v1/storage/v1/bucket/x not found` when
    /// SUPABASE_URL already ends in /storage/v1; the gateway's "no Route
    /// matched"; another host's web page).
    pub fn is_route_not_found(&self) -> bool {
        matches!(self, StorageError::Status { status: 404, code, .. }
            if !self.is_missing_bucket() && !matches!(code.as_str(), "NoSuchKey" | "NoSuchUpload"))
    }

    /// A mistake in the settings (the key, the URL, the bucket's name) or
    /// the project (no such bucket): the operator's to correct; waiting
    /// would not help.
    pub fn is_configuration(&self) -> bool {
        self.is_auth() || matches!(self, StorageError::WrongUrl(_)) || self.is_missing_bucket()
    }

    /// What an operator does about it (what follows "→"), or "".
    pub fn advice(&self) -> &'static str {
        if matches!(self, StorageError::PublicKey(_)) {
            "Dashboard → Project Settings → API Keys: the secret key (sb_secret_…) or the legacy service_role key"
        } else if self.is_auth() {
            "check SUPABASE_SERVICE_ROLE_KEY (the service role key, not the anon key)"
        } else if matches!(self, StorageError::WrongUrl(_)) {
            "set SUPABASE_URL to the project URL, https://<ref>.supabase.co, with no path"
        } else if self.is_missing_bucket() {
            "create the bucket (Dashboard → Storage → New bucket) or set XTRACT_STORAGE_BUCKET"
        } else if matches!(self, StorageError::Transport(_)) {
            "check SUPABASE_URL and the network"
        } else if matches!(self, StorageError::Status { status: 429, .. }) {
            "Storage is limiting requests: try again in a minute"
        } else if matches!(self, StorageError::Status { status, .. } if *status >= 500) {
            "Storage is in trouble on its side: try again in a few minutes; hosted, see status.supabase.com; self-hosted, the logs of the Storage server and of its gateway"
        } else if matches!(self, StorageError::Protocol(_)) {
            "check that SUPABASE_URL leads to Supabase Storage (a proxy in between may change its replies)"
        } else {
            ""
        }
    }

    /// The job's error: what the user reads, what the operator can act on.
    pub fn into_job_error(self, size_limit: Option<u64>) -> JobError {
        let detail = format!("storage: {self}");
        match &self {
            StorageError::Status { status: 413, .. } => {
                let limit = match size_limit {
                    Some(b) => format!(" (the limit is {})", human_size(b)),
                    None => " (the project's upload limit; 50 MB on Supabase's free plan)".into(),
                };
                JobError::new(ErrorCode::TooLarge, None, detail)
                    .with_message(format!("This audio file is larger than the storage accepts{limit}."))
            }
            e if e.is_auth() => {
                JobError::new(ErrorCode::Storage, None, format!("{detail}; check SUPABASE_SERVICE_ROLE_KEY"))
                    .with_message("The audio file could not be saved: storage refused our credentials. The operator needs to check the storage key.")
                    .with_retry(Retry::Never)
            }
            e if e.is_missing_bucket() => {
                JobError::new(ErrorCode::Storage, None, format!("{detail}; check XTRACT_STORAGE_BUCKET"))
                    .with_message("The audio file could not be saved: the storage bucket does not exist. The operator needs to create it.")
                    .with_retry(Retry::Never)
            }
            StorageError::LocalFile(_) => JobError::internal(detail),
            // Any other refusal (a MIME type the bucket does not allow, an
            // invalid object name): trying again would download the video
            // again only to be refused the same way.
            e @ StorageError::Status { .. } if !e.is_transient() => {
                JobError::new(ErrorCode::Storage, None, detail)
                    .with_message("The audio file could not be saved: the storage refused it. The operator can see why in the job's details.")
                    .with_retry(Retry::Never)
            }
            _ => JobError::new(ErrorCode::Storage, None, detail),
        }
    }
}

/// A size limit as it was set: 10,000,000 bytes is "10 MB" and
/// 52,428,800 bytes "50 MB" (whichever of the decimal and binary units the
/// number is whole in, as people set limits both ways); other sizes with
/// one decimal; small ones in KB or bytes, never "0 MB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64, u64); 3] = [
        ("GB", 1_000_000_000, 1 << 30),
        ("MB", 1_000_000, 1 << 20),
        ("KB", 1_000, 1 << 10),
    ];
    for (unit, decimal, binary) in UNITS {
        if bytes >= decimal {
            for base in [decimal, binary] {
                if bytes.is_multiple_of(base) {
                    return format!("{} {unit}", bytes / base);
                }
            }
            let value = bytes as f64 / decimal as f64;
            return format!("{:.1} {unit}", value);
        }
    }
    format!("{bytes} bytes")
}

/// Ok for a success; otherwise the error the body describes.
pub async fn check(response: Response) -> Result<Response, StorageError> {
    let http_status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
    }
    // Error bodies are small; read at most 8 KiB of one.
    let mut body = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= 8192 {
            body.truncate(8192);
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    Err(parse_error(http_status, &text))
}

/// Reads any of the three error shapes (and plain text, and nothing). The
/// body's status counts when it is an HTTP status (a number beyond u16 must
/// not wrap round into one); its code and message are cut to a length a
/// log line and a job's details can carry.
pub fn parse_error(http_status: u16, body: &str) -> StorageError {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let named = match &json["statusCode"] {
        serde_json::Value::String(s) => s.parse::<u16>().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    };
    let status = named
        .filter(|s| (100..600).contains(s))
        .unwrap_or(http_status);
    let code = json["code"]
        .as_str()
        .or_else(|| json["error"].as_str())
        .unwrap_or("")
        .chars()
        .take(100)
        .collect();
    let message = json["message"]
        .as_str()
        .unwrap_or(body)
        .trim()
        .chars()
        .take(300)
        .collect();
    StorageError::Status {
        status,
        code,
        message,
    }
}

/// A reqwest error with its causes, without anything from the headers.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_in_the_body_wins_over_the_http_status() {
        let e = parse_error(
            400,
            r#"{"statusCode":"413","code":"EntityTooLarge","error":"Payload too large","message":"The object exceeded the maximum allowed size"}"#,
        );
        assert_eq!(
            e,
            StorageError::Status {
                status: 413,
                code: "EntityTooLarge".into(),
                message: "The object exceeded the maximum allowed size".into()
            }
        );
        let e = parse_error(
            400,
            r#"{"statusCode":"404","error":"Bucket not found","message":"Bucket not found"}"#,
        );
        assert!(matches!(e, StorageError::Status { status: 404, .. }));
        let locked = parse_error(
            400,
            r#"{"statusCode":"409","code":"ResourceLocked","message":"locked"}"#,
        );
        assert!(locked.is_transient());
        let duplicate = parse_error(
            400,
            r#"{"statusCode":"409","code":"Duplicate","message":"exists"}"#,
        );
        assert!(!duplicate.is_transient());
    }

    #[test]
    fn gateway_and_framework_errors_keep_their_http_status() {
        assert!(matches!(
            parse_error(401, r#"{"message":"Invalid API key"}"#),
            StorageError::Status { status: 401, .. }
        ));
        assert!(parse_error(503, "upstream connect error").is_transient());
        assert!(matches!(
            parse_error(
                413,
                r#"{"statusCode":413,"error":"Payload Too Large","message":"too big"}"#
            ),
            StorageError::Status { status: 413, .. }
        ));
    }

    #[test]
    fn job_errors_say_what_to_do() {
        let big = parse_error(400, r#"{"statusCode":"413","message":"x"}"#)
            .into_job_error(Some(50 * 1024 * 1024));
        assert_eq!(big.code, ErrorCode::TooLarge);
        assert!(big.message.contains("50 MB"), "{}", big.message);
        let auth = parse_error(401, r#"{"message":"Invalid API key"}"#).into_job_error(None);
        assert_eq!((auth.code, auth.retry), (ErrorCode::Storage, Retry::Never));
        assert!(auth.detail.contains("SUPABASE_SERVICE_ROLE_KEY"));
        // Storage's own refusal of the key, whatever status the body gives.
        let jwt = parse_error(
            400,
            r#"{"statusCode":"400","code":"InvalidJWT","message":"invalid signature"}"#,
        );
        assert!(jwt.is_auth() && !jwt.is_transient());
        assert!(jwt.advice().contains("SUPABASE_SERVICE_ROLE_KEY"));
        assert_eq!(jwt.into_job_error(None).retry, Retry::Never);
        // Other 4xx: no retry (it would re-download the video for nothing).
        let mime = parse_error(
            400,
            r#"{"statusCode":"415","code":"InvalidMimeType","message":"mime type audio/x-matroska is not supported"}"#,
        )
        .into_job_error(None);
        assert_eq!((mime.code, mime.retry), (ErrorCode::Storage, Retry::Never));
        assert!(mime.detail.contains("InvalidMimeType"));
        // A missing object is not a missing bucket.
        let gone = parse_error(
            400,
            r#"{"statusCode":"404","code":"NoSuchKey","message":"x"}"#,
        );
        assert!(!gone.is_missing_bucket());
        let no_bucket = parse_error(
            400,
            r#"{"statusCode":"404","code":"NoSuchBucket","message":"x"}"#,
        );
        assert!(no_bucket.is_missing_bucket());
        // The project-wide limit applies when the bucket has none.
        let big = parse_error(400, r#"{"statusCode":"413","message":"x"}"#).into_job_error(None);
        assert!(
            big.message.contains("project's upload limit"),
            "{}",
            big.message
        );
        let down = StorageError::Transport("connection refused".into()).into_job_error(None);
        assert_eq!(
            (down.code, down.retry),
            (ErrorCode::Storage, Retry::Backoff)
        );
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        /// Text as a server or a proxy in front of it may write it.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => Just(String::new()),
                3 => ".{0,40}",
                3 => "[a-zA-Z ]{0,20}",
                // Huge: more than any message should carry (what `check`
                // reads of a body is cut at 8 KiB; parse_error has no cut).
                1 => (1usize..8).prop_map(|k| "é".repeat(k * 5_000)),
            ]
        }

        fn status_code() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                (100u16..600).prop_map(|n| n.to_string().into()),
                (100u16..600).prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                (0u32..200_000).prop_map(|n| n.to_string().into()),
                text().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
                Just(serde_json::json!(4.13e2)),
            ]
        }

        /// Storage's own shape, the framework's, the gateway's bare
        /// message, plain text, nothing, and JSON of the wrong kind.
        fn body() -> impl Strategy<Value = String> {
            prop_oneof![
                (status_code(), text(), text(), text()).prop_map(|(s, c, e, m)| {
                    serde_json::json!({"statusCode": s, "code": c, "error": e, "message": m})
                        .to_string()
                }),
                (status_code(), text(), text()).prop_map(|(s, e, m)| {
                    serde_json::json!({"statusCode": s, "error": e, "message": m}).to_string()
                }),
                text().prop_map(|m| serde_json::json!({ "message": m }).to_string()),
                text(),
                Just("[1, 2]".to_string()),
                Just(r#"{"message": 42, "code": ["x"]}"#.to_string()),
                any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        }

        proptest! {
            #![proptest_config(crate::proptest_config(400))]

            /// Any reply reads as a status, a code and a message of bounded
            /// length; the status is the body's when it names a real one,
            /// else the HTTP status; and the job error it makes says
            /// something to the user.
            #[test]
            fn any_error_body_reads_as_a_bounded_status(http in 100u16..600, body in body()) {
                let e = parse_error(http, &body);
                let StorageError::Status { status, code, message } = &e else {
                    panic!("not a status: {e:?}");
                };
                let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let named = match &json["statusCode"] {
                    serde_json::Value::String(s) => s.parse::<u16>().ok(),
                    serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    _ => None,
                }
                .filter(|s| (100..600).contains(s));
                prop_assert_eq!(*status, named.unwrap_or(http));
                prop_assert!(message.chars().count() <= 300, "{} characters", message.len());
                prop_assert!(code.chars().count() <= 100, "{} characters", code.len());
                let job = e.clone().into_job_error(Some(1000));
                prop_assert!(!job.message.is_empty());
                prop_assert!(job.detail.len() < 2000, "{} bytes of detail", job.detail.len());
            }
        }
    }

    #[test]
    fn server_errors_come_with_advice() {
        for status in [500, 502, 503, 504, 429] {
            let e = parse_error(status, "upstream connect error");
            assert!(e.advice().contains("try again"), "{status}: {e}");
        }
    }
}
