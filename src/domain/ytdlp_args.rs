//! yt-dlp options an operator may add per platform (`ytdlp_args` in the
//! platform file), checked against an allow-list.
//!
//! Why an allow-list and not a deny-list: yt-dlp accepts any unambiguous
//! prefix of a long option (`--exe` is `--exec`), `--opt=value` forms,
//! bundled short options, aliases (`--alias`, `-t`) and new options every
//! month, many of which write files (`--write-*`) or run programs. A
//! deny-list would have to foresee all of them; an allow-list of exact
//! spellings cannot be bypassed, and an option missing from it is one line
//! to add. What is refused and why:
//! - options that run programs or load code (`--exec`, `--downloader`,
//!   `--ffmpeg-location`, `--plugin-dirs`, `--js-runtimes NAME:PATH`, `-U`):
//!   the platform file is re-read on SIGHUP and must not become a way to run
//!   anything as the daemon;
//! - options that write or read files (`-o`, `--paths`, `--write-*`,
//!   `--cache-dir`, `--download-archive`, `--print-to-file`,
//!   `--config-locations`, `--batch-file`, `--load-info-json`, `--netrc*`):
//!   xtract owns the job's folder, and another config file's options would
//!   not be checked at all;
//! - what xtract sets itself (`-f`, `--print`, `--match-filters`,
//!   `--max-filesize`, `--cookies`, `--proxy` for `other`, …): a later
//!   option wins in yt-dlp, so these would silently undo xtract's limits,
//!   its cookie handling or the egress guard;
//! - secrets (`--username`, `--password`, a proxy with a password, a
//!   `Cookie:` header): they would show on the command line of every run;
//! - `--`: everything after it would be taken as more links.

use std::fmt;

/// One allowed option: its spellings and how many values follow it.
struct Allowed {
    names: &'static [&'static str],
    takes_value: bool,
    /// Extra rule for the value, returning why it is refused.
    check: Option<fn(&str) -> Option<&'static str>>,
}

const fn flag(names: &'static [&'static str]) -> Allowed {
    Allowed {
        names,
        takes_value: false,
        check: None,
    }
}

const fn value(names: &'static [&'static str]) -> Allowed {
    Allowed {
        names,
        takes_value: true,
        check: None,
    }
}

const fn checked(
    names: &'static [&'static str],
    check: fn(&str) -> Option<&'static str>,
) -> Allowed {
    Allowed {
        names,
        takes_value: true,
        check: Some(check),
    }
}

/// Network, extraction and speed options: none writes a file, runs a
/// program or overrides what xtract sets.
const ALLOWED: &[Allowed] = &[
    // The reason this exists: YouTube client choice, PO token provider URL.
    value(&["--extractor-args"]),
    value(&["--impersonate"]),
    checked(&["--js-runtimes"], runtime_without_path),
    checked(&["--proxy"], proxy_without_password),
    value(&["--source-address"]),
    flag(&["--force-ipv4", "-4"]),
    flag(&["--force-ipv6", "-6"]),
    value(&["--xff"]),
    checked(&["--add-headers"], header_without_secret),
    value(&["--sleep-requests"]),
    value(&["--sleep-interval", "--min-sleep-interval"]),
    value(&["--max-sleep-interval"]),
    value(&["--limit-rate", "-r"]),
    value(&["--throttled-rate"]),
    value(&["--http-chunk-size"]),
    value(&["--concurrent-fragments", "-N"]),
    value(&["--extractor-retries"]),
    value(&["--retry-sleep"]),
    value(&["--format-sort", "-S"]),
    flag(&["--verbose", "-v"]),
    // Behind a TLS-inspecting proxy: yt-dlp's own requests then trust the
    // system's CA store (where the proxy's CA is added) instead of
    // certifi's bundle; curl_cffi uses the system store already.
    checked(&["--compat-options"], only_no_certifi),
];

