//! What a job makes and what it learns: the audio format, and the facts
//! yt-dlp gives about a video.

use std::str::FromStr;

use serde::Deserialize;

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

/// Which audio of a post a job keeps (`processing_jobs.audio_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AudioSource {
    /// The audio as heard in the post: the video's own track (the
    /// creator's voice over the song, a dance's count).
    #[default]
    Post,
    /// The post's *sound*: the song TikTok names beside the post
    /// (`music.playUrl`), without the voice over it.
    Sound,
}

impl AudioSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioSource::Post => "post",
            AudioSource::Sound => "sound",
        }
    }

    /// The stored value; anything but `sound` (the insert refuses other
    /// words) is the post's audio.
    pub fn from_column(value: Option<&str>) -> AudioSource {
        match value {
            Some("sound") => AudioSource::Sound,
            _ => AudioSource::Post,
        }
    }
}

/// Media facts yt-dlp gives before it downloads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MediaMeta {
    pub id: Option<String>,
    pub title: Option<String>,
    pub duration: Option<f64>,
    pub uploader: Option<String>,
    pub extractor_key: Option<String>,
    /// The video's thumbnail at the platform.
    pub thumbnail: Option<String>,
    /// The post's sound, where the platform names one (TikTok's `music`).
    #[serde(default)]
    pub track: Option<String>,
    #[serde(default)]
    pub artists: Option<Vec<String>>,
}

impl MediaMeta {
    /// The title and artist the audio carries: the video's, or for a
    /// job that keeps the sound, the song's as the page names it.
    pub fn labels(&self, source: AudioSource) -> (Option<String>, Option<String>) {
        let artists = self
            .artists
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| a.join(", "));
        match source {
            AudioSource::Sound => (
                self.track.clone().or_else(|| self.title.clone()),
                artists.or_else(|| self.uploader.clone()),
            ),
            AudioSource::Post => (self.title.clone(), self.uploader.clone()),
        }
    }

    /// The facts as they can be stored and shown: text without NUL (a
    /// site's title may carry one, and PostgreSQL's text refuses it: the
    /// audio row would be refused and the job fail), cut to lengths a row,
    /// a log line and a file's tags can carry; a length that is a number
    /// of seconds.
    pub fn cleaned(self) -> MediaMeta {
        let text = |t: Option<String>, most: usize| {
            t.map(|t| {
                t.chars()
                    .filter(|c| *c != '\0')
                    .take(most)
                    .collect::<String>()
            })
        };
        MediaMeta {
            id: text(self.id, 256),
            title: text(self.title, 1000),
            duration: self.duration.filter(|d| d.is_finite() && *d >= 0.0),
            uploader: text(self.uploader, 500),
            extractor_key: text(self.extractor_key, 100),
            thumbnail: text(self.thumbnail, 2048),
            track: text(self.track, 1000),
            artists: self.artists.map(|a| {
                a.into_iter()
                    .take(20)
                    .filter_map(|n| text(Some(n), 500))
                    .collect()
            }),
        }
    }
}
