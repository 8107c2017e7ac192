//! Which site a job is for, and how politely we treat that site: spacing
//! between requests, random jitter, attempts, and the pause after it
//! rate-limits us, and the yt-dlp options added for it. Built-in defaults are
//! the old service's, except YouTube's pacing (see `builtin`); operators
//! override them per key in a TOML file (`XTRACT_PLATFORMS_FILE`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Instagram,
    TikTok,
    YouTube,
    Other,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Instagram,
        Platform::TikTok,
        Platform::YouTube,
        Platform::Other,
    ];

    /// The name stored in `processing_jobs.platform` and used in the TOML file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Instagram => "instagram",
            Platform::TikTok => "tiktok",
            Platform::YouTube => "youtube",
            Platform::Other => "other",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Platform::Instagram => "Instagram",
            Platform::TikTok => "TikTok",
            Platform::YouTube => "YouTube",
            Platform::Other => "The video site",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown platform '{s}' (instagram, tiktok, youtube, other)"))
    }
}

/// How we treat one platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformPolicy {
    /// Least time between two requests to the platform.
    pub min_interval: Duration,
    /// Random extra delay added to each request, drawn from this range.
    pub jitter: (Duration, Duration),
    pub max_attempts: u32,
    /// Pause after the platform rate-limits us.
    pub cooldown: Duration,
    pub enabled: bool,
    /// yt-dlp options added to every strategy's run for this platform
    /// (checked by `ytdlp_args::check`).
    pub ytdlp_args: Vec<String>,
    /// A job of this platform running longer is stopped and fails
    /// `timeout`; None: XTRACT_JOB_TIMEOUT_SECS.
    pub max_runtime: Option<Duration>,
}

impl PlatformPolicy {
    fn builtin(platform: Platform) -> Self {
        let secs = Duration::from_secs_f64;
        let (interval, jitter, attempts, cooldown, enabled) = match platform {
            Platform::Instagram => (8.0, (3.0, 7.0), 2, 600.0, true),
            Platform::TikTok => (5.0, (1.0, 3.0), 3, 300.0, true),
            // yt-dlp's own advice for YouTube guest sessions (its wiki,
            // "Common YouTube Errors"): sessions are limited to about 300
            // videos an hour, so wait 5-10 s between downloads. The old
            // service's 2 s + 0.5-2 s asked up to three times as often.
            Platform::YouTube => (5.0, (0.0, 5.0), 3, 300.0, true),
            Platform::Other => (3.0, (0.5, 2.0), 3, 300.0, false),
        };
        PlatformPolicy {
            min_interval: secs(interval),
            jitter: (secs(jitter.0), secs(jitter.1)),
            max_attempts: attempts,
            cooldown: secs(cooldown),
            enabled,
            ytdlp_args: Vec::new(),
            max_runtime: None,
        }
    }

    /// A random delay within the jitter range.
    pub fn draw_jitter(&self) -> Duration {
        use rand::Rng;
        let (lo, hi) = self.jitter;
        if hi <= lo {
            return lo;
        }
        rand::thread_rng().gen_range(lo..=hi)
    }
}

/// The platforms file (`XTRACT_PLATFORMS_FILE`), parsed.
pub fn read_document(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_document(&text)
}

/// Parses a platforms file. A syntax error is told by line and column
/// without the line itself: the file may hold proxy passwords
/// (`[egress.NAME] proxy`), and this error goes to the log.
pub fn parse_document(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        format!("{at}{}", e.message().trim())
    })
}

/// One override section of the TOML file; absent keys keep the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyOverride {
    min_interval_secs: Option<f64>,
    jitter_secs: Option<[f64; 2]>,
    max_attempts: Option<u32>,
    cooldown_secs: Option<f64>,
    enabled: Option<bool>,
    ytdlp_args: Option<Vec<String>>,
    max_runtime_secs: Option<f64>,
}

/// The policy of every platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformTable {
    policies: BTreeMap<Platform, PlatformPolicy>,
}

impl Default for PlatformTable {
    fn default() -> Self {
        PlatformTable {
            policies: Platform::ALL
                .into_iter()
                .map(|p| (p, PlatformPolicy::builtin(p)))
                .collect(),
        }
    }
}

