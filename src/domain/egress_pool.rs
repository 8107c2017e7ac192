//! The egress pool: the addresses a platform's requests may leave from.
//! An egress is this machine's own address (`[egress.direct]` in the
//! platforms file, keyed by XTRACT_EGRESS_KEY) or a proxy (`[egress.NAME]`
//! with `proxy = "scheme://[user:password@]host:port"`, keyed by its name,
//! so every daemon that names it shares its pacing and its pauses).
//!
//! Each (platform, egress) pair has its own pacing slots and pauses in
//! `xtract.platform_pacing`. A download goes out through the allowed
//! egress whose next slot for its platform comes first (`queue/pacing.rs`,
//! one statement that chooses and reserves); a rate limit pauses that pair
//! only. The claim takes a job while any egress it may use is not paused:
//! it reads the pairs as [`EgressRoutes`].
//!
//! Without `[egress.*]` tables the pool is one egress, this machine, as
//! before. Links to `other` sites always leave from this machine, through
//! the egress guard (`pipeline/egress.rs`): a proxy resolves names and
//! connects on its own, so the guard could no longer check the address each
//! request reaches (and a proxy on the operator's own network would reach
//! that network).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::{Platform, PlatformTable};

/// The name a proxy egress may not take, and the name of this machine's
/// own address when the file has no `[egress.*]` tables.
pub const DIRECT: &str = "direct";

/// Proxy schemes yt-dlp and the doctor's check both speak. `socks5h`
/// resolves names at the proxy (no DNS lookups from this machine).
const SCHEMES: [&str; 4] = ["http", "https", "socks5", "socks5h"];

/// One place requests may leave from.
#[derive(Clone, PartialEq)]
pub struct Egress {
    /// Its table in the platforms file (`direct` for this machine's address
    /// when there are no tables).
    pub name: String,
    /// The pacing key in `xtract.platform_pacing`, the job's `egress`
    /// column and the metrics' `egress` label: a proxy's name, or
    /// XTRACT_EGRESS_KEY for this machine's own address.
    pub key: String,
    /// None: this machine's own address.
    pub proxy: Option<ProxyUrl>,
    /// The platforms it may serve; None: every platform but `other`.
    platforms: Option<Vec<Platform>>,
}

impl Egress {
    fn direct(name: &str, key: &str, platforms: Option<Vec<Platform>>) -> Self {
        Egress {
            name: name.to_string(),
            key: key.to_string(),
            proxy: None,
            platforms,
        }
    }

    pub fn serves(&self, platform: Platform) -> bool {
        self.platforms
            .as_ref()
            .is_none_or(|list| list.contains(&platform))
    }

    /// `res1 (http://user:***@10.0.0.5:3128)`, `direct (vm1)`: for people.
    pub fn describe(&self) -> String {
        match &self.proxy {
            Some(p) => format!("{} ({p})", self.name),
            None => format!("{} (this machine, key {})", self.name, self.key),
        }
    }
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Egress")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("proxy", &self.proxy)
            .field("platforms", &self.platforms)
            .finish()
    }
}

/// A proxy URL. Its password never reaches a log line: `Debug` and
/// `Display` show `scheme://user:***@host:port`, and [`ProxyUrl::scrub`]
/// takes it out of text a program printed.
#[derive(Clone, PartialEq)]
pub struct ProxyUrl {
    /// As the operator wrote it (yt-dlp reads it as is).
    url: String,
    masked: String,
    /// The password as written (percent-encoded) and decoded.
    secrets: Vec<String>,
    /// Where the proxy listens.
    host: String,
    port: u16,
}

impl ProxyUrl {
    /// Checks `scheme://[user[:password]@]host:port`. Errors never repeat
    /// the value: it may hold a password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let shape =
            "write it as scheme://[user:password@]host:port, scheme http, https, socks5 or socks5h";
        let url = url::Url::parse(text).map_err(|_| format!("not a URL; {shape}"))?;
        if !SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "scheme '{}' is not a proxy yt-dlp speaks; {shape}",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host; {shape}"))?;
        // Tools disagree on a proxy's default port (curl 1080, Python 80):
        // say it.
        let port = url
            .port()
            .ok_or_else(|| format!("no port (tools disagree on the default); {shape}"))?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("a path, query or fragment after the port; {shape}"));
        }
        let mut secrets = Vec::new();
        if let Some(written) = url.password().filter(|p| !p.is_empty()) {
            secrets.push(written.to_string());
            if let Ok(decoded) = percent_decode(written) {
                if decoded != written {
                    secrets.push(decoded);
                }
            }
        }
        let user = match (url.username(), url.password()) {
            ("", None) => String::new(),
            (user, None) => format!("{user}@"),
            (user, Some(_)) => format!("{user}:***@"),
        };
        Ok(ProxyUrl {
            url: text.to_string(),
            masked: format!("{}://{user}{host}:{port}", url.scheme()),
            secrets,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }

    /// The URL with its password: only for yt-dlp's private options file
    /// and the doctor's check, never for a log line.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// `scheme://user:***@host:port`.
    pub fn masked(&self) -> &str {
        &self.masked
    }

    /// `text` with the password (as written and decoded) replaced by
    /// `***`: for what yt-dlp or an HTTP library said about a request
    /// through this proxy.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.masked);
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    /// Where the proxy listens: host (an IPv6 address without brackets)
    /// and port.
    pub fn address(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The forms of the password that must not be printed.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// One `[egress.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressTable {
    proxy: Option<String>,
    platforms: Option<Vec<String>>,
}

/// Every egress of this daemon.
#[derive(Clone, PartialEq)]
pub struct EgressPool {
    /// What platform jobs may use, in name order.
    egresses: Vec<Egress>,
    /// This machine's own address: `other` links always leave from it.
    machine: Egress,
    /// Whether the file had `[egress.*]` tables.
    configured: bool,
}

impl fmt::Debug for EgressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.egresses).finish()
    }
}

