//! MP4 files read and cut in-process (src/pipeline/mp4.rs), checked against
//! ffprobe and ffmpeg: the same codec and length, and an M4A file whose
//! audio decodes to exactly the source's.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;
use tokio_util::sync::CancellationToken;
use xtract::pipeline::{ffmpeg, mp4};

/// MD5 of the decoded samples of the first audio stream.
fn decoded(path: &Path) -> String {
    let out = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What ffprobe says of `path` when asked `args`.
fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new(&tools().ffprobe)
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn streams(path: &Path) -> String {
    ffprobe(
        path,
        &[
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "csv=p=0",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp4_audio_is_read_and_cut_as_ffmpeg_would() {
    let dir = tempfile::tempdir().unwrap();
    // The index first, as many sites serve it (ffmpeg writes it last).
    let faststart = dir.path().join("faststart.mp4");
    let status = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(media().dir.join("clip.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&faststart)
        .status()
        .unwrap();
    assert!(status.success());
    for source in [
        media().dir.join("clip.mp4"),
        media().dir.join("tiny.m4a"),
        faststart,
    ] {
        let ours = mp4::probe(&source).expect("an MP4 we read");
        let theirs = ffmpeg::probe(&tools().ffprobe, &source, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(ours.audio_codec, theirs.audio_codec, "{source:?}");
        let (a, b) = (ours.duration_secs.unwrap(), theirs.duration_secs.unwrap());
        assert!((a - b).abs() < 0.1, "{source:?}: {a} vs {b}");

        let out = dir.path().join("audio.m4a");
        assert!(
            mp4::extract_audio(&source, &out, &mp4::Tags::default()).unwrap(),
            "{source:?}"
        );
        assert_eq!(streams(&out), "aac,audio", "{source:?}");
        assert_eq!(decoded(&out), decoded(&source), "{source:?}");
        let check = Command::new(&tools().ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(&out)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            check.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        // The index comes first: players start before the whole file is there.
        let bytes = std::fs::read(&out).unwrap();
        let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
        let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
        assert!(moov < mdat);
    }
}

fn tags(path: &Path) -> String {
    ffprobe(
        path,
        &[
            "-show_entries",
            "format_tags=title,artist",
            "-show_entries",
            "stream=codec_name:stream_disposition=attached_pic",
            "-of",
            "compact=p=0:nk=1",
        ],
    )
}

#[test]
fn tags_and_a_cover_are_written_as_ffmpeg_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let cover = dir.path().join("cover.jpg");
    let status = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64"])
        .args(["-frames:v", "1"])
        .arg(&cover)
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("audio.m4a");
    let source = media().dir.join("clip.mp4");
    let tags_of = |cover| mp4::Tags {
        title: Some("Ünïcode title: a/b"),
        artist: Some("someone"),
        cover,
    };
    assert!(mp4::extract_audio(&source, &out, &tags_of(Some(&cover))).unwrap());
    let ours = tags(&out);
    assert!(ours.contains("Ünïcode title: a/b"), "{ours}");
    assert!(ours.contains("someone"), "{ours}");
    assert!(
        ours.contains("mjpeg|1"),
        "the cover is an attached picture: {ours}"
    );
    assert_eq!(decoded(&out), decoded(&source));
    // A picture M4A cannot hold as it is goes to ffmpeg.
    let webp = dir.path().join("cover.webp");
    std::fs::write(&webp, b"RIFF\0\0\0\0WEBPVP8 ").unwrap();
    assert!(!mp4::extract_audio(&source, &out, &tags_of(Some(&webp))).unwrap());
}

#[test]
fn files_it_does_not_handle_are_left_to_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audio.m4a");
    for name in ["silent.mp4", "opus.webm", "song.mp3", "corrupt.mp4"] {
        let source = media().dir.join(name);
        assert!(
            !mp4::extract_audio(&source, &out, &mp4::Tags::default()).unwrap(),
            "{name}"
        );
        assert!(!out.exists(), "{name}");
    }
    // No audio track: known without ffprobe.
    let silent = mp4::probe(&media().dir.join("silent.mp4")).unwrap();
    assert_eq!(silent.audio_codec, None);
    assert_eq!(mp4::probe(&media().dir.join("opus.webm")), None);
}
