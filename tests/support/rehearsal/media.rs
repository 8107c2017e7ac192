//! The media the stand-ins serve, made once per run with ffmpeg, each with
//! a tone of its own so a test can tell from the stored audio which file it
//! came from; and the media hosts' side (ranges, slow and hanging
//! downloads).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::server::{Body, Reply, Req};
use super::{Behaviour, Shared, HANG};

pub const TIKTOK_POST_HZ: f64 = 523.0;
pub const TIKTOK_SOUND_HZ: f64 = 1500.0;
pub const INSTAGRAM_HZ: f64 = 660.0;
pub const YOUTUBE_HZ: f64 = 880.0;

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub struct Media {
    /// A TikTok post: H.264 video and its own AAC track (523 Hz, 3 s).
    pub tiktok_post: PathBuf,
    /// The post's sound, a licensed song (1500 Hz, 5 s): TikTok's
    /// `music.playUrl`.
    pub tiktok_sound: PathBuf,
    /// An Instagram reel: H.264 and AAC (660 Hz, 3 s).
    pub reel: PathBuf,
    /// YouTube's AAC audio-only format (itag 140; 880 Hz, 3 s).
    pub youtube_audio: PathBuf,
    /// YouTube's muxed MP4 (itag 18): video and the same audio.
    pub youtube_muxed: PathBuf,
    pub cover: PathBuf,
}

impl Media {
    pub(crate) fn make() -> Media {
        let dir = super::super::media().dir.clone();
        let make = |name: &str, args: &[&str]| super::super::make_media(&dir, name, args);
        let tone = |hz: f64, secs: u32| format!("sine=frequency={hz}:duration={secs}");
        let picture = |secs: u32| format!("testsrc=size=180x320:rate=15:duration={secs}");
        let muxed = |name: &str, hz: f64, secs: u32| {
            make(
                name,
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    &tone(hz, secs),
                    "-f",
                    "lavfi",
                    "-i",
                    &picture(secs),
                    "-c:a",
                    "aac",
                    "-b:a",
                    "64k",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-shortest",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                ],
            )
        };
        let audio = |name: &str, hz: f64, secs: u32| {
            make(
                name,
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    &tone(hz, secs),
                    "-c:a",
                    "aac",
                    "-b:a",
                    "64k",
                    "-f",
                    "ipod",
                ],
            )
        };
        Media {
            tiktok_post: muxed("rehearsal-tiktok-post.mp4", TIKTOK_POST_HZ, 3),
            tiktok_sound: audio("rehearsal-tiktok-sound.m4a", TIKTOK_SOUND_HZ, 5),
            reel: muxed("rehearsal-reel.mp4", INSTAGRAM_HZ, 3),
            youtube_audio: audio("rehearsal-youtube-140.m4a", YOUTUBE_HZ, 3),
            youtube_muxed: muxed("rehearsal-youtube-18.mp4", YOUTUBE_HZ, 3),
            cover: make(
                "rehearsal-cover.jpg",
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=size=120x120:duration=1",
                    "-frames:v",
                    "1",
                    "-f",
                    "mjpeg",
                ],
            ),
        }
    }
}

/// Serves `file` for `video` as a media host does: byte ranges, and the
/// video's slow or hanging behaviour.
pub(crate) fn serve(req: &Req, shared: &Shared, video: &str, file: &Path, answer: &str) -> Reply {
    let (behaviour, _) = shared.current(video);
    let bytes = Bytes::from(std::fs::read(file).expect("rehearsal media"));
    let total = bytes.len() as u64;
    // yt-dlp asks `Range: bytes=0-` (and YouTube's `&range=a-b` in the
    // query, which a real CDN honours the same way).
    let range = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .or_else(|| req.query("range"))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| {
            let start: u64 = a.parse().unwrap_or(0);
            let end: u64 = b
                .parse()
                .map(|e: u64| e.min(total - 1))
                .unwrap_or(total - 1);
            (start.min(total), end)
        });
    let (status, body, content_range) = match range {
        Some((start, end)) if start < total && req.header("range").is_some() => (
            206,
            bytes.slice(start as usize..=end as usize),
            Some(format!("bytes {start}-{end}/{total}")),
        ),
        Some((start, end)) if start < total => {
            (200, bytes.slice(start as usize..=end as usize), None)
        }
        _ => (200, bytes, None),
    };
    let length = body.len();
    let content_type = if file.extension().is_some_and(|e| e == "jpg") {
        "image/jpeg"
    } else if file.extension().is_some_and(|e| e == "m4a") {
        "audio/mp4"
    } else {
        "video/mp4"
    };
    let mut reply = match behaviour {
        Behaviour::SlowMedia if content_type != "image/jpeg" => {
            Reply::new(status, content_type, Bytes::new()).streaming(trickle(body, false))
        }
        Behaviour::HangMedia if content_type != "image/jpeg" => {
            Reply::new(status, content_type, Bytes::new()).streaming(trickle(body, true))
        }
        _ => Reply::new(status, content_type, body),
    };
    reply = reply
        .header("content-length", &length.to_string())
        .header("accept-ranges", "bytes");
    if let Some(cr) = content_range {
        reply = reply.header("content-range", &cr);
    }
    reply.about(video, answer)
}

/// A body sent 4 KB at a time: every 125 ms (about 32 KB/s), or, when
/// `hang`, the first piece and then nothing.
fn trickle(body: Bytes, hang: bool) -> Body {
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut at = 0;
        while at < body.len() {
            let end = (at + 4096).min(body.len());
            if tx
                .send(Ok(hyper::body::Frame::data(body.slice(at..end))))
                .await
                .is_err()
            {
                return;
            }
            at = end;
            if hang {
                tokio::time::sleep(HANG).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
    });
    http_body_util::StreamBody::new(tokio_stream_from(rx)).boxed()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The dominant frequency of a file's first audio stream, in Hz, from the
/// zero crossings of its decoded samples (the files are pure tones).
pub fn dominant_frequency(file: &Path) -> f64 {
    let out = std::process::Command::new(&super::super::tools().ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    // Skip the encoder's priming and the fade at the ends.
    let cut = samples.len() / 10;
    let middle = &samples[cut..samples.len() - cut];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (middle.len() as f64 / 48_000.0)
}
