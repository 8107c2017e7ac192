//! Hostile and malformed input, generated (issue 23): the in-process MP4
//! reader and cut on damaged files, and the two link checks on generated
//! links. Each property runs a bounded number of cases so the suite stays
//! fast; `PROPTEST_CASES=N` runs N of each locally.
//! (yt-dlp's printed lines and Storage's error bodies have their
//! properties beside the code that reads them: src/pipeline/ytdlp.rs,
//! src/storage/supabase/errors.rs.)

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::*;
use xtract::pipeline::mp4;

// ---- memory: what this thread has allocated, at most ----

/// Counts the bytes each thread holds, and the most it held since
/// `Peak::start`: a reader that sizes an allocation from a number in the
/// file shows here, whatever the number.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            held(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        held(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new);
        if !q.is_null() {
            held(new as isize - layout.size() as isize);
        }
        q
    }
}

fn held(delta: isize) {
    // During thread teardown the thread-locals may be gone: not counted.
    let _ = HELD.try_with(|h| {
        let now = h.get() + delta;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most this thread held while `f` ran, beyond what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HELD.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - before).max(0) as usize)
}

/// Cases per property: `default`, or PROPTEST_CASES for longer local runs.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- MP4: damaged files ----

/// One box of a file: where it starts, its header's length, its size and
/// its type, for the containers the cut walks into.
#[derive(Debug, Clone)]
struct Boxed {
    at: usize,
    size: usize,
    kind: [u8; 4],
}

const CONTAINERS: [&[u8; 4]; 7] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts",
];

/// The boxes of `bytes` from `at`, depth first, as far as they parse (and
/// ten deep: damage may nest thousands).
fn boxes(bytes: &[u8], mut at: usize, end: usize, depth: usize, out: &mut Vec<Boxed>) {
    while at + 8 <= end {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
        if size < 8 || at + size > end {
            return;
        }
        out.push(Boxed { at, size, kind });
        if CONTAINERS.contains(&&kind) && depth < 10 {
            boxes(bytes, at + 8, at + size, depth + 1, out);
        }
        at += size;
    }
}

fn all_boxes(bytes: &[u8]) -> Vec<Boxed> {
    let mut out = Vec::new();
    boxes(bytes, 0, bytes.len(), 0, &mut out);
    out
}

/// Adds `delta` to the size of every box that holds byte `at` (after an
/// insertion there).
fn grow_parents(bytes: &mut [u8], parents: &[Boxed], delta: usize) {
    for b in parents {
        let size = (b.size + delta) as u32;
        bytes[b.at..b.at + 4].copy_from_slice(&size.to_be_bytes());
    }
}

fn parents_of(list: &[Boxed], at: usize) -> Vec<Boxed> {
    list.iter()
        .filter(|b| b.at < at && at < b.at + b.size && CONTAINERS.contains(&&b.kind))
        .cloned()
        .collect()
}

#[derive(Debug, Clone)]
enum Damage {
    /// The file ends early, at this fraction of its length.
    Truncate(f64),
    /// A box's 32-bit size says something else.
    Size { which: usize, size: u32 },
    /// A box's size in the 64-bit form (size 1, then 8 bytes over the
    /// start of its payload).
    LargeSize { which: usize, size: u64 },
    /// A 32-bit word of a table or header box, changed: counts, sizes,
    /// offsets, chunk runs, durations, timescales, data references.
    Word {
        table: &'static [u8; 4],
        word: usize,
        value: u32,
    },
    /// The audio track with no samples: every table empty, consistently.
    EmptyTrack,
    /// Four billion samples of one byte each, in one chunk: tables that
    /// agree with each other and would take minutes to walk one by one.
    HugeRun,
    /// The audio track copied this many times into the movie.
    ManyTracks(usize),
    /// The movie's boxes inside this many nested track boxes.
    Nested(usize),
    /// A box renamed (a fragment box, an unknown one, a container).
    Rename { which: usize, kind: [u8; 4] },
    /// A byte of the index changed.
    Byte { at: usize, value: u8 },
}

fn interesting_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(7),
        Just(8),
        Just(16),
        Just(u32::MAX),
        Just(u32::MAX - 7),
        Just(1 << 31),
        0u32..64,
        any::<u32>(),
    ]
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(16),
        Just(u64::MAX),
        Just(u64::MAX - 7),
        Just(u64::MAX - 15),
        Just(1 << 63),
        Just(u64::from(u32::MAX) + 1),
        any::<u64>(),
    ]
}

