//! Reading yt-dlp's and ffmpeg's failures. yt-dlp ends with one or more
//! `ERROR:` lines (the last one is the reason); its wording comes partly from
//! yt-dlp and partly from the platform (YouTube's own sentences, with a curly
//! apostrophe in "you’re"). The rules below are tried in order; the first
//! match decides the code.
//!
//! # Where the rules come from, and how to refresh them
//!
//! The rules are built from yt-dlp's source, not from samples: every message
//! its YouTube, TikTok, Instagram and generic extractors, its extractor base
//! class, YoutubeDL and its downloaders can end a download with has a row in
//! `tests/data/ytdlp-errors.toml` (the exact output as yt-dlp prints it →
//! the code), and `real_yt_dlp_errors_get_the_right_code` checks every row.
//! When yt-dlp changes:
//!
//! 1. `scripts/ytdlp-error-sources` lists every raise site (`ExtractorError`,
//!    `raise_login_required`, `raise_geo_restricted`, `raise_no_formats`,
//!    `report_drm`, `report_error`, `ContentTooShortError`, …) in
//!    `extractor/youtube/_video.py`, `extractor/youtube/_base.py`,
//!    `extractor/tiktok.py`, `extractor/instagram.py`, `extractor/generic.py`,
//!    `extractor/common.py`, `utils/_utils.py`, `YoutubeDL.py` and
//!    `downloader/*.py`; `--diff OLD NEW` shows only what changed between two
//!    yt-dlp trees (`pip download yt-dlp==X --no-deps` and unzip, or a
//!    checkout's `yt_dlp/`).
//! 2. For each new or changed message, add a row to the table: the line as
//!    yt-dlp prints it (`ERROR: [Extractor] id: message`, then ` (caused by
//!    …)` and the "please report this issue" trailer when the error was not
//!    `expected=True`), with the code it deserves. YouTube's own playability
//!    sentences are not in yt-dlp's source: they reach us through
//!    `raise_no_formats(reason)` in `_video.py`.
//! 3. Run `cargo test --lib classify`; extend the needles below until every
//!    row passes, keeping the specific codes above the catch-alls.

use super::url_rules;
use crate::domain::{ErrorCode, JobError, Platform, Retry};

/// What the output says went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: ErrorCode,
    /// The error block, trimmed of yt-dlp's bug-report boilerplate.
    pub detail: String,
    /// The platform put a login wall in front of a logged-out client
    /// (`LOGIN_WALLS`): pushback, like a rate limit, not a fact about the
    /// video.
    pub wall: bool,
}

impl Diagnosis {
    fn new(code: ErrorCode, detail: String) -> Diagnosis {
        Diagnosis {
            code,
            detail,
            wall: false,
        }
    }

    /// The job's error. A login wall pauses the platform on its egress
    /// without spending the job's attempt, as a rate limit does
    /// (`XTRACT_MAX_PAUSES` bounds how often one job can meet it), and says
    /// so in words that do not call a public video private.
    pub fn job_error(self, platform: Platform) -> JobError {
        let error = JobError::new(self.code, Some(platform), self.detail);
        if !self.wall {
            return error;
        }
        error.with_retry(Retry::Cooldown).with_message(format!(
            "{} is showing this video only to signed-in viewers right now. \
             Please try again later; if it keeps failing, the video may be private.",
            platform.display_name()
        ))
    }
}

/// A login wall in front of a logged-out client, as opposed to a video
/// that needs an account (members-only, a private account): Instagram's
/// "empty media response" to a logged-out request (June 2026: every
/// logged-out request for weeks; a request too many from one address at
/// other times) and TikTok's redirect to `/login`. Both come and go with
/// the platform's mood toward an address, so they pause the platform on
/// that egress like a rate limit instead of failing the job. Instagram's
/// redirect of the post page to the login page says "exceeded the
/// rate-limit" and is `rate_limited` itself.
const LOGIN_WALLS: &[&str] = &[
    "empty media response",
    "requiring login for access to this content",
];

