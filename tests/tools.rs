//! `xtract tools upgrade` and `rollback` against wheels the tests build
//! (tests/support/wheels.rs), read by pip from a local folder: no package
//! index, real pip, real virtualenvs, the real check (the new yt-dlp
//! downloads a clip from 127.0.0.1 through the daemon's own call).

mod support;

use std::path::{Path, PathBuf};

use support::*;

struct Tools {
    /// The tools folder (/opt/xtract in production).
    dir: tempfile::TempDir,
    wheels: tempfile::TempDir,
}

impl Tools {
    fn new() -> Tools {
        Tools {
            dir: tempfile::tempdir().unwrap(),
            wheels: tempfile::tempdir().unwrap(),
        }
    }

    fn ytdlp(&self) -> PathBuf {
        self.dir.path().join("venv/bin/yt-dlp")
    }

    async fn run(&self, args: &[&str]) -> Ran {
        let mut o = DaemonOptions::new(&self.ytdlp());
        o.extra_env = vec![
            ("PIP_NO_INDEX".into(), "1".into()),
            (
                "PIP_FIND_LINKS".into(),
                self.wheels.path().display().to_string(),
            ),
            ("PIP_NO_CACHE_DIR".into(), "1".into()),
        ];
        let dir = self.dir.path().display().to_string();
        let mut all = vec!["tools"];
        all.extend_from_slice(args);
        all.extend(["--dir", &dir]);
        if args[0] != "status" {
            all.push("--no-reload");
        }
        xtract("postgres://127.0.0.1:9/unused", &o, &all).await
    }

    /// What `venv/bin/yt-dlp --version` prints.
    fn version(&self) -> String {
        let out = std::process::Command::new(self.ytdlp())
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn deno_version(&self) -> String {
        let out = std::process::Command::new(self.dir.path().join("venv/bin/deno"))
            .arg("--version")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn venvs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("venvs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn link(dir: &Path, name: &str) -> String {
    std::fs::read_link(dir.join(name))
        .unwrap()
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_switches_to_a_checked_yt_dlp_and_a_failed_check_keeps_the_old_one() {
    let t = Tools::new();
    wheels::ytdlp(t.wheels.path(), "2026.1.1", false);
    wheels::deno(t.wheels.path(), "2.5.0");

    let first = t.run(&["upgrade", "--channel", "stable"]).await;
    assert!(first.status.success(), "{first}");
    assert!(
        first.stdout.contains(
            "check passed: yt-dlp 2026.01.01 runs; extracted a 2110-byte clip from 127.0.0.1"
        ),
        "{first}"
    );
    assert!(first.stdout.contains("deno 2.5.0 (fake) runs"), "{first}");
    assert_eq!(t.version(), "2026.01.01");
    let installed = link(t.dir.path(), "venv");
    assert!(installed.starts_with("venvs/2026.1.1-"), "{installed}");

    // Nothing new: nothing built, nothing switched.
    let again = t.run(&["upgrade", "--channel", "stable"]).await;
    assert!(again.status.success(), "{again}");
    assert!(again.stdout.contains("is in use and current"), "{again}");
    assert_eq!(t.venvs().len(), 1, "{:?}", t.venvs());

    // A release that runs but cannot download: never switched to.
    wheels::ytdlp(t.wheels.path(), "2026.1.4", true);
    let broken = t.run(&["upgrade", "--channel", "stable"]).await;
    assert!(!broken.status.success(), "{broken}");
    assert!(
        broken.stderr.contains("the new yt-dlp (2026.1.4-")
            && broken
                .stderr
                .contains(&format!("so {} stays in use", &installed["venvs/".len()..]))
            && broken.stderr.contains("this build is broken"),
        "{broken}"
    );
    assert_eq!(t.version(), "2026.01.01");
    assert_eq!(link(t.dir.path(), "venv"), installed);
    assert_eq!(
        t.venvs().len(),
        1,
        "the broken build is removed: {:?}",
        t.venvs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_takes_yt_dlp_pre_releases_and_a_rollback_holds_until_a_newer_one() {
    let t = Tools::new();
    wheels::ytdlp(t.wheels.path(), "2026.1.1", false);
    wheels::ytdlp(t.wheels.path(), "2026.1.2.100000.dev0", false);
    wheels::deno(t.wheels.path(), "2.5.0");
    // A deno release candidate: nightly is about yt-dlp, not deno.
    wheels::deno(t.wheels.path(), "2.6.0rc1");

    let stable = t.run(&["upgrade", "--channel", "stable"]).await;
    assert!(stable.status.success(), "{stable}");
    assert_eq!(t.version(), "2026.01.01");
    let stable_venv = link(t.dir.path(), "venv");

    let nightly = t.run(&["upgrade", "--channel", "nightly"]).await;
    assert!(nightly.status.success(), "{nightly}");
    assert_eq!(t.version(), "2026.01.02.100000");
    assert_eq!(t.deno_version(), "deno 2.5.0 (fake)");
    let nightly_venv = link(t.dir.path(), "venv");
    assert!(
        nightly_venv.starts_with("venvs/2026.1.2.100000.dev0-"),
        "{nightly_venv}"
    );
    assert_eq!(link(t.dir.path(), "venv.previous"), stable_venv);

    let back = t.run(&["rollback"]).await;
    assert!(back.status.success(), "{back}");
    assert_eq!(t.version(), "2026.01.01");
    assert_eq!(link(t.dir.path(), "venv.previous"), nightly_venv);
    let status = t.run(&["status"]).await;
    assert!(
        status.stdout.contains("in use") && status.stdout.contains("rolled back"),
        "{status}"
    );

    // The daily run does not bring the rolled-back release back...
    let held = t.run(&["upgrade", "--channel", "nightly"]).await;
    assert!(held.status.success(), "{held}");
    assert!(held.stdout.contains("was rolled back"), "{held}");
    assert_eq!(t.version(), "2026.01.01");

    // ...but takes the next one, and the older venvs go.
    wheels::ytdlp(t.wheels.path(), "2026.1.3.100000.dev0", false);
    let next = t.run(&["upgrade", "--channel", "nightly"]).await;
    assert!(next.status.success(), "{next}");
    assert_eq!(t.version(), "2026.01.03.100000");
    assert_eq!(link(t.dir.path(), "venv.previous"), stable_venv);
    assert_eq!(t.venvs().len(), 2, "{:?}", t.venvs());
}
