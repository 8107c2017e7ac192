//! ffprobe and ffmpeg: find the audio stream, then copy it into a container
//! that takes its codec when we can (fast, lossless), or encode it. AAC from
//! an MP4 file goes into M4A without ffmpeg (mp4.rs).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::classify;
use super::process;
use crate::domain::{AudioFormat, ErrorCode, JobError};

/// ffmpeg or ffprobe could not read the file: say so, not "private".
fn unreadable(d: classify::Diagnosis, tool: &str) -> JobError {
    let e = JobError::new(d.code, None, format!("{tool}: {}", d.detail));
    if d.code == ErrorCode::Unavailable {
        e.with_message(
            "Video Processing Failed: the video file is damaged or in a format we cannot read.",
        )
    } else {
        e
    }
}

/// How to write one output: file extension, ffmpeg muxer, MIME type, codec
/// arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ext: &'static str,
    pub muxer: &'static str,
    pub content_type: &'static str,
    pub codec_args: Vec<String>,
}

impl Plan {
    fn new(
        ext: &'static str,
        muxer: &'static str,
        content_type: &'static str,
        codec: &[&str],
    ) -> Self {
        Plan {
            ext,
            muxer,
            content_type,
            codec_args: codec.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn copies(&self) -> bool {
        self.codec_args == ["-c:a", "copy"]
    }

    /// The container takes a cover picture (MP4's `covr`, ID3's APIC,
    /// FLAC's PICTURE); Ogg and Matroska here do not.
    pub fn holds_cover(&self) -> bool {
        matches!(self.muxer, "ipod" | "mp3" | "flac")
    }
}

const COPY: &[&str] = &["-c:a", "copy"];

/// Every extension `plan` can choose.
pub const EXTENSIONS: &[&str] = &["m4a", "mp3", "opus", "ogg", "flac", "mka"];

/// Chooses the output for `format` given the source's audio codec. With a
/// `bitrate` (kb/s, a user's choice) the audio is encoded at that rate,
/// even when it could be copied: the user asked for a size, not a codec.
pub fn plan(format: AudioFormat, codec: &str, bitrate: Option<u32>) -> Plan {
    let rate = |default: &str| bitrate.map_or(default.to_string(), |b| format!("{b}k"));
    let encode = |ext, muxer, content_type, encoder: &str, default_rate: &str| {
        let mut p = Plan::new(ext, muxer, content_type, &["-c:a", encoder]);
        p.codec_args
            .extend(["-b:a".to_string(), rate(default_rate)]);
        p
    };
    match (format, codec, bitrate) {
        (AudioFormat::M4a, "aac", None) => Plan::new("m4a", "ipod", "audio/mp4", COPY),
        (AudioFormat::M4a, _, _) => encode("m4a", "ipod", "audio/mp4", "aac", "192k"),
        (AudioFormat::Mp3, "mp3", None) => Plan::new("mp3", "mp3", "audio/mpeg", COPY),
        (AudioFormat::Mp3, _, None) => Plan::new(
            "mp3",
            "mp3",
            "audio/mpeg",
            &["-c:a", "libmp3lame", "-q:a", "2"],
        ),
        (AudioFormat::Mp3, _, Some(_)) => encode("mp3", "mp3", "audio/mpeg", "libmp3lame", ""),
        (AudioFormat::Opus, "opus", None) => Plan::new("opus", "ogg", "audio/ogg", COPY),
        (AudioFormat::Opus, _, _) => encode("opus", "ogg", "audio/ogg", "libopus", "128k"),
        (AudioFormat::Original, "aac", _) => Plan::new("m4a", "ipod", "audio/mp4", COPY),
        (AudioFormat::Original, "mp3", _) => Plan::new("mp3", "mp3", "audio/mpeg", COPY),
        (AudioFormat::Original, "opus", _) => Plan::new("opus", "ogg", "audio/ogg", COPY),
        (AudioFormat::Original, "vorbis", _) => Plan::new("ogg", "ogg", "audio/ogg", COPY),
        (AudioFormat::Original, "flac", _) => Plan::new("flac", "flac", "audio/flac", COPY),
        // Matroska takes any codec.
        (AudioFormat::Original, _, _) => Plan::new("mka", "matroska", "audio/x-matroska", COPY),
    }
}

/// What the file is tagged with: the title, the uploader as the artist,
/// and the video's thumbnail as the cover where the container holds one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tags<'a> {
    pub title: Option<&'a str>,
    pub artist: Option<&'a str>,
    pub cover: Option<&'a Path>,
}

/// What ffprobe says about the downloaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub audio_codec: Option<String>,
    pub duration_secs: Option<f64>,
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

pub async fn probe(
    ffprobe: &Path,
    file: &Path,
    cancel: &CancellationToken,
) -> Result<Probe, JobError> {
    let mut cmd = super::child_env::command(ffprobe);
    cmd.args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("format=format_name,duration:stream=index,codec_type,codec_name")
        .arg(file);
    let out = process::run(cmd, cancel, |_| {})
        .await
        .map_err(|e| JobError::internal(e.to_string()))?;
    if !out.status.success() {
        return Err(unreadable(
            classify::classify_ffmpeg(&out.stderr),
            "ffprobe",
        ));
    }
    let parsed: ProbeJson = serde_json::from_str(&out.stdout_lines.join("\n"))
        .map_err(|e| JobError::internal(format!("ffprobe printed unreadable JSON: {e}")))?;
    Ok(Probe {
        audio_codec: parsed
            .streams
            .into_iter()
            .find(|s| s.codec_type.as_deref() == Some("audio"))
            .and_then(|s| s.codec_name),
        duration_secs: parsed
            .format
            .and_then(|f| f.duration)
            .and_then(|d| d.parse().ok()),
    })
}

#[derive(Debug)]
pub struct AudioFile {
    pub path: PathBuf,
    pub plan: Plan,
    pub size: u64,
}

/// Writes the audio of `source` into `dir/audio.<ext>`. On failure nothing
/// is left behind.
#[allow(clippy::too_many_arguments)]
pub async fn extract(
    ffmpeg: &Path,
    source: &Path,
    probe: &Probe,
    format: AudioFormat,
    bitrate: Option<u32>,
    tags: Tags<'_>,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<AudioFile, JobError> {
    let Some(codec) = probe.audio_codec.as_deref() else {
        return Err(JobError::new(
            ErrorCode::NoAudio,
            None,
            "the downloaded file has no audio stream",
        ));
    };
    let plan = plan(format, codec, bitrate);
    let path = dir.join(format!("audio.{}", plan.ext));
    let cover = tags.cover.filter(|_| plan.holds_cover());
    if plan.copies() && plan.muxer == "ipod" {
        // AAC from an MP4 into M4A: the track is copied in-process when the
        // file is a plain MP4 (mp4.rs), tags and cover included; no ffmpeg.
        let (from, to) = (source.to_path_buf(), path.clone());
        let (title, artist) = (tags.title.map(String::from), tags.artist.map(String::from));
        let picture = cover.map(Path::to_path_buf);
        let extracted = tokio::task::spawn_blocking(move || {
            let tags = super::mp4::Tags {
                title: title.as_deref(),
                artist: artist.as_deref(),
                cover: picture.as_deref(),
            };
            super::mp4::extract_audio(&from, &to, &tags)
        });
        match extracted.await {
            Ok(Ok(true)) => {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if size > 0 {
                    return Ok(AudioFile { path, plan, size });
                }
            }
            // Not a plain MP4, or a cover it cannot embed (a WebP
            // thumbnail): ffmpeg does it.
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::debug!("copying the audio track in-process: {e}"),
            Err(e) => tracing::debug!("copying the audio track in-process: {e}"),
        }
    }
    let mut cmd = super::child_env::command(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(source);
    if let Some(picture) = cover {
        cmd.arg("-i").arg(picture);
    }
    // The source's own tags go (encoder names, a platform's ids); ours come
    // in their place.
    cmd.args(["-map", "0:a:0", "-sn", "-dn", "-map_metadata", "-1"])
        .args(&plan.codec_args);
    match cover {
        // The picture is a still: a JPEG of it costs milliseconds, and the
        // audio is still copied when it can be.
        Some(_) => cmd.args([
            "-map",
            "1:v:0",
            "-c:v",
            "mjpeg",
            "-disposition:v:0",
            "attached_pic",
        ]),
        None => cmd.arg("-vn"),
    };
    for (key, value) in [("title", tags.title), ("artist", tags.artist)] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            cmd.arg("-metadata").arg(format!("{key}={v}"));
        }
    }
    if plan.muxer == "ipod" {
        // Playable while it downloads: the index goes first.
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.args(["-f", plan.muxer]).arg(&path);
    let result = process::run(cmd, cancel, |_| {}).await;
    let fail = |e: JobError| {
        let _ = std::fs::remove_file(&path);
        Err(e)
    };
    let out = match result {
        Ok(out) => out,
        Err(e) => return fail(JobError::internal(e.to_string())),
    };
    if !out.status.success() {
        return fail(unreadable(classify::classify_ffmpeg(&out.stderr), "ffmpeg"));
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return fail(JobError::internal(
            "ffmpeg exited 0 but wrote an empty file",
        ));
    }
    Ok(AudioFile { path, plan, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_planned_extension_is_listed_for_cleanup() {
        let formats = [
            AudioFormat::M4a,
            AudioFormat::Mp3,
            AudioFormat::Opus,
            AudioFormat::Original,
        ];
        let codecs = ["aac", "mp3", "opus", "vorbis", "flac", "pcm_s16le", "ac3"];
        for f in formats {
            for c in codecs {
                let ext = plan(f, c, None).ext;
                assert!(EXTENSIONS.contains(&ext), "{f:?}/{c} -> {ext}");
            }
        }
    }

    #[test]
    fn aac_is_copied_into_m4a_and_never_into_mp3() {
        assert!(plan(AudioFormat::M4a, "aac", None).copies());
        assert!(!plan(AudioFormat::M4a, "opus", None).copies());
        assert!(!plan(AudioFormat::Mp3, "aac", None).copies());
        assert!(plan(AudioFormat::Opus, "opus", None).copies());
        assert_eq!(plan(AudioFormat::Opus, "opus", None).ext, "opus");
    }

    #[test]
    fn original_picks_a_container_that_takes_the_codec() {
        assert_eq!(plan(AudioFormat::Original, "aac", None).ext, "m4a");
        assert_eq!(
            plan(AudioFormat::Original, "opus", None).content_type,
            "audio/ogg"
        );
        assert_eq!(plan(AudioFormat::Original, "pcm_s16le", None).ext, "mka");
        assert!(plan(AudioFormat::Original, "pcm_s16le", None).copies());
    }

    #[test]
    fn a_chosen_bitrate_is_encoded_even_where_a_copy_would_do() {
        let m4a = plan(AudioFormat::M4a, "aac", Some(96));
        assert!(!m4a.copies());
        assert!(m4a
            .codec_args
            .ends_with(&["-b:a".to_string(), "96k".to_string()]));
        let mp3 = plan(AudioFormat::Mp3, "mp3", Some(320));
        assert_eq!(mp3.codec_args, ["-c:a", "libmp3lame", "-b:a", "320k"]);
        assert!(plan(AudioFormat::Opus, "aac", Some(64))
            .codec_args
            .contains(&"64k".to_string()));
        assert!(plan(AudioFormat::M4a, "aac", None).holds_cover());
        assert!(!plan(AudioFormat::Opus, "opus", None).holds_cover());
    }
}
