//! YouTube, as yt-dlp 2026.10.26's `YoutubeIE` reads it
//! (extractor/youtube/_video.py, _base.py).
//!
//! For `https://www.youtube.com/watch?v=<id>` without cookies and with a
//! JavaScript runtime (the deno `scripts/ensure-deps` installs),
//! `_real_extract` → `_initial_extract`:
//! 1. `_download_initial_webpage`: `GET /watch?v=<id>&bpctr=…&has_verified=1`.
//!    It reads `ytcfg.set({…});` (`extract_ytcfg`: `PLAYER_JS_URL`, `STS`,
//!    `VISITOR_DATA`, `INNERTUBE_CONTEXT`), `ytInitialPlayerResponse = {…}`
//!    (the `web` client's player response) and `ytInitialData = {…}`
//!    (metadata; its `contents` spare the `POST /youtubei/v1/next` call
//!    `_download_initial_data` makes otherwise). A 429 here is only a
//!    warning (`_download_webpage_with_retries` does not retry 403/429).
//! 2. `_extract_player_responses` for `_DEFAULT_CLIENTS` = `tv_samsung`,
//!    `visionos`, `web` (only `visionos` without a JS runtime):
//!    - `tv_samsung` (TVHTML5 5.x): no client page to fetch
//!      (`_download_ytcfg` knows none), `REQUIRE_JS_PLAYER`: the player URL
//!      comes from the page's ytcfg (else `GET /iframe_api` names the player
//!      and `GET /s/player/<id>/…/base.js` gives the signature timestamp);
//!      `POST /youtubei/v1/player`. No PO token policy: plain format URLs
//!      download as they are.
//!    - `visionos`: `POST /youtubei/v1/player`, no player JS, no PO token.
//!    - `web`: the page's `ytInitialPlayerResponse` (no request). Its
//!      formats are SABR-only today (no `url`, a `serverAbrStreamingUrl`):
//!      skipped ("YouTube is forcing SABR streaming for this client",
//!      debug only), and would need a GVS PO token anyway.
//!    - An age-gated answer (`_is_agegated`) adds `web_embedded`:
//!      `GET /embed/<id>?html5=1` for its ytcfg, then its player call.
//!    - A player response for another video (`_invalid_player_response`)
//!      is skipped: all of them → "All player responses are invalid. Your
//!      IP is likely being blocked by Youtube".
//! 3. No formats → `raise_no_formats` with the `playabilityStatus`
//!    reason (`errorScreen.playerErrorMessageRenderer` reason and
//!    subreason first); a reason with "sign in" gets the cookies hint.
//!
//! So the success path needs no player JavaScript and no PO token: the
//! `tv_samsung` and `visionos` formats here carry a plain `url` (no
//! `signatureCipher`) without an `n` parameter, which
//! `_extract_formats_and_subtitles` takes as they are. (The real site
//! gives the tv client `n` challenges, which yt-dlp solves by running the
//! real player JS in deno; a stand-in has no real player to give.)
//! Formats are itag 140 (AAC, m4a) and itag 18 (muxed MP4) on
//! [`MEDIA_HOST`]; `--write-thumbnail` takes the best of the names yt-dlp
//! makes up on [`IMAGE_HOST`], `vi_webp/<id>/maxresdefault.webp`.
//!
//! One job (xtract's arguments, deno present) makes 5 requests: the page,
//! the tv_samsung and visionos player calls, the thumbnail and the media,
//! within some 60 ms here. Behaviours ([`Verdict`]): `TooManyRequests*`
//! answer 429 to the page, the API and the embed page (the site-wide
//! `/iframe_api` and base.js answer); `BotCheck`, `LoginWall*` and
//! `NeedsCookie` without `LOGIN_INFO` + SAPISID cookies get "Sign in to
//! confirm you’re not a bot"; `IpBlocked` gets answers about
//! [`SUBSTITUTE`]; `OkWithSound`, `EmptyMedia` and `PhoneOnly` mean
//! nothing here and behave as `Ok`; `SlowMedia` and `HangMedia` are the
//! media host's (`media::serve`).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::media;
use super::server::{Reply, Req};
use super::{Behaviour, Shared};

pub const MEDIA_HOST: &str = "rr3---sn-rehearsal.googlevideo.com";
pub const IMAGE_HOST: &str = "i.ytimg.com";

