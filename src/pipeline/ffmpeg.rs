//! ffprobe and ffmpeg: find the audio stream, then copy it into a container
//! that takes its codec when we can (fast, lossless), or encode it. AAC from
//! an MP4 file goes into M4A without ffmpeg (mp4.rs).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::classify;
use super::process;
use crate::error::{ErrorCode, JobError};

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

/// The audio file a job produces (`XTRACT_AUDIO_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// AAC in MP4: copied when the source is AAC, else encoded.
    M4a,
    Mp3,
    Opus,
    /// The source's audio stream unchanged, in a container that fits it.
    Original,
}

impl FromStr for AudioFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "m4a" => Ok(Self::M4a),
            "mp3" => Ok(Self::Mp3),
            "opus" => Ok(Self::Opus),
            "original" => Ok(Self::Original),
            _ => Err(format!("'{s}' is not m4a, mp3, opus or original")),
        }
    }
}

impl AudioFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::M4a => "m4a",
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Original => "original",
        }
    }
}

/// How to write one output: file extension, ffmpeg muxer, MIME type, codec
/// arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ext: &'static str,
    pub muxer: &'static str,
    pub content_type: &'static str,
    pub codec_args: Vec<&'static str>,
}

impl Plan {
    fn new(
        ext: &'static str,
        muxer: &'static str,
        content_type: &'static str,
        codec: &[&'static str],
    ) -> Self {
        Plan {
            ext,
            muxer,
            content_type,
            codec_args: codec.to_vec(),
        }
    }

    pub fn copies(&self) -> bool {
        self.codec_args == ["-c:a", "copy"]
    }
}

const COPY: &[&str] = &["-c:a", "copy"];

/// Every extension `plan` can choose.
pub const EXTENSIONS: &[&str] = &["m4a", "mp3", "opus", "ogg", "flac", "mka"];

/// Chooses the output for `format` given the source's audio codec.
pub fn plan(format: AudioFormat, codec: &str) -> Plan {
    match (format, codec) {
        (AudioFormat::M4a, "aac") => Plan::new("m4a", "ipod", "audio/mp4", COPY),
        (AudioFormat::M4a, _) => {
            Plan::new("m4a", "ipod", "audio/mp4", &["-c:a", "aac", "-b:a", "192k"])
        }
        (AudioFormat::Mp3, "mp3") => Plan::new("mp3", "mp3", "audio/mpeg", COPY),
        (AudioFormat::Mp3, _) => Plan::new(
            "mp3",
            "mp3",
            "audio/mpeg",
            &["-c:a", "libmp3lame", "-q:a", "2"],
        ),
        (AudioFormat::Opus, "opus") => Plan::new("opus", "ogg", "audio/ogg", COPY),
        (AudioFormat::Opus, _) => Plan::new(
            "opus",
            "ogg",
            "audio/ogg",
            &["-c:a", "libopus", "-b:a", "128k"],
        ),
        (AudioFormat::Original, "aac") => Plan::new("m4a", "ipod", "audio/mp4", COPY),
        (AudioFormat::Original, "mp3") => Plan::new("mp3", "mp3", "audio/mpeg", COPY),
        (AudioFormat::Original, "opus") => Plan::new("opus", "ogg", "audio/ogg", COPY),
        (AudioFormat::Original, "vorbis") => Plan::new("ogg", "ogg", "audio/ogg", COPY),
        (AudioFormat::Original, "flac") => Plan::new("flac", "flac", "audio/flac", COPY),
        // Matroska takes any codec.
        (AudioFormat::Original, _) => Plan::new("mka", "matroska", "audio/x-matroska", COPY),
    }
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
    let mut cmd = Command::new(ffprobe);
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
pub async fn extract(
    ffmpeg: &Path,
    source: &Path,
    probe: &Probe,
    format: AudioFormat,
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
    let plan = plan(format, codec);
    let path = dir.join(format!("audio.{}", plan.ext));
    if plan.copies() && plan.muxer == "ipod" {
        // AAC from an MP4 into M4A: the track is copied in-process when the
        // file is a plain MP4 (mp4.rs), no ffmpeg needed.
        let (from, to) = (source.to_path_buf(), path.clone());
        let extracted = tokio::task::spawn_blocking(move || {
            super::mp4::extract_audio(&from, &to, &super::mp4::Tags::default())
        });
        match extracted.await {
            Ok(Ok(true)) => {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if size > 0 {
                    return Ok(AudioFile { path, plan, size });
                }
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::debug!("copying the audio track in-process: {e}"),
            Err(e) => tracing::debug!("copying the audio track in-process: {e}"),
        }
    }
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"])
        .args(&plan.codec_args);
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
                let ext = plan(f, c).ext;
                assert!(EXTENSIONS.contains(&ext), "{f:?}/{c} -> {ext}");
            }
        }
    }

    #[test]
    fn aac_is_copied_into_m4a_and_never_into_mp3() {
        assert!(plan(AudioFormat::M4a, "aac").copies());
        assert!(!plan(AudioFormat::M4a, "opus").copies());
        assert!(!plan(AudioFormat::Mp3, "aac").copies());
        assert!(plan(AudioFormat::Opus, "opus").copies());
        assert_eq!(plan(AudioFormat::Opus, "opus").ext, "opus");
    }

    #[test]
    fn original_picks_a_container_that_takes_the_codec() {
        assert_eq!(plan(AudioFormat::Original, "aac").ext, "m4a");
        assert_eq!(
            plan(AudioFormat::Original, "opus").content_type,
            "audio/ogg"
        );
        assert_eq!(plan(AudioFormat::Original, "pcm_s16le").ext, "mka");
        assert!(plan(AudioFormat::Original, "pcm_s16le").copies());
    }
}
