//! The one error type of a job. Every failure path builds a [`JobError`]; it
//! carries the machine-readable code, the sentence a user reads, the technical
//! detail an operator reads, and the retry decision. Nothing else decides
//! retries.

use std::fmt;
use std::time::Duration;

use super::platform::Platform;

/// Machine-readable reason, stored in `processing_jobs.error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    RateLimited,
    BotCheck,
    LoginRequired,
    Private,
    Unavailable,
    Copyright,
    GeoBlocked,
    AgeRestricted,
    LiveNotStarted,
    UnsupportedUrl,
    InvalidUrl,
    NoFormats,
    NoAudio,
    TooLong,
    TooLarge,
    HttpForbidden,
    NotFound,
    Network,
    Storage,
    Internal,
    /// The worker holding the job stopped heart-beating (killed, VM lost).
    WorkerLost,
    /// yt-dlp blames itself: an extractor that no longer understands a page
    /// it should ("Unable to extract …", "please report this issue"). The fix
    /// is upgrading yt-dlp, not telling the user the video is private.
    ExtractorOutdated,
    /// The video is encrypted (DRM); no tool of ours may decrypt it.
    DrmProtected,
    /// The job ran past its time limit (a hung download) and was stopped.
    Timeout,
}

/// What the queue does with a job after this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Fail the job now: retrying cannot help (private video, bad URL, ...).
    Never,
    /// Retry with exponential backoff while attempts remain.
    Backoff,
    /// The platform is limiting us: wait for its cooldown, without spending
    /// an attempt.
    Cooldown,
    /// Not a failure: the platform's next free request slot is too far away
    /// to wait for while holding a worker slot. Run later, attempt not
    /// spent, last error left as it was.
    Defer,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 24] = [
        Self::RateLimited,
        Self::BotCheck,
        Self::LoginRequired,
        Self::Private,
        Self::Unavailable,
        Self::Copyright,
        Self::GeoBlocked,
        Self::AgeRestricted,
        Self::LiveNotStarted,
        Self::UnsupportedUrl,
        Self::InvalidUrl,
        Self::NoFormats,
        Self::NoAudio,
        Self::TooLong,
        Self::TooLarge,
        Self::HttpForbidden,
        Self::NotFound,
        Self::Network,
        Self::Storage,
        Self::Internal,
        Self::WorkerLost,
        Self::ExtractorOutdated,
        Self::DrmProtected,
        Self::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::BotCheck => "bot_check",
            Self::LoginRequired => "login_required",
            Self::Private => "private",
            Self::Unavailable => "unavailable",
            Self::Copyright => "copyright",
            Self::GeoBlocked => "geo_blocked",
            Self::AgeRestricted => "age_restricted",
            Self::LiveNotStarted => "live_not_started",
            Self::UnsupportedUrl => "unsupported_url",
            Self::InvalidUrl => "invalid_url",
            Self::NoFormats => "no_formats",
            Self::NoAudio => "no_audio",
            Self::TooLong => "too_long",
            Self::TooLarge => "too_large",
            Self::HttpForbidden => "http_forbidden",
            Self::NotFound => "not_found",
            Self::Network => "network",
            Self::Storage => "storage",
            Self::Internal => "internal",
            Self::WorkerLost => "worker_lost",
            Self::ExtractorOutdated => "extractor_outdated",
            Self::DrmProtected => "drm_protected",
            Self::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The retry decision for this kind of failure.
    pub fn retry(self) -> Retry {
        match self {
            // The platform pushes back on us, not on this video.
            Self::RateLimited | Self::BotCheck => Retry::Cooldown,
            // Passing faults on our side or the network's.
            Self::HttpForbidden
            | Self::Network
            | Self::Storage
            | Self::Internal
            | Self::WorkerLost
            // Spends an attempt, but not before `min_retry_delay`: see there.
            | Self::ExtractorOutdated
            // A hung request or a stalled stream may go through next time.
            | Self::Timeout => Retry::Backoff,
            // Facts about the video or the link: the same request fails again.
            Self::LoginRequired
            | Self::Private
            | Self::Unavailable
            | Self::Copyright
            | Self::GeoBlocked
            | Self::AgeRestricted
            | Self::LiveNotStarted
            | Self::UnsupportedUrl
            | Self::InvalidUrl
            | Self::NoFormats
            | Self::NoAudio
            | Self::TooLong
            | Self::TooLarge
            | Self::NotFound
            | Self::DrmProtected => Retry::Never,
        }
    }

    /// The shortest wait before a `Backoff` retry of this kind of failure.
    ///
    /// An outdated extractor fails every video of its site the same way
    /// until yt-dlp is upgraded, so retrying within seconds only spends the
    /// job's attempts (and requests to the site). Half an hour gives the
    /// operator, alerted by `xtract_extractor_outdated_total` or `xtract
    /// doctor`, time to upgrade (`xtract tools upgrade` takes minutes), and
    /// lets a page the extractor misread once (Instagram serving its login
    /// page instead of the post) come back normal; the user still gets the
    /// audio the same day. Not a `Cooldown`: one post yt-dlp cannot read
    /// must not pause the whole platform for everyone.
    pub fn min_retry_delay(self) -> Option<Duration> {
        match self {
            Self::ExtractorOutdated => Some(Duration::from_secs(30 * 60)),
            _ => None,
        }
    }

    /// What helps, in a sentence for operators: the dashboard's
    /// `xtract.operator_advice` (sql/012) says the same, word for word
    /// (`tests/docs.rs` checks), and docs/errors.md lists it.
    pub fn what_helps(self) -> &'static str {
        match self {
            Self::RateLimited => "The platform is limiting this server: it pauses itself; add egresses or wait.",
            Self::BotCheck => "The platform wants proof of a person: add cookies or a proof-of-origin token provider, or another egress.",
            Self::LoginRequired => "Only signed-in viewers may see it: add a cookie file for the platform (XTRACT_COOKIES_DIR).",
            Self::Private => "Private or deleted: nothing to do.",
            Self::Unavailable => "Deleted or unavailable: nothing to do.",
            Self::Copyright => "Blocked for copyright: nothing to do.",
            Self::GeoBlocked => "Not available where this server is: an egress in another country could get it.",
            Self::AgeRestricted => "Age-restricted: needs cookies of an adult account.",
            Self::LiveNotStarted => "A live stream or premiere: retry after it ends.",
            Self::UnsupportedUrl => "Not a link xtract takes: nothing to do.",
            Self::InvalidUrl => "The link is wrong: nothing to do.",
            Self::NoFormats => "No downloadable format: upgrade yt-dlp (xtract tools upgrade) if this repeats.",
            Self::NoAudio => "The video has no sound: nothing to do.",
            Self::TooLong => "Over XTRACT_MAX_DURATION_SECS: raise it if it should pass.",
            Self::TooLarge => "Over XTRACT_MAX_FILESIZE_MB or the bucket's size limit.",
            Self::HttpForbidden => "The platform refused the download: retried; upgrade yt-dlp if it repeats.",
            Self::NotFound => "The video is gone or the link is wrong: nothing to do.",
            Self::Network => "The platform could not be reached: check this server's network.",
            Self::Storage => "Storage refused or failed: run xtract doctor (key, bucket, limits).",
            Self::Internal => "An unexpected fault: read error_detail and the daemon's log.",
            Self::WorkerLost => "The daemon running it stopped: check the service (journalctl -u xtract).",
            Self::Timeout => "It ran past its time limit (XTRACT_JOB_TIMEOUT_SECS): check the platform and the network.",
            Self::ExtractorOutdated => "yt-dlp no longer understands the site: upgrade it (xtract tools upgrade).",
            Self::DrmProtected => "DRM-protected: nothing to do.",
        }
    }

    /// The sentence a user of the app reads in `error_message`.
    pub fn user_message(self, platform: Option<Platform>) -> String {
        let site = platform
            .map(|p| p.display_name())
            .unwrap_or("The video site");
        match self {
            Self::RateLimited if platform == Some(Platform::Instagram) => {
                "Instagram Rate Limit Reached: Instagram is limiting downloads right now. \
                 Please wait 5–10 minutes and try again."
                    .into()
            }
            Self::RateLimited => format!(
                "{site} is limiting downloads right now. Please wait a few minutes and try again."
            ),
            Self::BotCheck => format!(
                "{site} asked us to prove we are not a robot. Please try again in a few minutes."
            ),
            Self::LoginRequired => {
                "This video can only be watched by signed-in viewers, so it cannot be downloaded."
                    .into()
            }
            Self::Private | Self::Unavailable => {
                "Video Processing Failed: the video is private, deleted or temporarily unavailable."
                    .into()
            }
            Self::Copyright => "This video has been blocked for copyright reasons.".into(),
            Self::GeoBlocked => {
                "This video is not available in the country where we download it.".into()
            }
            Self::AgeRestricted => {
                "This video is age-restricted and cannot be downloaded without signing in.".into()
            }
            Self::LiveNotStarted => {
                "This is a live stream or premiere that has not finished yet. Try again after it ends."
                    .into()
            }
            Self::UnsupportedUrl => {
                "This link is not supported. Use a link to one Instagram, TikTok or YouTube video."
                    .into()
            }
            Self::InvalidUrl => "This link is not valid. Check it and try again.".into(),
            Self::NoFormats => "No downloadable version of this video was found.".into(),
            Self::NoAudio => "This video has no sound to extract.".into(),
            Self::TooLong => "This video is longer than the allowed length.".into(),
            Self::TooLarge => "This video is larger than the allowed size.".into(),
            Self::HttpForbidden => format!("{site} refused the download. Please try again later."),
            Self::NotFound => "This video could not be found. Check the link.".into(),
            Self::Network => {
                format!("We could not reach {site}. Please try again later.")
            }
            Self::Storage => "The audio file could not be saved. Please try again later.".into(),
            Self::Internal => "Something went wrong while processing this video.".into(),
            Self::WorkerLost => {
                "The server processing this video stopped unexpectedly. Please try again.".into()
            }
            Self::ExtractorOutdated => format!(
                "{site} has changed in a way our downloader does not understand yet. \
                 We will try again later; if it keeps failing, please try again in a day or two."
            ),
            Self::DrmProtected => {
                "This video is copy-protected (DRM), so its audio cannot be extracted.".into()
            }
            Self::Timeout => {
                "Processing this video took too long and was stopped. Please try again later."
                    .into()
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed job: what went wrong, for whom, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub code: ErrorCode,
    /// Shown to the user (`error_message`).
    pub message: String,
    /// Shown to operators (`error_detail`, logs). Never holds secrets.
    pub detail: String,
    pub retry: Retry,
    /// How long to wait before the job may run again (Cooldown, Defer), or
    /// at least (Backoff: the longer of this and the queue's own backoff);
    /// None: the queue's own backoff or the platform's cooldown.
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// The usual constructor: message and retry decision follow from the code.
    pub fn new(code: ErrorCode, platform: Option<Platform>, detail: impl Into<String>) -> Self {
        JobError {
            code,
            message: code.user_message(platform),
            detail: detail.into(),
            retry: code.retry(),
            retry_after: code.min_retry_delay(),
        }
    }

    /// A job that must wait `delay` for its platform's turn.
    pub fn defer(platform: Platform, delay: Duration) -> Self {
        JobError {
            code: ErrorCode::RateLimited,
            message: String::new(),
            detail: format!(
                "waiting {:.0}s for {platform}'s next request slot",
                delay.as_secs_f64()
            ),
            retry: Retry::Defer,
            retry_after: Some(delay),
        }
    }

    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, None, detail)
    }

    /// Replaces the user-facing sentence (e.g. to name a limit).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.code, self.message, self.detail)
    }
}