/// The player the pages name (`/s/player/<id>/…`): 8 hex digits, as
/// `_extract_player_info` wants.
pub const PLAYER_ID: &str = "5eafe1a0";
/// The signature timestamp the ytcfg and the player JS carry.
const STS: u32 = 20_512;
const WEB_VERSION: &str = "2.20260708.00.00";
const VISITOR_DATA: &str = "CgtSZWhlYXJzYWwwMSiAgIDKBjIKCgJVUxIEGgAgWQ%3D%3D";
pub const CHANNEL: &str = "Rehearsal Channel";
const CHANNEL_ID: &str = "UCrehearsalxtract0000000";
const HANDLE: &str = "@rehearsal";
/// The video YouTube answers with instead of the one asked for when it
/// blocks an address (yt-dlp's issue 14340 names it).
pub const SUBSTITUTE: &str = "aQvGIIdgFDM";

/// The title of a rehearsal video.
pub fn title(video: &str) -> String {
    format!("Rehearsal clip {video}")
}

pub(crate) fn handle(req: &Req, shared: &Shared) -> Reply {
    match req.host.as_str() {
        MEDIA_HOST => videoplayback(req, shared),
        IMAGE_HOST => thumbnail(req),
        _ => {
            let route = req.route().to_string();
            match (req.method.as_str(), route.as_str()) {
                ("GET", "/watch") => watch(req, shared),
                ("POST", "/youtubei/v1/player") => player(req, shared),
                ("POST", "/youtubei/v1/next") => next(req, shared),
                ("GET", "/iframe_api") => iframe_api(),
                ("GET", r) if r.starts_with("/embed/") => embed(req, shared, &r[7..]),
                ("GET", r) if r.starts_with(&format!("/s/player/{PLAYER_ID}/")) => base_js(),
                _ => Reply::status(404, "Not Found").answer("unknown page"),
            }
        }
    }
}

/// What the site says about a video to this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    TooMany,
    BotCheck,
    AgeGate,
    Private,
    Removed,
    MembersOnly,
    /// The address is blocked: answers are about another video.
    Blocked,
    /// A redesign: nothing where the extractor looks.
    Changed,
}

/// The verdict for a request about `video`; the watch page (`first`)
/// starts an attempt (see `Shared::begin`).
fn verdict(req: &Req, shared: &Shared, video: &str, first: bool) -> Verdict {
    let (behaviour, n) = if first {
        shared.begin(video)
    } else {
        shared.current(video)
    };
    match behaviour {
        Behaviour::TooManyRequests => Verdict::TooMany,
        Behaviour::TooManyRequestsFirst(k) if n <= k => Verdict::TooMany,
        Behaviour::TooManyRequestsFrom(ip) if req.client == ip => Verdict::TooMany,
        // YouTube's login wall is the bot check: "Sign in to confirm…",
        // lifted by a signed-in session's cookies.
        Behaviour::BotCheck | Behaviour::LoginWall => Verdict::BotCheck,
        Behaviour::LoginWallFirst(k) if n <= k => Verdict::BotCheck,
        Behaviour::NeedsCookie if !signed_in(req) => Verdict::BotCheck,
        Behaviour::AgeRestricted => Verdict::AgeGate,
        Behaviour::Private => Verdict::Private,
        Behaviour::Removed => Verdict::Removed,
        Behaviour::MembersOnly => Verdict::MembersOnly,
        Behaviour::IpBlocked => Verdict::Blocked,
        Behaviour::Changed => Verdict::Changed,
        _ => Verdict::Ok,
    }
}

/// Whether the request carries a signed-in session, as yt-dlp's
/// `_has_auth_cookies` decides it: `LOGIN_INFO` and a SAPISID.
fn signed_in(req: &Req) -> bool {
    req.cookie("LOGIN_INFO").is_some()
        && ["SAPISID", "__Secure-3PAPISID", "__Secure-1PAPISID"]
            .iter()
            .any(|c| req.cookie(c).is_some())
}

fn too_many_page(video: &str, answer: &str) -> Reply {
    Reply::status(
        429,
        "<html><head><title>Sorry...</title></head><body>Our systems have detected \
         unusual traffic from your computer network.</body></html>",
    )
    .about(video, answer)
}

/// The API's 429: Google's JSON error, whose message `_extract_response`
/// reports before failing.
fn too_many_api(video: &str, answer: &str) -> Reply {
    let body = json!({
        "error": {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "errors": [{ "message": "Resource has been exhausted (e.g. check quota).",
                         "domain": "global", "reason": "rateLimitExceeded" }],
            "status": "RESOURCE_EXHAUSTED",
        }
    });
    Reply::new(429, "application/json; charset=UTF-8", body.to_string()).about(video, answer)
}