impl EgressPool {
    /// No `[egress.*]` tables: one egress, this machine, keyed by
    /// XTRACT_EGRESS_KEY.
    pub fn single(direct_key: &str) -> Self {
        let machine = Egress::direct(DIRECT, direct_key, None);
        EgressPool {
            egresses: vec![machine.clone()],
            machine,
            configured: false,
        }
    }

    /// The pool of a platforms file (its `egress` table, if any).
    /// `direct_key` is XTRACT_EGRESS_KEY.
    pub fn from_document(doc: &toml::Table, direct_key: &str) -> Result<Self, String> {
        let Some(value) = doc.get("egress") else {
            return Ok(Self::single(direct_key));
        };
        let tables: BTreeMap<String, EgressTable> = BTreeMap::deserialize(value.clone())
            .map_err(|e| format!("[egress]: {}", e.message()))?;
        if tables.is_empty() {
            return Err("[egress] has no tables: add [egress.NAME] tables, or remove it".into());
        }
        let mut egresses = Vec::new();
        let mut machine: Option<Egress> = None;
        for (name, table) in tables {
            let at = format!("[egress.{name}]");
            let well_formed = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !well_formed {
                return Err(format!(
                    "{at}: a name of 1 to 64 letters, digits, '-', '_' or '.' (it becomes a pacing key and a metrics label)"
                ));
            }
            let platforms = match table.platforms {
                None => None,
                Some(names) => Some(platform_list(&at, &names)?),
            };
            let egress = match table.proxy {
                None => {
                    if let Some(first) = &machine {
                        return Err(format!(
                            "{at}: has no proxy, and [egress.{}] already stands for this machine's own address",
                            first.name
                        ));
                    }
                    let e = Egress::direct(&name, direct_key, platforms);
                    machine = Some(e.clone());
                    e
                }
                Some(proxy) => {
                    let proxy = ProxyUrl::parse(&proxy).map_err(|e| format!("{at} proxy: {e}"))?;
                    if name == DIRECT {
                        return Err(format!(
                            "{at}: '{DIRECT}' is this machine's own address; give the proxy another name"
                        ));
                    }
                    if name == direct_key {
                        return Err(format!(
                            "{at}: the name is also XTRACT_EGRESS_KEY (this machine's pacing key); give the proxy another name"
                        ));
                    }
                    Egress {
                        name: name.clone(),
                        key: name.clone(),
                        proxy: Some(proxy),
                        platforms,
                    }
                }
            };
            egresses.push(egress);
        }
        Ok(EgressPool {
            egresses,
            machine: machine.unwrap_or_else(|| Egress::direct(DIRECT, direct_key, None)),
            configured: true,
        })
    }

    /// Refuses a platform's `ytdlp_args` that would send its requests
    /// around the pool: yt-dlp takes the command line's `--proxy` over the
    /// private options file's, so it would silently win over the egress
    /// chosen (and, for `other`, over the egress guard).
    pub fn check_platform_args(&self, table: &PlatformTable) -> Result<(), String> {
        for platform in Platform::ALL {
            let sets_proxy = table
                .get(platform)
                .ytdlp_args
                .iter()
                .any(|a| a == "--proxy" || a.starts_with("--proxy="));
            if !sets_proxy {
                continue;
            }
            if platform == Platform::Other {
                return Err(
                    "[other] ytdlp_args: --proxy would send `other` downloads around the egress guard, which checks every address they reach".into(),
                );
            }
            if self.configured {
                return Err(format!(
                    "[{platform}] ytdlp_args: --proxy would override the egress the pool chooses; give the proxy its own [egress.NAME] table"
                ));
            }
        }
        Ok(())
    }

