//! The `supabase` backend: Supabase Storage's HTTP API with reqwest, as
//! `shared/reference`'s notes describe the real server. Small files go up in
//! one streamed request; larger ones with TUS resumable uploads in 6 MiB
//! chunks that resume from the server's offset after a failure. Every
//! request carries the server key as its kind requires (key.rs); the key is
//! never put into an error or a log line.

mod errors;
mod key;
mod settings;
mod tus;

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Client, Method, RequestBuilder, Response};

pub use errors::{human_size, StorageError};
pub use key::KeyKind;
pub use settings::SupabaseSettings;

use super::{AudioStore, StoredObject};
use crate::domain::JobError;

/// What the bucket says about itself (read at start; its size limit again
/// where it decides, as an operator may change it).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BucketInfo {
    pub id: String,
    pub public: bool,
    pub file_size_limit: Option<u64>,
}

#[derive(Clone)]
pub struct SupabaseStorage {
    http: Client,
    /// `<SUPABASE_URL>/storage/v1`
    base: url::Url,
    bucket: BucketInfo,
    key_kind: KeyKind,
    /// Requests that outlive the job that started them (terminating an
    /// abandoned upload); `finish` waits for them.
    background: tokio_util::task::TaskTracker,
    threshold: u64,
    /// Attempts per request on passing failures.
    tries: usize,
}

impl std::fmt::Debug for SupabaseStorage {
    // Never print the client: its default headers hold the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseStorage")
            .field("base", &self.base.as_str())
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl SupabaseStorage {
    /// Builds the client and reads the bucket: a wrong key, a wrong URL or
    /// a missing bucket is found here, at start, not on the first job.
    /// Passing failures are retried a few times.
    pub async fn connect(settings: &SupabaseSettings) -> Result<Self, StorageError> {
        let mut storage = Self::client(settings)?;
        storage.bucket = storage.read_bucket().await?;
        Ok(storage)
    }

    /// As `connect`, with one request and no retry: for a caller that
    /// waits for Storage and says so itself (the daemon at start).
    pub async fn connect_once(settings: &SupabaseSettings) -> Result<Self, StorageError> {
        let mut storage = Self::client(settings)?;
        let tries = std::mem::replace(&mut storage.tries, 1);
        storage.bucket = storage.read_bucket().await?;
        storage.tries = tries;
        Ok(storage)
    }

    /// The client, before any request: refuses a public key or one that
    /// cannot be a header.
    fn client(settings: &SupabaseSettings) -> Result<Self, StorageError> {
        let key = settings.service_role_key.expose();
        let key_kind = KeyKind::of(key);
        if key_kind.is_public() {
            return Err(StorageError::PublicKey(key_kind.describe()));
        }
        let mut headers = HeaderMap::new();
        if key_kind.sends_bearer() {
            let mut bearer = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| StorageError::BadKey)?;
            bearer.set_sensitive(true);
            headers.insert(AUTHORIZATION, bearer);
        }
        let mut apikey = HeaderValue::from_str(key).map_err(|_| StorageError::BadKey)?;
        apikey.set_sensitive(true);
        headers.insert("apikey", apikey);
        let http = Client::builder()
            .default_headers(headers)
            // Supabase refuses secret keys from what looks like a browser;
            // say plainly what we are.
            .user_agent(concat!("xtract/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Per request; a 6 MiB chunk on a slow uplink still fits.
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| StorageError::Transport(errors::describe(&e)))?;
        // The project URL has no path (the configuration refuses one).
        let mut base = settings.url.clone();
        base.set_path("/storage/v1");
        Ok(SupabaseStorage {
            http,
            base,
            bucket: BucketInfo {
                id: settings.bucket.clone(),
                public: false,
                file_size_limit: None,
            },
            key_kind,
            background: tokio_util::task::TaskTracker::new(),
            threshold: settings.resumable_threshold,
            tries: 5,
        })
    }

    /// Waits (at most `limit`) for requests still going out on behalf of
    /// jobs that ended, so that a daemon exiting right after a cancel still
    /// terminates the cancelled upload.
    pub async fn finish(&self, limit: Duration) {
        self.background.close();
        if tokio::time::timeout(limit, self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("storage: requests still running at exit were abandoned");
        }
    }

    /// Which kind of key the daemon was given (for the start line and doctor).
    pub fn key_kind(&self) -> &KeyKind {
        &self.key_kind
    }

    pub fn bucket(&self) -> &BucketInfo {
        &self.bucket
    }

    /// Fewer attempts, for tests of failure paths.
    pub fn with_tries(mut self, tries: usize) -> Self {
        self.tries = tries.max(1);
        self
    }

    /// The bucket's size limit as it is now, or as it was at start when
    /// the bucket cannot be read (the request that needs it says more).
    async fn current_limit(&self) -> Option<u64> {
        match self.read_bucket().await {
            Ok(bucket) => bucket.file_size_limit,
            Err(e) => {
                tracing::debug!("reading the bucket's size limit: {e}");
                self.bucket.file_size_limit
            }
        }
    }

    /// Reads the bucket. A 404 that Storage itself did not write about a
    /// bucket ("Route GET:… not found", a web page) means the URL leads
    /// somewhere else: a wrong URL, not a missing bucket.
    async fn read_bucket(&self) -> Result<BucketInfo, StorageError> {
        let url = self.url(&["bucket", &self.bucket.id]);
        let response = match self.send(|| self.http.get(url.clone())).await {
            Ok(response) => response,
            Err(e) if e.is_route_not_found() => {
                return Err(StorageError::WrongUrl(format!("{url} answered: {e}")))
            }
            Err(e) => return Err(e),
        };
        response.json::<BucketInfo>().await.map_err(|e| {
            StorageError::WrongUrl(format!(
                "{url} did not answer like Supabase Storage: {}",
                errors::describe(&e)
            ))
        })
    }

    /// `<base>/<segments…>`, each segment escaped.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("http URLs have paths");
            for s in segments {
                for part in s.split('/') {
                    path.push(part);
                }
            }
        }
        url
    }

    /// Where the app reads the object: public URL for a public bucket, the
    /// authenticated URL otherwise (see docs/frontend.md: signed URLs).
    fn object_url(&self, path: &str) -> String {
        let kind = if self.bucket.public {
            "public"
        } else {
            "authenticated"
        };
        self.url(&["object", kind, &self.bucket.id, path])
            .to_string()
    }

    /// Sends a request built by `build`, retrying passing failures with
    /// backoff; returns the successful response or the last error.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, StorageError> {
        let mut delays = backoff();
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match build().send().await {
                Ok(response) => errors::check(response).await,
                Err(e) => Err(StorageError::Transport(errors::describe(&e))),
            };
            match result {
                Ok(response) => return Ok(response),
                Err(e) if e.is_transient() && tries < self.tries => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        "storage request failed ({e}); retrying in {:.1}s",
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One request with the file as a streamed body.
    async fn upload_whole(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
        size: u64,
    ) -> Result<(), StorageError> {
        let url = self.url(&["object", &self.bucket.id, path]);
        let mut delays = backoff();
        let mut tries = 0;
        loop {
            tries += 1;
            // The body is a stream: it is opened afresh for every try.
            let body = match tokio::fs::File::open(file).await {
                Ok(f) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    f,
                    256 * 1024,
                )),
                Err(e) => return Err(StorageError::LocalFile(e.to_string())),
            };
            let request = self
                .http
                .request(Method::POST, url.clone())
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_LENGTH, size)
                .header("x-upsert", "true")
                .header("cache-control", "max-age=3600")
                .body(body);
            let result = match request.send().await {
                Ok(response) => errors::check(response).await.map(|_| ()),
                Err(e) => Err(StorageError::Transport(errors::describe(&e))),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && tries < self.tries => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(
                        "upload failed ({e}); retrying in {:.1}s",
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn put_object(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<StoredObject, StorageError> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| StorageError::LocalFile(e.to_string()))?
            .len();
        if size > self.threshold {
            tus::upload(self, path, file, content_type, size).await?;
        } else {
            self.upload_whole(path, file, content_type, size).await?;
        }
        Ok(StoredObject {
            path: path.to_string(),
            url: self.object_url(path),
            size,
        })
    }
}

