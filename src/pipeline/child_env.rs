//! The environment of every program xtract starts: built from an
//! allow-list, never inherited whole.
//!
//! yt-dlp parses pages anyone can serve, deno runs a site's JavaScript,
//! ffmpeg parses media from the internet: any of them may one day run an
//! attacker's code. The daemon's environment can hold the Storage key and
//! the database URL with its password (an env file, systemd's
//! `EnvironmentFile=`), and systemd's `NOTIFY_SOCKET` that speaks for the
//! service. So a child gets only what a program needs to run:
//!
//! - `PATH`: yt-dlp finds ffmpeg and deno, a `#!/usr/bin/env python3`
//!   script its Python.
//! - `HOME`: Python's and deno's `~` (yt-dlp's config and plugin folders,
//!   deno's cache).
//! - `LANG`, `LANGUAGE`, `LC_*`, `TZ`: the text encoding of file names and
//!   output (Python reads it from the locale), and the time zone.
//! - `TMPDIR`: where temporary files go (under systemd, the unit's private
//!   `/tmp`).
//! - `SSL_CERT_FILE`, `SSL_CERT_DIR`: where the trusted certificates are,
//!   on machines that keep them elsewhere.
//!
//! and what xtract itself sets on the command: the process mark of its
//! tree (process_tree.rs), `PYTHONUNBUFFERED` for the yt-dlp command line.
//! A proxy is given deliberately, per download, in the download's private
//! options file (`--proxy`, see `ytdlp::private_options`): the proxy
//! variables of the daemon's environment are not passed on, so a job's
//! requests leave the way its egress says, and a proxy password there stays
//! with the daemon.
//!
//! `xtract tools upgrade` runs pip, which also gets pip's own settings
//! (`PIP_*`: a mirror, a folder of wheels) and the machine's proxy, to
//! reach the package index ([`Needs::PackageIndex`]).

use std::ffi::{OsStr, OsString};

/// Variables passed on as they are, when set.
const PASSED: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Families of variables passed on: the locale's categories.
const PASSED_PREFIXES: &[&str] = &["LC_"];

/// pip's own settings and the machine's route to the package index.
const PACKAGE_INDEX: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];
const PACKAGE_INDEX_PREFIXES: &[&str] = &["PIP_"];

/// What a program needs beyond what every program gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing more: yt-dlp, the warm helper, deno, ffmpeg, ffprobe, and
    /// every check that runs them.
    Nothing,
    /// pip and the Python that builds a virtualenv (`xtract tools upgrade`).
    PackageIndex,
}

/// The variables of `from` a program may have.
pub fn allowed(
    from: impl IntoIterator<Item = (OsString, OsString)>,
    needs: Needs,
) -> Vec<(OsString, OsString)> {
    let (names, prefixes): (&[&str], &[&str]) = match needs {
        Needs::Nothing => (&[], &[]),
        Needs::PackageIndex => (PACKAGE_INDEX, PACKAGE_INDEX_PREFIXES),
    };
    from.into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            PASSED.iter().chain(names).any(|n| *n == name)
                || PASSED_PREFIXES
                    .iter()
                    .chain(prefixes)
                    .any(|p| name.starts_with(p))
        })
        .collect()
}

/// Gives `cmd` the allowed part of this process's environment, and
/// nothing else: call it before setting the command's own variables.
pub fn apply(cmd: &mut std::process::Command, needs: Needs) {
    cmd.env_clear().envs(allowed(std::env::vars_os(), needs));
}

/// A command for `program` with the allowed environment for `needs`.
fn std_with(program: impl AsRef<OsStr>, needs: Needs) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    apply(&mut cmd, needs);
    cmd
}

/// A command for `program` that gets only what it needs to run.
pub fn command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    std_with(program, Needs::Nothing).into()
}

/// As [`command`], for code that waits on its child without tokio.
pub fn std_command(program: impl AsRef<OsStr>) -> std::process::Command {
    std_with(program, Needs::Nothing)
}

/// As [`command`], for pip and the Python that builds virtualenvs.
pub fn package_index_command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    std_with(program, Needs::PackageIndex).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(vars: &[(OsString, OsString)]) -> Vec<&str> {
        vars.iter().map(|(k, _)| k.to_str().unwrap()).collect()
    }

    const DAEMON: &[(&str, &str)] = &[
        ("PATH", "/usr/bin"),
        ("HOME", "/var/lib/xtract"),
        ("LANG", "C.UTF-8"),
        ("LC_CTYPE", "C.UTF-8"),
        (
            "DATABASE_URL",
            "postgres://xtract_worker:hunter2@db/postgres",
        ),
        ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc"),
        ("CREDENTIALS_DIRECTORY", "/run/credentials/xtract.service"),
        ("NOTIFY_SOCKET", "/run/systemd/notify"),
        ("HTTPS_PROXY", "http://user:pw@proxy:3128"),
        ("PIP_INDEX_URL", "https://mirror/simple"),
        ("PYTHONPATH", "/somewhere"),
        ("XTRACT_ENV_FILE", "/etc/xtract/xtract.env"),
        ("LCX", "not a locale"),
    ];

    #[test]
    fn a_job_program_gets_what_it_needs_to_run_and_no_secret() {
        let vars = allowed(env(DAEMON), Needs::Nothing);
        assert_eq!(names(&vars), ["PATH", "HOME", "LANG", "LC_CTYPE"]);
    }

    #[test]
    fn pip_also_gets_its_settings_and_the_way_to_the_index() {
        let vars = allowed(env(DAEMON), Needs::PackageIndex);
        assert_eq!(
            names(&vars),
            [
                "PATH",
                "HOME",
                "LANG",
                "LC_CTYPE",
                "HTTPS_PROXY",
                "PIP_INDEX_URL"
            ]
        );
    }

    #[test]
    fn a_command_starts_from_the_allow_list_and_keeps_its_own_variables() {
        let mut cmd = std_command("env");
        cmd.env("PYTHONUNBUFFERED", "1");
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected: Vec<(OsString, OsString)> = allowed(std::env::vars_os(), Needs::Nothing);
        for line in text.lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                name == "PYTHONUNBUFFERED" || expected.iter().any(|(k, _)| k == name),
                "{name} reached the child"
            );
        }
        assert!(text.lines().any(|l| l == "PYTHONUNBUFFERED=1"), "{text}");
    }
}
