//! pip, driven from outside: what it would install (`--dry-run --report`),
//! and a virtualenv with exactly that. pip's own settings apply
//! (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_NO_INDEX`, `PIP_CACHE_DIR`): a
//! mirror, a folder of wheels, or the tests' own wheels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Layout;
use super::{io, ToolsError};
use crate::pipeline::child_env;

/// pip downloads deno (about 40 MB); a slow mirror gets this long.
const PIP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Options of every pip install. Wheels only: an sdist runs its build code
/// as root at install time, a wheel runs nothing.
const PIP_OPTIONS: &[&str] = &[
    "--disable-pip-version-check",
    "--no-input",
    "--quiet",
    "--only-binary=:all:",
];

/// The packages pip resolved: canonical name → version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    packages: BTreeMap<String, String>,
}

/// PEP 503: `Yt_DLP.ejs` and `yt-dlp-ejs` are one project.
fn canonical(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl Resolved {
    /// Reads pip's installation report (`--report`, format version 1).
    pub fn from_report(json: &str) -> Result<Self, ToolsError> {
        let report: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ToolsError::Pip(format!("pip's report is not JSON: {e}")))?;
        let mut packages = BTreeMap::new();
        for item in report["install"].as_array().into_iter().flatten() {
            let meta = &item["metadata"];
            if let (Some(name), Some(version)) = (meta["name"].as_str(), meta["version"].as_str()) {
                packages.insert(canonical(name), version.to_string());
            }
        }
        let resolved = Resolved { packages };
        if !resolved.packages.contains_key("yt-dlp") {
            return Err(ToolsError::Pip(
                "pip's report has no yt-dlp in it".to_string(),
            ));
        }
        Ok(resolved)
    }

    pub fn ytdlp_version(&self) -> &str {
        &self.packages["yt-dlp"]
    }

    pub fn packages(&self) -> &BTreeMap<String, String> {
        &self.packages
    }

    pub fn has(&self, name: &str) -> bool {
        self.packages.contains_key(name)
    }

    /// `name==version` for every package: the build installs what was
    /// resolved, not whatever the index has a minute later.
    pub fn pins(&self) -> Vec<String> {
        self.packages
            .iter()
            .map(|(n, v)| format!("{n}=={v}"))
            .collect()
    }

    /// The virtualenv's folder name: yt-dlp's version for people, and a
    /// hash of the whole set, since deno or curl_cffi change without yt-dlp.
    pub fn name(&self) -> String {
        // FNV-1a: small, and stable across Rust releases (std's hasher is
        // not promised to be).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for pin in self.pins() {
            for b in pin.bytes().chain([b'\n']) {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{}-{:08x}", self.ytdlp_version(), hash >> 32)
    }
}

/// Runs `python args…`; pip's last error lines on failure.
async fn run(python: &Path, args: &[String], what: &str) -> Result<(), ToolsError> {
    let child = child_env::package_index_command(python)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PIP_TIMEOUT, child)
        .await
        .map_err(|_| ToolsError::Pip(format!("{what}: no result within {PIP_TIMEOUT:?}")))?
        .map_err(|e| ToolsError::Pip(format!("{what}: cannot run {}: {e}", python.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(6)
        .collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(ToolsError::Pip(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.join(" | ")
    )))
}

async fn make_venv(python: &Path, dir: &Path) -> Result<(), ToolsError> {
    run(
        python,
        &["-m".into(), "venv".into(), dir.display().to_string()],
        &format!("python -m venv {}", dir.display()),
    )
    .await
}

/// `--report` came with pip 22.2; Ubuntu 22.04's ensurepip brings 22.0.
const REPORT_PIP: (u32, u32) = (22, 2);

/// The (major, minor) version of `python`'s pip.
async fn pip_version(python: &Path) -> Option<(u32, u32)> {
    let out = child_env::package_index_command(python)
        .args(["-m", "pip", "--version"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    // "pip 23.2.1 from /…/site-packages/pip (python 3.11)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().nth(1)?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What pip would install for `requirements`, asked of the virtualenv in
/// use (or, on the first install or when its pip is too old for a report,
/// of a throwaway one).
pub async fn resolve(
    layout: &Layout,
    python: &Path,
    requirements: &[String],
) -> Result<Resolved, ToolsError> {
    let in_use = layout.venv_link().join("bin/python");
    let scratch = layout
        .venvs()
        .join(format!(".resolve-{}", std::process::id()));
    let modern = |v: Option<(u32, u32)>| v.is_some_and(|v| v >= REPORT_PIP);
    let resolver: PathBuf = if in_use.exists() && modern(pip_version(&in_use).await) {
        in_use
    } else {
        make_venv(python, &scratch).await?;
        let py = scratch.join("bin/python");
        if !modern(pip_version(&py).await) {
            let upgrade: Vec<String> = ["-m", "pip", "install", "--upgrade", "pip>=22.2"]
                .iter()
                .chain(PIP_OPTIONS)
                .map(|s| s.to_string())
                .collect();
            if let Err(e) = run(&py, &upgrade, "upgrading pip for its --report").await {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        }
        py
    };
    let report_dir = tempfile::tempdir().map_err(io("cannot create a temporary folder"))?;
    let report = report_dir.path().join("report.json");
    let mut args: Vec<String> = ["-m", "pip", "install", "--dry-run", "--ignore-installed"]
        .iter()
        .chain(PIP_OPTIONS)
        .map(|s| s.to_string())
        .collect();
    args.extend(["--report".into(), report.display().to_string()]);
    args.extend(requirements.iter().cloned());
    let result = run(&resolver, &args, "pip install --dry-run").await;
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let text = std::fs::read_to_string(&report)
        .map_err(io(format!("cannot read pip's report {}", report.display())))?;
    Resolved::from_report(&text)
}

/// A new virtualenv at `dir` with exactly `resolved` in it.
pub async fn build(python: &Path, dir: &Path, resolved: &Resolved) -> Result<(), ToolsError> {
    make_venv(python, dir).await?;
    let mut args: Vec<String> = ["-m", "pip", "install"]
        .iter()
        .chain(PIP_OPTIONS)
        .map(|s| s.to_string())
        .collect();
    args.extend(resolved.pins());
    run(&dir.join("bin/python"), &args, "pip install").await
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{"version": "1", "install": [
        {"metadata": {"name": "yt-dlp", "version": "2026.11.20.233105.dev0"}, "requested": true},
        {"metadata": {"name": "yt_dlp_ejs", "version": "0.8.0"}},
        {"metadata": {"name": "deno", "version": "2.9.8"}, "requested": true}
    ]}"#;

    #[test]
    fn a_report_gives_pins_and_a_stable_name() {
        let r = Resolved::from_report(REPORT).unwrap();
        assert_eq!(r.ytdlp_version(), "2026.11.20.233105.dev0");
        assert_eq!(
            r.pins(),
            [
                "deno==2.9.8",
                "yt-dlp==2026.11.20.233105.dev0",
                "yt-dlp-ejs==0.8.0"
            ]
        );
        let name = r.name();
        assert!(name.starts_with("2026.11.20.233105.dev0-"), "{name}");
        assert_eq!(name.len(), "2026.11.20.233105.dev0-".len() + 8);
        assert_eq!(name, Resolved::from_report(REPORT).unwrap().name());
        // A new deno alone makes a new virtualenv.
        let other = Resolved::from_report(&REPORT.replace("2.9.8", "2.9.9")).unwrap();
        assert_ne!(other.name(), name);
    }

    #[test]
    fn a_report_without_yt_dlp_is_an_error() {
        assert!(Resolved::from_report(r#"{"install": []}"#).is_err());
        assert!(Resolved::from_report("not json").is_err());
    }

    #[test]
    fn names_are_canonical() {
        assert_eq!(canonical("Yt_DLP.ejs"), "yt-dlp-ejs");
        assert_eq!(canonical("curl_cffi"), "curl-cffi");
    }
}