/// Ordered: a more specific reason must come before a general one that
/// would also match (a bot check mentions cookies; an age gate says "sign
/// in"; a country block names copyright; a 404 comes inside "Unable to
/// download webpage"; almost anything may carry the "please report this
/// issue" trailer, so it is the last rule).
const YTDLP_RULES: &[(ErrorCode, &[&str])] = &[
    (
        ErrorCode::BotCheck,
        &[
            "not a bot",
            "captcha challenge",
            // generic.py: Cloudflare's challenge page.
            "anti-bot challenge",
        ],
    ),
    (
        ErrorCode::RateLimited,
        &[
            "http error 429",
            "too many requests",
            "rate-limit reached",
            "rate-limited by youtube",
            "exceeded the rate-limit",
            "content isn't available, try again later",
            "content isn’t available, try again later",
            "your ip is likely being blocked",
            "redirected to the login page",
        ],
    ),
    (
        ErrorCode::GeoBlocked,
        &[
            "not made this video available in your country",
            "not available in your country",
            "not available from your location",
            // YouTube: "… contains content from X, who has blocked it in
            // your country [on copyright grounds]": blocked here, maybe not
            // elsewhere, whoever asked for it.
            "blocked it in your country",
            "geo restriction",
            "geo-restrict",
            "use a vpn or a proxy",
            // common.py __check_blocked: the network we download from.
            "access to this webpage has been blocked",
            // tiktok.py, status 10204: a post TikTok keeps from viewers in
            // the address's region (older versions printed the bare
            // status). Not a rate limit: other posts from the same address
            // keep working, so the platform must not pause for it.
            "ip address is blocked from accessing this post",
            "status code 10204",
        ],
    ),
    (
        ErrorCode::Copyright,
        &[
            "copyright grounds",
            // The embedded player's wording of a rights holder's block.
            "blocked it from display",
            "copyright claim",
            "copyright infringement",
            "due to a copyright",
        ],
    ),
    (
        ErrorCode::AgeRestricted,
        &[
            "confirm your age",
            "age-restricted",
            "age restricted",
            "age-verification",
            "age verification",
            "inappropriate for some users",
            "years old or over",
            // tiktok.py: isContentClassified.
            "not be comfortable for some audiences",
        ],
    ),
    (
        ErrorCode::LiveNotStarted,
        &[
            "live event will begin",
            "premieres in",
            "premiere will begin",
            "this live event has not started",
            "waiting for scheduled stream",
            "live stream has not started",
            // utils UserNotLive.
            "not currently live",
        ],
    ),
    (
        ErrorCode::Private,
        &[
            "private video",
            "video is private",
            "account is private",
            "post is private",
            "registered users who follow this account",
            // tiktok.py: 10216 private post, 10222 private account (older
            // versions printed the bare status).
            "do not have permission to view",
            // tiktok.py, a profile: the account or all its videos private.
            "account is likely either private",
            "status code 10216",
            "status code 10222",
        ],
    ),
    (
        ErrorCode::LoginRequired,
        &[
            "login required",
            "log in to",
            "logged-in",
            "sign in",
            "only available for registered users",
            "login details are needed",
            "requiring login",
            "members-only",
            "channel's members",
            "join this channel",
            "music premium",
            "requires payment",
            "requires authentication",
            "empty media response",
            "restricted video",
            "content is unreachable",
            "fresh cookies",
            "use --cookies",
        ],
    ),
    (
        // Sentences that blame the client yt-dlp plays, not the video;
        // they come with "Video unavailable", so they go first.
        ErrorCode::ExtractorOutdated,
        &[
            "not available on this app",
            "latest version of youtube",
            // tiktok.py: status 0 is "ok", yet the page had no video data.
            "status code 0",
        ],
    ),
    (ErrorCode::DrmProtected, &["drm protected"]),
    (
        ErrorCode::Unavailable,
        &[
            "video unavailable",
            "has been removed",
            "no longer available",
            "has been terminated",
            "may have been deleted",
            "this video is unavailable",
            "this video is not available",
            "content isn't available",
            "content isn’t available",
            "post isn't available",
            "post isn’t available",
            "isn't available anymore",
            "isn’t available anymore",
            "recording is not available",
            "video has been deleted",
            "post was deleted",
            "closed their youtube account",
            "livestream has ended",
            "live event has ended",
            // tiktok.py: a status yt-dlp has no words for.
            "video not available, status code",
            "does not have any videos posted",
        ],
    ),
    (ErrorCode::UnsupportedUrl, &["unsupported url"]),
    (
        ErrorCode::InvalidUrl,
        &[
            "is not a valid url",
            "invalid url",
            // instagram.py: a story highlight link cut short.
            "missing a highlight id",
        ],
    ),
    (
        ErrorCode::NoFormats,
        &[
            "requested format is not available",
            "no video formats found",
            "no video in this post",
        ],
    ),
    (
        ErrorCode::TooLarge,
        &["larger than max-filesize", "exceeds max-filesize"],
    ),
    (
        ErrorCode::NoAudio,
        &["does not contain any stream", "no audio"],
    ),
    (
        // An extractor that no longer understands a page it should.
        ErrorCode::ExtractorOutdated,
        &[
            // common.py _search_regex/_search_json (RegexNotFoundError).
            "unable to extract",
            // common.py _parse_json/_parse_xml.
            "failed to parse json",
            "failed to parse xml",
            // common.py extract(): KeyError/StopIteration in an extractor.
            "an extractor error has occurred",
            "failed to extract any player response",
            "cannot identify player",
            "unexpected response from webpage request",
            "unable to solve js challenge",
            "missing \"id\" field",
            "failed to obtain \"id\"",
            "could not find xml element",
            // curl_cffi missing or too old for the site's impersonation.
            "no impersonate target is available",
            // The site refuses the request yt-dlp builds.
            "http error 400",
            // tiktok.py: its API paging went round in circles.
            "different device_id",
            "avoid an infinite loop",
            // yt-dlp refuses options it was given (the platforms file's
            // `ytdlp_args`, a feature yt-dlp dropped): not the user's link,
            // and mended on the operator's side, as an upgrade is.
            "invalid netrc machine",
            "unsupported language code",
            "login with oauth is no longer supported",
            "no player clients have been requested",
            // Python errors escaping an extractor (YoutubeDL prints str(e)).
            "keyerror(",
            "typeerror(",
            "attributeerror(",
            "indexerror(",
            "object is not subscriptable",
            "object has no attribute",
            "object is not iterable",
            "object is not callable",
            "list index out of range",
            "unsupported operand type",
            "expected string or bytes-like object",
            "can only concatenate",
            "traceback (most recent call last)",
        ],
    ),
    (
        ErrorCode::HttpForbidden,
        &["http error 403", "403: forbidden", "http error 401"],
    ),
    (
        ErrorCode::NotFound,
        &[
            "http error 404",
            "404: not found",
            "http error 410",
            "video does not exist",
        ],
    ),
    (
        ErrorCode::Network,
        &[
            "unable to download webpage",
            "unable to download json",
            "unable to download api",
            "unable to download video data",
            "a network error has occurred",
            "urlopen error",
            "connection refused",
            "connection reset",
            "connection aborted",
            "timed out",
            "temporary failure in name resolution",
            "name or service not known",
            "failed to resolve",
            "network is unreachable",
            "no route to host",
            "remote end closed connection",
            "max retries exceeded",
            "failed to establish a new connection",
            "incompleteread",
            "transporterror",
            "http error 5",
            "ssl:",
            "curl: (",
            "giving up after",
            "incomplete data received",
            // Truncated and empty downloads (YoutubeDL, downloader/).
            "content too short",
            "bytes, expected",
            "downloaded file is empty",
            "did not get any data blocks",
            "not found, unable to continue",
        ],
    ),
    (
        // Anything else yt-dlp did not expect: it asks for a bug report.
        ErrorCode::ExtractorOutdated,
        &["please report this issue"],
    ),
];

