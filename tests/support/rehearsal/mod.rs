//! The platform rehearsal: local stand-ins of TikTok, Instagram and YouTube
//! that the real, pinned yt-dlp talks to as if they were the real sites, so
//! that its real extractors (not `generic`) run in tests.
//!
//! How the names reach us: the stand-ins listen on a loopback address of
//! their own (127.42.x.y, port 443), and every process that should see them
//! runs in a private mount namespace (`unshare --mount`, as root) where
//! `/etc/hosts` is a bind-mounted copy mapping the platforms' names to that
//! address. Nothing outside the namespace changes. A CA made for this run
//! signs one certificate for every name; inside the namespace the system
//! bundle (what curl_cffi reads) and certifi's (what yt-dlp's other request
//! handlers read) are bind-mounted copies with that CA appended. The daemon
//! itself has no setting for any of it: it runs as in production.
//!
//! The responses are shaped from yt-dlp's own extractor source at the
//! pinned version (`yt_dlp/extractor/tiktok.py`, `instagram.py`,
//! `youtube/_video.py`); each module says which extractor path each
//! response exercises. What a video does is chosen per video id
//! ([`Behaviour`]); every request is recorded ([`Seen`]) with what a bot
//! detector reads, so tests check the platform's view, not only xtract's
//! rows.

#![allow(dead_code)]

pub mod egress;
pub mod heal;
mod instagram;
pub mod media;
pub mod rig;
pub mod scenarios;
mod server;
pub mod tiktok;
mod youtube;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

pub use media::Media;

/// Every name the stand-ins answer for: the sites and the hosts their
/// responses point at.
pub const HOSTS: &[&str] = &[
    "www.tiktok.com",
    "tiktok.com",
    tiktok::MEDIA_HOST,
    tiktok::MUSIC_HOST,
    tiktok::IMAGE_HOST,
    "www.instagram.com",
    "instagram.com",
    "i.instagram.com",
    instagram::MEDIA_HOST,
    "www.youtube.com",
    "youtube.com",
    "m.youtube.com",
    youtube::MEDIA_HOST,
    youtube::IMAGE_HOST,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    TikTok,
    Instagram,
    YouTube,
}

impl Site {
    pub const ALL: [Site; 3] = [Site::TikTok, Site::Instagram, Site::YouTube];

    pub fn name(self) -> &'static str {
        match self {
            Site::TikTok => "tiktok",
            Site::Instagram => "instagram",
            Site::YouTube => "youtube",
        }
    }

    /// Which site a request's host belongs to.
    fn of_host(host: &str) -> Option<Site> {
        if host.contains("tiktok") {
            Some(Site::TikTok)
        } else if host.contains("instagram") {
            Some(Site::Instagram)
        } else if host.contains("youtube") || host.contains("googlevideo") || host == "i.ytimg.com"
        {
            Some(Site::YouTube)
        } else {
            None
        }
    }
}

