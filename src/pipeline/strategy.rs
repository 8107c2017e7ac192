//! Download strategies: the ordered ways of asking yt-dlp for a video,
//! tried one after another within one attempt. Platforms block automated
//! downloads in changing ways; a second way often works when the first does
//! not.

use std::path::{Path, PathBuf};

use crate::domain::{AudioSource, ErrorCode, Platform};

/// The User-Agent curl_cffi 0.17's `safari:ios` target sends (seen by the
/// rehearsal's TikTok): the phone strategy sends it on the requests yt-dlp
/// does not let it impersonate, so that every request names one phone.
pub const IMPERSONATED_IPHONE_USER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/27.0 Mobile/15E148 Safari/604.1";

/// A phone's browser, for TikTok's last strategy.
pub const MOBILE_USER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strategy {
    pub name: &'static str,
    /// yt-dlp `-f` selector.
    pub format: &'static str,
    pub extra_args: Vec<String>,
    /// A cookie file to copy into the job's folder for this run.
    pub cookies: Option<PathBuf>,
}

/// What the operator made available beyond the built-in strategies.
#[derive(Debug, Clone, Default)]
pub struct StrategyOptions {
    pub cookies_dir: Option<PathBuf>,
    pub impersonate: Option<String>,
    /// yt-dlp can impersonate a browser (curl_cffi beside it): TikTok's
    /// phone strategy then impersonates Safari on iOS, fingerprint and all,
    /// instead of only sending its User-Agent.
    pub can_impersonate: bool,
}

/// Audio-only when the site has it (AAC first: it copies into m4a), else
/// the best single file.
const AUDIO_FIRST: &str = "ba[ext=m4a]/ba/b";
/// The best file with audio, merged from parts if need be.
const BEST_WITH_AUDIO: &str = "b/bv*+ba/ba";

/// TikTok names a post's *sound* beside the post (`music.playUrl`), and
/// yt-dlp offers it as an audio-only format of its own, `format_id`
/// `audio` (tiktok.py `_extract_web_formats`), which `ba` would take: for a
/// post set to a licensed song, the bare song instead of what the post
/// sounds like (the creator's voice over it). The post's audio is the
/// video's own track, so `ba` here leaves that format out; in practice
/// TikTok has no other audio-only format, and the muxed file is taken.
const TIKTOK_POST_AUDIO_FIRST: &str = "ba[format_id!=audio][ext=m4a]/ba[format_id!=audio]/b";
const TIKTOK_POST_BEST_WITH_AUDIO: &str = "b/bv*+ba[format_id!=audio]";
/// The sound alone: that format and nothing else.
const TIKTOK_SOUND: &str = "audio";

/// The `-f` selector for a strategy's kind of format, for this platform
/// and the job's choice of audio.
fn format(best_with_audio: bool, platform: Platform, source: AudioSource) -> &'static str {
    match (platform, source, best_with_audio) {
        (Platform::TikTok, AudioSource::Sound, _) => TIKTOK_SOUND,
        (Platform::TikTok, AudioSource::Post, false) => TIKTOK_POST_AUDIO_FIRST,
        (Platform::TikTok, AudioSource::Post, true) => TIKTOK_POST_BEST_WITH_AUDIO,
        (_, _, false) => AUDIO_FIRST,
        (_, _, true) => BEST_WITH_AUDIO,
    }
}

/// Options every strategy starts from. None, on purpose:
///
/// The old service sent Instagram a phone's User-Agent (Safari on iOS) and
/// Instagram's web headers with every request. With curl_cffi installed
/// (xtract installs it), yt-dlp's Instagram extractor impersonates a browser
/// on its own: its requests ask for "any" target, which yt-dlp resolves to
/// the newest desktop Chrome (yt_dlp/networking/_curlcffi.py sorts mobile
/// targets last), with Chrome's TLS and HTTP/2 fingerprint and Chrome's
/// client-hint headers. yt-dlp drops only its own default headers for an
/// impersonated request (impersonate.py, `_get_impersonate_headers`), so a
/// User-Agent given with `--add-headers` is kept: an iPhone Safari name on a
/// desktop Chrome handshake, asking for the desktop web query — the kind of
/// mismatch bot detection looks for. yt-dlp already sends Instagram's web
/// app id (`X-IG-App-ID`, the same value) on its API requests, and the
/// impersonated browser brings its own Accept-Language. So Instagram gets
/// no forced headers.
fn base_args() -> Vec<String> {
    Vec::new()
}

