//! TUS 1.0.0 resumable uploads as Supabase Storage takes them: create, then
//! PATCH chunks of exactly 6 MiB (the last may be shorter); after a failure,
//! HEAD tells how much the server kept, and the upload goes on from there.
//! One chunk is in memory at a time.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::errors::{check, describe, StorageError};
use super::SupabaseStorage;

/// Supabase requires every chunk but the last to be exactly this size.
pub const CHUNK: u64 = 6 * 1024 * 1024;
const TUS_VERSION: &str = "1.0.0";

pub async fn upload(
    s: &SupabaseStorage,
    path: &str,
    file: &Path,
    content_type: &str,
    size: u64,
) -> Result<(), StorageError> {
    let mut location = create(s, path, content_type, size).await?;
    // Until it finishes, an upload we walk away from (a failure we do not
    // retry, a cancelled job whose future is dropped mid-chunk) is
    // terminated, so no partial upload lingers on the server.
    let mut unfinished = Terminate::new(s, &location);
    // An upload URL the server no longer knows (expired, or lost with a
    // restart): start a new upload, once.
    let mut restarted = false;
    let mut source = tokio::fs::File::open(file)
        .await
        .map_err(|e| StorageError::LocalFile(e.to_string()))?;
    let mut offset = 0u64;
    let mut failures = 0;
    let mut delays = super::backoff();
    while offset < size {
        let len = CHUNK.min(size - offset);
        let mut chunk = vec![0u8; len as usize];
        source
            .seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| StorageError::LocalFile(e.to_string()))?;
        source
            .read_exact(&mut chunk)
            .await
            .map_err(|e| StorageError::LocalFile(e.to_string()))?;
        // Where to go on from after a failed chunk: the server's offset.
        let resume_at = match patch(s, &location, offset, chunk).await {
            Ok(next) => {
                offset = next;
                failures = 0;
                continue;
            }
            Err(e) if resumable(&e) && failures + 1 < s.tries => {
                failures += 1;
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(
                    "upload chunk at {offset} failed ({e}); resuming in {:.1}s from the server's offset",
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
                server_offset(s, &location).await
            }
            Err(e) => Err(e),
        };
        offset = match resume_at {
            Ok(at) => at,
            Err(e) if upload_gone(&e) && !restarted => {
                restarted = true;
                tracing::warn!("the server no longer knows this upload ({e}); starting it again");
                location = create(s, path, content_type, size).await?;
                unfinished = Terminate::new(s, &location);
                0
            }
            // Not a missing bucket, whatever the status says: the job may
            // try again later.
            Err(e) if upload_gone(&e) => {
                return Err(StorageError::Protocol(format!(
                    "the server lost the upload twice ({e})"
                )))
            }
            Err(e) => return Err(e),
        };
    }
    unfinished.finished();
    Ok(())
}

/// Terminates (TUS `DELETE`) the upload when dropped before `finished`.
struct Terminate {
    request: Option<reqwest::RequestBuilder>,
    tasks: tokio_util::task::TaskTracker,
}

impl Terminate {
    fn new(s: &SupabaseStorage, location: &url::Url) -> Self {
        Terminate {
            request: Some(
                s.http
                    .delete(location.clone())
                    .header("Tus-Resumable", TUS_VERSION)
                    // The server refuses to terminate an upload onto a path
                    // that holds an object (a job run again) without it; the
                    // object itself is left alone.
                    .header("x-upsert", "true")
                    .timeout(Duration::from_secs(30)),
            ),
            tasks: s.background.clone(),
        }
    }

    fn finished(mut self) {
        self.request = None;
    }
}

impl Drop for Terminate {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        // Dropped inside the runtime (a job's future): the request goes out
        // on its own task, as the job is gone; the daemon waits for such
        // tasks before it exits (`SupabaseStorage::finish`).
        if tokio::runtime::Handle::try_current().is_ok() {
            self.tasks.spawn(async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {
                        tracing::debug!("terminated an unfinished upload")
                    }
                    Ok(r) => tracing::warn!(
                        "could not terminate an unfinished upload: HTTP {}",
                        r.status()
                    ),
                    Err(e) => {
                        tracing::warn!("could not terminate an unfinished upload: {}", describe(&e))
                    }
                }
            });
        }
    }
}

