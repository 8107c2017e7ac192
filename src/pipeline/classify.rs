//! Reading yt-dlp's and ffmpeg's failures. yt-dlp ends with one or more
//! `ERROR:` lines (the last one is the reason); its wording comes partly from
//! yt-dlp and partly from the platform (YouTube's own sentences, with a curly
//! apostrophe in "you’re"). The rules below are tried in order; the first
//! match decides the code.

use crate::error::ErrorCode;

/// What the output says went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: ErrorCode,
    /// The error block, trimmed of yt-dlp's bug-report boilerplate.
    pub detail: String,
}

/// Ordered: a more specific reason must come before a general one that
/// would also match (a bot check mentions cookies; an age gate says "sign
/// in"; copyright blocks mention the country; a 404 comes inside "Unable to
/// download webpage").
const YTDLP_RULES: &[(ErrorCode, &[&str])] = &[
    (ErrorCode::BotCheck, &["not a bot", "captcha challenge"]),
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
            "ip address is blocked",
            "redirected to the login page",
        ],
    ),
    (
        ErrorCode::Copyright,
        &[
            "copyright grounds",
            "copyright claim",
            "copyright infringement",
            "due to a copyright",
        ],
    ),
    (
        ErrorCode::GeoBlocked,
        &[
            "not made this video available in your country",
            "not available in your country",
            "not available from your location",
            "geo restriction",
            "geo-restrict",
            "use a vpn or a proxy",
        ],
    ),
    (
        ErrorCode::AgeRestricted,
        &[
            "confirm your age",
            "age-restricted",
            "age restricted",
            "inappropriate for some users",
            "years old or over",
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
            "members-only",
            "join this channel",
            "music premium",
            "requires authentication",
            "empty media response",
            "restricted video",
            "content is unreachable",
            "use --cookies",
        ],
    ),
    (
        ErrorCode::Unavailable,
        &[
            "video unavailable",
            "has been removed",
            "no longer available",
            "has been terminated",
            "may have been deleted",
            "this video is unavailable",
            "content isn't available",
            "content isn’t available",
            "recording is not available",
            "drm protected",
            "video has been deleted",
            "post was deleted",
        ],
    ),
    (ErrorCode::UnsupportedUrl, &["unsupported url"]),
    (
        ErrorCode::InvalidUrl,
        &["is not a valid url", "invalid url"],
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
        ErrorCode::HttpForbidden,
        &["http error 403", "403: forbidden"],
    ),
    (
        ErrorCode::NotFound,
        &["http error 404", "404: not found", "http error 410"],
    ),
    (
        ErrorCode::Network,
        &[
            "unable to download webpage",
            "unable to download json",
            "unable to download video data",
            "urlopen error",
            "connection refused",
            "connection reset",
            "connection aborted",
            "timed out",
            "temporary failure in name resolution",
            "name or service not known",
            "failed to resolve",
            "network is unreachable",
            "remote end closed connection",
            "incompleteread",
            "transporterror",
            "http error 5",
            "ssl:",
            "giving up after",
        ],
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
        return Diagnosis {
            code: ErrorCode::Internal,
            detail: clip(last),
        };
    };
    let lower = block.to_lowercase();
    let code = YTDLP_RULES
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| lower.contains(n)))
        .map_or(ErrorCode::Internal, |(code, _)| *code);
    Diagnosis {
        code,
        detail: clip(&strip_boilerplate(&block)),
    }
}