const TABLES: [&[u8; 4]; 11] = [
    b"stsz", b"stsc", b"stco", b"stts", b"stsd", b"dref", b"mvhd", b"tkhd", b"mdhd", b"hdlr",
    b"ctts",
];

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0f64..1.0).prop_map(Damage::Truncate),
        (any::<usize>(), interesting_u32()).prop_map(|(which, size)| Damage::Size { which, size }),
        (any::<usize>(), interesting_u64())
            .prop_map(|(which, size)| Damage::LargeSize { which, size }),
        (
            proptest::sample::select(TABLES.to_vec()),
            0usize..12,
            interesting_u32()
        )
            .prop_map(|(table, word, value)| Damage::Word { table, word, value }),
        Just(Damage::EmptyTrack),
        Just(Damage::HugeRun),
        prop_oneof![2usize..8, 64usize..160].prop_map(Damage::ManyTracks),
        prop_oneof![1usize..20, 1000usize..20_000].prop_map(Damage::Nested),
        (
            any::<usize>(),
            proptest::sample::select(vec![
                *b"moof", *b"mvex", *b"free", *b"trak", *b"moov", *b"mdat"
            ])
        )
            .prop_map(|(which, kind)| Damage::Rename { which, kind }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Damage::Byte { at, value }),
    ]
}

fn moov_of(list: &[Boxed]) -> Option<&Boxed> {
    list.iter().find(|b| &b.kind == b"moov")
}

/// `bytes` with `d` done to it.
fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let list = all_boxes(bytes);
    if list.is_empty() {
        return;
    }
    let pick = |which: usize| &list[which % list.len()];
    match d {
        Damage::Truncate(f) => bytes.truncate((bytes.len() as f64 * f) as usize),
        Damage::Size { which, size } => {
            let b = pick(*which);
            bytes[b.at..b.at + 4].copy_from_slice(&size.to_be_bytes());
        }
        Damage::LargeSize { which, size } => {
            let b = pick(*which);
            bytes[b.at..b.at + 4].copy_from_slice(&1u32.to_be_bytes());
            let end = (b.at + 16).min(bytes.len());
            bytes[b.at + 8..end].copy_from_slice(&size.to_be_bytes()[..end - b.at - 8]);
        }
        Damage::Word { table, word, value } => {
            if let Some(b) = list.iter().find(|b| &b.kind == *table) {
                let at = b.at + 8 + 4 * word;
                if at + 4 <= b.at + b.size {
                    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
                }
            }
        }
        Damage::EmptyTrack => {
            // Counts to zero; stsz's fixed size too. Box sizes stay.
            for (table, words) in [
                (b"stsz", &[1usize, 2][..]),
                (b"stsc", &[1][..]),
                (b"stco", &[1][..]),
                (b"stts", &[1][..]),
            ] {
                for b in list.iter().filter(|b| &b.kind == table) {
                    for w in words {
                        let at = b.at + 8 + 4 * w;
                        if at + 4 <= b.at + b.size {
                            bytes[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
                        }
                    }
                }
            }
        }
        Damage::HugeRun => {
            for (table, word, value) in [
                (b"stsz", 1usize, 1u32),
                (b"stsz", 2, u32::MAX),
                (b"stsc", 3, u32::MAX),
            ] {
                if let Some(b) = list.iter().find(|b| &b.kind == table) {
                    let at = b.at + 8 + 4 * word;
                    if at + 4 <= b.at + b.size {
                        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
                    }
                }
            }
        }
        Damage::ManyTracks(n) => {
            let Some(trak) = list.iter().find(|b| &b.kind == b"trak") else {
                return;
            };
            let copy = bytes[trak.at..trak.at + trak.size].to_vec();
            let insert_at = trak.at + trak.size;
            let parents = parents_of(&list, insert_at - 1);
            let added: Vec<u8> = copy.repeat(*n);
            grow_parents(bytes, &parents, added.len());
            bytes.splice(insert_at..insert_at, added);
        }
        Damage::Nested(depth) => {
            let Some(moov) = moov_of(&list).cloned() else {
                return;
            };
            let inner = bytes[moov.at + 8..moov.at + moov.size].to_vec();
            let mut nested = Vec::with_capacity(inner.len() + 8 * depth);
            for level in 0..*depth {
                let size = (inner.len() + 8 * (depth - level)) as u32;
                nested.extend_from_slice(&size.to_be_bytes());
                nested.extend_from_slice(b"trak");
            }
            nested.extend_from_slice(&inner);
            let size = (nested.len() + 8) as u32;
            bytes[moov.at..moov.at + 4].copy_from_slice(&size.to_be_bytes());
            bytes.splice(moov.at + 8..moov.at + moov.size, nested);
        }
        Damage::Rename { which, kind } => {
            let b = pick(*which);
            bytes[b.at + 4..b.at + 8].copy_from_slice(kind);
        }
        Damage::Byte { at, value } => {
            if let Some(moov) = moov_of(&list) {
                let i = moov.at + at % moov.size;
                bytes[i] = *value;
            }
        }
    }
}

