//! Supabase Storage's settings (XTRACT_STORAGE=supabase), read here, by the
//! backend that uses them.

use crate::settings::{credential, err, one_secret, parse, ConfigError, Secret};

/// The systemd credential that holds the key (`$CREDENTIALS_DIRECTORY/supabase-service-key`).
pub const SERVICE_KEY_CREDENTIAL: &str = "supabase-service-key";

/// Supabase Storage (XTRACT_STORAGE=supabase).
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    /// `https://<project>.supabase.co`
    pub url: url::Url,
    pub service_role_key: Secret,
    pub bucket: String,
    /// Files larger than this go up with resumable (TUS) uploads.
    pub resumable_threshold: u64,
}

impl SupabaseSettings {
    /// Reads the Supabase Storage settings. Errors are kept, not raised: only
    /// the daemon with XTRACT_STORAGE=supabase needs them.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = get("SUPABASE_URL")
            .ok_or_else(|| err("SUPABASE_URL", "not set (https://<project>.supabase.co)"))?;
        let url = url::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| err("SUPABASE_URL", format!("'{raw}' is not an http(s) URL")))?;
        // The project URL: xtract adds /storage/v1 itself. A path here (the
        // Storage URL copied from the dashboard) would make every request miss,
        // and look like a missing bucket.
        if !matches!(url.path(), "" | "/") {
            return Err(err(
                "SUPABASE_URL",
                format!(
                    "'{raw}' has a path ({}); give the project URL alone, https://<ref>.supabase.co",
                    url.path()
                ),
            ));
        }
        let from_env = match (
            get("SUPABASE_SERVICE_ROLE_KEY"),
            get("SUPABASE_SERVICE_ROLE_KEY_FILE"),
        ) {
            (Some(k), _) => Some(k),
            // A file of the operator's choosing (a secrets mount).
            (None, Some(path)) => Some(std::fs::read_to_string(path.trim()).map_err(|e| {
                err(
                    "SUPABASE_SERVICE_ROLE_KEY_FILE",
                    format!("cannot read {path}: {e}"),
                )
            })?),
            (None, None) => None,
        };
        let from_env = from_env.map(|k| Secret::new(k.trim()));
        // systemd's credential (LoadCredential=), the unit's way.
        let from_credential = credential(get, SERVICE_KEY_CREDENTIAL)?;
        let key = one_secret(
            "SUPABASE_SERVICE_ROLE_KEY",
            from_env,
            SERVICE_KEY_CREDENTIAL,
            from_credential,
        )?
        .ok_or_else(|| {
            err(
                "SUPABASE_SERVICE_ROLE_KEY",
                format!(
                    "not set (or set SUPABASE_SERVICE_ROLE_KEY_FILE, or give the systemd credential {SERVICE_KEY_CREDENTIAL})"
                ),
            )
        })?;
        if key.expose().is_empty() {
            return Err(err("SUPABASE_SERVICE_ROLE_KEY", "is empty"));
        }
        let threshold_mb = parse(
            get,
            "XTRACT_RESUMABLE_THRESHOLD_MB",
            6.0,
            |n: &f64| *n >= 0.0,
            "a number of megabytes",
        )?;
        Ok(SupabaseSettings {
            url,
            service_role_key: key,
            bucket: get("XTRACT_STORAGE_BUCKET").unwrap_or_else(|| "audio-files".into()),
            resumable_threshold: (threshold_mb * 1024.0 * 1024.0) as u64,
        })
    }
}
