//! MP4 files (MP4, M4A, MOV: what TikTok, Instagram and YouTube's AAC audio
//! come in) handled in-process instead of by ffprobe and ffmpeg, each of
//! which costs ~0.06 s of CPU for a short clip, nearly all of it loading
//! ffmpeg's libraries:
//!
//! - `probe`: the first audio track's codec and length (Mozilla's mp4parse
//!   reads the boxes);
//! - `extract_audio`: that track alone in a new M4A file, its samples and
//!   sample tables copied unchanged, the index first (what `ffmpeg -map
//!   0:a:0 -c:a copy -map_metadata -1 -movflags +faststart -f ipod` makes).
//!
//! Anything they do not handle fully (another container, a fragmented MP4,
//! an unusual layout) is left to ffprobe and ffmpeg.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use mp4parse::{CodecType, SampleEntry, TrackType};

use super::ffmpeg::Probe;

/// Boxes larger than this are not read into memory (a `moov` is a few KB per
/// minute of media).
const MAX_MOOV: u64 = 64 * 1024 * 1024;

/// The first audio track's codec (in ffmpeg's words) and length, or None
/// when ffprobe should tell.
pub fn probe(path: &Path) -> Option<Probe> {
    read(&header_boxes(path)?)
}

/// `probe` of the file's `header` (its ftyp and moov boxes).
fn read(header: &[u8]) -> Option<Probe> {
    let context = mp4parse::read_mp4(&mut &header[..]).ok()?;
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
        // A size near u64::MAX must not wrap round to a place earlier in
        // the file (in a release build: a loop that never ends).
        if size < head_len as u64 || at.checked_add(size).is_none_or(|end| end > len) {
            return None;
        }
        match &kind {
            b"ftyp" | b"moov" => {
                // All of them together: a file of many moov boxes is not
                // read into memory whole either.
                if kept.len() as u64 + size > MAX_MOOV {
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
    (found_moov && tables_fit(&kept, 0)).then_some(kept)
}

/// Whether every box in `boxes` that mp4parse reads fits in its parent,
/// and every table has room for the entries its count announces. mp4parse
/// reserves memory for a box from its declared size, and for a table from
/// its count, before reading them (fallibly, but a size or count near
/// u32::MAX asks for gigabytes): sizes are held to the parent, counts to
/// the box, so nothing is sized from a number in the file beyond the file.
fn tables_fit(boxes: &[u8], depth: usize) -> bool {
    // The containers mp4parse walks into.
    const WALKED: &[&[u8; 4]] = &[
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"mvex", b"udta", b"sinf",
        b"schi", b"wave",
    ];
    if depth > MAX_DEPTH {
        return false;
    }
    every_box(boxes, |kind, body| {
        if WALKED.contains(&&kind) {
            tables_fit(body, depth + 1)
        } else if &kind == b"meta" {
            // A full box: its version and flags come before its boxes.
            tables_fit(body.get(4..).unwrap_or_default(), depth + 1)
        } else if &kind == b"ilst" {
            // Tags: each item holds the boxes of its value (data, …),
            // each read into memory whole.
            every_box(body, |_, item| tables_fit(item, depth + 2))
        } else if &kind == b"stsd" {
            table_fits(&kind, body) && sample_entries_fit(body, depth)
        } else {
            table_fits(&kind, body)
        }
    })
}

/// Whether every box in `list` is whole and `fits` it. Fewer than 8 bytes
/// left: padding, not a box.
fn every_box(list: &[u8], mut fits: impl FnMut([u8; 4], &[u8]) -> bool) -> bool {
    let mut rest = list;
    while rest.len() >= 8 {
        let Some((kind, body, len)) = split_box(rest) else {
            return false;
        };
        if !fits(kind, body) {
            return false;
        }
        rest = &rest[len..];
    }
    true
}

/// The sample descriptions of an `stsd` body, and the boxes inside the
/// audio and video ones (codec configuration: esds, dOps, avcC, …).
fn sample_entries_fit(stsd: &[u8], depth: usize) -> bool {
    every_box(stsd.get(8..).unwrap_or_default(), |kind, body| {
        // Where an entry's own boxes start: after the fields of a sound
        // description (version 0, 1 or 2) or of a visual one.
        let children = match &kind {
            b"mp4a" | b"enca" | b"Opus" | b"fLaC" | b"alac" | b".mp3" | b"ac-3" | b"ec-3"
            | b"lpcm" | b"ipcm" | b"fpcm" | b"sowt" | b"twos" => {
                match body.get(8..10).map(|v| u16::from_be_bytes([v[0], v[1]])) {
                    Some(1) => 44,
                    Some(2) => 64,
                    _ => 28,
                }
            }
            b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"mp4v" | b"encv" | b"vp08" | b"vp09"
            | b"av01" | b"s263" => 78,
            _ => body.len(),
        };
        tables_fit(body.get(children..).unwrap_or_default(), depth + 1)
    })
}

/// A table box: its count times the size of an entry fits in its body.
fn table_fits(kind: &[u8; 4], body: &[u8]) -> bool {
    let v1 = body.first() == Some(&1);
    // (where the count is, bytes per entry); entries start after the count.
    let (count_at, entry) = match kind {
        b"stco" | b"stss" => (4, 4),
        b"co64" | b"stts" | b"ctts" => (4, 8),
        b"stsc" => (4, 12),
        b"elst" => (4, if v1 { 20 } else { 12 }),
        // Sample descriptions and data references are boxes: 8 bytes at
        // least (a full box for a reference: 12).
        b"stsd" => (4, 8),
        b"dref" => (4, 12),
        // Sizes are listed only when there is no common size.
        b"stsz" => match be32(body, 4) {
            Some(0) => (8, 4),
            _ => return true,
        },
        _ => return true,
    };
    let Some(count) = be32(body, count_at) else {
        // Too short to hold a count: mp4parse refuses it.
        return true;
    };
    let room = body.len().saturating_sub(count_at + 4) as u64;
    u64::from(count) * entry <= room
}

/// One box: its type and either its payload or, for the containers we walk
/// into, its children.
#[derive(Clone)]
struct Node {
    kind: [u8; 4],
    body: Body,
}

#[derive(Clone)]
enum Body {
    Data(Vec<u8>),
    Boxes(Vec<Node>),
}

const CONTAINERS: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf"];

/// Boxes only a file or a movie holds, never a track.
const MOVIE_LEVEL: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"trak", b"mdat", b"moof", b"mvex", b"mfra",
];

/// How deep containers may nest: a movie's index is five deep
/// (moov/trak/mdia/minf/stbl); a file nesting thousands of boxes would
/// otherwise take the recursion past the end of the stack.
const MAX_DEPTH: usize = 8;

impl Node {
    fn parse(kind: [u8; 4], body: &[u8]) -> Option<Node> {
        Self::parse_at(kind, body, 0)
    }

    fn parse_at(kind: [u8; 4], body: &[u8], depth: usize) -> Option<Node> {
        if !CONTAINERS.contains(&&kind) {
            return Some(Node {
                kind,
                body: Body::Data(body.to_vec()),
            });
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        let mut children = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (child_kind, child_body, len) = split_box(rest)?;
            children.push(Node::parse_at(child_kind, child_body, depth + 1)?);
            rest = &rest[len..];
        }
        Some(Node {
            kind,
            body: Body::Boxes(children),
        })
    }

    fn children(&self) -> &[Node] {
        match &self.body {
            Body::Boxes(c) => c,
            Body::Data(_) => &[],
        }
    }

    fn child(&self, kind: &[u8; 4]) -> Option<&Node> {
        self.children().iter().find(|c| &c.kind == kind)
    }

    /// Whether this box or one inside it is of one of `kinds`.
    fn holds_any(&self, kinds: &[&[u8; 4]]) -> bool {
        kinds.contains(&&self.kind) || self.children().iter().any(|c| c.holds_any(kinds))
    }

    fn data(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Data(d) => Some(d),
            Body::Boxes(_) => None,
        }
    }

    fn len(&self) -> u64 {
        8 + match &self.body {
            Body::Data(d) => d.len() as u64,
            Body::Boxes(c) => c.iter().map(Node::len).sum(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.kind);
        match &self.body {
            Body::Data(d) => out.extend_from_slice(d),
            Body::Boxes(c) => c.iter().for_each(|c| c.write(out)),
        }
    }
}

/// The first box in `bytes`: (type, payload, whole length).
fn split_box(bytes: &[u8]) -> Option<([u8; 4], &[u8], usize)> {
    let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let kind: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    let (start, size) = match size {
        1 => (
            16,
            usize::try_from(u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?)).ok()?,
        ),
        0 => (8, bytes.len()),
        n => (8, n),
    };
    if size < start || size > bytes.len() {
        return None;
    }
    Some((kind, &bytes[start..size], size))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Where each chunk of a track is and how long it is, from its sample
/// tables.
fn chunks(stbl: &Node) -> Option<Vec<(u64, u64)>> {
    let offsets: Vec<u64> = if let Some(stco) = stbl.child(b"stco").and_then(Node::data) {
        let n = be32(stco, 4)? as usize;
        (0..n)
            .map(|i| be32(stco, 8 + 4 * i).map(u64::from))
            .collect::<Option<_>>()?
    } else {
        let co64 = stbl.child(b"co64")?.data()?;
        let n = be32(co64, 4)? as usize;
        (0..n)
            .map(|i| be64(co64, 8 + 8 * i))
            .collect::<Option<_>>()?
    };
    let stsz = stbl.child(b"stsz")?.data()?;
    let fixed = be32(stsz, 4)?;
    let samples = be32(stsz, 8)? as usize;
    // The bytes of samples `from..from + n`: a product when they share a
    // size (a count of four billion costs nothing), else their sizes
    // (listed in the box: as many as it holds).
    let bytes_of = |from: usize, n: usize| -> Option<u64> {
        if fixed != 0 {
            u64::from(fixed).checked_mul(n as u64)
        } else {
            (from..from + n).try_fold(0u64, |sum, i| {
                sum.checked_add(u64::from(be32(stsz, 12 + 4 * i)?))
            })
        }
    };
    let stsc = stbl.child(b"stsc")?.data()?;
    // (first chunk, samples per chunk) runs, in order.
    let runs = (0..be32(stsc, 4)? as usize)
        .map(|i| Some((be32(stsc, 8 + 12 * i)? as usize, be32(stsc, 12 + 12 * i)?)))
        .collect::<Option<Vec<_>>>()?;
    let mut sizes = Vec::with_capacity(offsets.len());
    let mut sample = 0usize;
    let mut run = 0;
    for chunk in 1..=offsets.len() {
        while runs.get(run + 1).is_some_and(|(first, _)| *first <= chunk) {
            run += 1;
        }
        let (first, per_chunk) = *runs.get(run)?;
        if first > chunk {
            return None;
        }
        let per_chunk = per_chunk as usize;
        if per_chunk > samples - sample {
            return None;
        }
        sizes.push(bytes_of(sample, per_chunk)?);
        sample += per_chunk;
    }
    if sample != samples {
        return None;
    }
    Some(offsets.into_iter().zip(sizes).collect())
}

/// Duration field of an `mvhd` or `tkhd` payload: (offset, is 64-bit).
fn duration_field(kind: &[u8; 4], data: &[u8]) -> (usize, bool) {
    let v1 = data.first() == Some(&1);
    match (kind, v1) {
        (b"mvhd", false) => (16, false),
        (b"mvhd", true) => (24, true),
        (_, false) => (20, false),
        (_, true) => (28, true),
    }
}

/// What the new file is tagged with, as ffmpeg's ipod muxer writes tags
/// (an iTunes `ilst`): title, artist, and a JPEG or PNG cover.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tags<'a> {
    pub title: Option<&'a str>,
    pub artist: Option<&'a str>,
    pub cover: Option<&'a Path>,
}

/// A box: size, type, payload.
fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// `moov/udta` holding the tags, or None without any; Err(()) for a cover
/// M4A cannot hold as it is (not JPEG or PNG: ffmpeg converts it).
fn user_data(tags: &Tags) -> Result<Option<Node>, ()> {
    // iTunes item: a `data` box of a type (1 text, 13 JPEG, 14 PNG).
    let item = |kind: &[u8; 4], kind_of_data: u32, value: &[u8]| {
        let data = [&kind_of_data.to_be_bytes()[..], &[0; 4], value].concat();
        boxed(kind, &boxed(b"data", &data))
    };
    let mut items = Vec::new();
    for (kind, text) in [(b"\xa9nam", tags.title), (b"\xa9ART", tags.artist)] {
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            items.extend(item(kind, 1, text.as_bytes()));
        }
    }
    if let Some(cover) = tags.cover {
        let picture = std::fs::read(cover).map_err(|_| ())?;
        let kind_of_data = if picture.starts_with(&[0xFF, 0xD8, 0xFF]) {
            13
        } else if picture.starts_with(b"\x89PNG") {
            14
        } else {
            return Err(());
        };
        items.extend(item(b"covr", kind_of_data, &picture));
    }
    if items.is_empty() {
        return Ok(None);
    }
    let hdlr = [&[0u8; 8][..], b"mdirappl", &[0; 9]].concat();
    let meta = [
        &[0u8; 4][..],
        &boxed(b"hdlr", &hdlr),
        &boxed(b"ilst", &items),
    ]
    .concat();
    Ok(Some(Node {
        kind: *b"udta",
        body: Body::Data(boxed(b"meta", &meta)),
    }))
}