/// Reads yt-dlp's stderr (stdout lines may be mixed in).
pub fn classify_ytdlp(output: &str) -> Diagnosis {
    let Some(block) = last_error_block(output) else {
        let last = output
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("WARNING:"))
            .unwrap_or("yt-dlp failed without saying why");
        return Diagnosis::new(ErrorCode::Internal, clip(last));
    };
    let lower = block.to_lowercase();
    let mut code = YTDLP_RULES
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| lower.contains(n)))
        .map_or(ErrorCode::Internal, |(code, _)| *code);
    if code == ErrorCode::Internal && is_bare_key_error(&block) {
        code = ErrorCode::ExtractorOutdated;
    }
    if code == ErrorCode::NoFormats && blames_its_youtube_kit(output) {
        // "Requested format is not available" after yt-dlp warned that it
        // could not solve YouTube's player challenges: every format was
        // dropped for want of a JavaScript runtime or a current solver, not
        // because the video has none. Upgrading (yt-dlp, yt-dlp-ejs) or
        // installing deno fixes it; the user's video is fine.
        code = ErrorCode::ExtractorOutdated;
    }
    if code == ErrorCode::NoFormats && warned_of_a_page_it_could_not_read(output) {
        // "No video formats found!" after yt-dlp warned that the page had
        // none of what it reads (YouTube's initial data and player response
        // gone: a redesign, seen in the rehearsal). The video may well have
        // formats; the extractor no longer finds them.
        code = ErrorCode::ExtractorOutdated;
    }
    if code == ErrorCode::ExtractorOutdated
        && lower.contains("failed to extract any player response")
        && output.to_lowercase().contains("http error 429")
    {
        // YouTube answered every player request with 429 (yt-dlp warns of
        // each, then gives up with a sentence that blames itself): a rate
        // limit, seen in the rehearsal.
        code = ErrorCode::RateLimited;
    }
    if code == ErrorCode::UnsupportedUrl && names_a_platform_video(&block) {
        // Our URL rules know this link as one video of a platform, but
        // yt-dlp does not know the form: its extractor is behind the site
        // (e.g. Instagram's /reels/ links before yt-dlp learnt them). The
        // user's link is fine. Links that redirect somewhere else (a TikTok
        // short link to a profile) stay unsupported.
        code = ErrorCode::ExtractorOutdated;
    }
    Diagnosis {
        code,
        detail: clip(&strip_boilerplate(&block)),
        wall: code == ErrorCode::LoginRequired && LOGIN_WALLS.iter().any(|n| lower.contains(n)),
    }
}

