//! Tiny fake wheels of yt-dlp and deno in a folder pip reads with
//! `--find-links` (PIP_FIND_LINKS, PIP_NO_INDEX): `xtract tools upgrade`
//! is tested against them with no package index. The fake yt-dlp answers
//! `--version` and downloads the link after `--` to the `-o` template,
//! printing what `--print` asks for, as the daemon's call expects; a broken
//! one runs but fails every download. A fake build can also behave per
//! platform ([`Fake`]: a platform's links download a clip, fail as an
//! outdated extractor, or hang), for the daemon's platform health
//! (tests/heal.rs).
//!
//! And real builds ([`real`]): the pinned yt-dlp and everything it needs,
//! repacked from the project's .venv into wheels once (kept in target/),
//! and yt-dlp again under a newer nightly version with extractors patched,
//! for the platform rehearsal (tests/rehearsal.rs, benches/rehearse.rs).

use std::path::Path;
use std::process::Command;

/// Builds the wheels described in `spec` (JSON, see BUILDER) into `dir`.
fn build(dir: &Path, spec: serde_json::Value) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(BUILDER)
        .arg(dir)
        .arg(spec.to_string())
        .output()
        .expect("run python3 to build wheels");
    assert!(
        out.status.success(),
        "building wheels failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fake `yt-dlp` of `version` (a PEP 440 version: `2026.1.2.100000.dev0`
/// prints `2026.01.02.100000` for --version, as yt-dlp's nightlies do).
pub fn ytdlp(dir: &Path, version: &str, broken: bool) {
    fake_ytdlp(
        dir,
        version,
        &Fake {
            broken,
            ..Fake::default()
        },
    );
}

/// How a fake yt-dlp build behaves.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    /// Fails every download, the check's too.
    pub broken: bool,
    /// By platform (`tiktok`, `instagram`, `youtube`): `ok` (downloads a
    /// clip), `outdated` (fails as an extractor that no longer reads the
    /// site) or `hang`. A platform not named: `ok`.
    pub platforms: Vec<(&'static str, &'static str)>,
    /// A file of this many zero bytes in the package (a build too big for
    /// the disk).
    pub padding: usize,
    /// The package holds a file outside its folder: pip refuses to install
    /// it (a build that fails), though it resolves.
    pub escapes: bool,
}

/// A fake `yt-dlp` of `version` that behaves as `fake` says.
pub fn fake_ytdlp(dir: &Path, version: &str, fake: &Fake) {
    use base64::Engine;
    let clip = base64::engine::general_purpose::STANDARD.encode(CLIP);
    let behaviour: serde_json::Map<String, serde_json::Value> = fake
        .platforms
        .iter()
        .map(|(p, b)| (p.to_string(), serde_json::json!(b)))
        .collect();
    let module = YTDLP_MODULE
        .replace("@VERSION@", &printed_version(version))
        .replace("@BROKEN@", if fake.broken { "True" } else { "False" })
        .replace(
            "@PLATFORMS@",
            &serde_json::Value::Object(behaviour).to_string(),
        )
        .replace("@CLIP@", &clip);
    let mut files = serde_json::json!({"yt_dlp/__init__.py": module});
    if fake.escapes {
        files["../../../../escaped.txt"] = serde_json::json!("outside");
    }
    build(
        dir,
        serde_json::json!({
            "name": "yt-dlp",
            "version": version,
            "extras": ["default", "curl-cffi"],
            "files": files,
            "scripts": {"yt-dlp": "yt_dlp:main"},
            "padding": fake.padding,
        }),
    );
}

/// What yt-dlp's `--version` prints for a PEP 440 version.
fn printed_version(version: &str) -> String {
    let base = version.trim_end_matches(".dev0");
    let mut parts: Vec<String> = base.split('.').map(String::from).collect();
    for p in parts.iter_mut().skip(1).take(2) {
        *p = format!("{:0>2}", p);
    }
    parts.join(".")
}

/// The clip a fake build downloads for a platform's link (the check's).
const CLIP: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/ops/tools/check.m4a"
));

/// A fake `deno` whose `deno --version` prints `deno <version>`.
pub fn deno(dir: &Path, version: &str) {
    build(
        dir,
        serde_json::json!({
            "name": "deno",
            "version": version,
            "extras": [],
            "files": {"fake_deno/__init__.py": format!(
                "def main():\n    print('deno {version} (fake)')\n    return 0\n"
            )},
            "scripts": {"deno": "fake_deno:main"},
        }),
    );
}

const YTDLP_MODULE: &str = r#"import base64, json, sys, time, urllib.request

VERSION = "@VERSION@"
BROKEN = @BROKEN@
PLATFORMS = @PLATFORMS@
CLIP = "@CLIP@"
HOSTS = {"tiktok.com": ("tiktok", "TikTok"), "instagram.com": ("instagram", "Instagram"),
         "youtube.com": ("youtube", "Youtube")}