/// What a video does when yt-dlp asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The page (or API) answers with the video; its media downloads.
    Ok,
    /// As Ok, with a separate sound (TikTok's `music.playUrl`) whose audio
    /// differs from the video's own track.
    OkWithSound,
    /// Every request about the video answers HTTP 429.
    TooManyRequests,
    /// HTTP 429 for the first `n` requests about the video, then as Ok.
    TooManyRequestsFirst(u32),
    /// HTTP 429 to requests from this egress (by client address), Ok to
    /// the others.
    TooManyRequestsFrom(Ipv4Addr),
    /// The login wall: TikTok and Instagram redirect to their login page.
    LoginWall,
    /// As LoginWall for the first `n` requests about the video, then Ok.
    LoginWallFirst(u32),
    /// Instagram's empty media response to a logged-out request.
    EmptyMedia,
    /// Only a request carrying the platform's session cookie gets the
    /// video; others meet the login wall.
    NeedsCookie,
    /// Instagram's post API answers an error (a retired GraphQL doc id);
    /// the post page carries the post (yt-dlp's fallback path).
    FallbackPage,
    /// Only a phone (an iPhone's User-Agent) gets formats; a desktop gets
    /// the page without them.
    PhoneOnly,
    Private,
    Removed,
    IpBlocked,
    /// YouTube's "Sign in to confirm you're not a bot".
    BotCheck,
    AgeRestricted,
    MembersOnly,
    /// The page no longer holds the data where the extractor looks for it
    /// (a redesign; TikTok moves it under a new script id, which a patched
    /// extractor can read: tiktok.rs).
    Changed,
    /// The media trickles out (about 30 KB/s).
    SlowMedia,
    /// The media answers its headers, sends a little, then nothing.
    HangMedia,
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the request arrived (after the TLS handshake).
    pub at: Instant,
    /// When its connection was accepted: the first the platform sees of
    /// a request (curl_cffi opens a connection per request).
    pub connected: Instant,
    pub wall: SystemTime,
    pub site: Option<Site>,
    /// The client's address: 127.0.0.1 for this machine's own, an egress
    /// proxy's source address otherwise.
    pub client: IpAddr,
    pub method: String,
    pub host: String,
    pub path: String,
    pub user_agent: String,
    /// Headers bot detectors read (client hints, Accept-Language, Referer,
    /// the app id headers), lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Names of the cookies the request carried.
    pub cookies: Vec<String>,
    /// The video the request was about, when the stand-in could tell.
    pub video: Option<String>,
    /// Which response it got, in the stand-in's words (the extractor path).
    pub answer: String,
    pub status: u16,
    /// The TCP connection that carried it: a yt-dlp process keeps its
    /// connection to a host, so a request that names no video (Instagram's
    /// session set-up) belongs to the video its connection asked for.
    pub conn: u64,
    /// The stand-in's session cookie the request carried (or was given):
    /// one yt-dlp run keeps one, so a request that names no video
    /// (Instagram's session set-up) belongs to the video its session asked
    /// for.
    pub session: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    behaviours: HashMap<String, Behaviour>,
    /// Requests about each video so far.
    counts: HashMap<String, u32>,
    redesigned: std::collections::HashSet<Site>,
    seen: Vec<Seen>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    media: Media,
}

impl Shared {
    /// The first request of an attempt about `video` (TikTok's page,
    /// Instagram's API check, YouTube's watch page): counts the attempt and
    /// says what the video does on it.
    fn begin(&self, video: &str) -> (Behaviour, u32) {
        let mut s = self.state.lock().unwrap();
        let n = s.counts.entry(video.to_string()).or_default();
        *n += 1;
        let n = *n;
        (s.behaviours.get(video).copied().unwrap_or(Behaviour::Ok), n)
    }

    /// A later request of the same attempt: the behaviour and the attempt's
    /// number, without counting.
    fn current(&self, video: &str) -> (Behaviour, u32) {
        let s = self.state.lock().unwrap();
        (
            s.behaviours.get(video).copied().unwrap_or(Behaviour::Ok),
            s.counts.get(video).copied().unwrap_or(0),
        )
    }

    /// Whether `site` shipped a redesign (site-wide: see [`Rehearsal::redesign`]).
    fn redesigned(&self, site: Site) -> bool {
        self.state.lock().unwrap().redesigned.contains(&site)
    }

    fn record(&self, seen: Seen) {
        self.state.lock().unwrap().seen.push(seen);
    }
}

/// One set of stand-ins for the three platforms, with what it takes to
/// reach them as the real sites.
pub struct Rehearsal {
    /// The loopback address every platform name maps to.
    pub addr: Ipv4Addr,
    shared: Arc<Shared>,
    files: TempDir,
    next_id: AtomicU64,
}

/// The files a namespace needs.
const HOSTS_FILE: &str = "hosts";
const SYSTEM_BUNDLE: &str = "ca-certificates.crt";
const CERTIFI_BUNDLE: &str = "certifi.pem";
const SYSTEM_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