/// The warnings yt-dlp prints when its YouTube challenge solving failed
/// (youtube/_video.py, youtube/jsc/): what made the formats go missing.
fn blames_its_youtube_kit(output: &str) -> bool {
    let lower = output.to_lowercase();
    [
        "challenge solving failed",
        "no supported javascript runtime",
        "nsig extraction failed",
        "signature extraction failed",
    ]
    .iter()
    .any(|n| lower.contains(n))
}

/// The warnings yt-dlp prints when a page lacks the data its extractor
/// reads (youtube/_video.py: "unable to extract yt initial data", "…initial
/// player response"; common.py `_search_regex` with `fatal=False`).
fn warned_of_a_page_it_could_not_read(output: &str) -> bool {
    output.lines().any(|l| {
        let l = l.to_lowercase();
        l.starts_with("warning:") && l.contains("unable to extract")
    })
}

/// `ERROR: 'formats'`: a KeyError escaping an extractor prints only the key.
fn is_bare_key_error(block: &str) -> bool {
    let Some(rest) = block.trim().strip_prefix("ERROR:") else {
        return false;
    };
    let Some(key) = rest
        .trim()
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
    else {
        return false;
    };
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "Unsupported URL: <url>" where our own rules read `<url>` as one video
/// of a known platform.
fn names_a_platform_video(block: &str) -> bool {
    const MARK: &str = "Unsupported URL:";
    let Some(at) = block.find(MARK) else {
        return false;
    };
    let url = block[at + MARK.len()..]
        .split_whitespace()
        .next()
        .unwrap_or("");
    // TikTok photo posts pass our rules (their music is audio), but yt-dlp
    // has never read them: not a stale extractor.
    url_rules::parse_job_url(url, &url_rules::UrlPolicy::default())
        .is_ok_and(|link| link.platform != Platform::Other && !link.url.path().contains("/photo/"))
}

/// yt-dlp exits 0 (101 for a breaking filter) without a file when
/// `--match-filters`, `--break-match-filters` or `--max-filesize` turned the
/// video down; this finds which.
pub fn filter_rejection(output: &str) -> Option<Diagnosis> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.contains("does not pass filter") || l.contains("larger than max-filesize"))?;
    // Our filters are "!is_live" and "duration <=? N"; the line names the
    // one that refused, after the video's title.
    let filter = line.rsplit("does not pass filter").next().unwrap_or("");
    let code = if line.contains("max-filesize") {
        ErrorCode::TooLarge
    } else if filter.contains("duration") {
        ErrorCode::TooLong
    } else {
        ErrorCode::LiveNotStarted
    };
    Some(Diagnosis::new(code, clip(line)))
}