impl PlatformTable {
    pub fn get(&self, platform: Platform) -> &PlatformPolicy {
        // Every platform is inserted at construction.
        &self.policies[&platform]
    }

    pub fn set(&mut self, platform: Platform, policy: PlatformPolicy) {
        self.policies.insert(platform, policy);
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        Self::from_document(&read_document(path)?)
    }

    /// Applies the overrides in `text` on top of the built-in table.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Self::from_document(&parse_document(text)?)
    }

    /// Applies the platform sections of a platforms file; its `[egress.*]`
    /// tables are the egress pool's (egress_pool.rs).
    pub fn from_document(doc: &toml::Table) -> Result<Self, String> {
        let mut table = PlatformTable::default();
        for (name, value) in doc.iter().filter(|(name, _)| *name != "egress") {
            let platform: Platform = name.parse()?;
            let o = PolicyOverride::deserialize(value.clone())
                .map_err(|e| format!("[{name}] {}", e.message()))?;
            let p = table
                .policies
                .get_mut(&platform)
                .expect("all platforms present");
            // At most 30 days, as every duration of the configuration.
            let secs = |what: &str, v: f64| -> Result<Duration, String> {
                Duration::try_from_secs_f64(v)
                    .ok()
                    .filter(|d| d.as_secs() <= 30 * 24 * 3600)
                    .ok_or_else(|| format!("[{name}] {what} must be a number of seconds from 0 to 2592000 (30 days)"))
            };
            if let Some(v) = o.min_interval_secs {
                p.min_interval = secs("min_interval_secs", v)?;
            }
            if let Some([lo, hi]) = o.jitter_secs {
                if lo > hi {
                    return Err(format!(
                        "[{name}] jitter_secs must be [min, max] with min <= max"
                    ));
                }
                p.jitter = (secs("jitter_secs", lo)?, secs("jitter_secs", hi)?);
            }
            if let Some(v) = o.max_attempts {
                if v == 0 {
                    return Err(format!("[{name}] max_attempts must be at least 1"));
                }
                p.max_attempts = v;
            }
            if let Some(v) = o.cooldown_secs {
                p.cooldown = secs("cooldown_secs", v)?;
            }
            if let Some(v) = o.enabled {
                p.enabled = v;
            }
            if let Some(args) = o.ytdlp_args {
                super::ytdlp_args::check(&args).map_err(|e| format!("[{name}] ytdlp_args: {e}"))?;
                p.ytdlp_args = args;
            }
            if let Some(v) = o.max_runtime_secs {
                let limit = secs("max_runtime_secs", v)?;
                if limit < Duration::from_secs(1) {
                    return Err(format!("[{name}] max_runtime_secs must be at least 1"));
                }
                p.max_runtime = Some(limit);
            }
        }
        Ok(table)
    }

    /// `{"instagram": 2, ...}`: the attempts per platform, as the reaper's SQL
    /// reads them.
    pub fn max_attempts_json(&self) -> serde_json::Value {
        self.policies
            .iter()
            .map(|(p, pol)| (p.as_str().to_string(), pol.max_attempts.into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_old_services_limits_but_youtube_follows_yt_dlps_advice() {
        let t = PlatformTable::default();
        let ig = t.get(Platform::Instagram);
        assert_eq!(ig.min_interval, Duration::from_secs(8));
        assert_eq!(ig.jitter, (Duration::from_secs(3), Duration::from_secs(7)));
        assert_eq!(ig.max_attempts, 2);
        assert_eq!(ig.cooldown, Duration::from_secs(600));
        assert_eq!(t.get(Platform::TikTok).max_attempts, 3);
        // 5-10 s between YouTube requests, as yt-dlp advises for guest
        // sessions (the old service: 2 s + 0.5-2 s).
        let yt = t.get(Platform::YouTube);
        assert_eq!(yt.min_interval, Duration::from_secs(5));
        assert_eq!(yt.jitter, (Duration::ZERO, Duration::from_secs(5)));
        assert!(Platform::ALL
            .iter()
            .all(|p| t.get(*p).ytdlp_args.is_empty()));
        assert!(!t.get(Platform::Other).enabled);
    }

    #[test]
    fn the_old_services_youtube_pacing_can_be_restored() {
        // The snippet the README gives.
        let t = PlatformTable::from_toml(
            "[youtube]\nmin_interval_secs = 2.0\njitter_secs = [0.5, 2.0]\n",
        )
        .unwrap();
        let yt = t.get(Platform::YouTube);
        assert_eq!(yt.min_interval, Duration::from_secs(2));
        assert_eq!(
            yt.jitter,
            (Duration::from_millis(500), Duration::from_secs(2))
        );
    }

    #[test]
    fn ytdlp_args_are_taken_per_platform_and_refused_when_unsafe() {
        let t = PlatformTable::from_toml(
            "[youtube]\nytdlp_args = [\"--extractor-args\", \"youtube:player_client=web\"]\n",
        )
        .unwrap();
        assert_eq!(
            t.get(Platform::YouTube).ytdlp_args,
            ["--extractor-args", "youtube:player_client=web"]
        );
        assert!(t.get(Platform::TikTok).ytdlp_args.is_empty());
        let e =
            PlatformTable::from_toml("[tiktok]\nytdlp_args = [\"--exec\", \"id\"]\n").unwrap_err();
        assert!(
            e.contains("[tiktok] ytdlp_args") && e.contains("--exec"),
            "{e}"
        );
    }

    #[test]
    fn toml_overrides_only_the_keys_it_names() {
        let t = PlatformTable::from_toml(
            "[youtube]\nmax_attempts = 5\n[other]\nenabled = true\njitter_secs = [0.0, 0.0]\n",
        )
        .unwrap();
        assert_eq!(t.get(Platform::YouTube).max_attempts, 5);
        assert_eq!(
            t.get(Platform::YouTube).min_interval,
            Duration::from_secs(5)
        );
        assert!(t.get(Platform::Other).enabled);
        assert_eq!(t.get(Platform::Other).draw_jitter(), Duration::ZERO);
        assert_eq!(t.get(Platform::Other).max_runtime, None);
    }

    #[test]
    fn a_platform_may_have_its_own_time_limit() {
        let t = PlatformTable::from_toml("[tiktok]\nmax_runtime_secs = 300\n").unwrap();
        assert_eq!(
            t.get(Platform::TikTok).max_runtime,
            Some(Duration::from_secs(300))
        );
        assert_eq!(t.get(Platform::YouTube).max_runtime, None);
        let e = PlatformTable::from_toml("[tiktok]\nmax_runtime_secs = 0\n").unwrap_err();
        assert!(e.contains("max_runtime_secs"), "{e}");
    }

    /// The file may hold proxy passwords (`[egress.NAME] proxy`), and the
    /// error goes to the log: the place, not the line.
    #[test]
    fn a_syntax_error_names_its_place_without_repeating_the_line() {
        let e = PlatformTable::from_toml(
            "[tiktok]\nmax_attempts = 2\n[egress.res1]\nproxy = \"http://u:hunter2@h:1\n",
        )
        .unwrap_err();
        assert!(e.starts_with("line 4, column "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_egress_tables_are_not_platforms() {
        let t = PlatformTable::from_toml(
            "[egress.res1]\nproxy = \"http://h:1\"\n[tiktok]\nmax_attempts = 1\n",
        )
        .unwrap();
        assert_eq!(t.get(Platform::TikTok).max_attempts, 1);
    }

    #[test]
    fn toml_mistakes_are_named() {
        let e = PlatformTable::from_toml("[vimeo]\nenabled = true\n").unwrap_err();
        assert!(e.contains("vimeo"), "{e}");
        let e = PlatformTable::from_toml("[tiktok]\nmax_attempt = 2\n").unwrap_err();
        assert!(e.contains("max_attempt"), "{e}");
        let e = PlatformTable::from_toml("[tiktok]\njitter_secs = [3.0, 1.0]\n").unwrap_err();
        assert!(e.contains("jitter_secs"), "{e}");
    }
}