impl Rehearsal {
    /// The stand-ins of this test binary, started once and shared by its
    /// tests (each test uses video ids of its own).
    pub fn shared() -> &'static Rehearsal {
        static ONE: OnceLock<Rehearsal> = OnceLock::new();
        ONE.get_or_init(Rehearsal::start)
    }

    /// A set of stand-ins of the caller's own (for site-wide changes).
    pub fn start() -> Rehearsal {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the platform rehearsal runs as root: it needs a private mount namespace \
             (unshare --mount) and port 443"
        );
        let files = tempfile::Builder::new()
            .prefix("xtract-rehearsal-")
            .tempdir()
            .expect("temp dir");
        let tls = make_certificates(files.path());
        let media = Media::make();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            media,
        });
        // A loopback address of our own, so that a second rehearsal (the
        // script beside the tests) can run at the same time.
        let (listener, addr) = (0..200)
            .find_map(|_| {
                let pick = Ipv4Addr::new(
                    127,
                    42,
                    rand::random::<u8>().max(1),
                    rand::random::<u8>().clamp(2, 254),
                );
                std::net::TcpListener::bind((pick, 443))
                    .ok()
                    .map(|l| (l, pick))
            })
            .expect("a free loopback address with port 443");
        listener.set_nonblocking(true).unwrap();
        let serving = shared.clone();
        std::thread::Builder::new()
            .name("rehearsal".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(server::serve(listener, tls, serving));
            })
            .expect("rehearsal thread");
        write_namespace_files(files.path(), addr);
        Rehearsal {
            addr,
            shared,
            files,
            next_id: AtomicU64::new(1),
        }
    }

    /// A new video of `site` that behaves as `behaviour`: its link as a
    /// user would paste it, and its id.
    pub fn video(&self, site: Site, behaviour: Behaviour) -> (String, String) {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        // Unique across runs too: the address differs, and so does the pid.
        let seed = (u64::from(self.addr.octets()[2]) << 24
            | u64::from(self.addr.octets()[3]) << 16)
            ^ (u64::from(std::process::id()) << 32)
            ^ n;
        let (id, url) = match site {
            Site::TikTok => {
                let id = format!("7{:018}", seed % 1_000_000_000_000_000_000);
                let url = format!("https://www.tiktok.com/@rehearsal/video/{id}");
                (id, url)
            }
            Site::Instagram => {
                let id = code(seed, 11);
                (id.clone(), format!("https://www.instagram.com/reel/{id}/"))
            }
            Site::YouTube => {
                let id = code(seed, 11);
                (id.clone(), format!("https://www.youtube.com/watch?v={id}"))
            }
        };
        self.shared
            .state
            .lock()
            .unwrap()
            .behaviours
            .insert(id.clone(), behaviour);
        (url, id)
    }

    /// Changes what `video` does from now on.
    pub fn set(&self, video: &str, behaviour: Behaviour) {
        self.shared
            .state
            .lock()
            .unwrap()
            .behaviours
            .insert(video.to_string(), behaviour);
    }

    /// `site` ships a redesign that breaks every page at once (Instagram's
    /// session set-up loses its LSD token; TikTok's data moves under a new
    /// script id), or takes it back. Site-wide:
    /// use a rehearsal of the test's own ([`Rehearsal::start`]), not the
    /// shared one.
    pub fn redesign(&self, site: Site, on: bool) {
        let mut s = self.shared.state.lock().unwrap();
        if on {
            s.redesigned.insert(site);
        } else {
            s.redesigned.remove(&site);
        }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// The requests about `video`: those that name it, and those of a
    /// yt-dlp run (its session cookie) that did.
    pub fn seen_for(&self, video: &str) -> Vec<Seen> {
        let seen = self.seen();
        let sessions: std::collections::HashSet<String> = seen
            .iter()
            .filter(|s| s.video.as_deref() == Some(video))
            .map(|s| s.session.clone())
            .collect();
        seen.into_iter()
            .filter(|s| {
                s.video.as_deref() == Some(video)
                    || (s.video.is_none() && sessions.contains(&s.session))
            })
            .collect()
    }

    /// The generated media the stand-ins serve.
    pub fn media(&self) -> &Media {
        &self.shared.media
    }

    /// The program and arguments that run a command in a namespace where
    /// the platforms' names lead here and the run's CA is trusted: put
    /// them before the program.
    pub fn wrapper(&self) -> Vec<String> {
        let file = |f: &str| self.files.path().join(f).display().to_string();
        let certifi = certifi_bundle();
        vec![
            "unshare".into(),
            "--mount".into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            // Bind-mount the copies over the originals, then become the
            // program (same pid: the caller's handle stays its process).
            concat!(
                "mount --bind \"$1\" /etc/hosts && ",
                "mount --bind \"$2\" \"$3\" && ",
                "mount --bind \"$4\" \"$5\" && ",
                "shift 5 && exec \"$@\""
            )
            .into(),
            "rehearsal".into(),
            file(HOSTS_FILE),
            file(SYSTEM_BUNDLE),
            SYSTEM_BUNDLE_PATH.into(),
            file(CERTIFI_BUNDLE),
            certifi.display().to_string(),
        ]
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let w = self.wrapper();
        let mut cmd = Command::new(&w[0]);
        cmd.args(&w[1..]).arg(program);
        cmd
    }

    /// The address a proxy should connect to for any platform name.
    pub fn upstream(&self) -> SocketAddr {
        SocketAddr::from((self.addr, 443))
    }
}

