//! Where finished audio goes. One trait, one backend per place: `local`
//! (a directory; development and single-VM setups) and, in production,
//! Supabase Storage.

pub mod local;
pub mod supabase;

use std::future::Future;
use std::path::Path;

use uuid::Uuid;

use crate::domain::JobError;

pub use local::LocalStorage;
pub use supabase::SupabaseStorage;

/// `<user_id>/<job_id>.<ext>`: one object per job, so a retried job
/// overwrites its own object instead of leaving a second one.
pub fn object_path(user_id: Uuid, job_id: Uuid, ext: &str) -> String {
    format!("{user_id}/{job_id}.{ext}")
}

/// A stored object, as the `audio_files` row describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The path inside the store (`audio_files.storage_path`).
    pub path: String,
    /// Where the app fetches it (`audio_files.file_url`).
    pub url: String,
    pub size: u64,
}

pub trait AudioStore: Send + Sync + 'static {
    /// Stores `file` at `path`, replacing what is there.
    fn put(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
    ) -> impl Future<Output = Result<StoredObject, JobError>> + Send;

    /// Copies an object inside the store (de-duplication: each user gets an
    /// object under their own folder). `size` is the source's, from its audio
    /// row: a copy has the same bytes, and asking the store would take an
    /// endpoint Supabase does not document. A backend that cannot copy copies
    /// nothing, and the job downloads the video instead.
    fn copy(
        &self,
        _from: &str,
        _to: &str,
        _size: u64,
    ) -> impl Future<Output = Result<StoredObject, JobError>> + Send {
        async {
            Err(JobError::internal(
                "this storage backend cannot copy objects",
            ))
        }
    }

    /// Removes the object; a missing object is not an error.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), JobError>> + Send;
}
