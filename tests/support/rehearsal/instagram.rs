//! Instagram, as yt-dlp 2026.10.26's `InstagramIE` reads it
//! (extractor/instagram.py), for a reel link `/reel/<shortcode>/`.
//!
//! Logged out (no `sessionid` cookie), `_real_initialize` first fetches
//! `https://www.instagram.com/` ("Setting up session") for the LSD token
//! (`<script id="__eqmc">{"l": …}`; a page without one is "Unable to
//! extract LSD token": what a redesign of the site looks like, site-wide).
//! `_real_extract` then asks, in order:
//! 1. `GET /api/v1/web/get_ruling_for_content/?target_id=<pk>`: `status
//!    ok`, or a `title`/`description` saying why not (a private account, a
//!    removed post, "Restricted Video");
//! 2. `POST /api/graphql` (`PolarisLoggedOutDesktopWWWPostRootContentQuery`,
//!    only when curl_cffi can impersonate): `data.xig_polaris_media.
//!    if_not_gated_logged_out` is the post (the API path);
//! 3. when that is empty, the fallback: `GET /p/<shortcode>` and the same
//!    object inside the page's `data-sjs` script (`RelayPrefetchedStreamCache`).
//!    A redirect to `/accounts/login/` there is "redirected to the login
//!    page… exceeded the rate-limit"; a page without the object is
//!    "Instagram sent an empty media response".
//!
//! Logged in (the cookies strategy's `sessionid`), it asks
//! `GET /api/v1/media/<pk>/info/` instead, and `items[0]` is the post.
//! Formats are `video_versions` (muxed MP4 on the CDN).

use serde_json::json;

use super::media;
use super::server::{Reply, Req};
use super::{Behaviour, Shared};

pub const MEDIA_HOST: &str = "scontent-rehearsal.cdninstagram.com";

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `_id_to_pk`: a shortcode is a number in base 64.
pub fn code_to_pk(code: &str) -> u128 {
    code.bytes().fold(0u128, |n, c| {
        n * 64 + ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u128
    })
}