def main():
    args = sys.argv[1:]
    if "--version" in args:
        print(VERSION)
        return 0
    out, url, prints, i = None, None, [], 0
    while i < len(args):
        if args[i] == "--":
            url = args[i + 1]
            break
        if args[i] == "-o":
            out = args[i + 1]
        if args[i] == "--print":
            prints.append(args[i + 1])
        i += 2 if args[i] in ("-o", "--print") else 1
    if BROKEN:
        print("ERROR: [generic] Unable to extract anything: this build is broken", file=sys.stderr)
        return 1
    site = next((v for k, v in HOSTS.items() if k in url.split("/")[2]), None)
    meta = {"id": "check", "title": "check", "extractor_key": "Generic"}
    if site:
        platform, extractor = site
        what = PLATFORMS.get(platform, "ok")
        video = url.rstrip("/").rsplit("/", 1)[-1]
        if what == "outdated":
            print(f"ERROR: [{extractor}] {video}: Unable to extract universal data for rehydration; "
                  "please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out "
                  "the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U",
                  file=sys.stderr)
            return 1
        if what == "hang":
            time.sleep(3600)
        data, ext = base64.b64decode(CLIP), "m4a"
        meta = {"id": video, "title": f"{extractor} {video}", "extractor_key": extractor, "uploader": "fake"}
    else:
        data, ext = urllib.request.urlopen(url).read(), url.rsplit(".", 1)[-1]
    path = out.replace("%(ext)s", ext)
    for p in prints:
        stage, template = p.split(":", 1)
        if stage == "video":
            print(template.split("%(")[0] + json.dumps(meta))
    with open(path, "wb") as f:
        f.write(data)
    for p in prints:
        stage, template = p.split(":", 1)
        if stage == "after_move":
            print(template.split("%(")[0] + path)
    return 0
"#;

/// Writes one wheel: METADATA, WHEEL, entry points and a RECORD with hashes.
const BUILDER: &str = r#"
import base64, hashlib, json, os, sys, zipfile
out, spec = sys.argv[1], json.loads(sys.argv[2])
dist = spec["name"].replace("-", "_")
info = f"{dist}-{spec['version']}.dist-info"
meta = f"Metadata-Version: 2.1\nName: {spec['name']}\nVersion: {spec['version']}\n"
meta += "".join(f"Provides-Extra: {e}\n" for e in spec["extras"])
files = {k: v.encode() for k, v in spec["files"].items()}
if spec.get("padding"):
    files[f"{dist}_padding/zeros.bin"] = bytes(spec["padding"])
files[f"{info}/METADATA"] = meta.encode()
files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: xtract-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
files[f"{info}/entry_points.txt"] = ("[console_scripts]\n" + "".join(
    f"{k} = {v}\n" for k, v in spec["scripts"].items())).encode()
record = []
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{info}/RECORD,,")
files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(os.path.join(out, f"{dist}-{spec['version']}-py3-none-any.whl"), "w",
                     zipfile.ZIP_DEFLATED) as z:
    for path, data in files.items():
        z.writestr(path, data)
"#;

/// Real builds: the pinned yt-dlp and everything `yt-dlp[default,curl-cffi]`
/// needs, as wheels repacked from the project's .venv (no package index
/// needed, kept in target/heal-wheels/ between runs), and yt-dlp again
/// under a newer version with some of its extractors patched: what a
/// nightly that fixes (or breaks) a platform looks like to `pip`.
pub mod real {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    /// certifi as Debian ships it: the system's bundle, which the platform
    /// rehearsal's namespace trusts with its CA (each run has its own CA;
    /// a virtualenv built during the run cannot be bind-mounted ahead).
    const CERTIFI_CORE: &str = r#""""certifi, pointing at the system's bundle (as Debian's python3-certifi)."""


def where() -> str:
    return "/etc/ssl/certs/ca-certificates.crt"


def contents() -> str:
    with open(where(), encoding="ascii") as f:
        return f.read()
"#;

