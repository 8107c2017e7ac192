//! The processes a job starts find none of the daemon's secrets (issue 22).
//!
//! The daemon runs as an unprivileged user, as its unit runs it (root reads
//! every `/proc` entry whatever a process does), with Supabase storage (the
//! in-process double) and a database whose `xtract_worker` must give its
//! password, so both secrets are ones the daemon really uses. The secrets
//! reach it three ways: an env file (XTRACT_ENV_FILE, read into the
//! environment at start), its environment from the start (as systemd's
//! `EnvironmentFile=` gives them), and systemd credentials
//! (`$CREDENTIALS_DIRECTORY`). Each way, a job runs on yt-dlp's command line
//! and in a child of the warm helper, and `xtract doctor` runs its checks.
//!
//! yt-dlp, ffmpeg and ffprobe are stand-ins that search, then do their job:
//! a Python `yt_dlp` package (so the warm helper imports it and forks its
//! children from it, as with the real one) and wrappers around the real
//! ffmpeg and ffprobe. Each search looks at the process's environment and
//! arguments, its ancestors' `/proc/<pid>/environ`, `cmdline` and memory up
//! to the daemon, the files of the work directory and its own open files,
//! and appends what it found to a report. A first run shows that the search
//! finds a copy planted in each of those places.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::storage_double::{StorageDouble, SECRET_KEY};
use support::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The searcher holds the secrets with each byte XORed with this, so that
/// no process of the stand-in (the warm helper, whose memory its children
/// search) holds a plain copy.
const MASK: u8 = 0x5a;

/// Who may look: `nobody` when the tests run as root (as in CI), the
/// tests' own user otherwise.
fn unprivileged() -> (u32, u32) {
    // SAFETY: getpwnam returns a pointer into static storage or null; it
    // is read at once, before any other passwd call.
    unsafe {
        if libc::geteuid() != 0 {
            return (libc::geteuid(), libc::getegid());
        }
        let pw = libc::getpwnam(c"nobody".as_ptr());
        if pw.is_null() {
            (65534, 65534)
        } else {
            ((*pw).pw_uid, (*pw).pw_gid)
        }
    }
}

/// A Python that an unprivileged user can run: every folder on its way
/// searchable by others (the project's .venv may live under /root).
fn public_python() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let reachable = |p: &Path| {
        p.ancestors().all(|a| {
            a.metadata()
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        })
    };
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .find(|p| reachable(p))
        .expect("no python3 that an unprivileged user can run (apt-get install python3)")
}

/// The search, as a module of the stand-in's Python (`python -m
/// xtract_search WHO [--work DIR] [--connect] ARGS…` or `search(who, args)`).
const SEARCH_PY: &str = r#"
"""Looks for xtract's secrets where a program xtract starts could find them
(tests/secrets.rs), and appends what it found to the report."""
import json
import os
import socket
import sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'search.json')) as f:
    CONFIG = json.load(f)
XOR = bytes(b ^ CONFIG['mask'] for b in range(256))
NEEDLES = [(n['name'], bytes.fromhex(n['masked'])) for n in CONFIG['needles']]
LONGEST = max(len(n) for _, n in NEEDLES)


def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None


def parent_of(pid):
    for line in (read(f'/proc/{pid}/status') or b'').splitlines():
        if line.startswith(b'PPid:'):
            return int(line.split()[1])
    return 0


class Search:
    def __init__(self):
        self.findings = []

    def check(self, where, data):
        if not data:
            return
        masked = data.translate(XOR)
        for name, needle in NEEDLES:
            if needle in masked:
                finding = f'{name} in {where}'
                if finding not in self.findings:
                    self.findings.append(finding)

    def memory(self, pid, comm):
        """Searches the writable memory of `pid`; False when it cannot be read."""
        maps = read(f'/proc/{pid}/maps')
        try:
            mem = open(f'/proc/{pid}/mem', 'rb', buffering=0)
        except OSError:
            return False
        if maps is None:
            return False
        with mem:
            for line in maps.decode(errors='replace').splitlines():
                fields = line.split()
                span, perms = fields[0], fields[1]
                if not perms.startswith('rw') or line.endswith(('[vvar]', '[vsyscall]')):
                    continue
                start, end = (int(x, 16) for x in span.split('-'))
                carry = b''
                while start < end:
                    n = min(end - start, 1 << 20)
                    try:
                        mem.seek(start)
                        chunk = mem.read(n)
                    except (OSError, OverflowError, ValueError):
                        break
                    self.check(f'the memory of {pid} ({comm})', carry + chunk)
                    carry = chunk[-LONGEST:]
                    start += n
        return True


