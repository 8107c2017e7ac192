//! Which links a job may carry, which platform they belong to, and their
//! canonical form (for finding repeats). Known platforms are recognised by
//! host name, with no DNS lookup of our own; hosts of `other` sites are
//! resolved and must not lead into our own network (cloud metadata at
//! 169.254.169.254, loopback services, private ranges).
//!
//! The first step, [`check_shape`], is the link check every insert gets too
//! (`xtract.link_problem` in sql/009_one_link_check.sql): the same rules in
//! the same order with the same words, written twice because one runs in
//! the database. `tests/link_cases.json` is run through both. Everything
//! after it (a URL parser's verdict, the site, the path, the host's
//! address) only the daemon judges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::domain::Platform;

#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// Accept links of sites other than the known platforms.
    pub allow_other: bool,
    /// Accept links to loopback/private addresses (tests and demos only).
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

#[derive(Debug, Clone)]
pub struct JobUrl {
    /// The link as given (normalised by the URL parser); what yt-dlp gets.
    pub url: Url,
    pub platform: Platform,
    /// One form per video, tracking parameters removed.
    pub canonical: String,
    /// The item of a post with several media (an Instagram carousel) the
    /// link names: Instagram's `img_index`, 1-based as Instagram counts.
    pub item: Option<u32>,
}

impl JobUrl {
    /// The link yt-dlp is given. Instagram links go in their canonical form:
    /// yt-dlp's Instagram extractor knows only `www.instagram.com/…/{p,
    /// reel,tv}/CODE`, and hands `m.instagram.com` and `instagr.am` links to
    /// its generic extractor (one more request to Instagram, and "Unsupported
    /// URL" where that fails). Other links go as the user sent them.
    pub fn for_ytdlp(&self) -> &str {
        match self.platform {
            Platform::Instagram => &self.canonical,
            _ => self.url.as_str(),
        }
    }
}

/// Items of an Instagram post: up to 20 today; more is not a real index.
const MAX_POST_ITEMS: u32 = 50;

/// Why a link was refused. The Display text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("The link is empty.")]
    Empty,
    #[error("The link is too long (more than {0} characters).")]
    TooLong(usize),
    #[error("This is not a valid link.")]
    Malformed,
    #[error("Links may not start with '-'.")]
    LeadingDash,
    #[error("Links may not contain spaces or control characters.")]
    Whitespace,
    #[error("Only http and https links are supported.")]
    Scheme,
    #[error("Links with a user name or password in them are not accepted.")]
    Credentials,
    #[error("Links from this site are not supported. Use an Instagram, TikTok or YouTube link.")]
    UnsupportedSite,
    #[error("This link is not to a single video. Send a link to one video, not a profile, channel or playlist.")]
    NotAVideo,
    #[error("This YouTube link is incomplete: the video id is not valid.")]
    BadVideoId,
    #[error("Links to private or local network addresses are not allowed.")]
    PrivateAddress,
    #[error("The site in this link could not be found.")]
    HostNotFound,
}

/// Characters trimmed from both ends of a link: Unicode's White_Space, and
/// the zero-width space and byte-order mark that copying from apps adds.
/// The insert's check lists the same characters.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}' | '\u{FEFF}')
}

/// The shape of a link, judged on its text alone: what the insert checks
/// too, in the same order and words. Returns the link without the blanks
/// around it. The length counts characters, as the message says.
pub fn check_shape(raw: &str, max_len: usize) -> Result<&str, UrlError> {
    let text = raw.trim_matches(is_blank);
    if text.is_empty() {
        return Err(UrlError::Empty);
    }
    if text.chars().count() > max_len {
        return Err(UrlError::TooLong(max_len));
    }
    if text.starts_with('-') {
        // yt-dlp would read it as an option (we also pass `--`).
        return Err(UrlError::LeadingDash);
    }
    if text.chars().any(|c| is_blank(c) || c.is_control()) {
        return Err(UrlError::Whitespace);
    }
    // "name:" at the start is a scheme (so is "localhost:8080/…").
    let http = strip_http(text);
    let scheme = text.split_once(':').is_some_and(|(name, _)| {
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
    });
    if scheme && http.is_none() {
        return Err(UrlError::Scheme);
    }
    let rest = http.unwrap_or(text);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    // The site: a name with a dot, an address, or localhost (tests, demos).
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    if host.is_empty()
        || !(host.contains('.') || host.starts_with('[') || host.eq_ignore_ascii_case("localhost"))
    {
        return Err(UrlError::Malformed);
    }
    Ok(text)
}

