//! Tiny fake wheels of yt-dlp and deno in a folder pip reads with
//! `--find-links` (PIP_FIND_LINKS, PIP_NO_INDEX): `xtract tools upgrade`
//! is tested against them with no package index. The fake yt-dlp answers
//! `--version` and downloads the link after `--` to the `-o` template,
//! printing what `--print` asks for, as the daemon's call expects; a broken
//! one runs but fails every download.

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
    let printed = {
        let base = version.trim_end_matches(".dev0");
        let mut parts: Vec<String> = base.split('.').map(String::from).collect();
        for p in parts.iter_mut().skip(1).take(2) {
            *p = format!("{:0>2}", p);
        }
        parts.join(".")
    };
    let module = YTDLP_MODULE
        .replace("@VERSION@", &printed)
        .replace("@BROKEN@", if broken { "True" } else { "False" });
    build(
        dir,
        serde_json::json!({
            "name": "yt-dlp",
            "version": version,
            "extras": ["default", "curl-cffi"],
            "files": {"yt_dlp/__init__.py": module},
            "scripts": {"yt-dlp": "yt_dlp:main"},
        }),
    );
}

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

const YTDLP_MODULE: &str = r#"import json, sys, urllib.request

VERSION = "@VERSION@"
BROKEN = @BROKEN@


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
    data = urllib.request.urlopen(url).read()
    path = out.replace("%(ext)s", url.rsplit(".", 1)[-1])
    for p in prints:
        stage, template = p.split(":", 1)
        if stage == "video":
            print(template.split("%(")[0] + json.dumps({"id": "check", "title": "check"}))
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
files = dict(spec["files"])
files[f"{info}/METADATA"] = meta
files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: xtract-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
files[f"{info}/entry_points.txt"] = "[console_scripts]\n" + "".join(
    f"{k} = {v}\n" for k, v in spec["scripts"].items())
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{info}/RECORD,,")
files[f"{info}/RECORD"] = "\n".join(record) + "\n"
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(os.path.join(out, f"{dist}-{spec['version']}-py3-none-any.whl"), "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
"#;
