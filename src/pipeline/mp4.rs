//! What an MP4 file (MP4, M4A, MOV: what TikTok, Instagram and YouTube's
//! AAC audio come in) holds, read in-process instead of running ffprobe
//! (~0.06 s of CPU, nearly all of it loading ffmpeg's libraries). Mozilla's
//! mp4parse reads the boxes. Anything it does not read fully (another
//! container, a fragmented MP4, a codec it does not know) is left to
//! ffprobe.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use mp4parse::{CodecType, SampleEntry, TrackType};

use super::ffmpeg::Probe;

/// Boxes larger than this are not read into memory (a `moov` is a few KB per
/// minute of media).
const MAX_MOOV: u64 = 64 * 1024 * 1024;

/// The first audio track's codec (in ffmpeg's words) and length, or None
/// when ffprobe should tell.
pub fn probe(path: &Path) -> Option<Probe> {
    let header = header_boxes(path)?;
    let context = mp4parse::read_mp4(&mut header.as_slice()).ok()?;
    // Fragmented: the lengths are in the fragments.
    if context.mvex.is_some() {
        return None;
    }
    let Some(track) = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Audio)
    else {
        // Tracks, and none of them audio.
        return (!context.tracks.is_empty()).then_some(Probe {
            audio_codec: None,
            duration_secs: None,
        });
    };
    let entries = &track.stsd.as_ref()?.descriptions;
    let [SampleEntry::Audio(entry)] = entries.as_slice() else {
        return None;
    };
    let codec = match entry.codec_type {
        CodecType::AAC => "aac",
        CodecType::MP3 => "mp3",
        CodecType::Opus => "opus",
        CodecType::FLAC => "flac",
        CodecType::ALAC => "alac",
        _ => return None,
    };
    let timescale = track.timescale?.0;
    let duration = track.duration?.0;
    if timescale == 0 {
        return None;
    }
    Some(Probe {
        audio_codec: Some(codec.to_string()),
        duration_secs: Some(duration as f64 / timescale as f64),
    })
}

/// The file's `ftyp` and `moov` boxes, skipping the media data: what
/// mp4parse needs, wherever the `moov` is.
fn header_boxes(path: &Path) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut kept = Vec::new();
    let mut at = 0u64;
    let mut found_moov = false;
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).ok()?;
        let kind = [head[4], head[5], head[6], head[7]];
        let mut size = u64::from(u32::from_be_bytes(head[..4].try_into().ok()?));
        let mut head_len = 8;
        if size == 1 {
            file.read_exact(&mut head[8..16]).ok()?;
            size = u64::from_be_bytes(head[8..16].try_into().ok()?);
            head_len = 16;
        } else if size == 0 {
            size = len - at;
        }
        if size < head_len as u64 || at + size > len {
            return None;
        }
        match &kind {
            b"ftyp" | b"moov" => {
                if size > MAX_MOOV {
                    return None;
                }
                let mut body = vec![0u8; (size - head_len as u64) as usize];
                file.read_exact(&mut body).ok()?;
                kept.extend_from_slice(&head[..head_len]);
                kept.extend_from_slice(&body);
                found_moov |= &kind == b"moov";
            }
            // Fragments: lengths and samples are in them, not in moov.
            b"moof" => return None,
            _ => {}
        }
        at += size;
    }
    found_moov.then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_mp4_is_left_to_ffprobe() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
        assert_eq!(probe(&junk), None);
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(probe(&empty), None);
        // A box that claims more than the file has.
        let cut = dir.path().join("cut.mp4");
        std::fs::write(&cut, b"\0\0\x10\0moov\0\0\0\0").unwrap();
        assert_eq!(probe(&cut), None);
        assert_eq!(probe(&dir.path().join("missing.mp4")), None);
    }
}