/// Reads ffmpeg's or ffprobe's stderr. A file that cannot be decoded is
/// `Unavailable` (the video cannot be processed; retrying the same bytes
/// will not help); a full disk is `Internal` (passing, retried).
pub fn classify_ffmpeg(stderr: &str) -> Diagnosis {
    let lower = stderr.to_lowercase();
    let code = if [
        "does not contain any stream",
        "matches no streams",
        "no audio",
    ]
    .iter()
    .any(|n| lower.contains(n))
    {
        ErrorCode::NoAudio
    } else if [
        "invalid data found when processing input",
        "moov atom not found",
        "could not find codec parameters",
        "error while decoding",
        "invalid argument",
        "end of file",
    ]
    .iter()
    .any(|n| lower.contains(n))
    {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    Diagnosis::new(
        code,
        clip(if detail.is_empty() {
            "ffmpeg failed without saying why"
        } else {
            &detail
        }),
    )
}

/// The last `ERROR:` line and the lines that continue it (multi-line geo
/// messages), up to the next WARNING/ERROR/[extractor] line.
fn last_error_block(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("ERROR:"))?;
    let mut block = vec![lines[start].trim()];
    for line in &lines[start + 1..] {
        let t = line.trim();
        if t.starts_with("WARNING:") || t.starts_with("ERROR:") || t.starts_with('[') {
            break;
        }
        if !t.is_empty() {
            block.push(t);
        }
    }
    Some(block.join("\n"))
}

/// Removes yt-dlp's "please report this issue … yt-dlp -U" request, which
/// says nothing about the failure.
fn strip_boilerplate(block: &str) -> String {
    let mut text = block.to_string();
    for marker in [
        "please report this issue",
        "Please report this issue",
        "Confirm you are on the latest version",
    ] {
        while let Some(start) = text.find(marker) {
            let end = text[start..]
                .find("yt-dlp -U")
                .map_or(text.len(), |i| start + i + "yt-dlp -U".len());
            text.replace_range(start..end, "");
        }
    }
    text.trim()
        .trim_end_matches([';', ',', ' '])
        .trim()
        .to_string()
}