/// Options people reach for, with the specific reason they are refused.
const REFUSED: &[(&[&str], &str)] = &[
    (&["--exec", "--exec-before-download"], "runs commands"),
    (
        &[
            "--downloader",
            "--external-downloader",
            "--downloader-args",
            "--external-downloader-args",
        ],
        "runs another program",
    ),
    (
        &["--ffmpeg-location"],
        "runs another program; xtract passes its own ffmpeg",
    ),
    (&["--plugin-dirs"], "loads code from a folder"),
    (
        &["-U", "--update", "--update-to"],
        "replaces yt-dlp itself (use xtract tools upgrade)",
    ),
    (
        &["-o", "--output", "-P", "--paths"],
        "xtract chooses where files go",
    ),
    (
        &["--config-locations", "--config-location"],
        "reads options from a file no one checks",
    ),
    (&["-a", "--batch-file"], "reads links from a file"),
    (&["--load-info-json"], "reads a file"),
    (
        &["--cookies", "--cookies-from-browser"],
        "xtract manages cookies (XTRACT_COOKIES_DIR)",
    ),
    (
        &["--netrc", "--netrc-location", "--netrc-cmd"],
        "reads credentials from a file or command",
    ),
    (
        &["--postprocessor-args", "--ppa", "--use-postprocessor"],
        "runs post-processors",
    ),
    (
        &["--cache-dir"],
        "writes files (xtract runs yt-dlp with --no-cache-dir)",
    ),
    (&["--print-to-file"], "writes files"),
    (&["--download-archive"], "writes files"),
    (
        &[
            "-f",
            "--format",
            "--print",
            "-O",
            "--match-filters",
            "--max-filesize",
            "--no-playlist",
            "--yes-playlist",
        ],
        "xtract sets it for every run; a second one would override it",
    ),
    (
        &[
            "-u",
            "--username",
            "-p",
            "--password",
            "--video-password",
            "--twofactor",
            "--ap-username",
            "--ap-password",
        ],
        "a secret would show on every command line",
    ),
    (
        &["--alias", "-t", "--preset-alias"],
        "expands to options that are not checked",
    ),
    (&["--"], "everything after it would be taken as links"),
];

fn runtime_without_path(v: &str) -> Option<&'static str> {
    v.contains(':')
        .then_some("name a runtime (deno, node, bun, quickjs), not a program path to run")
}

fn only_no_certifi(v: &str) -> Option<&'static str> {
    (v.trim() != "no-certifi").then_some(
        "only no-certifi (the system's CA store, for a TLS-inspecting proxy): other compat options change what xtract reads from yt-dlp",
    )
}

fn proxy_without_password(v: &str) -> Option<&'static str> {
    // `scheme://user:password@host`: the password would be on the command
    // line of every run, visible to `ps`.
    let rest = v.split_once("://").map(|(_, r)| r).unwrap_or(v);
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .contains('@')
        .then_some("a proxy with credentials would show them on every command line; run a local proxy that adds them")
}

fn header_without_secret(v: &str) -> Option<&'static str> {
    let name = v.split(':').next().unwrap_or("").trim();
    (name.eq_ignore_ascii_case("cookie") || name.eq_ignore_ascii_case("authorization")).then_some(
        "credentials would show on every command line; cookies belong in XTRACT_COOKIES_DIR",
    )
}

/// Why an argument list was refused: the option (never its value, which may
/// hold a secret) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub arg: String,
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is refused: {}", self.arg, self.reason)
    }
}

