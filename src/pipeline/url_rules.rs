//! Placeholder until the full URL rules land.
use crate::pipeline::Platform;

pub struct UrlPolicy {
    pub allow_other: bool,
    pub allow_private: bool,
    pub max_len: usize,
}
impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            allow_other: false,
            allow_private: false,
            max_len: 2048,
        }
    }
}
pub struct JobUrl {
    pub url: url::Url,
    pub platform: Platform,
    pub canonical: String,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("This link is not valid.")]
    Invalid,
    #[error("Links from this site are not supported. Use an Instagram, TikTok or YouTube link.")]
    UnsupportedSite,
}

pub fn parse_job_url(raw: &str, policy: &UrlPolicy) -> Result<JobUrl, UrlError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| UrlError::Invalid)?;
    let host = url.host_str().unwrap_or("");
    let platform = if host.ends_with("tiktok.com") {
        Platform::TikTok
    } else if host.ends_with("instagram.com") {
        Platform::Instagram
    } else if host.ends_with("youtube.com") {
        Platform::YouTube
    } else if (host == "127.0.0.1" && policy.allow_private) || policy.allow_other {
        Platform::Other
    } else {
        return Err(UrlError::UnsupportedSite);
    };
    Ok(JobUrl {
        canonical: url.to_string(),
        url,
        platform,
    })
}

pub async fn check_resolved_host(_job: &JobUrl, _policy: &UrlPolicy) -> Result<(), UrlError> {
    Ok(())
}

pub fn is_forbidden_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        std::net::IpAddr::V6(v) => v.is_loopback(),
    }
}