/// Passing failures, and an offset the server disagrees with (409): both
/// are mended by asking the server where it is. A 409 that says the object
/// "already exists" is not about offsets: asking again gets the same answer.
/// (TUS routes answer in plain text; the status and the words decide.)
fn resumable(e: &StorageError) -> bool {
    e.is_transient()
        || matches!(e, StorageError::Status { status: 409, message, .. }
            if !message.to_lowercase().contains("already exists"))
}

/// The upload URL leads nowhere any more; the bucket itself is fine.
fn upload_gone(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Status {
            status: 404 | 410,
            ..
        }
    ) && !e.is_missing_bucket()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn create(
    s: &SupabaseStorage,
    path: &str,
    content_type: &str,
    size: u64,
) -> Result<url::Url, StorageError> {
    let url = s.url(&["upload", "resumable"]);
    let metadata = format!(
        "bucketName {},objectName {},contentType {},cacheControl {}",
        b64(&s.bucket.id),
        b64(path),
        b64(content_type),
        b64("3600")
    );
    let response = s
        .send(|| {
            s.http
                .post(url.clone())
                .header("Tus-Resumable", TUS_VERSION)
                .header("Upload-Length", size)
                .header("Upload-Metadata", metadata.clone())
                .header("x-upsert", "true")
        })
        .await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            StorageError::Protocol("no Location in the reply to the upload creation".into())
        })?;
    resolve_location(&s.base, location)
}

/// The upload URL: the Location's path (and query) on the configured
/// project URL. The server builds an absolute Location from the request's
/// host and forwarded headers, and with NODE_ENV=production always says
/// https://: behind plain http such a Location does not answer. Hosted
/// Supabase's (the project URL itself) and relative ones read the same.
fn resolve_location(base: &url::Url, location: &str) -> Result<url::Url, StorageError> {
    let given = base
        .join(location)
        .map_err(|e| StorageError::Protocol(format!("unusable upload Location: {e}")))?;
    let mut url = base.clone();
    url.set_path(given.path());
    url.set_query(given.query());
    Ok(url)
}

/// Sends one chunk; returns the server's new offset.
async fn patch(
    s: &SupabaseStorage,
    location: &url::Url,
    offset: u64,
    chunk: Vec<u8>,
) -> Result<u64, StorageError> {
    let sent = chunk.len() as u64;
    let response = s
        .http
        .patch(location.clone())
        .header("Tus-Resumable", TUS_VERSION)
        .header("Upload-Offset", offset)
        .header("Content-Type", "application/offset+octet-stream")
        // The server reads x-upsert on every PATCH (it checks for an
        // existing object per request and again when the upload ends):
        // without it, a job run again after its upload finished is refused.
        .header("x-upsert", "true")
        .body(chunk)
        .send()
        .await
        .map_err(|e| StorageError::Transport(describe(&e)))?;
    let response = check(response).await?;
    Ok(offset_header(&response).unwrap_or(offset + sent))
}

async fn server_offset(s: &SupabaseStorage, location: &url::Url) -> Result<u64, StorageError> {
    let response = s
        .send(|| {
            s.http
                .head(location.clone())
                .header("Tus-Resumable", TUS_VERSION)
        })
        .await?;
    offset_header(&response)
        .ok_or_else(|| StorageError::Protocol("no Upload-Offset in the reply to HEAD".into()))
}

fn offset_header(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_keeps_its_path_on_the_project_url() {
        let base: url::Url = "http://storage.internal:8000/storage/v1".parse().unwrap();
        let at = |l: &str| resolve_location(&base, l).unwrap().to_string();
        let want = "http://storage.internal:8000/storage/v1/upload/resumable/abc";
        assert_eq!(
            at("https://storage.internal/storage/v1/upload/resumable/abc"),
            want
        );
        assert_eq!(at("/storage/v1/upload/resumable/abc"), want);
        assert_eq!(at(want), want);
        let hosted: url::Url = "https://ref.supabase.co/storage/v1".parse().unwrap();
        assert_eq!(
            resolve_location(
                &hosted,
                "https://ref.supabase.co/storage/v1/upload/resumable/x?t=1"
            )
            .unwrap()
            .as_str(),
            "https://ref.supabase.co/storage/v1/upload/resumable/x?t=1"
        );
    }
}