    /// The egresses a job of `platform` may use: for `other`, this
    /// machine's address alone (through the egress guard).
    pub fn for_platform(&self, platform: Platform) -> Vec<&Egress> {
        if platform == Platform::Other {
            return vec![&self.machine];
        }
        self.egresses
            .iter()
            .filter(|e| e.serves(platform))
            .collect()
    }

    /// The egress with this pacing key, among those of `platform`.
    pub fn get(&self, platform: Platform, key: &str) -> Option<&Egress> {
        self.for_platform(platform)
            .into_iter()
            .find(|e| e.key == key)
    }

    /// Every egress of the file (this machine's too when it has a table).
    pub fn all(&self) -> &[Egress] {
        &self.egresses
    }

    /// Platforms that no egress of this daemon may serve: their jobs wait
    /// for another daemon.
    pub fn unserved(&self) -> Vec<Platform> {
        Platform::ALL
            .into_iter()
            .filter(|p| self.for_platform(*p).is_empty())
            .collect()
    }

    /// The (platform, egress key) pairs this daemon may use, for the claim.
    pub fn routes(&self) -> EgressRoutes {
        let mut routes = EgressRoutes::default();
        for platform in Platform::ALL {
            for e in self.for_platform(platform) {
                routes.platforms.push(platform.as_str().to_string());
                routes.keys.push(e.key.clone());
            }
        }
        routes
    }
}

fn platform_list(at: &str, names: &[String]) -> Result<Vec<Platform>, String> {
    if names.is_empty() {
        return Err(format!(
            "{at} platforms: an empty list serves nothing; remove the table, or the key (every platform)"
        ));
    }
    let mut list = Vec::new();
    for name in names {
        let p: Platform = name.parse().map_err(|e| format!("{at} platforms: {e}"))?;
        if p == Platform::Other {
            return Err(format!(
                "{at} platforms: `other` links always leave from this machine through the egress guard (docs/platforms.md, \"Egress pool\")"
            ));
        }
        if !list.contains(&p) {
            list.push(p);
        }
    }
    Ok(list)
}

/// The (platform, egress key) pairs one daemon may send requests through,
/// as two parallel arrays: what the claim (`queue::sql::CLAIM`) and the
/// wake-up time (`NEXT_RUN_AFTER`) read to skip a platform only while
/// every egress it may use here is paused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRoutes {
    pub platforms: Vec<String>,
    pub keys: Vec<String>,
}