def db_sockets():
    """Inodes of this machine's TCP sockets connected to the database."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in (read(table) or b'').decode().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(':', 1)[1], 16) == CONFIG['db_port']:
                inodes.add(fields[9])
    return inodes


def search(who, args, work=None):
    s = Search()
    for name, value in os.environb.items():
        s.check(f'its environment ({name.decode(errors="replace")})', name + b'=' + value)
    s.check('/proc/self/environ', read('/proc/self/environ'))
    s.check('its arguments', '\0'.join(args).encode(errors='surrogateescape'))
    s.check('/proc/self/cmdline', read('/proc/self/cmdline'))
    ancestors = []
    pid = os.getppid()
    while pid > 1:
        comm = (read(f'/proc/{pid}/comm') or b'?').decode(errors='replace').strip()
        entry = {'pid': pid, 'comm': comm}
        for what in ('environ', 'cmdline'):
            data = read(f'/proc/{pid}/{what}')
            entry[what] = data is not None
            s.check(f'/proc/{pid}/{what} ({comm})', data)
        entry['mem'] = s.memory(pid, comm)
        ancestors.append(entry)
        if comm == 'xtract':
            break
        pid = parent_of(pid)
    files = 0
    for root, _, names in os.walk(work or CONFIG['work']):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                files += 1
                s.check(f'the file {path}', read(path))
    connected = db_sockets()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if any(target.startswith(p) for p in CONFIG['paths']):
            s.findings.append(f'an open file: {target} (fd {fd})')
        if target.startswith('socket:[') and target[8:-1] in connected:
            s.findings.append(f'a connection to the database (fd {fd})')
    record = {'who': who, 'pid': os.getpid(), 'uid': os.getuid(), 'findings': s.findings,
              'ancestors': ancestors, 'files': files}
    with open(CONFIG['report'], 'a') as f:
        f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    who, rest, work = sys.argv[1], sys.argv[2:], None
    if rest[:1] == ['--work']:
        work, rest = rest[1], rest[2:]
    if rest[:1] == ['--connect']:
        # An inherited connection, as a leaked descriptor would be.
        held = socket.create_connection(('127.0.0.1', CONFIG['db_port']))
        rest = rest[1:]
    search(who, rest, work)
"#;

/// The stand-in `yt_dlp` package: what the warm helper (ytdlp_helper.py)
/// uses of the real one, and a `main` that searches and then "downloads"
/// as yt-dlp reports it (`--print` lines on the command line, the
/// helper's post-processor hooks in a warm child).
const YT_DLP_PY: &str = r#"
import json
import os
import shutil
import sys

import xtract_search
from .version import __version__


class YoutubeDL:
    def __init__(self, params=None, *args, **kwargs):
        self.hooks = {}

    def add_progress_hook(self, hook):
        pass

    def add_post_processor(self, pp, when='post_process'):
        self.hooks.setdefault(when, []).append(pp)

    def report(self, when, info):
        for pp in self.hooks.get(when, []):
            pp.run(info)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    url = argv[argv.index('--') + 1] if '--' in argv else ''
    if argv == ['--version']:
        who = 'version'
    elif os.path.basename(sys.argv[0]) == 'ytdlp_helper.py':
        who = 'warm-up' if url.endswith('/warm-up.mp4') else 'warm'
    else:
        who = 'cli'
    xtract_search.search(who, argv)
    if who == 'version':
        print(__version__)
        sys.exit(0)
    if who == 'warm-up':
        sys.exit(0)
    path = argv[argv.index('-o') + 1].replace('%(ext)s', 'm4a')
    info = {'id': 'secrets', 'title': 'Stand-in', 'duration': 1.0, 'uploader': 'someone',
            'extractor_key': 'StandIn', 'thumbnail': None}
    prints = [argv[i + 1] for i, a in enumerate(argv) if a == '--print']
    ydl = YoutubeDL()  # in a warm child: the helper's reporting subclass
    for p in prints:
        if p.startswith('video:'):
            print(p[len('video:'):].split('%(')[0] + json.dumps(info))
    ydl.report('video', info)
    shutil.copyfile(xtract_search.CONFIG['media'], path)
    for p in prints:
        if p.startswith('after_move:'):
            print(p[len('after_move:'):].split('%(')[0] + path)
    ydl.report('after_move', dict(info, filepath=path))
    sys.exit(0)
"#;

/// What a search reported.
#[derive(Debug, serde::Deserialize)]
struct Record {
    who: String,
    uid: u32,
    findings: Vec<String>,
    ancestors: Vec<Ancestor>,
    files: usize,
}

#[derive(Debug, serde::Deserialize)]
struct Ancestor {
    comm: String,
    environ: bool,
    mem: bool,
}

/// The searching stand-ins, and where the daemon's secrets are kept for it.
struct Searcher {
    root: tempfile::TempDir,
    python: PathBuf,
    ytdlp: PathBuf,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    /// The daemon's XTRACT_WORK_DIR, searched by every stand-in.
    work: PathBuf,
    report: PathBuf,
    env_file: PathBuf,
    credentials: PathBuf,
}

impl Searcher {
    fn new(secrets: &[(&str, &str)], db_port: u16, user: (u32, u32)) -> Searcher {
        let root = tempfile::Builder::new()
            .prefix("xtract-secrets-")
            .tempdir()
            .unwrap();
        let at = |p: &str| root.path().join(p);
        let venv = at("py");
        let made = std::process::Command::new(public_python())
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv");
        let python = venv.join("bin/python3");
        let purelib = std::process::Command::new(&python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ])
            .output()
            .unwrap();
        let site = PathBuf::from(String::from_utf8(purelib.stdout).unwrap().trim());
        let package = site.join("yt_dlp");
        std::fs::create_dir_all(package.join("postprocessor")).unwrap();
        std::fs::write(site.join("xtract_search.py"), SEARCH_PY).unwrap();
        std::fs::write(package.join("__init__.py"), YT_DLP_PY).unwrap();
        std::fs::write(package.join("version.py"), "__version__ = '2026.01.01'\n").unwrap();
        std::fs::write(package.join("postprocessor/__init__.py"), "").unwrap();
        std::fs::write(
            package.join("postprocessor/common.py"),
            "class PostProcessor:\n    def __init__(self, downloader=None):\n        self._downloader = downloader\n",
        )
        .unwrap();
        let executable = |name: &str, text: String| {
            use std::os::unix::fs::PermissionsExt;
            let path = at(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let ytdlp = executable(
            "yt-dlp",
            format!("#!{}\nfrom yt_dlp import main\nmain()\n", python.display()),
        );
        let wrapper = |name: &str, real: &Path| {
            executable(
                name,
                format!(
                    "#!/bin/sh\n{py} -m xtract_search {name} \"$@\" || exit 90\nexec {real} \"$@\"\n",
                    py = python.display(),
                    real = real.display()
                ),
            )
        };
        let ffmpeg = wrapper("ffmpeg", &tools().ffmpeg);
        let ffprobe = wrapper("ffprobe", &tools().ffprobe);
        std::fs::copy(media().dir.join("tiny.m4a"), at("tiny.m4a")).unwrap();
        let work = at("work");
        let credentials = at("credentials");
        let env_file = at("xtract.env");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&credentials).unwrap();
        let report = at("report.jsonl");
        std::fs::write(&report, "").unwrap();
        let needles: Vec<serde_json::Value> = secrets
            .iter()
            .map(|(name, value)| {
                let masked: String = value.bytes().map(|b| format!("{:02x}", b ^ MASK)).collect();
                serde_json::json!({"name": name, "masked": masked})
            })
            .collect();
        let config = serde_json::json!({
            "mask": MASK,
            "needles": needles,
            "work": work,
            "report": report,
            "media": at("tiny.m4a"),
            "paths": [credentials.display().to_string(), env_file.display().to_string()],
            "db_port": db_port,
        });
        std::fs::write(site.join("search.json"), config.to_string()).unwrap();
        // Everything is the unprivileged user's, as /var/lib/xtract and
        // the credentials are the service user's.
        let chown = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.0, user.1))
            .arg(root.path())
            .status()
            .unwrap();
        assert!(chown.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Searcher {
            root,
            python,
            ytdlp,
            ffmpeg,
            ffprobe,
            work,
            report,
            env_file,
            credentials,
        }
    }

    /// What the searches reported since the last call.
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(&self.report).unwrap();
        std::fs::write(&self.report, "").unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Writes a file only `user` may read, as the service's secrets are.
    fn secret_file(&self, path: &Path, text: &str, user: (u32, u32)) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::chown(path, Some(user.0), Some(user.1)).unwrap();
    }
}

/// The search finds a copy of the secrets planted in each place it looks:
/// a child's environment and arguments, a parent's environment, command
/// line and memory, a file of the work directory, an open file and an
/// open connection to the database.
fn the_search_finds_what_is_planted(s: &Searcher, user: (u32, u32), key: &str, password: &str) {
    let planted = s.root.path().join("planted");
    std::fs::create_dir_all(planted.join("job")).unwrap();
    std::fs::write(planted.join("job/leak"), format!("apikey: {key}\n")).unwrap();
    std::fs::write(&s.env_file, "").unwrap();
    std::os::unix::fs::chown(&s.env_file, Some(user.0), Some(user.1)).unwrap();
    // sh holds the password in its environment and the key on its command
    // line; it hands the key to the searcher's environment, the password
    // to its arguments, and the env file as descriptor 3.
    let script = format!(
        "exec 3<\"$3\"; env -u PLANTED KEY=\"$1\" {py} -m xtract_search sanity --work {work} --connect \"$2\"; exit $?",
        py = s.python.display(),
        work = planted.display()
    );
    use std::os::unix::process::CommandExt;
    let status = std::process::Command::new("/bin/sh")
        .args(["-c", &script, "sh", key, password])
        .arg(&s.env_file)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PLANTED", password)
        .uid(user.0)
        .gid(user.1)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let records = s.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let found = records[0].findings.join("\n");
    let mut expected = vec![
        "the Storage key in its environment (KEY)",
        "the database password in its arguments",
        "environ (sh)",
        "cmdline (sh)",
        "in the file",
        "an open file:",
        "a connection to the database",
    ];
    // Reading a parent's memory also needs ptrace, which Yama may keep to
    // descendants whatever the daemon does.
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    if matches!(yama.trim(), "" | "0") {
        expected.push("the database password in the memory of");
    }
    for what in expected {
        assert!(found.contains(what), "missed: {what}\nfound:\n{found}");
    }
    std::fs::remove_dir_all(planted).unwrap();
}

/// How the daemon is given its secrets.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// XTRACT_ENV_FILE: read into its environment at start.
    EnvFile,
    /// In its environment from the start (systemd's EnvironmentFile=).
    Environment,
    /// systemd's LoadCredential=: files in $CREDENTIALS_DIRECTORY.
    Credentials,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processes_a_job_starts_find_none_of_the_daemons_secrets() {
    let user = unprivileged();
    let db = TestDb::start().await;
    let owner = db.client().await;
    // The worker role must give its password, which the server checks.
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    owner
        .batch_execute(&format!("ALTER ROLE xtract_worker PASSWORD '{password}'"))
        .await
        .unwrap();
    let hba: String = owner.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all xtract_worker 127.0.0.1/32 scram-sha-256\nhost all xtract_worker ::1/128 scram-sha-256\n{rules}"),
    )
    .unwrap();
    owner.execute("SELECT pg_reload_conf()", &[]).await.unwrap();
    eventually("the server to ask for the password", SECS(10), || async {
        tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let with_password = db
        .url
        .replace("xtract_worker@", &format!("xtract_worker:{password}@"));

    let storage = StorageDouble::start(false, None).await;
    let key = SECRET_KEY;
    let searcher = Searcher::new(
        &[
            ("the Storage key", key),
            ("the database password", &password),
        ],
        db.pg.port(),
        user,
    );
    the_search_finds_what_is_planted(&searcher, user, key, &password);

    for way in [Way::EnvFile, Way::Environment, Way::Credentials] {
        let mut env = vec![
            ("XTRACT_STORAGE".to_string(), "supabase".to_string()),
            ("SUPABASE_URL".into(), storage.url.clone()),
            (
                "XTRACT_WORK_DIR".into(),
                searcher.work.display().to_string(),
            ),
            (
                "XTRACT_FFMPEG".into(),
                searcher.ffmpeg.display().to_string(),
            ),
            (
                "XTRACT_FFPROBE".into(),
                searcher.ffprobe.display().to_string(),
            ),
            // Through ffmpeg (an AAC source into m4a is cut in-process).
            ("XTRACT_AUDIO_FORMAT".into(), "mp3".into()),
            // Every job downloads: none reuses the audio of the one before.
            ("XTRACT_DEDUP".into(), "false".into()),
        ];
        let url = match way {
            Way::EnvFile => {
                searcher.secret_file(
                    &searcher.env_file,
                    &format!("DATABASE_URL={with_password}\nSUPABASE_SERVICE_ROLE_KEY={key}\n"),
                    user,
                );
                env.push((
                    "XTRACT_ENV_FILE".into(),
                    searcher.env_file.display().to_string(),
                ));
                String::new()
            }
            Way::Environment => {
                env.push(("SUPABASE_SERVICE_ROLE_KEY".into(), key.into()));
                with_password.clone()
            }
            Way::Credentials => {
                let dir = &searcher.credentials;
                searcher.secret_file(&dir.join("supabase-service-key"), key, user);
                searcher.secret_file(&dir.join("database-password"), &password, user);
                env.push(("CREDENTIALS_DIRECTORY".into(), dir.display().to_string()));
                // The URL without its password, as the env file then has it.
                db.url.clone()
            }
        };
        for warm in [false, true] {
            let what = format!("{way:?}, {}", if warm { "warm" } else { "command line" });
            let id = db.enqueue(&owner, "http://127.0.0.1:9/ok/secrets").await;
            let mut options = DaemonOptions::new(&searcher.ytdlp);
            options.user = Some(user);
            options.extra_env = env.clone();
            options
                .extra_env
                .push(("XTRACT_WARM_YTDLP".into(), warm.to_string()));
            let mut daemon = Daemon::spawn(&url, &options, &["run", "--exit-when-idle"]);
            let exit = daemon.wait_exit(SECS(120)).await;
            let row = job(&owner, id).await;
            assert!(exit.success(), "{what}: {row}\n{}", daemon.log_text());
            assert_eq!(row["status"], "completed", "{what}: {row}");
            // The key was the one Storage took.
            assert!(storage
                .object(&format!("audio-files/{USER}/{id}.mp3"))
                .is_some());

            let records = searcher.records();
            let mut who: Vec<&str> = records.iter().map(|r| r.who.as_str()).collect();
            who.sort();
            // (An MP4 is probed in-process: ffprobe's turn is the doctor's.)
            let expected = if warm {
                ["ffmpeg", "warm", "warm-up"].as_slice()
            } else {
                ["cli", "ffmpeg"].as_slice()
            };
            assert_eq!(who, expected, "{what}: {records:?}");
            for r in &records {
                assert_eq!(r.uid, user.0, "{what}: {r:?}");
                assert!(
                    r.findings.is_empty(),
                    "{what}: {} found {:?}",
                    r.who,
                    r.findings
                );
                // It looked at the daemon, and could not read it.
                let daemon = r.ancestors.last().expect("ancestors");
                assert_eq!(daemon.comm, "xtract", "{what}: {r:?}");
                assert!(!daemon.environ && !daemon.mem, "{what}: {r:?}");
            }
            // The job's own folder was there to search.
            assert!(
                records.iter().any(|r| r.who != "warm-up" && r.files > 0),
                "{what}: {records:?}"
            );
        }
        if let Way::Environment = way {
            // The doctor runs yt-dlp --version, ffmpeg and ffprobe, and
            // starts a warm helper, with the secrets in its environment.
            let mut options = DaemonOptions::new(&searcher.ytdlp);
            options.user = Some(user);
            options.extra_env = env.clone();
            let ran = xtract(&url, &options, &["doctor"]).await;
            assert!(
                ran.lines_starting("ok    database").len() == 1
                    && ran.lines_starting("ok    storage").len() == 1,
                "{ran}"
            );
            let records = searcher.records();
            let mut who: Vec<&str> = records.iter().map(|r| r.who.as_str()).collect();
            who.sort();
            assert_eq!(who, ["ffmpeg", "ffprobe", "version", "warm-up"], "{ran}");
            for r in &records {
                assert!(
                    r.findings.is_empty(),
                    "doctor: {} found {:?}",
                    r.who,
                    r.findings
                );
                assert!(!r.ancestors.last().unwrap().environ, "{r:?}");
            }
        }
    }
}