impl std::error::Error for JobError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn instagram_rate_limit_keeps_the_old_services_words() {
        let e = JobError::new(ErrorCode::RateLimited, Some(Platform::Instagram), "429");
        assert!(e.message.starts_with("Instagram Rate Limit Reached"));
        assert!(e.message.contains("5–10 minutes"));
        assert_eq!(e.retry, Retry::Cooldown);
    }

    #[test]
    fn facts_about_the_video_are_not_retried() {
        for code in [
            ErrorCode::Private,
            ErrorCode::InvalidUrl,
            ErrorCode::NoAudio,
        ] {
            assert_eq!(code.retry(), Retry::Never, "{code}");
        }
        assert_eq!(ErrorCode::Network.retry(), Retry::Backoff);
        assert_eq!(ErrorCode::DrmProtected.retry(), Retry::Never);
    }

    #[test]
    fn an_outdated_extractor_waits_for_an_upgrade_before_its_retry() {
        let e = JobError::new(ErrorCode::ExtractorOutdated, Some(Platform::TikTok), "x");
        assert_eq!(e.retry, Retry::Backoff);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30 * 60)));
        assert!(e.message.starts_with("TikTok has changed"), "{}", e.message);
        assert_eq!(
            JobError::new(ErrorCode::Network, None, "x").retry_after,
            None
        );
    }
}