/// The link after `http://` or `https://` (any case), if it starts so.
fn strip_http(text: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|p| {
        let head = text.get(..p.len())?;
        head.eq_ignore_ascii_case(p).then(|| &text[p.len()..])
    })
}

/// Checks a link and finds its platform and canonical form. No network.
pub fn parse_job_url(raw: &str, policy: &UrlPolicy) -> Result<JobUrl, UrlError> {
    let text = check_shape(raw, policy.max_len)?;
    let url = parse_lenient(text)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let host = url.host().ok_or(UrlError::Malformed)?.to_owned();
    match host {
        Host::Domain(domain) => {
            let domain = domain.trim_end_matches('.').to_string();
            if let Some(result) = known_platform(&domain, &url) {
                let (platform, canonical) = result?;
                let item = (platform == Platform::Instagram)
                    .then(|| post_item(&url))
                    .flatten();
                let canonical = match item {
                    Some(n) => format!("{canonical}?img_index={n}"),
                    None => canonical,
                };
                return Ok(JobUrl {
                    url,
                    platform,
                    canonical,
                    item,
                });
            }
            if domain == "localhost" || domain.ends_with(".localhost") {
                return other(url, policy.allow_private, UrlError::PrivateAddress);
            }
            other(url, policy.allow_other, UrlError::UnsupportedSite)
        }
        Host::Ipv4(ip) => ip_link(url, IpAddr::V4(ip), policy),
        Host::Ipv6(ip) => ip_link(url, IpAddr::V6(ip), policy),
    }
}

/// People paste `www.youtube.com/watch?v=…` without a scheme: read it as
/// https. Anything else that does not parse is malformed.
fn parse_lenient(text: &str) -> Result<Url, UrlError> {
    match Url::parse(text) {
        Ok(url) => Ok(url),
        Err(url::ParseError::RelativeUrlWithoutBase) if !text.contains("://") => {
            Url::parse(&format!("https://{text}")).map_err(|_| UrlError::Malformed)
        }
        Err(_) => Err(UrlError::Malformed),
    }
}

fn ip_link(url: Url, ip: IpAddr, policy: &UrlPolicy) -> Result<JobUrl, UrlError> {
    if is_forbidden_ip(ip) {
        other(url, policy.allow_private, UrlError::PrivateAddress)
    } else {
        other(url, policy.allow_other, UrlError::UnsupportedSite)
    }
}

/// A link of platform `other`, if `allowed`.
fn other(mut url: Url, allowed: bool, refusal: UrlError) -> Result<JobUrl, UrlError> {
    if !allowed {
        return Err(refusal);
    }
    url.set_fragment(None);
    Ok(JobUrl {
        canonical: url.to_string(),
        url,
        platform: Platform::Other,
        item: None,
    })
}