/// `GET /watch?v=<id>`: the watch page.
fn watch(req: &Req, shared: &Shared) -> Reply {
    let Some(video) = req.query("v").map(str::to_string) else {
        return Reply::status(404, "Not Found").answer("page: no v=");
    };
    let verdict = verdict(req, shared, &video, true);
    let answer = match verdict {
        Verdict::TooMany => {
            return too_many_page(&video, "page: HTTP 429 (a warning; the API calls follow)")
        }
        Verdict::Changed => {
            // No ytcfg, no ytInitialPlayerResponse, no ytInitialData: the
            // extractor falls back to the default ytcfg, `POST next` and
            // `GET /iframe_api`.
            return page_reply(
                &video,
                format!(
                    "<!DOCTYPE html><html lang=\"en\"><head><title>{t} - YouTube</title></head>\
                     <body><yt-app></yt-app><script nonce=\"r\">window.__YT_STATE__ = {s};</script>\
                     </body></html>",
                    t = title(&video),
                    s = json!({ "route": "watch", "entities": { "video": { "id": video } } }),
                ),
                "page: no ytcfg / ytInitialPlayerResponse / ytInitialData (redesign)",
            );
        }
        Verdict::Ok => {
            "page: ytcfg + ytInitialPlayerResponse (web: SABR-only formats) + ytInitialData"
        }
        Verdict::BotCheck => "page: ytInitialPlayerResponse LOGIN_REQUIRED (bot check)",
        Verdict::AgeGate => "page: ytInitialPlayerResponse LOGIN_REQUIRED (age gate)",
        Verdict::Private => "page: ytInitialPlayerResponse LOGIN_REQUIRED (private video)",
        Verdict::Removed => "page: ytInitialPlayerResponse ERROR (removed by the uploader)",
        Verdict::MembersOnly => "page: ytInitialPlayerResponse UNPLAYABLE (members only)",
        Verdict::Blocked => "page: ytInitialPlayerResponse for another video (blocked address)",
    };
    let player_response = player_response(&shared.media, &video, verdict, Client::Web);
    let initial_data = initial_data(&video, verdict == Verdict::Ok);
    let ytcfg = ytcfg_web(signed_in(req));
    let t = title(&video);
    page_reply(
        &video,
        format!(
            "<!DOCTYPE html><html style=\"font-size: 10px\" lang=\"en\"><head>\
             <title>{t} - YouTube</title>\
             <meta name=\"title\" content=\"{t}\">\
             <meta property=\"og:title\" content=\"{t}\">\
             <meta property=\"og:image\" content=\"https://{IMAGE_HOST}/vi/{video}/maxresdefault.jpg\">\
             <meta property=\"og:url\" content=\"https://www.youtube.com/watch?v={video}\">\
             </head><body>\
             <script nonce=\"r\">ytcfg.set({ytcfg});</script>\
             <script nonce=\"r\">var ytInitialPlayerResponse = {player_response};var meta = document.createElement('meta');</script>\
             <script nonce=\"r\">var ytInitialData = {initial_data};</script>\
             </body></html>"
        ),
        answer,
    )
}

fn page_reply(video: &str, html: String, answer: &str) -> Reply {
    Reply::html(html)
        .header(
            "set-cookie",
            "YSC=rehearsal; Domain=.youtube.com; Path=/; Secure; HttpOnly; SameSite=none",
        )
        .header(
            "set-cookie",
            "VISITOR_INFO1_LIVE=rehearsal; Domain=.youtube.com; Path=/; Secure; HttpOnly; SameSite=none",
        )
        .about(video, answer)
}