/// `_pk_to_id`.
pub fn pk_to_code(mut pk: u128) -> String {
    let mut out = Vec::new();
    while pk > 0 {
        out.push(ALPHABET[(pk % 64) as usize]);
        pk /= 64;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

pub(crate) fn handle(req: &Req, shared: &Shared) -> Reply {
    let route = req.route().to_string();
    if req.host == MEDIA_HOST {
        // /v/t16/<shortcode>/reel.mp4 and /v/t51/<shortcode>/cover.jpg
        let mut parts = route.trim_start_matches('/').rsplitn(3, '/');
        let (file, video) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        return match file {
            "reel.mp4" => media::serve(
                req,
                shared,
                video,
                &shared.media.reel,
                "media: video_versions",
            ),
            "cover.jpg" => media::serve(
                req,
                shared,
                video,
                &shared.media.cover,
                "image: image_versions2",
            ),
            _ => Reply::status(404, "Not Found").answer("media: unknown"),
        };
    }
    if route == "/" {
        return home(shared);
    }
    if route.starts_with("/accounts/login") {
        return Reply::html(
            "<html><head><title>Login • Instagram</title></head><body></body></html>",
        )
        .answer("login page");
    }
    if route == "/api/v1/web/get_ruling_for_content/" {
        let Some(video) = req
            .query("target_id")
            .and_then(|pk| pk.parse().ok())
            .map(pk_to_code)
        else {
            return Reply::status(400, "Bad Request").answer("ruling: no target_id");
        };
        return ruling(req, shared, &video);
    }
    if route == "/api/graphql" && req.method == "POST" {
        let Some(video) = req
            .form("variables")
            .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
            .and_then(|v| v["media_id"].as_str().and_then(|s| s.parse().ok()))
            .map(pk_to_code)
        else {
            return Reply::status(400, "Bad Request").answer("graphql: no media_id");
        };
        return graphql(req, shared, &video);
    }
    if let Some(pk) = route
        .strip_prefix("/api/v1/media/")
        .and_then(|r| r.strip_suffix("/info/"))
    {
        let video = pk_to_code(pk.parse().unwrap_or(0));
        return media_info(req, shared, &video);
    }
    if let Some(video) = route.strip_prefix("/p/") {
        let video = video.trim_end_matches('/').to_string();
        return post_page(req, shared, &video);
    }
    Reply::status(404, "Not Found").answer("unknown page")
}

/// "Setting up session": the LSD token, and the CSRF cookie the API check
/// wants to see.
fn home(shared: &Shared) -> Reply {
    if shared.redesigned(super::Site::Instagram) {
        return Reply::html(
            "<!DOCTYPE html><html><head><title>Instagram</title></head><body></body></html>",
        )
        .answer("home: no LSD token (site-wide redesign)");
    }
    Reply::html(
        "<!DOCTYPE html><html><head><title>Instagram</title>\
         <script type=\"application/json\" id=\"__eqmc\">{\"u\":\"/\",\"l\":\"AVrehearsalLSD\"}</script>\
         </head><body></body></html>",
    )
    .header(
        "set-cookie",
        "csrftoken=rehearsalcsrf0123456789; Domain=.instagram.com; Path=/; Secure",
    )
    .answer("home: LSD token (Setting up session)")
}

/// What every request about the video does first: 429s and walls.
fn pushback(req: &Req, behaviour: Behaviour, n: u32, video: &str, what: &str) -> Option<Reply> {
    match behaviour {
        Behaviour::TooManyRequests => {}
        Behaviour::TooManyRequestsFirst(k) if n <= k => {}
        Behaviour::TooManyRequestsFrom(ip) if req.client == ip => {}
        _ => return None,
    }
    Some(
        Reply::new(
            429,
            "application/json",
            r#"{"message":"Please wait a few minutes before you try again.","require_login":true,"status":"fail"}"#,
        )
        .about(video, &format!("{what}: HTTP 429")),
    )
}

fn walled(behaviour: Behaviour, n: u32, req: &Req) -> bool {
    match behaviour {
        Behaviour::LoginWall => true,
        Behaviour::LoginWallFirst(k) => n <= k,
        Behaviour::NeedsCookie => req.cookie("sessionid").is_none(),
        _ => false,
    }
}

fn ruling(req: &Req, shared: &Shared, video: &str) -> Reply {
    // The first request of an attempt about the video.
    let (behaviour, n) = shared.begin(video);
    if let Some(r) = pushback(req, behaviour, n, video, "ruling") {
        return r;
    }
    let (body, answer) = match behaviour {
        Behaviour::Private => (
            json!({"title": "This account is private",
                   "description": "Follow this account to see their photos and videos.",
                   "status": "ok"}),
            "ruling: private account",
        ),
        Behaviour::Removed => (
            json!({"title": "Post isn't available",
                   "description": "The link may be broken, or the profile may have been removed.",
                   "status": "ok"}),
            "ruling: post removed",
        ),
        Behaviour::AgeRestricted => (
            json!({"title": "Restricted Video",
                   "description": "You must be 18 years old or over to see this video.",
                   "status": "ok"}),
            "ruling: Restricted Video (age)",
        ),
        _ => (json!({"status": "ok"}), "ruling: ok"),
    };
    Reply::json(&body).about(video, answer)
}

fn graphql(req: &Req, shared: &Shared, video: &str) -> Reply {
    let (behaviour, n) = shared.current(video);
    if let Some(r) = pushback(req, behaviour, n, video, "graphql") {
        return r;
    }
    // yt-dlp reads the API check's reason only when the post came back
    // empty, as it does for a post Instagram will not show.
    let refused = matches!(
        behaviour,
        Behaviour::EmptyMedia | Behaviour::Private | Behaviour::Removed | Behaviour::AgeRestricted
    );
    if walled(behaviour, n, req) || refused {
        // What Instagram answers a logged-out client it will not serve.
        return Reply::json(
            &json!({"data": {"xig_polaris_media": null}, "extensions": {"is_final": true}}),
        )
        .about(video, "graphql: empty xig_polaris_media (logged out)");
    }
    match behaviour {
        Behaviour::Changed => Reply::json(&json!({
            "data": {"xdt_api__v1__media__shortcode__web_info": {"items": [product(video)]}},
        }))
        .about(video, "graphql: post under a renamed key (redesign)"),
        Behaviour::FallbackPage => Reply::new(
            500,
            "application/json",
            r#"{"errors":[{"message":"doc_id is no longer supported"}]}"#,
        )
        .about(video, "graphql: error (retired doc_id)"),
        _ => Reply::json(&json!({
            "data": {"xig_polaris_media": {"if_not_gated_logged_out": product(video)}},
            "extensions": {"is_final": true},
        }))
        .about(video, "graphql: xig_polaris_media.if_not_gated_logged_out"),
    }
}

fn post_page(req: &Req, shared: &Shared, video: &str) -> Reply {
    let (behaviour, n) = shared.current(video);
    if let Some(r) = pushback(req, behaviour, n, video, "post page") {
        return r;
    }
    if matches!(
        behaviour,
        Behaviour::LoginWall | Behaviour::LoginWallFirst(_)
    ) && walled(behaviour, n, req)
    {
        return Reply::redirect(
            "https://www.instagram.com/accounts/login/?next=%2Fp%2Frehearsal%2F",
        )
        .about(
            video,
            "post page: redirect to /accounts/login/ (login wall)",
        );
    }
    let media = match behaviour {
        Behaviour::FallbackPage => Some(json!({"if_not_gated_logged_out": product(video)})),
        Behaviour::Changed => None,
        _ => None,
    };
    let Some(media) = media else {
        return Reply::html(
            "<!DOCTYPE html><html><head><title>Instagram</title></head><body></body></html>",
        )
        .about(video, "post page: no xig_polaris_media");
    };
    let sjs = json!({"require": [["ScheduledServerJS", "handle", null, [{"__bbox": {"require": [
        ["RelayPrefetchedStreamCache", "next", [], [
            "adp_PolarisPostRootQueryRelayPreloader_rehearsal",
            {"__bbox": {"result": {"data": {"xig_polaris_media": media}}}}
        ]]
    ]}}]]]});
    Reply::html(format!(
        "<!DOCTYPE html><html><head><title>Instagram</title></head><body>\
         <script type=\"application/json\" data-content-len=\"1\" data-sjs>{sjs}</script></body></html>"
    ))
    .about(video, "post page: data-sjs RelayPrefetchedStreamCache (fallback)")
}

fn media_info(req: &Req, shared: &Shared, video: &str) -> Reply {
    let (behaviour, n) = shared.begin(video);
    if let Some(r) = pushback(req, behaviour, n, video, "media info") {
        return r;
    }
    if req.cookie("sessionid").is_none() {
        return Reply::redirect("https://www.instagram.com/accounts/login/")
            .about(video, "media info: not logged in");
    }
    Reply::json(&json!({"items": [product(video)], "num_results": 1, "status": "ok"}))
        .about(video, "media info: items[0] (logged in)")
}

/// A reel as `_extract_product` reads it.
fn product(video: &str) -> serde_json::Value {
    json!({
        "pk": code_to_pk(video).to_string(),
        "id": format!("{}_6800000001", code_to_pk(video)),
        "code": video,
        "media_type": 2,
        "taken_at": 1764892800,
        "user": {"pk": "6800000001", "username": "rehearsal", "full_name": "Rehearsal Creator"},
        "caption": {"text": format!("Rehearsal reel {video}")},
        "like_count": 12,
        "comment_count": 3,
        "view_count": 345,
        "video_duration": 3.0,
        "has_audio": true,
        "video_codec": "avc1.64001F",
        "video_versions": [{
            "id": "101", "type": 101, "width": 180, "height": 320,
            "url": format!("https://{MEDIA_HOST}/v/t16/{video}/reel.mp4"),
        }],
        "image_versions2": {"candidates": [{
            "width": 120, "height": 120,
            "url": format!("https://{MEDIA_HOST}/v/t51/{video}/cover.jpg"),
        }]},
    })
}