/// True when `domain` is `base` or one of its subdomains.
fn within(domain: &str, base: &str) -> bool {
    domain == base
        || domain
            .strip_suffix(base)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn segments(url: &Url) -> Vec<&str> {
    url.path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default()
}

/// Some(..) when the host belongs to a known platform: then the path must be
/// one video of it.
fn known_platform(domain: &str, url: &Url) -> Option<Result<(Platform, String), UrlError>> {
    if within(domain, "instagram.com") || within(domain, "instagr.am") {
        return Some(instagram(url).map(|c| (Platform::Instagram, c)));
    }
    if within(domain, "tiktok.com") {
        return Some(tiktok(domain, url).map(|c| (Platform::TikTok, c)));
    }
    if within(domain, "youtube.com")
        || within(domain, "youtube-nocookie.com")
        || within(domain, "youtu.be")
    {
        let short = within(domain, "youtu.be");
        return Some(youtube(short, url).map(|c| (Platform::YouTube, c)));
    }
    None
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Posts, reels and IGTV, with or without the author's name before them,
/// and the app's share links (`/share/reel/TOKEN`: a token that redirects to
/// the post, not the post's code, so it is its own canonical form). An
/// audio page (`/reels/audio/ID`) is not a video.
fn instagram(url: &Url) -> Result<String, UrlError> {
    let parts = segments(url);
    if let ["share", kind, token, ..] = parts.as_slice() {
        return match *kind {
            "p" | "reel" | "reels" | "tv" if is_code(token) => {
                Ok(format!("https://www.instagram.com/share/{kind}/{token}/"))
            }
            _ => Err(UrlError::NotAVideo),
        };
    }
    let (kind, code) = match parts.as_slice() {
        [kind, code, ..] if matches!(*kind, "p" | "reel" | "reels" | "tv") => (*kind, *code),
        [_user, kind, code, ..] if matches!(*kind, "p" | "reel" | "tv") => (*kind, *code),
        _ => return Err(UrlError::NotAVideo),
    };
    if !is_code(code) || (kind.starts_with("reel") && code == "audio") {
        return Err(UrlError::NotAVideo);
    }
    let kind = if kind == "reels" { "reel" } else { kind };
    Ok(format!("https://www.instagram.com/{kind}/{code}/"))
}

/// `img_index=N` on a post link: the N-th item of a post with several
/// media. Anything but a small positive number is ignored (the link is
/// still the post).
fn post_item(url: &Url) -> Option<u32> {
    if segments(url).iter().rev().nth(1) != Some(&"p") {
        return None;
    }
    url.query_pairs()
        .find(|(k, _)| k == "img_index")
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .filter(|n| (1..=MAX_POST_ITEMS).contains(n))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `/@user/video/ID`, `/v/ID.html`, `/embed/v2/ID`, and the short links
/// (`vm.`/`vt.` hosts, `/t/CODE`). The canonical form keeps only the id: a
/// renamed account does not make the video another one.
fn tiktok(domain: &str, url: &Url) -> Result<String, UrlError> {
    let parts = segments(url);
    if domain == "vm.tiktok.com" || domain == "vt.tiktok.com" {
        return match parts.as_slice() {
            [code] if is_code(code) => Ok(format!("https://{domain}/{code}/")),
            _ => Err(UrlError::NotAVideo),
        };
    }
    let id = match parts.as_slice() {
        [user, kind, id, ..] if user.starts_with('@') && matches!(*kind, "video" | "photo") => *id,
        ["v", file] => file.strip_suffix(".html").unwrap_or(file),
        ["embed", "v2", id] | ["embed", id] => *id,
        ["t", code] if is_code(code) => return Ok(format!("https://www.tiktok.com/t/{code}/")),
        _ => return Err(UrlError::NotAVideo),
    };
    if !is_digits(id) {
        return Err(UrlError::NotAVideo);
    }
    Ok(format!("https://www.tiktok.com/@/video/{id}"))
}

/// Videos, shorts, live and embeds; `v=` wins over `list=` (one video per
/// job). Channels, playlists and searches are refused.
fn youtube(short: bool, url: &Url) -> Result<String, UrlError> {
    let parts = segments(url);
    let id = if short {
        match parts.as_slice() {
            [id] => id.to_string(),
            _ => return Err(UrlError::NotAVideo),
        }
    } else {
        match parts.as_slice() {
            ["watch"] | ["watch", ..] => match url.query_pairs().find(|(k, _)| k == "v") {
                Some((_, v)) => v.into_owned(),
                None => return Err(UrlError::NotAVideo),
            },
            [kind, id, ..] if matches!(*kind, "shorts" | "live" | "embed" | "v" | "e") => {
                id.to_string()
            }
            _ => return Err(UrlError::NotAVideo),
        }
    };
    let valid = id.len() == 11
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(UrlError::BadVideoId);
    }
    Ok(format!("https://www.youtube.com/watch?v={id}"))
}

/// Resolves the host of an `other` link and refuses it if any address is
/// forbidden: a clear answer before any download starts. The download
/// itself goes through the egress guard (egress.rs), which checks every
/// address again, redirects and changed DNS answers included.
pub async fn check_resolved_host(job: &JobUrl, policy: &UrlPolicy) -> Result<(), UrlError> {
    if job.platform != Platform::Other || policy.allow_private {
        return Ok(());
    }
    let Some(Host::Domain(domain)) = job.url.host() else {
        return Ok(()); // literal addresses were checked when parsed
    };
    let port = job.url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<_> = tokio::net::lookup_host((domain, port))
        .await
        .map_err(|_| UrlError::HostNotFound)?
        .collect();
    if addrs.is_empty() {
        return Err(UrlError::HostNotFound);
    }
    if addrs.iter().any(|a| is_forbidden_ip(a.ip())) {
        return Err(UrlError::PrivateAddress);
    }
    Ok(())
}

/// Addresses a download must never be sent to.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    // Addresses that carry an IPv4 address inside: judge that one.
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return forbidden_v4(embedded(s[6], s[7])); // IPv4-compatible
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2])); // 6to4
    }
    if s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7])); // NAT64
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
}

