//! TikTok, as yt-dlp 2026.10.26's `TikTokIE` reads it (extractor/tiktok.py).
//!
//! Without `app_info` extractor-args (xtract gives none), `_real_extract`
//! skips the app API and takes the web path: `_extract_web_data_and_status`
//! fetches `https://www.tiktok.com/@<user>/video/<id>` (impersonating a
//! browser when curl_cffi is there), reads
//! `<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">` →
//! `__DEFAULT_SCOPE__["webapp.video-detail"]`, and decides on its
//! `statusCode`: 0 with `itemInfo.itemStruct` → `_parse_aweme_video_web`;
//! 10216/10222 → "You do not have permission to view this post"; 10204 →
//! "Your IP address is blocked from accessing this post"; anything else →
//! "Video not available, status code N". A page without that script goes
//! to the WAF challenge solver (`_solve_challenge_and_set_cookies`), which
//! fails with "Unexpected response from webpage request" when the page is
//! no challenge either: what a redesign looks like. A redirect to `/login`
//! is "TikTok is requiring login for access to this content".
//!
//! The redesign ([`Behaviour::Changed`], or every page after
//! `Rehearsal::redesign(Site::TikTok, true)`) keeps the data and moves it:
//! the same JSON under `<script id="__UNIVERSAL_DATA_FOR_REHYDRATION_V2__">`.
//! yt-dlp 2026.10.26 cannot read it; a yt-dlp whose `_get_universal_data`
//! looks for the new id too (the patched nightly of tests/heal, what a fix
//! upstream would be) can.
//!
//! Formats come from `_extract_web_formats`: `video.playAddr` (format
//! `play`), `video.downloadAddr` (`download`, watermarked) and
//! `music.playUrl` (format `audio`, the post's *sound*, audio only); URLs on
//! `www.tiktok.com` are dropped, so media lives on CDN names.

use serde_json::json;

use super::media;
use super::server::{Reply, Req};
use super::{Behaviour, Shared};

pub const MEDIA_HOST: &str = "v16-webapp-prime.tiktok.com";
pub const MUSIC_HOST: &str = "sf16-ies-music-va.tiktokcdn.com";
pub const IMAGE_HOST: &str = "p16-sign-va.tiktokcdn.com";

/// The sound's facts, as `music` carries them.
pub const SOUND_TITLE: &str = "Rehearsal Song";
pub const SOUND_ARTIST: &str = "The Stand-ins";

pub(crate) fn handle(req: &Req, shared: &Shared) -> Reply {
    let route = req.route().to_string();
    match req.host.as_str() {
        MEDIA_HOST => match media_video(&route) {
            Some((video, "post.mp4")) => media::serve(
                req,
                shared,
                &video,
                &shared.media.tiktok_post,
                "media: video.playAddr",
            ),
            Some((video, "download.mp4")) => media::serve(
                req,
                shared,
                &video,
                &shared.media.tiktok_post,
                "media: video.downloadAddr",
            ),
            _ => Reply::status(404, "Not Found").answer("media: unknown"),
        },
        MUSIC_HOST => match media_video(&route) {
            Some((video, _)) => media::serve(
                req,
                shared,
                &video,
                &shared.media.tiktok_sound,
                "media: music.playUrl",
            ),
            None => Reply::status(404, "Not Found").answer("music: unknown"),
        },
        IMAGE_HOST => match media_video(&route) {
            Some((video, _)) => media::serve(
                req,
                shared,
                &video,
                &shared.media.cover,
                "image: video.cover",
            ),
            None => Reply::status(404, "Not Found").answer("image: unknown"),
        },
        _ => page(req, shared, &route),
    }
}

/// `/<anything>/<video>/<file>` on the media hosts.
fn media_video(route: &str) -> Option<(String, &str)> {
    let mut parts = route.trim_start_matches('/').rsplitn(3, '/');
    let file = parts.next()?;
    let video = parts.next()?;
    Some((video.to_string(), file))
}