/// Delays between tries of a storage request.
fn backoff() -> impl Iterator<Item = Duration> {
    crate::sync::backoff(Duration::from_millis(200), Duration::from_secs(10))
}

impl AudioStore for SupabaseStorage {
    async fn put(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<StoredObject, JobError> {
        match self.put_object(path, file, content_type).await {
            Ok(stored) => Ok(stored),
            // The limit may have changed since start: name the one that
            // refused the file.
            Err(e @ StorageError::Status { status: 413, .. }) => {
                Err(e.into_job_error(self.current_limit().await))
            }
            Err(e) => Err(e.into_job_error(self.bucket.file_size_limit)),
        }
    }

    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<StoredObject, JobError> {
        let url = self.url(&["object", "copy"]);
        let body = serde_json::json!({
            "bucketId": self.bucket.id,
            "sourceKey": from,
            "destinationKey": to,
        });
        // Storage does not check the bucket's size limit on a copy; an
        // upload of the same bytes would be refused, so is the copy. The
        // limit is read now: an operator may have changed it since start,
        // either way (copies are rare: one request more is cheap).
        let limit = self.current_limit().await;
        if let Some(limit) = limit.filter(|l| size > *l) {
            return Err(StorageError::Status {
                status: 413,
                code: "EntityTooLarge".into(),
                message: format!("a copy of {size} bytes exceeds the bucket's limit of {limit}"),
            }
            .into_job_error(Some(limit)));
        }
        // A retried copy finds its own earlier copy: replace it.
        self.delete(to).await?;
        self.send(|| {
            self.http
                .post(url.clone())
                .header("x-upsert", "true")
                .json(&body)
        })
        .await
        .map_err(|e| e.into_job_error(limit))?;
        Ok(StoredObject {
            path: to.to_string(),
            url: self.object_url(to),
            size,
        })
    }

    async fn delete(&self, path: &str) -> Result<(), JobError> {
        let url = self.url(&["object", &self.bucket.id, path]);
        match self.send(|| self.http.delete(url.clone())).await {
            Ok(_) => Ok(()),
            Err(StorageError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into_job_error(self.bucket.file_size_limit)),
        }
    }
}
