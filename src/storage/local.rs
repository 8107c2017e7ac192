//! The `local` backend: files under `XTRACT_LOCAL_STORAGE_DIR`.

use std::path::{Path, PathBuf};

use super::{AudioStore, StoredObject};
use crate::domain::{ErrorCode, JobError};

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Creates the directory if needed; the root is made absolute so that
    /// `file_url` names the file wherever it is read from.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(LocalStorage {
            root: root.canonicalize()?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn storage_error(what: &str, e: std::io::Error) -> JobError {
        JobError::new(
            ErrorCode::Storage,
            None,
            format!("local storage: {what}: {e}"),
        )
    }
}

impl AudioStore for LocalStorage {
    async fn put(
        &self,
        path: &str,
        file: &Path,
        _content_type: &str,
    ) -> Result<StoredObject, JobError> {
        let dest = self.root.join(path);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        let src = file.to_path_buf();
        let dest_clone = dest.clone();
        // Copy to a temporary name, then rename: readers never see half a
        // file, and a retry replaces the old file in one step.
        let size = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            std::fs::create_dir_all(&dir)?;
            let tmp = tempfile::NamedTempFile::new_in(&dir)?;
            let size = std::fs::copy(&src, tmp.path())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&dest_clone).map_err(|e| e.error)?;
            Ok(size)
        })
        .await
        .map_err(|e| JobError::internal(format!("local storage task: {e}")))?
        .map_err(|e| Self::storage_error("writing the file", e))?;
        Ok(StoredObject {
            path: path.to_string(),
            url: url::Url::from_file_path(&dest)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| dest.display().to_string()),
            size,
        })
    }

    async fn copy(&self, from: &str, to: &str, _size: u64) -> Result<StoredObject, JobError> {
        let source = self.root.join(from);
        self.put(to, &source, "").await
    }

    async fn delete(&self, path: &str) -> Result<(), JobError> {
        match tokio::fs::remove_file(self.root.join(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::storage_error("deleting the file", e)),
        }
    }
}