/// The watch page's ytcfg, as `extract_ytcfg` and the web client read it.
fn ytcfg_web(signed_in: bool) -> Value {
    let js = player_path();
    let mut ytcfg = json!({
        "INNERTUBE_API_KEY": "AIzaSyRehearsalRehearsalRehearsal000",
        "INNERTUBE_CLIENT_NAME": "WEB",
        "INNERTUBE_CLIENT_VERSION": WEB_VERSION,
        "INNERTUBE_CONTEXT_CLIENT_NAME": 1,
        "INNERTUBE_CONTEXT_CLIENT_VERSION": WEB_VERSION,
        "INNERTUBE_CONTEXT": {
            "client": {
                "hl": "en", "gl": "US", "visitorData": VISITOR_DATA,
                "clientName": "WEB", "clientVersion": WEB_VERSION,
                "osName": "X11", "platform": "DESKTOP",
            },
            "user": { "lockedSafetyMode": false },
            "request": { "useSsl": true },
        },
        "VISITOR_DATA": VISITOR_DATA,
        "LOGGED_IN": false,
        "PLAYER_JS_URL": js,
        "STS": STS,
        "WEB_PLAYER_CONTEXT_CONFIGS": {
            "WEB_PLAYER_CONTEXT_CONFIG_ID_KEVLAR_WATCH": {
                "jsUrl": js,
                "serializedExperimentFlags": "html5_sabr_only=true",
            }
        },
    });
    if signed_in {
        sign_in(&mut ytcfg);
    }
    ytcfg
}

/// What a signed-in session's ytcfg adds: the account's data sync id
/// (`_extract_data_sync_id`, which a logged-in GVS PO token is bound to)
/// and session index (`X-Goog-AuthUser`).
fn sign_in(ytcfg: &mut Value) {
    ytcfg["LOGGED_IN"] = json!(true);
    ytcfg["DATASYNC_ID"] = json!("rehearsal-account||");
    ytcfg["SESSION_INDEX"] = json!(0);
}

fn player_path() -> String {
    format!("/s/player/{PLAYER_ID}/player_ias.vflset/en_US/base.js")
}

/// `ytInitialData` (or the `next` API's answer): the watch page's
/// renderers, from which yt-dlp takes the channel (`uploader`).
fn initial_data(video: &str, ok: bool) -> Value {
    let contents = if ok {
        json!([
            { "videoPrimaryInfoRenderer": {
                "title": { "runs": [{ "text": title(video) }] },
                "viewCount": { "videoViewCountRenderer": {
                    "viewCount": { "simpleText": "1,000 views" } } },
                "dateText": { "simpleText": "Dec 1, 2025" },
            } },
            { "videoSecondaryInfoRenderer": {
                "owner": { "videoOwnerRenderer": {
                    "title": { "runs": [{ "text": CHANNEL, "navigationEndpoint": {
                        "browseEndpoint": { "browseId": CHANNEL_ID, "canonicalBaseUrl": format!("/{HANDLE}") } } }] },
                    "subscriberCountText": { "simpleText": "1.2K subscribers" },
                    "navigationEndpoint": { "browseEndpoint": {
                        "browseId": CHANNEL_ID, "canonicalBaseUrl": format!("/{HANDLE}") } },
                } },
            } },
        ])
    } else {
        json!([{ "itemSectionRenderer": { "contents": [], "sectionIdentifier": "comment-item-section" } }])
    };
    json!({
        "responseContext": { "visitorData": VISITOR_DATA },
        "contents": { "twoColumnWatchNextResults": { "results": { "results": { "contents": contents } } } },
    })
}

/// The innertube clients yt-dlp sends, by `context.client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// WEB (the page's own, or `web` through the API).
    Web,
    /// WEB_EMBEDDED_PLAYER (`web_embedded`, after an age gate).
    Embedded,
    /// TVHTML5 (`tv_samsung` by default; `tv`, `tv_downgraded`).
    Tv,
    /// VISIONOS.
    VisionOs,
    /// Any other (android, ios, mweb, …, asked for by extractor-args).
    Other,
}

