//! The platform rehearsal: the real, pinned yt-dlp's TikTok, Instagram and
//! YouTube extractors against local stand-ins of the sites
//! (tests/support/rehearsal), driven through the real daemon.

mod support;

use support::rehearsal::{Behaviour, Rehearsal, Site};
use support::*;

#[test]
fn smoke_ytdlp_reads_tiktok() {
    let r = Rehearsal::shared();
    let (url, id) = r.video(Site::TikTok, Behaviour::OkWithSound);
    let dir = tempfile::tempdir().unwrap();
    let out = r
        .command(&tools().ytdlp)
        .args(["-v", "--ignore-config", "-f", "ba[ext=m4a]/ba/b", "-o"])
        .arg(dir.path().join("x.%(ext)s"))
        .args([
            "--print",
            "after_move:%(extractor_key)s %(format_id)s %(filepath)s",
            "--",
            &url,
        ])
        .output()
        .unwrap();
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{:#?}", r.seen_for(&id));
    assert!(out.status.success());
}