/// Writes the first audio track of the MP4 file `src` alone into `dst`, an
/// M4A file with its index first and `tags`. Ok(false): the file is not one
/// this handles (nothing is left at `dst`); ffmpeg should do it.
pub fn extract_audio(src: &Path, dst: &Path, tags: &Tags) -> std::io::Result<bool> {
    let Ok(user_data) = user_data(tags) else {
        return Ok(false);
    };
    let Some(plan) = layout(src, user_data) else {
        return Ok(false);
    };
    let written = (|| {
        let file = File::open(src)?;
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(dst)?);
        out.write_all(&plan.head)?;
        let mut buf = vec![0u8; 256 * 1024];
        for (offset, len) in &plan.chunks {
            let (mut at, mut left) = (*offset, *len);
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                file.read_exact_at(&mut buf[..n], at)?;
                out.write_all(&buf[..n])?;
                at += n as u64;
                left -= n as u64;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_data()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(dst);
        return Err(e);
    }
    Ok(true)
}

struct Layout {
    /// ftyp, moov and the mdat header of the new file.
    head: Vec<u8>,
    /// (offset, length) in the source of each chunk of the audio track.
    chunks: Vec<(u64, u64)>,
}

/// What the new file will hold, or None when the source is not a plain
/// (unfragmented, self-contained) MP4 with an audio track.
fn layout(src: &Path, user_data: Option<Node>) -> Option<Layout> {
    let header = header_boxes(src)?;
    // Only a track mp4parse reads, of a codec it names, is cut: it refuses
    // much that ffmpeg refuses too (versions it does not know, broken
    // sample descriptions or decoder configurations), which copied as it
    // is would make a file no player reads.
    read(&header)?.audio_codec?;
    let file_len = std::fs::metadata(src).ok()?.len();
    let mut rest = header.as_slice();
    let mut moov = None;
    while !rest.is_empty() {
        let (kind, body, len) = split_box(rest)?;
        if &kind == b"moov" {
            moov = Some(Node::parse(kind, body)?);
        }
        rest = &rest[len..];
    }
    let moov = moov?;
    if moov.child(b"mvex").is_some() {
        return None;
    }
    let trak = moov.children().iter().find(|t| {
        &t.kind == b"trak"
            && t.child(b"mdia")
                .and_then(|m| m.child(b"hdlr"))
                .and_then(Node::data)
                .and_then(|h| h.get(8..12))
                == Some(b"soun")
    })?;
    // ffmpeg calls a file with a track or media data below the top level
    // broken ("trak/mdat not at top-level") and stops reading that box: a
    // track holding what only a file or movie holds is left to it.
    if trak.children().iter().any(|c| c.holds_any(MOVIE_LEVEL)) {
        return None;
    }
    let mdia = trak.child(b"mdia")?;
    let minf = mdia.child(b"minf")?;
    let stbl = minf.child(b"stbl")?;
    // Samples in this file only (no external data references).
    let dref = minf.child(b"dinf")?.child(b"dref")?.data()?;
    let mut entry = 8;
    let references = be32(dref, 4)?;
    // At least one (ffmpeg refuses a table of none), each a whole full box
    // (ffmpeg refuses one under 12 bytes).
    if references == 0 {
        return None;
    }
    for _ in 0..references {
        let size = be32(dref, entry)? as usize;
        if size < 12 || entry + size > dref.len() || be32(dref, entry + 8)? & 1 == 0 {
            return None;
        }
        entry += size;
    }
    // The track says what its samples are: at least one description, whole
    // (without it ffmpeg reads neither this file nor the new one).
    let stsd = stbl.child(b"stsd")?.data()?;
    if be32(stsd, 4)? == 0 {
        return None;
    }
    split_box(stsd.get(8..)?)?;
    let chunks = chunks(stbl)?;
    if chunks
        .iter()
        .any(|(at, len)| at.checked_add(*len).is_none_or(|end| end > file_len))
    {
        return None;
    }
    let audio: u64 = chunks.iter().map(|(_, len)| len).sum();

    // The movie as long as its audio: the track's tkhd duration, in the
    // movie's timescale.
    let tkhd = trak.child(b"tkhd")?.data()?;
    let (at, wide) = duration_field(b"tkhd", tkhd);
    let track_duration = if wide {
        be64(tkhd, at)?
    } else {
        u64::from(be32(tkhd, at)?)
    };
    let mut mvhd = moov.child(b"mvhd")?.data()?.to_vec();
    let (at, wide) = duration_field(b"mvhd", &mvhd);
    if wide {
        mvhd.get_mut(at..at + 8)?
            .copy_from_slice(&track_duration.to_be_bytes());
    } else {
        let d = u32::try_from(track_duration).ok()?;
        mvhd.get_mut(at..at + 4)?.copy_from_slice(&d.to_be_bytes());
    }

    let ftyp = Node {
        kind: *b"ftyp",
        body: Body::Data([*b"M4A ", [0; 4], *b"M4A ", *b"mp42", *b"isom"].concat()),
    };
    let offsets = |wide: bool, first: u64| -> Node {
        let mut d = Vec::with_capacity(8 + chunks.len() * 8);
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        let mut at = first;
        for (_, len) in &chunks {
            if wide {
                d.extend_from_slice(&at.to_be_bytes());
            } else {
                d.extend_from_slice(&(at as u32).to_be_bytes());
            }
            at += len;
        }
        Node {
            kind: if wide { *b"co64" } else { *b"stco" },
            body: Body::Data(d),
        }
    };
    let movie = |wide: bool, first: u64| Node {
        kind: *b"moov",
        body: Body::Boxes(
            [
                Some(Node {
                    kind: *b"mvhd",
                    body: Body::Data(mvhd.clone()),
                }),
                Some(rebuilt(trak, &offsets(wide, first))),
                user_data.clone(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
    };
    // The offsets depend on the index's size, which depends on whether
    // they fit in 32 bits.
    let mdat_head = if audio + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let narrow = movie(false, 0).len();
    let wide = ftyp.len() + narrow + mdat_head + audio > u64::from(u32::MAX);
    let moov_len = if wide { movie(true, 0).len() } else { narrow };
    let first = ftyp.len() + moov_len + mdat_head;
    let mut head = Vec::with_capacity(first as usize);
    ftyp.write(&mut head);
    movie(wide, first).write(&mut head);
    if mdat_head == 16 {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(audio + 16).to_be_bytes());
    } else {
        head.extend_from_slice(&((audio + 8) as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    }
    (head.len() as u64 == first).then_some(Layout { head, chunks })
}

/// The audio track as it goes into the new file: its chunk offsets
/// replaced, and without the boxes that name other tracks or carry metadata.
fn rebuilt(node: &Node, offsets: &Node) -> Node {
    match &node.body {
        Body::Data(_) if matches!(&node.kind, b"stco" | b"co64") => offsets.clone(),
        Body::Data(_) => node.clone(),
        Body::Boxes(children) => Node {
            kind: node.kind,
            body: Body::Boxes(
                children
                    .iter()
                    .filter(|c| !matches!(&c.kind, b"udta" | b"meta" | b"tref"))
                    .map(|c| rebuilt(c, offsets))
                    .collect(),
            ),
        },
    }
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