/// An id of `len` characters from Instagram's and YouTube's alphabet.
fn code(mut seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Never a leading 'A': it is a zero digit, which Instagram's shortcode
    // → media id → shortcode round trip would drop.
    (0..len)
        .map(|i| {
            let k = (seed.rotate_left(i as u32 * 6) ^ (i as u64 * 7919)) % 64;
            ALPHABET[if i == 0 { k.max(1) } else { k } as usize] as char
        })
        .collect()
}

/// The certificate and key the stand-ins serve (PEM), signed by a CA made
/// for this run (`ca.pem`, appended to the bundles of the namespace).
pub(crate) struct Tls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/ensure-deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certificates(dir: &Path) -> Tls {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=xtract rehearsal CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        dir,
    );
    let names: Vec<String> = HOSTS.iter().map(|h| format!("DNS:{h}")).collect();
    std::fs::write(
        dir.join("leaf.ext"),
        format!(
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid\n\
             subjectAltName={}\n",
            names.join(",")
        ),
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=www.tiktok.com",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
        dir,
    );
    Tls {
        cert: std::fs::read(dir.join("leaf.pem")).unwrap(),
        key: std::fs::read(dir.join("leaf.key")).unwrap(),
    }
}

/// certifi's bundle in the Python that runs the pinned yt-dlp.
fn certifi_bundle() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let ytdlp = &super::tools().ytdlp;
        let python = xtract::pipeline::warm::interpreter_of(ytdlp)
            .map(|p| p[0].clone())
            .unwrap_or_else(|| "python3".into());
        let out = Command::new(&python)
            .args(["-c", "import certifi; print(certifi.where())"])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "certifi beside yt-dlp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn write_namespace_files(dir: &Path, addr: Ipv4Addr) {
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts.push_str("\n# xtract platform rehearsal\n");
    for h in HOSTS {
        hosts.push_str(&format!("{addr} {h}\n"));
    }
    std::fs::write(dir.join(HOSTS_FILE), hosts).unwrap();
    for (from, to) in [
        (PathBuf::from(SYSTEM_BUNDLE_PATH), SYSTEM_BUNDLE),
        (certifi_bundle(), CERTIFI_BUNDLE),
    ] {
        let mut bundle =
            std::fs::read_to_string(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        bundle.push('\n');
        bundle.push_str(&ca);
        std::fs::write(dir.join(to), bundle).unwrap();
    }
    // Readable by whoever the namespace's programs run as.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// How long a hanging download hangs before the stand-in lets go (longer
/// than any test waits for it).
pub const HANG: Duration = Duration::from_secs(600);