fn clip(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_string();
    }
    let end = (0..=MAX)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorCode::*;

    const BUG_REPORT: &str = "; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U";

    /// One row of tests/data/ytdlp-errors.toml.
    #[derive(serde::Deserialize)]
    struct Row {
        source: String,
        output: String,
        code: String,
        /// A login wall: the platform pauses instead of the job failing.
        #[serde(default)]
        wall: bool,
    }

    #[derive(serde::Deserialize)]
    struct Table {
        row: Vec<Row>,
    }

    fn table() -> Vec<Row> {
        let text = include_str!("../../tests/data/ytdlp-errors.toml");
        toml::from_str::<Table>(text)
            .expect("tests/data/ytdlp-errors.toml")
            .row
    }

    #[test]
    fn real_yt_dlp_errors_get_the_right_code() {
        let table = table();
        assert!(table.len() >= 100, "only {} rows", table.len());
        let mut wrong = Vec::new();
        for row in &table {
            let want = ErrorCode::parse(&row.code)
                .unwrap_or_else(|| panic!("unknown code {:?} ({})", row.code, row.source));
            let got = classify_ytdlp(&row.output);
            if got.code != want || got.wall != row.wall {
                wrong.push(format!(
                    "{}\n  {}\n  want {want} (wall: {}), got {} (wall: {})",
                    row.source, row.output, row.wall, got.code, got.wall
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} rows:\n{}",
            wrong.len(),
            table.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn a_login_wall_pauses_the_platform_and_says_so_without_calling_the_video_private() {
        let wall = classify_ytdlp(
            "ERROR: [TikTok] 7106594312292453675: TikTok is requiring login for access to this content. Use --cookies-from-browser or --cookies for the authentication.",
        )
        .job_error(Platform::TikTok);
        assert_eq!(wall.code, LoginRequired);
        assert_eq!(wall.retry, Retry::Cooldown);
        assert!(
            wall.message
                .starts_with("TikTok is showing this video only to signed-in viewers"),
            "{}",
            wall.message
        );
        // A video that needs an account is a fact about the video.
        let members = classify_ytdlp("ERROR: [youtube] dQw4w9WgXcQ: Join this channel to get access to members-only content like this video, and other exclusive perks.")
            .job_error(Platform::YouTube);
        assert_eq!((members.code, members.retry), (LoginRequired, Retry::Never));
    }

    #[test]
    fn every_code_the_classifier_gives_has_a_row() {
        let table = table();
        for (code, _) in YTDLP_RULES {
            assert!(
                table.iter().any(|r| r.code == code.as_str()),
                "no row for {code}"
            );
        }
    }

    #[test]
    fn the_detail_is_the_last_error_without_boilerplate() {
        let output = format!(
            "WARNING: [TikTok] retrying\nERROR: [TikTok] 1: first\nERROR: [TikTok] 7: Unable to extract universal data for rehydration{BUG_REPORT}\n"
        );
        let d = classify_ytdlp(&output);
        assert_eq!(
            d.detail,
            "ERROR: [TikTok] 7: Unable to extract universal data for rehydration"
        );
    }

    #[test]
    fn a_geo_message_keeps_its_continuation_lines() {
        let d = classify_ytdlp("ERROR: [youtube] x: The uploader has not made this video available in your country\nThis video is available in Germany.\nYou might want to use a VPN or a proxy server (with --proxy) to workaround.\n[debug] done");
        assert!(d.detail.contains("available in Germany"), "{}", d.detail);
        assert!(!d.detail.contains("[debug]"));
    }

    #[test]
    fn long_details_are_clipped() {
        let d = classify_ytdlp(&format!("ERROR: {}", "é".repeat(1000)));
        assert!(d.detail.len() <= 504, "{}", d.detail.len());
    }

    #[test]
    fn output_without_an_error_line_is_internal_with_its_last_words() {
        let d = classify_ytdlp(
            "[generic] x: Downloading webpage\nWARNING: something\nTraceback: boom\nWARNING: after",
        );
        assert_eq!(d.code, Internal);
        assert_eq!(d.detail, "Traceback: boom");
        assert_eq!(
            classify_ytdlp("").detail,
            "yt-dlp failed without saying why"
        );
    }

    #[test]
    fn skipped_videos_are_told_apart() {
        let f = filter_rejection(
            "[download] clip does not pass filter (!is_live & duration <=? 60), skipping ..",
        )
        .unwrap();
        assert_eq!(f.code, TooLong);
        // yt-dlp 2026.10.26 with --match-filters '!is_live' and
        // --break-match-filters 'duration <=? 60'.
        let long = filter_rejection("[download] x does not pass filter (duration <=? 60), skipping ..\n[info] Encountered a video that did not match filter, stopping due to --break-match-filter").unwrap();
        assert_eq!(long.code, TooLong);
        let live =
            filter_rejection("[download] Live now does not pass filter (!is_live), skipping ..")
                .unwrap();
        assert_eq!(live.code, LiveNotStarted);
        let s = filter_rejection("[download] File is larger than max-filesize (3853974 bytes > 1048576 bytes). Aborting.").unwrap();
        assert_eq!(s.code, TooLarge);
        assert_eq!(filter_rejection("[download] 100% of 1.00MiB"), None);
    }

    #[test]
    fn ffmpeg_failures() {
        // ffmpeg 5.1 wording.
        assert_eq!(classify_ffmpeg("Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.").code, NoAudio);
        assert_eq!(
            classify_ffmpeg("Output file #0 does not contain any stream").code,
            NoAudio
        );
        assert_eq!(
            classify_ffmpeg("/tmp/j/source.mp4: Invalid data found when processing input").code,
            Unavailable
        );
        assert_eq!(classify_ffmpeg("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\nsource.mp4: Invalid data found when processing input").code, Unavailable);
        assert_eq!(
            classify_ffmpeg("av_interleaved_write_frame(): No space left on device").code,
            Internal
        );
        let d = classify_ffmpeg("line one\n\nline two\n");
        assert_eq!(d.detail, "line one | line two");
    }
}
