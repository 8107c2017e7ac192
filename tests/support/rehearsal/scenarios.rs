//! The rehearsal's scenarios and what each must end with: one table for the
//! tests (tests/rehearsal.rs) and the script (`scripts/rehearse`).

use super::{Behaviour, Site};

/// One video's behaviour and the outcome a user should see.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub site: Site,
    pub name: &'static str,
    pub behaviour: Behaviour,
    /// Cookie files for the platforms (the cookies strategy is offered).
    pub cookies: bool,
    /// The job asks for the post's sound (`audio_source = 'sound'`).
    pub sound: bool,
    pub want_status: &'static str,
    pub want_code: Option<&'static str>,
    /// Which extractor path it exercises, or why it cannot go further.
    pub note: &'static str,
}

const fn ok(site: Site, name: &'static str, behaviour: Behaviour, note: &'static str) -> Scenario {
    Scenario {
        site,
        name,
        behaviour,
        cookies: false,
        sound: false,
        want_status: "completed",
        want_code: None,
        note,
    }
}

const fn fails(
    site: Site,
    name: &'static str,
    behaviour: Behaviour,
    code: &'static str,
    note: &'static str,
) -> Scenario {
    Scenario {
        site,
        name,
        behaviour,
        cookies: false,
        sound: false,
        want_status: "failed",
        want_code: Some(code),
        note,
    }
}

const fn with_cookies(s: Scenario) -> Scenario {
    Scenario { cookies: true, ..s }
}

const fn sound(s: Scenario) -> Scenario {
    Scenario { sound: true, ..s }
}

/// Every platform's success paths.
pub fn successes() -> Vec<Scenario> {
    use Behaviour::*;
    use Site::*;
    vec![
        ok(
            TikTok,
            "success",
            Ok,
            "web page → itemStruct → video.playAddr",
        ),
        ok(
            TikTok,
            "post-with-song",
            OkWithSound,
            "a licensed sound beside the video: the post's own track is kept (format play, not audio)",
        ),
        sound(ok(
            TikTok,
            "sound",
            OkWithSound,
            "audio_source = sound: music.playUrl (format audio), the song's title and artist",
        )),
        ok(
            TikTok,
            "phone",
            PhoneOnly,
            "formats only for an iPhone: the mobile strategy (Safari on iOS) gets them",
        ),
        with_cookies(ok(
            TikTok,
            "cookies",
            NeedsCookie,
            "login wall unless signed in: the cookies strategy's sessionid",
        )),
        ok(
            Instagram,
            "success",
            Ok,
            "session set-up → API check → GraphQL (xig_polaris_media)",
        ),
        ok(
            Instagram,
            "fallback",
            FallbackPage,
            "GraphQL fails → the post page's data-sjs (fallback)",
        ),
        with_cookies(ok(
            Instagram,
            "cookies",
            NeedsCookie,
            "logged out: empty media; signed in: /api/v1/media/<pk>/info/",
        )),
        ok(
            YouTube,
            "success",
            Ok,
            "watch page → tv_samsung and visionos player calls → itag 140 (plain URLs: no player JS, no PO token; web's SABR-only formats skipped)",
        ),
    ]
}

/// Every failure a platform can answer, with the code the user should see.
pub fn failures() -> Vec<Scenario> {
    use Behaviour::*;
    use Site::*;
    vec![
        fails(TikTok, "429", TooManyRequests, "rate_limited", "page: HTTP 429; paused, then failed after XTRACT_MAX_PAUSES"),
        fails(TikTok, "login-wall", LoginWall, "login_required", "page redirects to /login; a wall: paused like a rate limit, then failed"),
        fails(TikTok, "private", Private, "private", "statusCode 10216"),
        sound(fails(TikTok, "no-sound", Ok, "no_audio", "audio_source = sound for a post with an original sound: no format audio")),
        fails(TikTok, "removed", Removed, "unavailable", "statusCode 100004"),
        fails(TikTok, "ip-blocked", IpBlocked, "geo_blocked", "statusCode 10204: TikTok keeps the post from this address's region"),
        fails(TikTok, "changed", Changed, "extractor_outdated", "rehydration data under a new script id, no WAF challenge: 'Unexpected response from webpage request'"),
        ok(TikTok, "slow", SlowMedia, "media at ~32 KB/s: completes"),
        fails(TikTok, "hang", HangMedia, "timeout", "media stops after 4 KB: the platform's max_runtime_secs stops the job"),
        fails(Instagram, "429", TooManyRequests, "rate_limited", "API check, GraphQL and the post page: HTTP 429"),
        fails(Instagram, "login-wall", LoginWall, "rate_limited", "post page redirects to /accounts/login/: yt-dlp says 'exceeded the rate-limit'"),
        fails(Instagram, "empty-media", EmptyMedia, "login_required", "empty GraphQL and page: 'empty media response', a wall: paused, then failed"),
        fails(Instagram, "private", Private, "private", "API check: 'This account is private'"),
        fails(Instagram, "removed", Removed, "unavailable", "API check: 'Post isn't available'"),
        fails(Instagram, "age", AgeRestricted, "age_restricted", "API check: 'Restricted Video' (18+)"),
        fails(Instagram, "changed", Changed, "login_required", "a post API under a new key ends in yt-dlp's 'empty media response', the same words as the wall: yt-dlp 2026.10.26 cannot tell them apart (the site-wide redesign row below can)"),
        fails(Instagram, "hang", HangMedia, "timeout", "media stops after 4 KB"),
        fails(YouTube, "429", TooManyRequests, "rate_limited", "page and player calls: HTTP 429 ('Failed to extract any player response' after 429 warnings)"),
        fails(YouTube, "bot-check", BotCheck, "bot_check", "playabilityStatus LOGIN_REQUIRED: 'Sign in to confirm you’re not a bot'"),
        fails(YouTube, "removed", Removed, "unavailable", "playabilityStatus ERROR: 'This video has been removed by the uploader'"),
        fails(YouTube, "private", Private, "private", "playabilityStatus LOGIN_REQUIRED: 'Private video'"),
        fails(YouTube, "age", AgeRestricted, "age_restricted", "AGE_CHECK_REQUIRED, then web_embedded: 'Sign in to confirm your age'"),
        fails(YouTube, "members", MembersOnly, "login_required", "'Join this channel to get access to members-only content'"),
        fails(YouTube, "ip-blocked", IpBlocked, "rate_limited", "player responses about another video: 'Your IP is likely being blocked by Youtube'"),
        fails(YouTube, "changed", Changed, "extractor_outdated", "no ytcfg, initial data or player response: 'No video formats found!' after 'unable to extract' warnings"),
        ok(YouTube, "slow", SlowMedia, "media at ~32 KB/s: completes"),
        fails(YouTube, "hang", HangMedia, "timeout", "media stops after 4 KB"),
    ]
}