impl EgressRoutes {
    /// One egress for every platform (no pool).
    pub fn single(key: &str) -> Self {
        EgressPool::single(key).routes()
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.platforms
            .iter()
            .map(String::as_str)
            .zip(self.keys.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(toml: &str) -> Result<EgressPool, String> {
        let doc: toml::Table = toml::from_str(toml).unwrap();
        EgressPool::from_document(&doc, "vm1")
    }

    #[test]
    fn without_tables_there_is_one_egress_this_machine() {
        let p = pool("[tiktok]\nmax_attempts = 2\n").unwrap();
        assert_eq!(p, EgressPool::single("vm1"));
        for platform in Platform::ALL {
            let keys: Vec<&str> = p
                .for_platform(platform)
                .iter()
                .map(|e| e.key.as_str())
                .collect();
            assert_eq!(keys, ["vm1"], "{platform}");
        }
        assert_eq!(p.routes().keys.len(), Platform::ALL.len());
    }

    #[test]
    fn proxies_are_keyed_by_name_and_this_machine_by_its_egress_key() {
        let p = pool(
            r#"
[egress.res1]
proxy = "http://user:pa%40ss@10.0.0.5:3128"
[egress.res2]
proxy = "socks5://10.0.0.6:1080"
platforms = ["instagram", "tiktok"]
[egress.direct]
"#,
        )
        .unwrap();
        let keys = |platform| {
            p.for_platform(platform)
                .iter()
                .map(|e| e.key.clone())
                .collect::<Vec<_>>()
        };
        // In name order; `direct` is keyed by XTRACT_EGRESS_KEY.
        assert_eq!(keys(Platform::TikTok), ["vm1", "res1", "res2"]);
        assert_eq!(keys(Platform::YouTube), ["vm1", "res1"]);
        // `other` always leaves from this machine, through the guard.
        assert_eq!(keys(Platform::Other), ["vm1"]);
        let res1 = p.get(Platform::TikTok, "res1").unwrap();
        assert_eq!(
            res1.proxy.as_ref().unwrap().expose(),
            "http://user:pa%40ss@10.0.0.5:3128"
        );
        assert!(p.get(Platform::YouTube, "res2").is_none());
        let routes = p.routes();
        assert!(routes.pairs().any(|pair| pair == ("tiktok", "res2")));
        assert!(!routes.pairs().any(|pair| pair == ("youtube", "res2")));
        assert!(routes.pairs().any(|pair| pair == ("other", "vm1")));
        assert!(!routes.pairs().any(|pair| pair == ("other", "res1")));
    }

    #[test]
    fn a_pool_of_proxies_alone_keeps_this_machine_for_other_links_only() {
        let p = pool("[egress.res1]\nproxy = \"http://10.0.0.5:3128\"\n").unwrap();
        let tiktok: Vec<&str> = p
            .for_platform(Platform::TikTok)
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(tiktok, ["res1"]);
        assert_eq!(p.for_platform(Platform::Other)[0].key, "vm1");
        assert!(p.unserved().is_empty());
        let only_ig =
            pool("[egress.res1]\nproxy = \"http://10.0.0.5:3128\"\nplatforms = [\"instagram\"]\n")
                .unwrap();
        assert_eq!(only_ig.unserved(), [Platform::TikTok, Platform::YouTube]);
    }

    #[test]
    fn the_password_never_shows_in_debug_or_display() {
        let p = pool("[egress.res1]\nproxy = \"http://user:hunter2%21@10.0.0.5:3128\"\n").unwrap();
        let debug = format!("{p:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("http://user:***@10.0.0.5:3128"), "{debug}");
        let proxy = p.all()[0].proxy.clone().unwrap();
        assert_eq!(proxy.to_string(), "http://user:***@10.0.0.5:3128");
        assert_eq!(
            proxy.scrub("ProxyError http://user:hunter2%21@10.0.0.5:3128/ said hunter2! twice"),
            "ProxyError http://user:***@10.0.0.5:3128/ said *** twice"
        );
        assert_eq!(
            ProxyUrl::parse("socks5h://10.0.0.6:1080").unwrap().masked(),
            "socks5h://10.0.0.6:1080"
        );
    }

    #[test]
    fn mistakes_are_named_without_repeating_the_proxy() {
        for (toml, want) in [
            (
                "[egress.a]\nproxy = \"ftp://u:secretpw@h:21\"\n",
                "scheme 'ftp'",
            ),
            ("[egress.a]\nproxy = \"http://u:secretpw@h\"\n", "no port"),
            ("[egress.a]\nproxy = \"u:secretpw@h:3128\"\n", "scheme 'u'"),
            ("[egress.a]\nproxy = \"secretpw\"\n", "not a URL"),
            ("[egress.a]\nproxy = \"http://u:secretpw@h:1/x\"\n", "path"),
            (
                "[egress.a]\nproxy = \"http://h:1\"\nplatform = [\"tiktok\"]\n",
                "platform",
            ),
            (
                "[egress.a]\nproxy = \"http://h:1\"\nplatforms = [\"vimeo\"]\n",
                "vimeo",
            ),
            (
                "[egress.a]\nproxy = \"http://h:1\"\nplatforms = [\"other\"]\n",
                "egress guard",
            ),
            (
                "[egress.a]\nproxy = \"http://h:1\"\nplatforms = []\n",
                "empty",
            ),
            ("[egress.direct]\nproxy = \"http://h:1\"\n", "another name"),
            (
                "[egress.vm1]\nproxy = \"http://h:1\"\n",
                "XTRACT_EGRESS_KEY",
            ),
            ("[egress.a]\n[egress.b]\n", "already stands"),
            (
                "[egress.\"a b\"]\nproxy = \"http://h:1\"\n",
                "name of 1 to 64",
            ),
            ("[egress]\n", "no tables"),
        ] {
            let e = pool(toml).unwrap_err();
            assert!(e.contains(want), "{toml}: {e}");
            assert!(!e.contains("secretpw"), "{toml}: {e}");
        }
    }

    #[test]
    fn a_platforms_own_proxy_option_may_not_undo_the_pool_or_the_guard() {
        let table = |toml: &str| PlatformTable::from_toml(toml).unwrap();
        let tiktok_proxy =
            table("[tiktok]\nytdlp_args = [\"--proxy\", \"http://10.0.0.9:3128\"]\n");
        // Without a pool it is the old way to send one platform elsewhere.
        EgressPool::single("vm1")
            .check_platform_args(&tiktok_proxy)
            .unwrap();
        let p = pool("[egress.res1]\nproxy = \"http://10.0.0.5:3128\"\n").unwrap();
        let e = p.check_platform_args(&tiktok_proxy).unwrap_err();
        assert!(e.contains("[tiktok]") && e.contains("[egress.NAME]"), "{e}");
        let other = table("[other]\nytdlp_args = [\"--proxy=http://10.0.0.9:3128\"]\n");
        let e = EgressPool::single("vm1")
            .check_platform_args(&other)
            .unwrap_err();
        assert!(e.contains("egress guard"), "{e}");
    }
}