    /// Repacks installed distributions into wheels (see the functions).
    const REPACK: &str = r#"
import base64, csv, hashlib, json, os, re, sys, zipfile
mode, site, out, arg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

def pack(info, version=None, patches=(), replace=None):
    name, old_version = info[:-len(".dist-info")].rsplit("-", 1)
    version = version or old_version
    new_info = f"{name}-{version}.dist-info"
    with open(os.path.join(site, info, "WHEEL")) as f:
        tags = [l.split(":", 1)[1].strip() for l in f if l.startswith("Tag:")]
    files = {}
    with open(os.path.join(site, info, "RECORD")) as f:
        rows = [r for r in csv.reader(f) if r]
    for row in rows:
        path = row[0]
        base = os.path.basename(path)
        if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
            continue  # scripts are made again from entry_points.txt
        if path.startswith(info + "/") and base in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            continue
        with open(os.path.join(site, path), "rb") as f:
            data = f.read()
        if path.startswith(info + "/"):
            path = new_info + path[len(info):]
            if base == "METADATA":
                data = re.sub(rb"(?m)^Version: .*$", b"Version: " + version.encode(), data, count=1)
        for (name_, old, new) in patches:
            if path == name_:
                assert old.encode() in data, f"{name_}: {old!r} is not there"
                data = data.replace(old.encode(), new.encode())
        if replace and path in replace:
            data = replace[path].encode()
        files[path] = data
    whl = os.path.join(out, f"{name}-{version}-{tags[0]}.whl")
    record = []
    with zipfile.ZipFile(whl + ".part", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
            z.writestr(path, data)
        record.append(f"{new_info}/RECORD,,")
        z.writestr(f"{new_info}/RECORD", "\n".join(record) + "\n")
    os.rename(whl + ".part", whl)

os.makedirs(out, exist_ok=True)
infos = sorted(i for i in os.listdir(site) if i.endswith(".dist-info"))
if mode == "base":
    for info in infos:
        if info.split("-")[0].lower() in arg["skip"]:
            continue
        pack(info, replace=arg["replace"])
else:
    info = next(i for i in infos if i.split("-")[0] == arg["dist"])
    pack(info, version=arg["version"], patches=[tuple(p) for p in arg["patches"]])
"#;

    /// The site-packages of the project's .venv (the pinned yt-dlp's).
    pub fn site_packages() -> PathBuf {
        let venv = super::super::tools()
            .ytdlp
            .parent()
            .and_then(Path::parent)
            .expect("yt-dlp in a virtualenv's bin/")
            .to_path_buf();
        let lib = std::fs::read_dir(venv.join("lib"))
            .expect("the virtualenv's lib/")
            .flatten()
            .find(|d| d.file_name().to_string_lossy().starts_with("python"))
            .expect("lib/python3.x");
        lib.path().join("site-packages")
    }

    /// What the cache is keyed by: the installed distributions.
    fn key(extra: &str) -> String {
        let mut names: Vec<String> = std::fs::read_dir(site_packages())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".dist-info"))
            .collect();
        names.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in names.join("\n").bytes().chain(extra.bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Runs the repacker into `target/heal-wheels/<label>-<key>` unless it
    /// is there: made once, by whichever test comes first.
    fn cached(label: &str, mode: &str, arg: serde_json::Value) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/heal-wheels");
        let dir = root.join(format!("{label}-{}", key(&arg.to_string())));
        if dir.is_dir() {
            return dir;
        }
        std::fs::create_dir_all(&root).unwrap();
        let tmp = tempfile::Builder::new()
            .prefix(".making-")
            .tempdir_in(&root)
            .unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(REPACK)
            .arg(mode)
            .arg(site_packages())
            .arg(tmp.path())
            .arg(arg.to_string())
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "repacking wheels: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Another test may have made it meanwhile: theirs is as good.
        let made = tmp.keep();
        if std::fs::rename(&made, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&made);
        }
        dir
    }

    /// The pinned yt-dlp and its dependencies (not pip, setuptools or
    /// deno: see [`deno`]).
    pub fn base() -> &'static Path {
        static BASE: OnceLock<PathBuf> = OnceLock::new();
        BASE.get_or_init(|| {
            cached(
                "base",
                "base",
                serde_json::json!({
                    "skip": ["pip", "setuptools", "deno"],
                    "replace": {"certifi/core.py": CERTIFI_CORE},
                }),
            )
        })
    }

    /// The pinned yt-dlp as `version` (PEP 440, e.g. `2026.10.27.120000.dev0`,
    /// a nightly) with `patches` (file in the wheel, text, replacement)
    /// applied: a folder holding that one wheel.
    pub fn ytdlp(label: &str, version: &str, patches: &[(&str, &str, &str)]) -> PathBuf {
        let printed = version.trim_end_matches(".dev0");
        let mut all: Vec<(String, String, String)> = vec![(
            "yt_dlp/version.py".into(),
            "CHANNEL = 'stable'".into(),
            "CHANNEL = 'nightly'".into(),
        )];
        let pinned = pinned_version();
        for what in ["__version__", "_pkg_version"] {
            all.push((
                "yt_dlp/version.py".into(),
                format!("{what} = '{pinned}'"),
                format!("{what} = '{printed}'"),
            ));
        }
        all.extend(
            patches
                .iter()
                .map(|(f, o, n)| (f.to_string(), o.to_string(), n.to_string())),
        );
        cached(
            label,
            "variant",
            serde_json::json!({"dist": "yt_dlp", "version": version, "patches": all}),
        )
    }

    /// The version of the pinned yt-dlp.
    pub fn pinned_version() -> String {
        std::fs::read_dir(site_packages())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find_map(|n| {
                n.strip_prefix("yt_dlp-")?
                    .strip_suffix(".dist-info")
                    .map(String::from)
            })
            .expect("yt-dlp installed in .venv")
    }

    /// deno as a tiny wheel whose `deno` runs the project's own (the real
    /// one is 100 MB).
    pub fn deno(dir: &Path) {
        let real = super::super::tools()
            .ytdlp
            .with_file_name("deno")
            .display()
            .to_string();
        super::build(
            dir,
            serde_json::json!({
                "name": "deno",
                "version": "2.9.8",
                "extras": [],
                "files": {"deno_shim/__init__.py": format!(
                    "import os, sys\n\ndef main():\n    os.execv({real:?}, [{real:?}] + sys.argv[1:])\n"
                )},
                "scripts": {"deno": "deno_shim:main"},
            }),
        );
    }
}