impl Client {
    fn of(body: &Value) -> (Client, String) {
        let name = body["context"]["client"]["clientName"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let client = match name.as_str() {
            "WEB" => Client::Web,
            "WEB_EMBEDDED_PLAYER" => Client::Embedded,
            "TVHTML5" => Client::Tv,
            "VISIONOS" => Client::VisionOs,
            _ => Client::Other,
        };
        (client, name)
    }
}

/// `POST /youtubei/v1/player`: one client's player response.
fn player(req: &Req, shared: &Shared) -> Reply {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(video) = body["videoId"].as_str().map(str::to_string) else {
        return Reply::new(
            400,
            "application/json; charset=UTF-8",
            json!({ "error": { "code": 400, "message": "Request contains an invalid argument.",
                               "status": "INVALID_ARGUMENT" } })
            .to_string(),
        )
        .answer("player API: no videoId");
    };
    let (client, name) = Client::of(&body);
    let verdict = verdict(req, shared, &video, false);
    let what = match verdict {
        Verdict::TooMany => {
            return too_many_api(
                &video,
                &format!("player API ({name}): HTTP 429 (the client is skipped with a warning)"),
            )
        }
        Verdict::Changed => {
            // A response in a shape yt-dlp does not know: no
            // playabilityStatus, videoDetails or streamingData.
            return Reply::json(&json!({
                "responseContext": { "visitorData": VISITOR_DATA },
                "playerState": { "video": { "id": video, "playback": { "sources": [] } } },
            }))
            .about(
                &video,
                &format!("player API ({name}): an unknown shape (redesign)"),
            );
        }
        Verdict::Ok if client == Client::Web => "OK, SABR-only formats (skipped)",
        Verdict::Ok => "OK, itag 140 + 18 with plain URLs",
        Verdict::BotCheck => "LOGIN_REQUIRED (bot check)",
        Verdict::AgeGate if client == Client::Embedded => {
            "UNPLAYABLE (age-restricted, not in embeds)"
        }
        Verdict::AgeGate => "LOGIN_REQUIRED (age gate; yt-dlp adds web_embedded)",
        Verdict::Private => "LOGIN_REQUIRED (private video)",
        Verdict::Removed => "ERROR (removed by the uploader)",
        Verdict::MembersOnly => "UNPLAYABLE (members only)",
        Verdict::Blocked => "a response for another video (blocked address)",
    };
    Reply::json(&player_response(&shared.media, &video, verdict, client))
        .about(&video, &format!("player API ({name}): {what}"))
}

/// `POST /youtubei/v1/next`: what `_download_initial_data` asks when the
/// page had no `ytInitialData`.
fn next(req: &Req, shared: &Shared) -> Reply {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(video) = body["videoId"].as_str().map(str::to_string) else {
        return Reply::json(&json!({ "responseContext": {} })).answer("next API: no videoId");
    };
    match verdict(req, shared, &video, false) {
        Verdict::TooMany => too_many_api(&video, "next API: HTTP 429 (a warning)"),
        Verdict::Changed => Reply::json(&json!({
            "responseContext": { "visitorData": VISITOR_DATA },
            "watchNext": { "panels": [] },
        }))
        .about(
            &video,
            "next API: no contents (redesign; 'Incomplete data received', retried)",
        ),
        v => {
            Reply::json(&initial_data(&video, v == Verdict::Ok)).about(&video, "next API: contents")
        }
    }
}

/// `GET /iframe_api`: names the current player, for a client that needs
/// the player JS when no ytcfg did (`_download_player_url`).
fn iframe_api() -> Reply {
    Reply::new(
        200,
        "text/javascript; charset=utf-8",
        format!(
            "var scriptUrl = 'https:\\/\\/www.youtube.com\\/s\\/player\\/{PLAYER_ID}\\/www-widgetapi.vflset\\/www-widgetapi.js';\
             try{{var ttPolicy=window.trustedTypes.createPolicy(\"youtube-widget-api\",{{createScriptURL:function(x){{return x}}}});\
             scriptUrl=ttPolicy.createScriptURL(scriptUrl)}}catch(e){{}}\n"
        ),
    )
    .answer("iframe_api: names the player")
}

/// `GET /s/player/<id>/…/base.js`: only its signature timestamp is read
/// (`_extract_signature_timestamp`, when no ytcfg gave `STS`). It holds no
/// signature or n functions: a format that needs them cannot be solved.
fn base_js() -> Reply {
    Reply::new(
        200,
        "text/javascript; charset=utf-8",
        format!(
            "var _yt_player={{}};(function(g){{var window=this;\
             var cfg={{signatureTimestamp:{STS}}};g.cfg=cfg;}})(_yt_player);\n"
        ),
    )
    .answer("player JS: signature timestamp only")
}

/// `GET /embed/<id>?html5=1`: the embed page, for `web_embedded`'s ytcfg.
fn embed(req: &Req, shared: &Shared, video: &str) -> Reply {
    let video = video.trim_end_matches('/').to_string();
    if verdict(req, shared, &video, false) == Verdict::TooMany {
        return too_many_page(&video, "embed page: HTTP 429");
    }
    let js = player_path();
    let mut ytcfg = json!({
        "INNERTUBE_API_KEY": "AIzaSyRehearsalRehearsalRehearsal000",
        "INNERTUBE_CLIENT_NAME": "WEB_EMBEDDED_PLAYER",
        "INNERTUBE_CLIENT_VERSION": "1.20260708.01.00",
        "INNERTUBE_CONTEXT_CLIENT_NAME": 56,
        "INNERTUBE_CONTEXT_CLIENT_VERSION": "1.20260708.01.00",
        "INNERTUBE_CONTEXT": {
            "client": {
                "hl": "en", "gl": "US", "visitorData": VISITOR_DATA,
                "clientName": "WEB_EMBEDDED_PLAYER", "clientVersion": "1.20260708.01.00",
            },
            "request": { "useSsl": true },
        },
        "VISITOR_DATA": VISITOR_DATA,
        "PLAYER_JS_URL": js,
        "STS": STS,
        "WEB_PLAYER_CONTEXT_CONFIGS": {
            "WEB_PLAYER_CONTEXT_CONFIG_ID_EMBEDDED_PLAYER": {
                "jsUrl": js,
                "encryptedHostFlags": "rehearsal-host-flags",
            }
        },
    });
    if signed_in(req) {
        sign_in(&mut ytcfg);
    }
    Reply::html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><title>{t} - YouTube</title></head><body>\
         <script nonce=\"r\">ytcfg.set({ytcfg});</script></body></html>",
        t = title(&video)
    ))
    .about(&video, "embed page: web_embedded ytcfg")
}