/// What reading and cutting `bytes` may hold at most: the file, its index
/// and the new index, with room for the readers' own tables; never the
/// gigabytes a box or count asked for.
fn memory_bound(bytes: &[u8]) -> usize {
    8 * bytes.len() + (4 << 20)
}

/// Produced files checked with ffprobe: a dozen in the suite's run (each
/// costs a process), every one in a run of `PROPTEST_CASES` chosen by hand.
static PROBED: AtomicUsize = AtomicUsize::new(0);

fn probe_at_most() -> usize {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        usize::MAX
    } else {
        12
    }
}

/// What ffprobe says of a file's first audio stream, if it reads one.
fn ffprobe_audio(path: &Path) -> Result<String, String> {
    let out = std::process::Command::new(&tools().ffprobe)
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let codec = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !codec.is_empty() {
        Ok(codec)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every damaged MP4 ends in a reading or a clean "leave it to ffmpeg",
/// never a panic; memory stays within a few times the file (nothing is
/// sized from a number in it); and what the cut writes, ffprobe reads.
#[test]
fn damaged_mp4_files_are_read_or_left_to_ffmpeg_within_bounded_memory() {
    let sources: Vec<Vec<u8>> = ["clip.mp4", "tiny.m4a"]
        .iter()
        .map(|f| std::fs::read(media().dir.join(f)).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.mp4"), dir.path().join("out.m4a"));
    let mut runner = TestRunner::new(config(300));
    let produced = AtomicUsize::new(0);
    let strategy = (0..sources.len(), proptest::collection::vec(damage(), 1..4));
    let result = runner.run(&strategy, |(which, damages)| {
        let mut bytes = sources[which].clone();
        for d in &damages {
            apply(&mut bytes, d);
        }
        std::fs::write(&src, &bytes).unwrap();
        let _ = std::fs::remove_file(&dst);
        let ((_, cut), peak) = peak_during(|| {
            let probe = mp4::probe(&src);
            let cut = mp4::extract_audio(&src, &dst, &mp4::Tags::default());
            (probe, cut)
        });
        let bound = memory_bound(&bytes);
        prop_assert!(
            peak <= bound,
            "held {peak} bytes for a {}-byte file",
            bytes.len()
        );
        match cut {
            Ok(true) => {
                produced.fetch_add(1, Ordering::Relaxed);
                prop_assert!(dst.exists());
                if PROBED.fetch_add(1, Ordering::Relaxed) < probe_at_most() {
                    let read = ffprobe_audio(&dst);
                    prop_assert!(read.is_ok(), "ffprobe: {:?}", read);
                }
            }
            // Left to ffmpeg: nothing half-written stays behind.
            Ok(false) | Err(_) => prop_assert!(!dst.exists()),
        }
        Ok(())
    });
    println!(
        "mp4: {} cases, {} cut in-process",
        runner.config().cases,
        produced.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Where the first `kind` at or after `from` in `bytes` is (a box's type).
fn find(bytes: &[u8], kind: &[u8; 4], from: usize) -> usize {
    from + bytes[from..]
        .windows(4)
        .position(|w| w == kind)
        .unwrap_or_else(|| panic!("no {kind:?} after {from}"))
}

/// Where the AAC decoder configuration (its first byte: the object type)
/// of the first `esds` box in `bytes` is: past the box's version, the
/// ES descriptor's id and flags, and the 13 bytes of the decoder
/// configuration descriptor; each descriptor's length may take 1–4 bytes.
fn aac_config(bytes: &[u8]) -> usize {
    let esds = find(bytes, b"esds", 0);
    let mut at = esds + 4 + 4;
    let descriptor = |at: &mut usize, tag: u8| {
        assert_eq!(bytes[*at], tag, "descriptor {tag} at {at}");
        *at += 1;
        while bytes[*at] & 0x80 != 0 {
            *at += 1;
        }
        *at += 1;
    };
    descriptor(&mut at, 3);
    at += 3;
    descriptor(&mut at, 4);
    at += 13;
    descriptor(&mut at, 5);
    at
}

/// Damage the random run above once let through (it probes a dozen of its
/// files, so each was found late): whenever the cut still writes a file,
/// ffprobe reads it. Every box of both sources renamed to a track or media
/// data, which ffmpeg reads only at the top level or in the movie (a
/// renamed `edts` was copied whole, a track inside the track); a sample
/// description cut short by a 64-bit size, or counting none (mp4parse
/// reads that one); a data reference of no length, or none; a media header of a
/// version no reader knows; an AAC decoder configuration of no object
/// type (mp4parse reads the track, and names no codec). And reading and
/// cutting each holds no more than the random run allows: a tag's value
/// claiming 16 MB was reserved whole.
#[test]
fn damage_once_let_through_stays_in_bounds_and_is_never_cut_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.mp4"), dir.path().join("out.m4a"));
    let mut cut = 0;
    for file in ["clip.mp4", "tiny.m4a"] {
        let source = std::fs::read(media().dir.join(file)).unwrap();
        let list = all_boxes(&source);
        let mut damages: Vec<Damage> = (0..list.len())
            .flat_map(|which| [*b"trak", *b"mdat"].map(|kind| Damage::Rename { which, kind }))
            .collect();
        for (which, b) in list.iter().enumerate() {
            if &b.kind == b"stsd" {
                damages.push(Damage::LargeSize { which, size: 16 });
            }
        }
        // (table, word, value): no descriptions; a first reference of no
        // length; no references; a media header's unknown version.
        damages.extend(
            [
                (b"stsd", 1, 0),
                (b"dref", 2, 0),
                (b"dref", 1, 0),
                (b"mdhd", 0, u32::MAX),
            ]
            .map(|(table, word, value)| Damage::Word { table, word, value }),
        );
        let moov = moov_of(&list).unwrap();
        damages.push(Damage::Byte {
            at: aac_config(&source) - moov.at,
            value: 0,
        });
        // A tag's value claiming 16 MB more than it has (mp4parse reserved
        // it before reading).
        let ilst = find(&source, b"ilst", moov.at);
        damages.push(Damage::Byte {
            at: find(&source, b"data", ilst) - 4 - moov.at,
            value: 1,
        });
        for d in &damages {
            let mut bytes = source.clone();
            apply(&mut bytes, d);
            std::fs::write(&src, &bytes).unwrap();
            let _ = std::fs::remove_file(&dst);
            let ((_, made), peak) = peak_during(|| {
                let probe = mp4::probe(&src);
                (probe, mp4::extract_audio(&src, &dst, &mp4::Tags::default()))
            });
            let bound = memory_bound(&bytes);
            assert!(peak <= bound, "{file}, {d:?}: held {peak} bytes");
            if made.unwrap() {
                cut += 1;
                let read = ffprobe_audio(&dst);
                assert!(read.is_ok(), "{file}, {d:?}: {read:?}");
            }
        }
    }
    // Damage to what the cut does not copy (the video track, the tags)
    // leaves a file it still cuts.
    assert!(cut > 0, "no damage left a file the cut takes");
}

// ---- links: the insert's check and the daemon's rules ----

/// Pieces links are made of, hostile ones among them: schemes in any
/// case, hosts of the platforms and their lookalikes (Cyrillic and Greek
/// letters, fullwidth forms, punycode, a trailing dot, addresses),
/// percent-encoding (of separators, of blanks, broken), Unicode blanks and
/// controls, and text of any length.
fn link_text() -> impl Strategy<Value = String> {
    let scheme = proptest::sample::select(vec![
        "https://",
        "http://",
        "HTTPS://",
        "hTtP://",
        "",
        "//",
        "ftp://",
        "javascript:",
        "https:/",
        "https:",
        "file:///",
        "http://user:pw@",
        "https://@",
    ]);
    let host = proptest::sample::select(vec![
        "www.youtube.com",
        "youtu.be",
        "m.youtube.com",
        "www.tiktok.com",
        "vm.tiktok.com",
        "www.instagram.com",
        "instagr.am",
        "yоutube.com",
        "www.yοutube.com",
        "ｗｗｗ.ｙｏｕｔｕｂｅ.ｃｏｍ",
        "xn--ytube-8ve.com",
        "youtube.com.",
        "tiktok.com.evil.example",
        "evil-tiktok.com",
        "INSTAGRAM.COM",
        "ınstagram.com",
        "127.0.0.1",
        "[::1]",
        "localhost",
        "localhost:8080",
        "example.com:99999",
        "example",
        "",
        "a..b",
        "xn--",
        "\u{200B}youtube.com",
        "youtube\u{00AD}.com",
        "ß.de",
        "例え.テスト",
    ]);
    let path = proptest::sample::select(vec![
        "/watch?v=dQw4w9WgXcQ",
        "/@user/video/7234567890123456789",
        "/reel/Cabc123/",
        "/p/Cx_1/?img_index=3",
        "/",
        "",
        "/%2F%2E%2E",
        "/%00",
        "/%zz",
        "/%E2%80%8B",
        "/a b",
        "/\u{3000}x",
        "?q=1#frag",
        "/shorts/abcdefghijk",
        "/channel/UC123",
        "/%C0%AF",
        "#",
        "/-",
    ]);
    let blank = proptest::sample::select(vec![
        "", "", "", " ", "\t", "\n", "\u{00A0}", "\u{200B}", "\u{FEFF}", "\u{3000}", "\u{2028}",
        "\u{85}", "\u{1}", "\u{7F}", "\u{9F}", "\u{180E}", "\u{2060}",
    ]);
    // Any character but NUL (text in PostgreSQL cannot hold it, so no
    // insert carries one).
    let any_text = prop_oneof![
        2 => Just(String::new()),
        1 => proptest::collection::vec(any::<char>().prop_filter("NUL", |c| *c != '\0'), 1..12)
            .prop_map(|c| c.into_iter().collect::<String>()),
    ];
    let padding = prop_oneof![Just(0usize), Just(0), 0usize..40, 2000usize..2060,];
    let pad_char = proptest::sample::select(vec!['a', 'é', '語', '😀', '%']);
    (
        blank.clone(),
        scheme,
        host,
        path,
        any_text,
        padding,
        pad_char,
        blank,
        any::<bool>(),
    )
        .prop_map(
            |(before, scheme, host, path, text, pad, c, after, leading_dash)| {
                let mut link = format!(
                    "{before}{}{scheme}{host}{path}{text}",
                    if leading_dash { "-" } else { "" }
                );
                link.extend(std::iter::repeat_n(c, pad));
                link.push_str(after);
                link
            },
        )
}

/// Generated links, a batch per case, through the insert's check on one
/// database (one query per batch) and through the daemon's rules: the same
/// verdict in the same words for every link; and for the links the daemon
/// takes, the platform the insert guesses is the one the daemon finds.
#[test]
fn the_insert_and_the_daemon_agree_on_generated_links() {
    use xtract::pipeline::url_rules::{check_shape, parse_job_url, UrlPolicy};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDb::start());
    let client = runtime.block_on(db.client());
    let mut runner = TestRunner::new(config(24));
    let batches = AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(link_text(), 100), |links| {
        batches.fetch_add(1, Ordering::Relaxed);
        let rows = runtime
            .block_on(client.query(
                "SELECT xtract.link_problem(link), xtract.detect_platform(link)
                 FROM unnest($1::text[]) WITH ORDINALITY AS l(link, i) ORDER BY i",
                &[&links],
            ))
            .unwrap();
        let policy = UrlPolicy {
            allow_other: true,
            ..UrlPolicy::default()
        };
        for (link, row) in links.iter().zip(rows) {
            let insert: Option<String> = row.get(0);
            let daemon = check_shape(link, 2048).err().map(|e| e.to_string());
            prop_assert_eq!(&insert, &daemon, "link {:?}", link);
            if let Ok(job) = parse_job_url(link, &policy) {
                let guess: String = row.get(1);
                prop_assert_eq!(guess.as_str(), job.platform.as_str(), "link {:?}", link);
            }
        }
        Ok(())
    });
    println!("links: {} batches of 100", batches.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("{e}");
    }
}