/// Checks a platform's `ytdlp_args`: every option on the allow-list, spelt
/// exactly, each value where it belongs.
pub fn check(args: &[String]) -> Result<(), Refused> {
    let refuse = |arg: &str, reason: &str| Refused {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        // `--opt=value` is one argument.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        if let Some((_, reason)) = REFUSED.iter().find(|(names, _)| names.contains(&name)) {
            return Err(refuse(name, reason));
        }
        if name.starts_with("--write") || name.starts_with("--no-write") {
            return Err(refuse(name, "writes files"));
        }
        let Some(allowed) = ALLOWED.iter().find(|a| a.names.contains(&name)) else {
            if !name.starts_with('-') {
                return Err(refuse(
                    arg,
                    "a value without an option before it (yt-dlp would take it as a link)",
                ));
            }
            return Err(refuse(
                name,
                "not on the list of options a platform file may pass (see docs/platforms.md, \"The platforms file\")",
            ));
        };
        let value = match (allowed.takes_value, inline) {
            (false, None) => None,
            (false, Some(_)) => return Err(refuse(name, "takes no value")),
            (true, Some(v)) => Some(v),
            (true, None) => {
                i += 1;
                match args.get(i) {
                    Some(v) => Some(v.as_str()),
                    None => return Err(refuse(name, "needs a value after it")),
                }
            }
        };
        if let (Some(v), Some(rule)) = (value, allowed.check) {
            if let Some(reason) = rule(v) {
                // The option's name only: the value may be the secret.
                return Err(refuse(name, reason));
            }
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn refused(list: &[&str]) -> Refused {
        check(&args(list)).expect_err(&format!("{list:?} was accepted"))
    }

    #[test]
    fn the_system_ca_store_may_be_chosen_and_nothing_else_of_the_compat_options() {
        check(&args(&["--compat-options", "no-certifi"])).unwrap();
        check(&args(&["--compat-options=no-certifi"])).unwrap();
        let r = refused(&["--compat-options", "filename"]);
        assert!(r.to_string().contains("only no-certifi"), "{r}");
    }

    #[test]
    fn network_and_extractor_options_pass() {
        check(&args(&[
            "--extractor-args",
            "youtube:player_client=web;po_token=x",
            "--extractor-args=youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416",
            "-4",
            "--sleep-requests",
            "1.5",
            "--js-runtimes",
            "deno",
            "--proxy",
            "socks5://127.0.0.1:1080",
            "--add-headers",
            "Accept-Language:de",
        ]))
        .unwrap();
    }

    #[test]
    fn options_that_write_files_or_run_commands_are_refused() {
        for list in [
            &["--exec", "rm -rf /"][..],
            &["-o", "/etc/x"],
            &["--output=/etc/x"],
            &["--paths", "/tmp"],
            &["--config-locations", "/tmp/c"],
            &["--batch-file", "/tmp/urls"],
            &["--cookies", "/tmp/c.txt"],
            &["--load-info-json", "/tmp/i.json"],
            &["--write-info-json"],
            &["--write-subs"],
            &["--netrc"],
            &["--netrc-cmd", "cat secret"],
            &["--ppa", "ffmpeg:-y"],
            &["--postprocessor-args", "x"],
            &["--downloader", "aria2c"],
            &["--external-downloader-args", "x"],
            &["--plugin-dirs", "/tmp"],
            &["--cache-dir", "/tmp"],
            &["--print-to-file", "id", "/tmp/x"],
            &["--download-archive", "/tmp/a"],
            &["--", "https://example.com"],
        ] {
            let e = refused(list);
            assert_eq!(e.arg, list[0].split('=').next().unwrap(), "{e}");
        }
    }

    #[test]
    fn abbreviations_unknown_options_and_stray_values_are_refused() {
        // yt-dlp would read `--exe` as `--exec`.
        assert!(refused(&["--exe", "x"]).reason.contains("not on the list"));
        assert!(refused(&["--extractor-arg", "x"])
            .reason
            .contains("not on the list"));
        assert!(refused(&["-46"]).reason.contains("not on the list"));
        assert!(refused(&["https://evil.example"]).reason.contains("link"));
        assert!(refused(&["--extractor-args"])
            .reason
            .contains("needs a value"));
        assert!(refused(&["--force-ipv4=1"]).reason.contains("no value"));
    }

    #[test]
    fn a_value_is_consumed_as_yt_dlp_would_and_checked() {
        // The value of an allowed option may look like an option: yt-dlp
        // takes it as the value, and so do we.
        check(&args(&["--extractor-args", "--exec"])).unwrap();
        let e = refused(&["--js-runtimes", "node:/tmp/evil"]);
        assert!(e.reason.contains("program path"), "{e}");
        for list in [
            &["--proxy", "http://user:secret@proxy:8080"][..],
            &["--proxy=http://user:secret@proxy:8080"],
        ] {
            let e = refused(list);
            assert!(e.reason.contains("credentials"), "{e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        let e = refused(&["--add-headers", "Cookie: sid=1"]);
        assert!(e.reason.contains("XTRACT_COOKIES_DIR"), "{e}");
        let e = refused(&["-f", "bv"]);
        assert!(e.reason.contains("override"), "{e}");
    }
}