/// A player response (the page's `ytInitialPlayerResponse` or the API's)
/// for `client`.
fn player_response(media: &super::Media, video: &str, verdict: Verdict, client: Client) -> Value {
    let text = |s: &str| json!({ "simpleText": s });
    let (status, reason, error_screen, extra): (&str, &str, Value, Value) = match verdict {
        Verdict::Ok | Verdict::Blocked | Verdict::TooMany | Verdict::Changed => {
            ("OK", "", Value::Null, Value::Null)
        }
        Verdict::BotCheck => (
            "LOGIN_REQUIRED",
            "Sign in to confirm you’re not a bot",
            json!({ "playerErrorMessageRenderer": {
                "reason": text("Sign in to confirm you’re not a bot"),
                "subreason": { "runs": [
                    { "text": "This helps protect our community. " },
                    { "text": "Learn more", "navigationEndpoint": { "urlEndpoint": {
                        "url": "https://support.google.com/youtube/answer/3037019" } } },
                ] },
            } }),
            Value::Null,
        ),
        Verdict::AgeGate if client == Client::Embedded => (
            "UNPLAYABLE",
            "This video is age-restricted and only available on YouTube",
            json!({ "playerErrorMessageRenderer": {
                "reason": text("This video is age-restricted and only available on YouTube"),
            } }),
            Value::Null,
        ),
        Verdict::AgeGate => (
            "LOGIN_REQUIRED",
            "Sign in to confirm your age",
            json!({ "playerErrorMessageRenderer": {
                "reason": text("Sign in to confirm your age"),
                "subreason": text("This video may be inappropriate for some users."),
            } }),
            json!({ "desktopLegacyAgeGateReason": 1 }),
        ),
        Verdict::Private => (
            "LOGIN_REQUIRED",
            "This video is private",
            json!({ "playerErrorMessageRenderer": {
                "reason": text("Private video"),
                "subreason": text("Sign in if you've been granted access to this video"),
            } }),
            json!({ "messages": ["This is a private video. Please sign in to verify that you may see it."] }),
        ),
        Verdict::Removed => (
            "ERROR",
            "This video has been removed by the uploader",
            json!({ "playerErrorMessageRenderer": {
                "reason": text("Video unavailable"),
                "subreason": { "runs": [{ "text": "This video has been removed by the uploader" }] },
            } }),
            Value::Null,
        ),
        Verdict::MembersOnly => (
            "UNPLAYABLE",
            "Join this channel to get access to members-only content like this video, and other exclusive perks.",
            json!({ "playerLegacyDesktopYpcOfferRenderer": {
                "itemTitle": CHANNEL,
                "offerDescription": "Join this channel to get access to members-only content like this video, and other exclusive perks.",
            } }),
            Value::Null,
        ),
    };
    let mut playability = json!({ "status": status, "playableInEmbed": true });
    if !reason.is_empty() {
        playability["reason"] = json!(reason);
    }
    if !error_screen.is_null() {
        playability["errorScreen"] = error_screen;
    }
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            playability[k] = v;
        }
    }
    let mut pr = json!({
        "responseContext": { "visitorData": VISITOR_DATA },
        "playabilityStatus": playability,
    });
    match verdict {
        Verdict::Ok => {
            pr["streamingData"] = streaming_data(media, video, client);
            pr["videoDetails"] = video_details(video, video);
            if client == Client::Web {
                pr["microformat"] = microformat(video);
            }
        }
        Verdict::Blocked => {
            pr["videoDetails"] = video_details(SUBSTITUTE, video);
        }
        Verdict::AgeGate | Verdict::MembersOnly => {
            // These pages still name the video.
            pr["videoDetails"] = video_details(video, video);
        }
        _ => {}
    }
    pr
}