pub fn strategies(
    platform: Platform,
    options: &StrategyOptions,
    source: AudioSource,
) -> Vec<Strategy> {
    let base = base_args();
    let audio_first = format(false, platform, source);
    let best_with_audio = format(true, platform, source);
    let mut list = vec![Strategy {
        name: "audio-only",
        format: audio_first,
        extra_args: base.clone(),
        cookies: None,
    }];
    // The sound is one format: asking again for "the best with audio"
    // would ask for the same.
    if best_with_audio != audio_first {
        list.push(Strategy {
            name: "best-with-audio",
            format: best_with_audio,
            extra_args: base.clone(),
            cookies: None,
        });
    }
    if platform == Platform::TikTok {
        // TikTok serves different formats to phones. Its extractor fetches
        // the post's page impersonating a browser of its own choice
        // (`impersonate=True`: desktop Chrome), whatever `--impersonate`
        // says; `--impersonate` reaches only the requests the extractor
        // leaves alone (the media and the thumbnail). Seen by the platform
        // in the rehearsal (tests/rehearsal.rs): with `--impersonate
        // safari:ios` alone, the page was asked for by Chrome on Windows
        // and only the media by an iPhone. So the phone is impersonated
        // where yt-dlp lets us (Safari on iOS, its TLS fingerprint), and
        // its User-Agent, the very one that target sends, is added to every
        // request, the page's included (yt-dlp keeps a User-Agent given
        // with `--add-headers` on an impersonated request). The page
        // request then pairs a phone's name with Chrome's handshake: the
        // price of being a phone to the page at all. Without curl_cffi,
        // requests are plain Python ones and the old service's phone
        // User-Agent is what there is.
        let extra_args = if options.can_impersonate {
            vec![
                "--impersonate".into(),
                "safari:ios".into(),
                "--add-headers".into(),
                format!("User-Agent:{IMPERSONATED_IPHONE_USER_AGENT}"),
            ]
        } else {
            vec![
                "--add-headers".into(),
                format!("User-Agent:{MOBILE_USER_AGENT}"),
            ]
        };
        list.push(Strategy {
            name: "mobile",
            format: best_with_audio,
            extra_args,
            cookies: None,
        });
    }
    if let Some(target) = &options.impersonate {
        let mut args = base.clone();
        args.extend(["--impersonate".to_string(), target.clone()]);
        list.push(Strategy {
            name: "impersonate",
            format: audio_first,
            extra_args: args,
            cookies: None,
        });
    }
    if let Some(file) = cookie_file(options.cookies_dir.as_deref(), platform) {
        list.push(Strategy {
            name: "cookies",
            format: audio_first,
            extra_args: base,
            cookies: Some(file),
        });
    }
    list
}

fn cookie_file(dir: Option<&Path>, platform: Platform) -> Option<PathBuf> {
    let file = dir?.join(format!("{}.txt", platform.as_str()));
    file.is_file().then_some(file)
}

