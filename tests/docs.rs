//! The references the docs carry cannot drift from the code: the pages
//! generated from it (`xtract docs config|errors|cli`) are the files in
//! docs/, `.env.example` names every setting and nothing else, every
//! setting is read somewhere and everything read is a setting, and the
//! dashboard's advice is the domain's. `UPDATE_DOCS=1 cargo test --test docs`
//! rewrites the generated pages.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;
use xtract::ops::reference::{NOT_SETTINGS, SETTINGS};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated(page: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtract"))
        .args(["docs", page])
        .env_clear()
        .output()
        .expect("xtract docs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_reference_pages_are_what_the_code_generates() {
    let mut stale = Vec::new();
    for (page, file) in [
        ("config", "docs/configuration.md"),
        ("errors", "docs/errors.md"),
        ("cli", "docs/cli.md"),
    ] {
        let want = generated(page);
        let path = root().join(file);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(format!(
                "{file} is not what the code says: run `xtract docs {page} > {file}` (or UPDATE_DOCS=1 cargo test --test docs)"
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

/// Names a line of `.env.example` sets or shows (`NAME=…`, `# NAME=…`).
fn env_example_names() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('#').trim();
            let (name, _) = l.split_once('=')?;
            (name.len() > 2
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn env_example_names_every_setting_and_nothing_else() {
    let names = env_example_names();
    let missing: Vec<&str> = SETTINGS
        .iter()
        .map(|s| s.name)
        .filter(|n| !names.iter().any(|m| m == n))
        .collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !SETTINGS.iter().any(|s| s.name == n.as_str()))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        ".env.example lacks {missing:?} and names {unknown:?}, which no module reads: \
         give each setting of src/ops/reference.rs a line (`NAME=default` or `# NAME=example`)"
    );
}

/// String literals that look like environment variables, in the code
/// that runs (not its unit tests).
fn names_read_by_the_source() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("ops/reference.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            // Quotes that do not open or close a string (escaped, or a
            // char literal) would put the pieces out of step.
            let code = code.replace("\\\"", "").replace("'\"'", "");
            for piece in code.split('"').skip(1).step_by(2) {
                let looks = (piece.starts_with("XTRACT_")
                    || piece.starts_with("SUPABASE_")
                    || piece == "DATABASE_URL"
                    || piece == "RUST_LOG"
                    || piece == "CREDENTIALS_DIRECTORY")
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if looks {
                    out.push((piece.to_string(), path.clone()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("src"), &mut out);
    out
}

#[test]
fn every_setting_is_read_by_a_module_and_everything_read_is_a_setting() {
    let read = names_read_by_the_source();
    let unlisted: Vec<String> = read
        .iter()
        .filter(|(n, _)| {
            !SETTINGS.iter().any(|s| s.name == n) && !NOT_SETTINGS.iter().any(|(m, _)| m == n)
        })
        .map(|(n, p)| format!("{n} ({})", p.display()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "read by the code but not in src/ops/reference.rs SETTINGS: {unlisted:?}; \
         add each, then `xtract docs config > docs/configuration.md` and a line in .env.example"
    );
    let unread: Vec<&str> = SETTINGS
        .iter()
        .map(|s| s.name)
        .filter(|n| !read.iter().any(|(m, _)| m == n))
        .collect();
    assert!(
        unread.is_empty(),
        "in SETTINGS but read by no module: {unread:?}"
    );
    // Each entry names the module that reads it.
    for s in SETTINGS {
        let module = root().join("src").join(s.module);
        let text = std::fs::read_to_string(&module)
            .unwrap_or_else(|e| panic!("{}: {}: {e}", s.name, module.display()));
        assert!(
            text.contains(&format!("\"{}\"", s.name)),
            "{} is not read in src/{}",
            s.name,
            s.module
        );
    }
}

/// The dashboard's advice per error code (sql/012, `xtract.operator_advice`)
/// is the domain's, word for word; and a misspelt setting is named, with
/// the nearest known one, by `xtract doctor`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_advises_as_the_docs_and_doctor_names_a_misspelt_setting() {
    let db = TestDb::start().await;
    let client = db.client().await;
    for code in xtract::domain::ErrorCode::ALL {
        let advice: String = client
            .query_one("SELECT xtract.operator_advice($1)", &[&code.as_str()])
            .await
            .unwrap()
            .get(0);
        assert_eq!(advice, code.what_helps(), "{code}");
    }
    let mut opts = DaemonOptions::new(&tools().ytdlp);
    opts.extra_env
        .push(("XTRACT_CONCURENCY".into(), "4".into()));
    let ran = xtract(&db.url, &opts, &["doctor"]).await;
    let warned = ran.lines_starting("warn  configuration");
    assert_eq!(
        warned,
        ["warn  configuration XTRACT_CONCURENCY is not a setting xtract reads: did you mean XTRACT_CONCURRENCY? → correct or remove it in the environment or the env file"],
        "{ran}"
    );
}