fn video_details(id: &str, video: &str) -> Value {
    json!({
        "videoId": id,
        "title": title(video),
        "lengthSeconds": "3",
        "keywords": ["xtract", "rehearsal"],
        "channelId": CHANNEL_ID,
        "isOwnerViewing": false,
        "shortDescription": format!("A rehearsal of {video}."),
        "isCrawlable": true,
        "thumbnail": { "thumbnails": [
            { "url": format!("https://{IMAGE_HOST}/vi/{id}/hqdefault.jpg"), "width": 480, "height": 360 },
        ] },
        "allowRatings": true,
        "viewCount": "1000",
        "author": CHANNEL,
        "isPrivate": false,
        "isUnpluggedCorpus": false,
        "isLiveContent": false,
    })
}

fn microformat(video: &str) -> Value {
    json!({ "playerMicroformatRenderer": {
        "thumbnail": { "thumbnails": [
            { "url": format!("https://{IMAGE_HOST}/vi/{video}/maxresdefault.jpg"), "width": 1280, "height": 720 },
        ] },
        "title": { "simpleText": title(video) },
        "description": { "simpleText": format!("A rehearsal of {video}.") },
        "lengthSeconds": "3",
        "ownerProfileUrl": format!("http://www.youtube.com/{HANDLE}"),
        "externalChannelId": CHANNEL_ID,
        "isFamilySafe": true,
        "availableCountries": ["US", "GB", "DE", "FR"],
        "isUnlisted": false,
        "hasYpcMetadata": false,
        "viewCount": "1000",
        "category": "Music",
        "publishDate": "2025-12-01T00:00:00-08:00",
        "ownerChannelName": CHANNEL,
        "uploadDate": "2025-12-01T00:00:00-08:00",
        "isShortsEligible": false,
    } })
}

/// The client name a media URL carries (`c=`), as the real ones do.
fn client_param(client: Client) -> &'static str {
    match client {
        Client::Web => "WEB",
        Client::Embedded => "WEB_EMBEDDED_PLAYER",
        Client::Tv => "TVHTML5",
        Client::VisionOs => "VISIONOS",
        Client::Other => "ANDROID",
    }
}