#[cfg(test)]
mod tests {
    use super::*;
    use Platform::*;

    const YT: &str = "https://www.youtube.com/watch?v=dQw4w9WgXcQ";

    fn policy(allow_other: bool, allow_private: bool) -> UrlPolicy {
        UrlPolicy {
            allow_other,
            allow_private,
            ..UrlPolicy::default()
        }
    }

    /// (link, expected platform and canonical form) with the default policy.
    const ACCEPTED: &[(&str, Platform, &str)] = &[
        // Instagram: posts, reels, tv; www or not; tracking parameters.
        ("https://www.instagram.com/p/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://instagram.com/p/C1a2B3c4D5e", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://www.instagram.com/reel/Cxyz_123-AB/?igsh=MWQ1ZGUxMzBkMA==", Instagram, "https://www.instagram.com/reel/Cxyz_123-AB/"),
        ("https://www.instagram.com/reels/Cxyz_123-AB/", Instagram, "https://www.instagram.com/reel/Cxyz_123-AB/"),
        ("https://www.instagram.com/tv/B8abcDEFghi/?utm_source=ig_web_copy_link", Instagram, "https://www.instagram.com/tv/B8abcDEFghi/"),
        ("https://m.instagram.com/p/C1a2B3c4D5e/?igshid=abc", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://www.instagram.com/natgeo/p/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://www.instagram.com/natgeo/reel/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/reel/C1a2B3c4D5e/"),
        ("http://instagr.am/p/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("HTTPS://WWW.INSTAGRAM.COM/p/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("  https://www.instagram.com/p/C1a2B3c4D5e/  ", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("www.instagram.com/reel/C1a2B3c4D5e/", Instagram, "https://www.instagram.com/reel/C1a2B3c4D5e/"),
        ("https://www.instagram.com/p/C1a2B3c4D5e/#comments", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        // Instagram: one item of a post with several media; share links.
        ("https://www.instagram.com/p/C1a2B3c4D5e/?img_index=2", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/?img_index=2"),
        ("https://www.instagram.com/p/C1a2B3c4D5e/?igsh=MWQ1&img_index=3", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/?img_index=3"),
        ("https://www.instagram.com/natgeo/p/C1a2B3c4D5e/?img_index=1", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/?img_index=1"),
        ("https://www.instagram.com/p/C1a2B3c4D5e/?img_index=0", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://www.instagram.com/p/C1a2B3c4D5e/?img_index=two", Instagram, "https://www.instagram.com/p/C1a2B3c4D5e/"),
        ("https://www.instagram.com/reel/C1a2B3c4D5e/?img_index=2", Instagram, "https://www.instagram.com/reel/C1a2B3c4D5e/"),
        ("https://www.instagram.com/share/reel/BAHxYz123abc/?igsh=x", Instagram, "https://www.instagram.com/share/reel/BAHxYz123abc/"),
        // TikTok: long, mobile, short links, embeds.
        ("https://www.tiktok.com/@scout2015/video/6718335390845095173", TikTok, "https://www.tiktok.com/@/video/6718335390845095173"),
        ("https://www.tiktok.com/@scout2015/video/6718335390845095173?is_from_webapp=1&sender_device=pc", TikTok, "https://www.tiktok.com/@/video/6718335390845095173"),
        ("https://tiktok.com/@user.name_1/video/7106594312292453675", TikTok, "https://www.tiktok.com/@/video/7106594312292453675"),
        ("https://m.tiktok.com/v/6718335390845095173.html", TikTok, "https://www.tiktok.com/@/video/6718335390845095173"),
        ("https://www.tiktok.com/v/6718335390845095173", TikTok, "https://www.tiktok.com/@/video/6718335390845095173"),
        ("https://www.tiktok.com/embed/v2/6718335390845095173", TikTok, "https://www.tiktok.com/@/video/6718335390845095173"),
        ("https://www.tiktok.com/@user/photo/7301234567890123456", TikTok, "https://www.tiktok.com/@/video/7301234567890123456"),
        ("https://vm.tiktok.com/ZMeAbCdEf/", TikTok, "https://vm.tiktok.com/ZMeAbCdEf/"),
        ("https://vm.tiktok.com/ZMeAbCdEf?utm=1", TikTok, "https://vm.tiktok.com/ZMeAbCdEf/"),
        ("https://vt.tiktok.com/ZSabc123/", TikTok, "https://vt.tiktok.com/ZSabc123/"),
        ("https://www.tiktok.com/t/ZTRabc123/", TikTok, "https://www.tiktok.com/t/ZTRabc123/"),
        // YouTube: watch, short links, shorts, mobile, music, live, embeds.
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", YouTube, YT),
        ("https://youtube.com/watch?v=dQw4w9WgXcQ&t=42s", YouTube, YT),
        ("https://www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", YouTube, YT),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&index=2", YouTube, YT),
        ("https://youtu.be/dQw4w9WgXcQ", YouTube, YT),
        ("https://youtu.be/dQw4w9WgXcQ?si=AbCdEfGhIjKlMnOp", YouTube, YT),
        ("https://www.youtube.com/shorts/dQw4w9WgXcQ", YouTube, YT),
        ("https://youtube.com/shorts/dQw4w9WgXcQ?feature=share", YouTube, YT),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", YouTube, YT),
        ("https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", YouTube, YT),
        ("https://www.youtube.com/live/dQw4w9WgXcQ?si=x", YouTube, YT),
        ("https://www.youtube.com/embed/dQw4w9WgXcQ", YouTube, YT),
        ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", YouTube, YT),
        ("https://www.youtube.com/v/dQw4w9WgXcQ", YouTube, YT),
        ("http://www.youtube.com/watch?v=dQw4w9WgXcQ", YouTube, YT),
        // Surrounding whitespace (a pasted line) is trimmed.
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ\n", YouTube, YT),
        ("https://www.youtube.com./watch?v=dQw4w9WgXcQ", YouTube, YT),
        ("https://www.youtube.com/watch?v=_-AbC_123xY", YouTube, "https://www.youtube.com/watch?v=_-AbC_123xY"),
    ];

    /// (link, why it is refused) with the default policy.
    const REFUSED: &[(&str, UrlError)] = &[
        ("", UrlError::Empty),
        ("   ", UrlError::Empty),
        (
            "-x https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            UrlError::LeadingDash,
        ),
        ("--exec=rm", UrlError::LeadingDash),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ extra",
            UrlError::Whitespace,
        ),
        (
            "https://www.you\ttube.com/watch?v=dQw4w9WgXcQ",
            UrlError::Whitespace,
        ),
        ("file:///etc/passwd", UrlError::Scheme),
        ("ftp://example.com/video.mp4", UrlError::Scheme),
        ("data:text/plain,hello", UrlError::Scheme),
        ("javascript:alert(1)", UrlError::Scheme),
        ("rtmp://live.example.com/stream", UrlError::Scheme),
        (
            "https://user:secret@www.youtube.com/watch?v=dQw4w9WgXcQ",
            UrlError::Credentials,
        ),
        (
            "https://youtube.com@evil.example/watch?v=dQw4w9WgXcQ",
            UrlError::Credentials,
        ),
        (
            "https://token@www.instagram.com/p/C1a2B3c4D5e/",
            UrlError::Credentials,
        ),
        ("http://", UrlError::Malformed),
        ("https://[::1", UrlError::Malformed),
        ("not a link", UrlError::Whitespace),
        ("https://example.com/video.mp4", UrlError::UnsupportedSite),
        ("https://vimeo.com/76979871", UrlError::UnsupportedSite),
        (
            "https://instagram.com.evil.example/p/C1a2B3c4D5e/",
            UrlError::UnsupportedSite,
        ),
        (
            "https://evilinstagram.com/p/C1a2B3c4D5e/",
            UrlError::UnsupportedSite,
        ),
        (
            "https://notyoutube.com/watch?v=dQw4w9WgXcQ",
            UrlError::UnsupportedSite,
        ),
        ("https://www.instagram.com/natgeo/", UrlError::NotAVideo),
        (
            "https://www.instagram.com/reels/audio/725553827147040/",
            UrlError::NotAVideo,
        ),
        ("https://www.instagram.com/share/reel/", UrlError::NotAVideo),
        ("https://www.instagram.com/", UrlError::NotAVideo),
        (
            "https://www.instagram.com/explore/tags/cats/",
            UrlError::NotAVideo,
        ),
        (
            "https://www.instagram.com/stories/highlights/17890000000000000/",
            UrlError::NotAVideo,
        ),
        ("https://www.tiktok.com/@scout2015", UrlError::NotAVideo),
        (
            "https://www.tiktok.com/@scout2015/video/notanumber",
            UrlError::NotAVideo,
        ),
        ("https://www.tiktok.com/tag/cats", UrlError::NotAVideo),
        ("https://vm.tiktok.com/", UrlError::NotAVideo),
        (
            "https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs",
            UrlError::NotAVideo,
        ),
        ("https://www.youtube.com/@MrBeast", UrlError::NotAVideo),
        (
            "https://www.youtube.com/@MrBeast/videos",
            UrlError::NotAVideo,
        ),
        (
            "https://www.youtube.com/channel/UCX6OQ3DkcsbYNE6H8uQQuVA",
            UrlError::NotAVideo,
        ),
        ("https://www.youtube.com/c/SomeChannel", UrlError::NotAVideo),
        ("https://www.youtube.com/user/someone", UrlError::NotAVideo),
        (
            "https://www.youtube.com/results?search_query=cats",
            UrlError::NotAVideo,
        ),
        ("https://www.youtube.com/", UrlError::NotAVideo),
        (
            "https://www.youtube.com/watch?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs",
            UrlError::NotAVideo,
        ),
        (
            "https://www.youtube.com/watch?v=short",
            UrlError::BadVideoId,
        ),
        ("https://youtu.be/dQw4w9WgXcQtoolong", UrlError::BadVideoId),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgX%3C",
            UrlError::BadVideoId,
        ),
        ("http://127.0.0.1:8080/video.mp4", UrlError::PrivateAddress),
        ("http://localhost/video.mp4", UrlError::PrivateAddress),
        ("http://media.localhost/video.mp4", UrlError::PrivateAddress),
        (
            "http://169.254.169.254/latest/meta-data/",
            UrlError::PrivateAddress,
        ),
        ("http://10.0.0.5/video.mp4", UrlError::PrivateAddress),
        ("http://192.168.1.10/video.mp4", UrlError::PrivateAddress),
        ("http://172.16.3.4/video.mp4", UrlError::PrivateAddress),
        ("http://[::1]/video.mp4", UrlError::PrivateAddress),
        (
            "http://[::ffff:127.0.0.1]/video.mp4",
            UrlError::PrivateAddress,
        ),
        ("http://[fe80::1]/video.mp4", UrlError::PrivateAddress),
        ("http://[fd00::1]/video.mp4", UrlError::PrivateAddress),
        // No dot: not a site by the shape rule the insert shares.
        ("http://2130706433/video.mp4", UrlError::Malformed),
        ("http://0x7f.1/video.mp4", UrlError::PrivateAddress),
        ("http://0.0.0.0/video.mp4", UrlError::PrivateAddress),
        ("http://224.0.0.1/video.mp4", UrlError::PrivateAddress),
        ("http://100.64.0.1/video.mp4", UrlError::PrivateAddress),
        ("http://8.8.8.8/video.mp4", UrlError::UnsupportedSite),
    ];

    #[test]
    fn accepted_links_get_their_platform_and_canonical_form() {
        for (link, platform, canonical) in ACCEPTED {
            let job = parse_job_url(link, &UrlPolicy::default())
                .unwrap_or_else(|e| panic!("{link:?} refused: {e:?}"));
            assert_eq!(job.platform, *platform, "{link}");
            assert_eq!(job.canonical, *canonical, "{link}");
        }
    }

    #[test]
    fn refused_links_say_why() {
        for (link, want) in REFUSED {
            let got = parse_job_url(link, &UrlPolicy::default());
            assert_eq!(got.as_ref().err(), Some(want), "{link:?}: {got:?}");
        }
    }

    /// Every refusal, one after another: a match without a wildcard, so
    /// that a new one does not compile until it is placed here.
    fn next_refusal(e: Option<&UrlError>) -> Option<UrlError> {
        use UrlError::*;
        match e {
            None => Some(Empty),
            Some(Empty) => Some(TooLong(2048)),
            Some(TooLong(_)) => Some(Malformed),
            Some(Malformed) => Some(LeadingDash),
            Some(LeadingDash) => Some(Whitespace),
            Some(Whitespace) => Some(Scheme),
            Some(Scheme) => Some(Credentials),
            Some(Credentials) => Some(UnsupportedSite),
            Some(UnsupportedSite) => Some(NotAVideo),
            Some(NotAVideo) => Some(BadVideoId),
            Some(BadVideoId) => Some(PrivateAddress),
            Some(PrivateAddress) => Some(HostNotFound),
            Some(HostNotFound) => None,
        }
    }

    #[test]
    fn the_tables_cover_every_known_platform_and_every_refusal() {
        for platform in Platform::ALL.into_iter().filter(|p| *p != Other) {
            assert!(
                ACCEPTED.iter().any(|(_, p, _)| *p == platform),
                "no {platform:?} link among the accepted"
            );
        }
        let mut refusal = next_refusal(None);
        while let Some(e) = refusal {
            // Two need their own test: a link over 2048 characters, and a
            // name looked up in DNS (async).
            let elsewhere = matches!(e, UrlError::TooLong(_) | UrlError::HostNotFound);
            assert!(
                elsewhere || REFUSED.iter().any(|(_, want)| *want == e),
                "no link refused as {e:?}"
            );
            refusal = next_refusal(Some(&e));
        }
    }

    #[test]
    fn a_post_item_is_read_and_instagram_links_reach_yt_dlp_in_their_canonical_form() {
        let p = UrlPolicy::default();
        let item = parse_job_url("https://m.instagram.com/p/C1a2B3c4D5e/?img_index=4", &p).unwrap();
        assert_eq!(item.item, Some(4));
        assert_eq!(
            item.for_ytdlp(),
            "https://www.instagram.com/p/C1a2B3c4D5e/?img_index=4"
        );
        let post = parse_job_url("http://instagr.am/p/C1a2B3c4D5e/", &p).unwrap();
        assert_eq!(post.item, None);
        assert_eq!(post.for_ytdlp(), "https://www.instagram.com/p/C1a2B3c4D5e/");
        assert_ne!(
            item.canonical, post.canonical,
            "another item, another video"
        );
        let yt = parse_job_url("https://youtu.be/dQw4w9WgXcQ?si=x", &p).unwrap();
        assert_eq!(yt.for_ytdlp(), "https://youtu.be/dQw4w9WgXcQ?si=x");
        assert_eq!(yt.item, None);
    }

    #[test]
    fn over_long_links_are_refused() {
        let link = format!("{YT}&pad={}", "a".repeat(3000));
        assert_eq!(
            parse_job_url(&link, &UrlPolicy::default()).err(),
            Some(UrlError::TooLong(2048))
        );
    }

    #[test]
    fn other_sites_only_when_enabled() {
        let job = parse_job_url(
            "https://Example.COM:443/watch/1?id=2#t=3",
            &policy(true, false),
        )
        .unwrap();
        assert_eq!(job.platform, Other);
        assert_eq!(job.canonical, "https://example.com/watch/1?id=2");
        assert_eq!(
            parse_job_url("http://127.0.0.1/v.mp4", &policy(true, false)).err(),
            Some(UrlError::PrivateAddress),
            "enabling other sites does not open the local network"
        );
    }

    #[test]
    fn private_addresses_only_in_test_mode() {
        for link in [
            "http://127.0.0.1:8080/v.mp4",
            "http://localhost/v.mp4",
            "http://[::1]:9/x",
        ] {
            let job = parse_job_url(link, &policy(false, true)).unwrap();
            assert_eq!(job.platform, Other, "{link}");
        }
        // Test mode does not open other public sites.
        assert_eq!(
            parse_job_url("https://example.com/v.mp4", &policy(false, true)).err(),
            Some(UrlError::UnsupportedSite)
        );
    }

    #[test]
    fn users_read_a_sentence() {
        for (_, e) in REFUSED {
            let text = e.to_string();
            assert!(text.ends_with('.') && text.len() > 15, "{text}");
        }
    }

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.100.100.100",
            "255.255.255.255",
            "224.0.0.251",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "2002:7f00:1::",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "151.101.1.140",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let p = policy(true, false);
        let job = parse_job_url("http://localhost:8080/v.mp4", &policy(true, true)).unwrap();
        // Resolved through the system resolver (no internet needed).
        let job = JobUrl {
            platform: Other,
            ..job
        };
        assert_eq!(
            check_resolved_host(&job, &p).await,
            Err(UrlError::PrivateAddress)
        );
        assert_eq!(check_resolved_host(&job, &policy(true, true)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_refused() {
        let p = policy(true, false);
        let job = parse_job_url("https://no-such-host.invalid/v.mp4", &p).unwrap();
        assert_eq!(
            check_resolved_host(&job, &p).await,
            Err(UrlError::HostNotFound)
        );
    }

    #[tokio::test]
    async fn known_platforms_are_never_resolved() {
        // No network here: a lookup would fail, so passing proves none ran.
        let p = UrlPolicy::default();
        let job = parse_job_url(YT, &p).unwrap();
        assert_eq!(check_resolved_host(&job, &p).await, Ok(()));
    }
}