fn page(req: &Req, shared: &Shared, route: &str) -> Reply {
    if route.starts_with("/login") {
        return Reply::html(
            "<html><head><title>Log in | TikTok</title></head><body></body></html>",
        )
        .answer("login page");
    }
    // /@user/video/<id>
    let Some(video) = route
        .strip_prefix("/@")
        .and_then(|r| r.split_once("/video/"))
        .map(|(_, id)| id.trim_end_matches('/').to_string())
    else {
        return Reply::status(404, "Not Found").answer("unknown page");
    };
    let (behaviour, n) = shared.begin(&video);
    // A site-wide redesign changes every page, whatever the video does.
    let redesigned = shared.redesigned(super::Site::TikTok) || behaviour == Behaviour::Changed;
    let webpage_url = format!("https://www.tiktok.com{route}");
    let login = || {
        Reply::redirect(&format!(
            "https://www.tiktok.com/login?redirect_url={}",
            url::form_urlencoded::byte_serialize(webpage_url.as_bytes()).collect::<String>()
        ))
        .about(&video, "page: redirect to /login (login wall)")
    };
    let too_many = || Reply::status(429, "Too Many Requests").about(&video, "page: HTTP 429");
    match behaviour {
        Behaviour::TooManyRequests => return too_many(),
        Behaviour::TooManyRequestsFirst(k) if n <= k => return too_many(),
        Behaviour::TooManyRequestsFrom(ip) if req.client == ip => return too_many(),
        Behaviour::LoginWall => return login(),
        Behaviour::LoginWallFirst(k) if n <= k => return login(),
        Behaviour::NeedsCookie if req.cookie("sessionid").is_none() => return login(),
        _ => {}
    }
    let (status, item, answer) = match behaviour {
        Behaviour::Private => (10216, None, "page: statusCode 10216 (private post)"),
        Behaviour::Removed => (100004, None, "page: statusCode 100004 (removed)"),
        Behaviour::IpBlocked => (
            10204,
            None,
            "page: statusCode 10204 (blocked for this address)",
        ),
        Behaviour::PhoneOnly if !req.is_phone() => (
            0,
            Some(item(&video, false, false)),
            "page: itemStruct without formats (desktop)",
        ),
        Behaviour::OkWithSound => (
            0,
            Some(item(&video, true, true)),
            "page: itemStruct, video.playAddr + music.playUrl",
        ),
        _ => (
            0,
            Some(item(&video, true, false)),
            "page: itemStruct, video.playAddr",
        ),
    };
    let mut detail = json!({ "statusCode": status, "statusMsg": "" });
    if let Some(item) = item {
        detail["itemInfo"] = json!({ "itemStruct": item });
    }
    let data = json!({
        "__DEFAULT_SCOPE__": {
            "webapp.app-context": { "language": "en" },
            "webapp.video-detail": detail,
        }
    });
    if redesigned {
        // The same data under a new script id, and no WAF challenge.
        return Reply::html(format!(
            "<!DOCTYPE html><html><head><title>TikTok</title></head><body><div id=\"app\"></div>\
             <script id=\"__UNIVERSAL_DATA_FOR_REHYDRATION_V2__\" type=\"application/json\">{data}</script>\
             </body></html>"
        ))
        .header("set-cookie", "tt_chain_token=rehearsal; Domain=.tiktok.com; Path=/")
        .about(
            &video,
            "page: __UNIVERSAL_DATA_FOR_REHYDRATION_V2__ instead of __UNIVERSAL_DATA_FOR_REHYDRATION__ (redesign)",
        );
    }
    Reply::html(format!(
        "<!DOCTYPE html><html><head><title>TikTok - Make Your Day</title></head><body>\
         <script id=\"__UNIVERSAL_DATA_FOR_REHYDRATION__\" type=\"application/json\">{data}</script>\
         </body></html>"
    ))
    .header("set-cookie", "tt_chain_token=rehearsal; Domain=.tiktok.com; Path=/")
    .about(&video, answer)
}

/// `itemStruct` as `_parse_aweme_video_web` and `_extract_web_formats`
/// read it. `sound`: the post names a licensed song with its own audio
/// (`music.playUrl`); otherwise an "original sound" without one.
fn item(video: &str, formats: bool, sound: bool) -> serde_json::Value {
    let mut video_info = json!({
        "id": video,
        "height": 320,
        "width": 180,
        "duration": 3,
        "ratio": "540p",
        "format": "mp4",
        "cover": format!("https://{IMAGE_HOST}/obj/{video}/cover.jpeg"),
        "originCover": format!("https://{IMAGE_HOST}/obj/{video}/origin.jpeg"),
    });
    if formats {
        video_info["playAddr"] = json!(format!("https://{MEDIA_HOST}/video/tos/{video}/post.mp4"));
    }
    let music = if sound {
        json!({
            "id": "7300000000000000001",
            "title": SOUND_TITLE,
            "authorName": SOUND_ARTIST,
            "album": "Rehearsals",
            "original": false,
            "duration": 5,
            "playUrl": format!("https://{MUSIC_HOST}/obj/{video}/sound.m4a?mime_type=audio_mp4"),
        })
    } else {
        json!({
            "id": "7300000000000000002",
            "title": "original sound",
            "authorName": "rehearsal",
            "original": true,
            "duration": 3,
        })
    };
    json!({
        "id": video,
        "desc": format!("Rehearsal post {video} #xtract"),
        "createTime": "1764892800",
        "author": {
            "id": "6800000000000000001",
            "uniqueId": "rehearsal",
            "nickname": "Rehearsal Creator",
            "secUid": "MS4wLjABAAAArehearsal",
        },
        "video": video_info,
        "music": music,
        "stats": { "playCount": 1000, "diggCount": 100, "shareCount": 10, "commentCount": 1, "collectCount": 5 },
        "isContentClassified": false,
    })
}