/// yt-dlp exits 0 without a file when `--match-filters` or `--max-filesize`
/// turned the video down; this finds which.
pub fn filter_rejection(output: &str) -> Option<Diagnosis> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.contains("does not pass filter") || l.contains("larger than max-filesize"))?;
    let code = if line.contains("max-filesize") {
        ErrorCode::TooLarge
    } else {
        // Our filter is "!is_live & duration <=? N"; the caller knows the
        // duration and tells a long video from a live one.
        ErrorCode::TooLong
    };
    Some(Diagnosis {
        code,
        detail: clip(line),
    })
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
    Diagnosis {
        code,
        detail: clip(if detail.is_empty() {
            "ffmpeg failed without saying why"
        } else {
            &detail
        }),
    }
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

    const COOKIES_HINT: &str = "Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies";
    const BUG_REPORT: &str = "; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U";

    /// Real yt-dlp output. Sources: yt-dlp 2026.10.26 (extractor/youtube/
    /// _video.py, instagram.py, tiktok.py, common.py, generic.py,
    /// YoutubeDL.py, networking) and YouTube's own playability reasons as
    /// yt-dlp prints them in issue reports.
    fn table() -> Vec<(String, ErrorCode)> {
        let yt = |msg: &str| format!("ERROR: [youtube] dQw4w9WgXcQ: {msg}");
        let ig = |msg: &str| format!("ERROR: [Instagram] C1a2B3c4D5e: {msg}");
        let tt = |msg: &str| format!("ERROR: [TikTok] 7106594312292453675: {msg}");
        vec![
            // YouTube: bot check, curly and straight apostrophe (_video.py: reason + login hint)
            (yt(&format!("Sign in to confirm you’re not a bot. {COOKIES_HINT}. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies  for tips on effectively exporting YouTube cookies")), BotCheck),
            (yt(&format!("Sign in to confirm you're not a bot. {COOKIES_HINT}")), BotCheck),
            (yt("Video unavailable. YouTube is requiring a captcha challenge before playback"), BotCheck),
            // YouTube: session rate limit (_video.py)
            (yt("This content isn't available, try again later. The current session has been rate-limited by YouTube for up to an hour. It is recommended to use `-t sleep` to add a delay between video requests to avoid exceeding the rate limit. For more information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#this-content-isnt-available-try-again-later"), RateLimited),
            (yt("Unable to download API page: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: Too Many Requests>)"), RateLimited),
            (yt("All player responses are invalid. Your IP is likely being blocked by Youtube"), RateLimited),
            (format!("WARNING: [youtube] dQw4w9WgXcQ: HTTP Error 429\n{}", "ERROR: unable to download video data: HTTP Error 429: Too Many Requests"), RateLimited),
            // Instagram, old and new wording (instagram.py)
            (ig(&format!("Requested content is not available, rate-limit reached or login required. {COOKIES_HINT}")), RateLimited),
            (ig(&format!("The webpage request was redirected to the login page. You have exceeded the rate-limit for accessing posts anonymously. {COOKIES_HINT}")), RateLimited),
            ("ERROR: [Instagram] Requested content is not available, rate-limit reached or login required".into(), RateLimited),
            (ig(&format!("Instagram sent an empty media response. Check if this post is accessible in your browser without being logged-in. If it is not, then u{}. Otherwise, if the post is accessible in browser without being logged-in{BUG_REPORT}", &COOKIES_HINT[1..])), LoginRequired),
            (ig(&format!("This content is only available for registered users who follow this account. {COOKIES_HINT}")), Private),
            (ig(&format!("Restricted Video: You must be 18 years old or over to see this video. {COOKIES_HINT}")), AgeRestricted),
            (ig("There is no video in this post"), NoFormats),
            ("ERROR: [instagram:story] highlight:17890: You need to log in to access this content. Use --cookies-from-browser or --cookies for the authentication.".into(), LoginRequired),
            (ig("Your IP address is blocked from accessing this post"), RateLimited),
            // TikTok (tiktok.py, networking)
            (tt("Unable to download webpage: HTTP Error 403: Forbidden (caused by <HTTPError 403: Forbidden>)"), HttpForbidden),
            (tt("This video is private"), Private),
            (tt("Your IP address is blocked from accessing this post"), RateLimited),
            (tt("Video not available, status code 10204"), Internal),
            (tt("Unable to extract universal data for rehydration; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U"), Internal),
            ("ERROR: [vm.tiktok] ZMeAbCdEf: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: Not Found>)".into(), NotFound),
            // YouTube: video facts (playability reasons)
            (yt("Video unavailable"), Unavailable),
            (yt("Video unavailable. This video has been removed by the uploader"), Unavailable),
            (yt("Video unavailable. This video is no longer available because the YouTube account associated with this video has been terminated."), Unavailable),
            (yt("This video has been removed for violating YouTube's Terms of Service"), Unavailable),
            (yt("Video unavailable. This content isn’t available."), Unavailable),
            (yt(&format!("Private video. Sign in if you've been granted access to this video. {COOKIES_HINT}")), Private),
            (yt("Video unavailable. This video is private"), Private),
            (yt("Video unavailable. This video contains content from SME, who has blocked it on copyright grounds"), Copyright),
            (yt("Video unavailable. This video contains content from UMG, who has blocked it in your country on copyright grounds"), Copyright),
            (yt(&format!("Sign in to confirm your age. This video may be inappropriate for some users. {COOKIES_HINT}")), AgeRestricted),
            (yt("This live event will begin in 3 hours."), LiveNotStarted),
            (yt("Premieres in 8 hours"), LiveNotStarted),
            (yt("This live stream recording is not available."), Unavailable),
            (yt(&format!("Join this channel to get access to members-only content like this video, and other exclusive perks. {COOKIES_HINT}")), LoginRequired),
            (yt("This video is only available to Music Premium members"), LoginRequired),
            // Geo restriction, multi-line (YoutubeDL.py: GeoRestrictedError)
            ("[youtube] Extracting URL: https://www.youtube.com/watch?v=dQw4w9WgXcQ\nERROR: [youtube] dQw4w9WgXcQ: The uploader has not made this video available in your country\nThis video is available in Germany, France.\nYou might want to use a VPN or a proxy server (with --proxy) to workaround.".into(), GeoBlocked),
            ("ERROR: [generic] abc: This video is not available from your location due to geo restriction\nYou might want to use a VPN or a proxy server (with --proxy) to workaround.".into(), GeoBlocked),
            // Formats (YoutubeDL.py)
            ("ERROR: [youtube] dQw4w9WgXcQ: Requested format is not available. Use --list-formats for a list of available formats".into(), NoFormats),
            ("WARNING: [youtube] No supported JavaScript runtime could be found. YouTube extraction without a JS runtime has been deprecated\nERROR: [youtube] dQw4w9WgXcQ: Requested format is not available. Use --list-formats for a list of available formats".into(), NoFormats),
            ("ERROR: [Instagram] C1a2B3c4D5e: No video formats found!; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U".into(), NoFormats),
            // Lines without an [extractor] id: prefix (generic.py, YoutubeDL.py, downloader)
            ("ERROR: Unsupported URL: https://example.com/".into(), UnsupportedUrl),
            ("ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: Not Found>)".into(), NotFound),
            ("ERROR: 'not a link' is not a valid URL. Set --default-search \"ytsearch\" (or run  yt-dlp \"ytsearch:not a link\" ) to search YouTube".into(), InvalidUrl),
            ("ERROR: unable to download video data: HTTP Error 403: Forbidden".into(), HttpForbidden),
            ("ERROR: unable to download video data: HTTP Error 410: Gone".into(), NotFound),
            ("ERROR: Postprocessing: Conversion failed!".into(), Internal),
            ("ERROR: [generic] missing: Unable to download webpage: HTTP Error 404: File not found (caused by <HTTPError 404: File not found>)".into(), NotFound),
            // Network (networking/_urllib.py, _requests.py)
            ("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused (caused by TransportError('[Errno 111] Connection refused'))".into(), Network),
            ("ERROR: [youtube] dQw4w9WgXcQ: Unable to download API page: <urlopen error [Errno -3] Temporary failure in name resolution> (caused by TransportError('<urlopen error [Errno -3] Temporary failure in name resolution>'))".into(), Network),
            ("ERROR: [TikTok] 1: Unable to download webpage: The read operation timed out (caused by TransportError('The read operation timed out'))".into(), Network),
            ("ERROR: unable to download video data: <urlopen error [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)>".into(), Network),
            ("ERROR: [youtube] dQw4w9WgXcQ: Unable to download API page: HTTP Error 503: Service Unavailable (caused by <HTTPError 503: Service Unavailable>)".into(), Network),
            ("ERROR: [download] Got error: 1048576 bytes read, 2097152 more expected. Giving up after 3 retries".into(), Network),
            ("ERROR: Remote end closed connection without response".into(), Network),
            // Size (downloader/http.py, with --no-quiet)
            ("[download] File is larger than max-filesize (3853974 bytes > 1048576 bytes). Aborting.\nERROR: File is larger than max-filesize".into(), TooLarge),
            // The last ERROR wins
            (format!("{}\n{}", yt("Video unavailable"), "ERROR: [youtube] other: HTTP Error 429: Too Many Requests"), RateLimited),
            (format!("{}\n{}", "ERROR: [TikTok] 1: HTTP Error 429: Too Many Requests", tt("This video is private")), Private),
        ]
    }

    #[test]
    fn real_yt_dlp_errors_get_the_right_code() {
        let table = table();
        assert!(table.len() >= 45, "only {} cases", table.len());
        for (output, want) in table {
            let got = classify_ytdlp(&output);
            assert_eq!(got.code, want, "{output}\n→ {got:?}");
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
