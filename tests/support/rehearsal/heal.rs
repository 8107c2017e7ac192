//! What the platform rehearsal needs for a platform that breaks and heals
//! (ops/heal): a tools folder whose build in use is the pinned yt-dlp, and
//! a newer "nightly" in a local wheel folder whose TikTok extractor reads
//! TikTok's redesigned page (and whose Instagram extractor is broken, as
//! nightlies sometimes are).

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio_postgres::Client;

use crate::support::{tools, wheels};

/// The nightly that handles TikTok's redesign (tiktok.rs): its version,
/// as pip sees it and as `--version` prints it.
pub const FIXED_NIGHTLY: &str = "2026.10.27.120000.dev0";

/// yt-dlp 2026.10.26's TikTok extractor looks for the old script id only.
const TIKTOK_READS_THE_NEW_PAGE: (&str, &str, &str) = (
    "yt_dlp/extractor/tiktok.py",
    r#"id="__UNIVERSAL_DATA_FOR_REHYDRATION__""#,
    r#"id="__UNIVERSAL_DATA_FOR_REHYDRATION(?:_V2)?__""#,
);

/// Every Instagram post fails as an extractor that cannot read the site.
const INSTAGRAM_BROKEN: (&str, &str, &str) = (
    "yt_dlp/extractor/instagram.py",
    "        video_id, url = self._match_valid_url(url).group('id', 'url')\n        media_id = str(_id_to_pk(video_id))\n",
    "        video_id, url = self._match_valid_url(url).group('id', 'url')\n        media_id = str(_id_to_pk(video_id))\n        raise ExtractorError('Unable to extract media info: this nightly broke Instagram')\n",
);

/// A folder with the fixed nightly's wheel: TikTok fixed, Instagram
/// broken, YouTube as before.
pub fn fixed_nightly() -> PathBuf {
    wheels::real::ytdlp(
        "nightly-tiktok-fixed-instagram-broken",
        FIXED_NIGHTLY,
        &[TIKTOK_READS_THE_NEW_PAGE, INSTAGRAM_BROKEN],
    )
}

/// A tools folder (what `xtract tools upgrade` makes in /opt/xtract) whose
/// `venv` is the pinned yt-dlp of the project's .venv: `venvs/<name>` is a
/// link to it, checked. Building it again with pip would take a minute
/// and prove nothing tests/tools.rs does not.
pub struct HealTools {
    pub dir: TempDir,
    /// The name of the build in use.
    pub pinned: String,
    /// Wheels of this test's own (deno's stand-in).
    wheels: TempDir,
}

impl HealTools {
    pub fn on_the_pinned_yt_dlp() -> HealTools {
        let dir = tempfile::Builder::new()
            .prefix("xtract-heal-tools-")
            .tempdir()
            .expect("temp dir");
        let venv = tools()
            .ytdlp
            .parent()
            .and_then(Path::parent)
            .expect("yt-dlp in a virtualenv")
            .to_path_buf();
        let pinned = format!("{}-pinned", wheels::real::pinned_version());
        // What `xtract tools upgrade` writes once a build passed its check.
        let marker = venv.join("xtract-venv.json");
        if !marker.exists() {
            std::fs::write(
                &marker,
                "{\"yt_dlp\": \"pinned\", \"channel\": \"stable\", \"packages\": {}}\n",
            )
            .expect("mark the project's virtualenv as checked");
        }
        std::fs::create_dir_all(dir.path().join("venvs")).unwrap();
        std::os::unix::fs::symlink(&venv, dir.path().join("venvs").join(&pinned)).unwrap();
        std::os::unix::fs::symlink(Path::new("venvs").join(&pinned), dir.path().join("venv"))
            .unwrap();
        let wheels = tempfile::tempdir().unwrap();
        wheels::real::deno(wheels.path());
        HealTools {
            dir,
            pinned,
            wheels,
        }
    }

    /// What `venv/bin/yt-dlp` is: the daemon's XTRACT_YTDLP.
    pub fn ytdlp(&self) -> PathBuf {
        self.dir.path().join("venv/bin/yt-dlp")
    }

    /// pip's settings for the daemon and `xtract tools`: no index, these
    /// folders of wheels (the pinned set and its dependencies, deno's
    /// stand-in, `more`).
    pub fn pip_env(&self, more: &[&Path]) -> Vec<(String, String)> {
        let mut links = vec![
            wheels::real::base().display().to_string(),
            self.wheels.path().display().to_string(),
        ];
        links.extend(more.iter().map(|p| p.display().to_string()));
        vec![
            ("XTRACT_YTDLP".into(), self.ytdlp().display().to_string()),
            ("PIP_NO_INDEX".into(), "1".into()),
            ("PIP_FIND_LINKS".into(), links.join(" ")),
            ("PIP_NO_CACHE_DIR".into(), "1".into()),
        ]
    }

    /// The builds in `venvs/`.
    pub fn builds(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("venvs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The platforms' state the daemons keep here.
    pub fn state(&self) -> serde_json::Value {
        std::fs::read_to_string(self.dir.path().join("platforms.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// One platform's line of the dashboard's `xtract.platform_health`.
#[derive(Debug, Clone)]
pub struct Health {
    pub state: String,
    pub build: Option<String>,
    pub tried: Option<String>,
    pub auto_heal: bool,
    pub bad_builds: Vec<String>,
}

pub async fn health(client: &Client, platform: &str) -> Option<Health> {
    client
        .query_opt(
            "SELECT state, build, tried, auto_heal, bad_builds FROM xtract.platform_health WHERE platform = $1",
            &[&platform],
        )
        .await
        .unwrap()
        .map(|r| Health {
            state: r.get(0),
            build: r.get(1),
            tried: r.get(2),
            auto_heal: r.get(3),
            bad_builds: r.get(4),
        })
}