fn streaming_data(media: &super::Media, video: &str, client: Client) -> Value {
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let audio_len = size(&media.youtube_audio);
    let muxed_len = size(&media.youtube_muxed);
    let url = |itag: u32, mime: &str, len: u64| {
        format!(
            "https://{MEDIA_HOST}/videoplayback?expire={expire}&ei=rehearsal&ip=127.0.0.1\
             &id=o-{video}&itag={itag}&source=youtube&requiressl=yes&mime={mime}&gir=yes\
             &clen={len}&dur=3.000&lmt=1764576000000000&c={c}&sparams=expire%2Cei%2Cip%2Cid%2Citag\
             &sig=AJfQdSswRQIhAJrehearsal&lsparams=mh%2Cmm%2Cmn&lsig=APaTxxMwRgIhAJrehearsal",
            expire = unix_now() + 6 * 3600,
            c = client_param(client),
        )
    };
    let mut audio = json!({
        "itag": 140,
        "mimeType": "audio/mp4; codecs=\"mp4a.40.2\"",
        "bitrate": 66_000,
        "averageBitrate": 64_000,
        "contentLength": audio_len.to_string(),
        "lastModified": "1764576000000000",
        "quality": "tiny",
        "projectionType": "RECTANGULAR",
        "approxDurationMs": "3000",
        "audioQuality": "AUDIO_QUALITY_MEDIUM",
        "audioSampleRate": "44100",
        "audioChannels": 1,
        "loudnessDb": -6.0,
    });
    let mut muxed = json!({
        "itag": 18,
        "mimeType": "video/mp4; codecs=\"avc1.42001E, mp4a.40.2\"",
        "bitrate": 180_000,
        "width": 180,
        "height": 320,
        "contentLength": muxed_len.to_string(),
        "lastModified": "1764576000000000",
        "quality": "medium",
        "fps": 15,
        "qualityLabel": "320p",
        "projectionType": "RECTANGULAR",
        "approxDurationMs": "3000",
        "audioQuality": "AUDIO_QUALITY_LOW",
        "audioSampleRate": "44100",
        "audioChannels": 1,
    });
    let mut data = json!({ "expiresInSeconds": "21540" });
    if client == Client::Web {
        // SABR-only: no URL, no signatureCipher; one streaming URL for
        // the SABR protocol, which yt-dlp does not speak. The formats the
        // other clients gave too are skipped as duplicates; the HD video
        // only web lists reaches the "forcing SABR streaming" skip.
        data["serverAbrStreamingUrl"] = json!(format!(
            "https://{MEDIA_HOST}/videoplayback?expire={}&ei=rehearsal&id=o-{video}&source=youtube&sabr=1&c=WEB",
            unix_now() + 6 * 3600
        ));
        let hd = json!({
            "itag": 137,
            "mimeType": "video/mp4; codecs=\"avc1.640028\"",
            "bitrate": 4_400_000,
            "width": 1080,
            "height": 1920,
            "lastModified": "1764576000000000",
            "contentLength": "1650000",
            "quality": "hd1080",
            "fps": 30,
            "qualityLabel": "1080p",
            "projectionType": "RECTANGULAR",
            "approxDurationMs": "3000",
        });
        data["adaptiveFormats"] = json!([hd, audio]);
    } else {
        audio["url"] = json!(url(140, "audio%2Fmp4", audio_len));
        muxed["url"] = json!(url(18, "video%2Fmp4", muxed_len));
        data["formats"] = json!([muxed]);
        data["adaptiveFormats"] = json!([audio]);
    }
    data
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `GET /videoplayback?…&id=o-<video>&itag=N`: the media.
fn videoplayback(req: &Req, shared: &Shared) -> Reply {
    let video = req
        .query("id")
        .and_then(|id| id.strip_prefix("o-"))
        .map(str::to_string);
    let (Some(video), true) = (video, req.route() == "/videoplayback") else {
        return Reply::status(404, "Not Found").answer("media: unknown");
    };
    if req.query("sabr").is_some() {
        return Reply::status(400, "Bad Request").about(&video, "media: a SABR request");
    }
    match req.query("itag") {
        Some("140") => media::serve(
            req,
            shared,
            &video,
            &shared.media.youtube_audio,
            "media: itag 140 (m4a), plain URL",
        ),
        Some("18") => media::serve(
            req,
            shared,
            &video,
            &shared.media.youtube_muxed,
            "media: itag 18 (muxed mp4), plain URL",
        ),
        _ => Reply::status(404, "Not Found").about(&video, "media: unknown itag"),
    }
}

/// `GET /vi/<id>/<name>.jpg` and `/vi_webp/<id>/<name>.webp`: every name
/// yt-dlp makes up answers (an HD upload has them all), so
/// `--write-thumbnail` takes its first choice, `maxresdefault.webp`.
fn thumbnail(req: &Req) -> Reply {
    let route = req.route();
    let mut parts = route.trim_start_matches('/').split('/');
    let (Some(kind), Some(video), Some(_name)) = (parts.next(), parts.next(), parts.next()) else {
        return Reply::status(404, "Not Found").answer("image: unknown");
    };
    let (file, content_type) = match kind {
        "vi_webp" => (&files().webp, "image/webp"),
        "vi" => (&files().jpeg, "image/jpeg"),
        _ => return Reply::status(404, "Not Found").answer("image: unknown"),
    };
    let bytes = std::fs::read(file).expect("rehearsal thumbnail");
    Reply::new(200, content_type, bytes).about(video, &format!("image: thumbnail {kind}"))
}

/// The thumbnails (the shared media have no WebP).
struct Files {
    webp: PathBuf,
    jpeg: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = super::super::media().dir.clone();
        let still = |name: &str, codec: &[&str]| {
            let mut args = vec![
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x360:duration=1",
                "-frames:v",
                "1",
            ];
            args.extend_from_slice(codec);
            super::super::make_media(&dir, name, &args)
        };
        Files {
            webp: still(
                "rehearsal-youtube-thumb.webp",
                &["-c:v", "libwebp", "-f", "webp"],
            ),
            jpeg: still("rehearsal-youtube-thumb.jpg", &["-f", "mjpeg"]),
        }
    })
}