/// After a strategy failed with `code`, is the next one worth a request?
/// Facts about the video (private, deleted, too long) will not change with
/// another format or user agent, and a rate limit must be respected at once.
pub fn next_may_help(code: ErrorCode, next: &Strategy) -> bool {
    match code {
        // A page yt-dlp could not read may read differently to another user
        // agent, impersonation or a signed-in session.
        ErrorCode::NoFormats
        | ErrorCode::HttpForbidden
        | ErrorCode::Internal
        | ErrorCode::ExtractorOutdated
        | ErrorCode::NoAudio => true,
        // Only a signed-in session gets past these.
        ErrorCode::LoginRequired
        | ErrorCode::AgeRestricted
        | ErrorCode::BotCheck
        | ErrorCode::Private => next.cookies.is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instagram_gets_no_user_agent_that_would_contradict_impersonation() {
        for s in strategies(
            Platform::Instagram,
            &StrategyOptions::default(),
            AudioSource::Post,
        ) {
            assert!(
                !s.extra_args.iter().any(|a| a.contains("User-Agent")),
                "{}: {:?}",
                s.name,
                s.extra_args
            );
        }
        let yt = strategies(
            Platform::YouTube,
            &StrategyOptions::default(),
            AudioSource::Post,
        );
        assert!(yt[0].extra_args.is_empty());
        assert_eq!(yt[0].format, "ba[ext=m4a]/ba/b");
    }

    #[test]
    fn cookies_and_impersonation_are_offered_only_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("youtube.txt"),
            "# Netscape HTTP Cookie File\n",
        )
        .unwrap();
        let options = StrategyOptions {
            cookies_dir: Some(dir.path().to_path_buf()),
            impersonate: Some("safari:ios".into()),
            can_impersonate: false,
        };
        let yt = strategies(Platform::YouTube, &options, AudioSource::Post);
        assert_eq!(yt.last().unwrap().name, "cookies");
        assert!(yt.iter().any(|s| s.name == "impersonate"));
        let tt = strategies(Platform::TikTok, &options, AudioSource::Post);
        assert!(tt.iter().all(|s| s.cookies.is_none()), "no tiktok.txt");
    }

    #[test]
    fn tiktoks_phone_strategy_names_one_phone_on_every_request_when_it_can() {
        let phone = |can_impersonate| {
            let options = StrategyOptions {
                can_impersonate,
                ..Default::default()
            };
            strategies(Platform::TikTok, &options, AudioSource::Post)
                .into_iter()
                .find(|s| s.name == "mobile")
                .expect("a phone strategy for TikTok")
                .extra_args
        };
        let whole = phone(true);
        assert_eq!(whole[..2], ["--impersonate", "safari:ios"]);
        assert_eq!(whole[2], "--add-headers");
        assert_eq!(
            whole[3],
            format!("User-Agent:{IMPERSONATED_IPHONE_USER_AGENT}")
        );
        let plain = phone(false);
        assert_eq!(plain[0], "--add-headers");
        assert!(
            plain[1].starts_with("User-Agent:Mozilla/5.0 (iPhone"),
            "{plain:?}"
        );
        // Nobody else gets a phone.
        for p in [Platform::Instagram, Platform::YouTube, Platform::Other] {
            let options = StrategyOptions {
                can_impersonate: true,
                ..Default::default()
            };
            assert!(strategies(p, &options, AudioSource::Post)
                .iter()
                .all(|s| s.name != "mobile"));
        }
    }

    #[test]
    fn a_tiktok_post_keeps_its_own_audio_and_a_sound_job_takes_only_the_sound() {
        let options = StrategyOptions::default();
        let post = strategies(Platform::TikTok, &options, AudioSource::Post);
        for s in &post {
            // Every `ba` leaves the sound's format out.
            let bare_ba = s
                .format
                .split(['/', '+'])
                .any(|atom| atom.starts_with("ba") && !atom.contains("[format_id!=audio]"));
            assert!(!bare_ba, "{}: {}", s.name, s.format);
        }
        let sound = strategies(Platform::TikTok, &options, AudioSource::Sound);
        assert!(sound.iter().all(|s| s.format == "audio"), "{sound:?}");
        assert!(sound.iter().all(|s| s.name != "best-with-audio"));
        // Elsewhere the post's audio is what `ba` finds.
        let yt = strategies(Platform::YouTube, &options, AudioSource::Post);
        assert_eq!(yt[0].format, "ba[ext=m4a]/ba/b");
    }

    #[test]
    fn only_cookies_get_past_a_login_wall() {
        let yt = strategies(
            Platform::YouTube,
            &StrategyOptions::default(),
            AudioSource::Post,
        );
        assert!(!next_may_help(ErrorCode::LoginRequired, &yt[1]));
        assert!(next_may_help(ErrorCode::NoFormats, &yt[1]));
        assert!(!next_may_help(ErrorCode::Private, &yt[1]));
        assert!(!next_may_help(ErrorCode::RateLimited, &yt[1]));
        assert!(next_may_help(ErrorCode::ExtractorOutdated, &yt[1]));
        assert!(!next_may_help(ErrorCode::DrmProtected, &yt[1]));
    }
}
