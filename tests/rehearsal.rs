//! The platform rehearsal: the real, pinned yt-dlp's TikTok, Instagram and
//! YouTube extractors against local stand-ins of the sites
//! (tests/support/rehearsal), driven through the real daemon.

mod support;

use support::rehearsal::{Behaviour, Rehearsal, Site};
use support::*;

fn ytdlp(r: &Rehearsal, url: &str, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = r
        .command(&tools().ytdlp)
        .args(["--ignore-config", "-f", "ba[ext=m4a]/ba/b", "-o"])
        .arg(dir.path().join("x.%(ext)s"))
        .args(extra)
        .args(["--print", "after_move:%(extractor_key)s %(format_id)s %(filepath)s", "--", url])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn smoke_instagram() {
    let r = Rehearsal::shared();
    for b in [Behaviour::Ok, Behaviour::FallbackPage, Behaviour::LoginWall, Behaviour::EmptyMedia, Behaviour::Private, Behaviour::Removed, Behaviour::AgeRestricted, Behaviour::Changed, Behaviour::TooManyRequests] {
        let (url, id) = r.video(Site::Instagram, b);
        let (ok, out) = ytdlp(r, &url, &[]);
        println!("=== {b:?} ok={ok}\n{}", out.lines().filter(|l| l.contains("ERROR") || l.contains("Instagram ") || l.contains("WARNING")).collect::<Vec<_>>().join("\n"));
        for s in r.seen_for(&id) { println!("   {} {} {} -> {} {} conn={} {}", s.method, s.host, s.path, s.status, s.answer, s.conn, s.session); }
        if b == Behaviour::Ok { for s in r.seen() { println!("ALL {} {} {} {} {:?}", s.host, s.path, s.answer, s.session, s.cookies); } }
    }
}
