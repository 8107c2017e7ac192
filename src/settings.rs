//! What every module's settings share: the error that names the variable,
//! one way to parse and check a value, and secrets that never print. Each
//! module reads its own settings (storage/supabase/settings.rs); ops/config.rs
//! gathers them.

use std::str::FromStr;

/// A value that must never reach a log line: `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

pub fn err(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

/// Reads `var` through `get`: None when unset (or blank), else the value
/// parsed as `T` and accepted by `check`; a value that does not parse or
/// pass says what was expected.
pub fn parse_opt<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    check: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    match get(var).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .ok()
            .filter(|x| check(x))
            .map(Some)
            .ok_or_else(|| err(var, format!("'{v}' is not {expected}"))),
    }
}

/// As [`parse_opt`], with `default` when unset.
pub fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    check: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<T, ConfigError> {
    Ok(parse_opt(get, var, check, expected)?.unwrap_or(default))
}

/// The variable naming systemd's credentials folder (`LoadCredential=`).
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where the unit loads its credentials from (`LoadCredential=NAME:xtract-NAME`
/// searches these folders): read directly by commands run outside the
/// service, from a shell as root (`xtract jobs`, `doctor`, `migrate`).
const CREDSTORE: &[&str] = &["/etc/credstore", "/run/credstore", "/usr/lib/credstore"];

/// The systemd credential `name`: the file of that name in
/// `$CREDENTIALS_DIRECTORY` (in the service), else the unit's source file
/// `xtract-<name>` in the credential store when this user may read it (a
/// command run by root). Trimmed. None when there is no such file or it is
/// empty (the unit skips a credential whose source is missing, and a
/// placeholder may be empty): the environment may give the value instead.
pub fn credential(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<Secret>, ConfigError> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map(|text| {
            Some(text.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Secret::new)
        })
    };
    if let Some(dir) = get(CREDENTIALS_DIRECTORY).filter(|d| !d.trim().is_empty()) {
        let path = std::path::Path::new(dir.trim()).join(name);
        return match read(&path) {
            Ok(value) => Ok(value),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(
                CREDENTIALS_DIRECTORY,
                format!("cannot read the credential {}: {e}", path.display()),
            )),
        };
    }
    // The store is root's: anyone else has the environment's values only.
    for dir in CREDSTORE {
        let path = std::path::Path::new(dir).join(format!("xtract-{name}"));
        if let Ok(value) = read(&path) {
            return Ok(value);
        }
    }
    Ok(None)
}

/// One secret given two ways: by the environment (`var`) and by the
/// credential `name`. Either will do; both are accepted only when they
/// agree, so that a value left behind in an env file never silently wins
/// over (or loses to) the credential that replaced it.
pub fn one_secret(
    var: &'static str,
    from_env: Option<Secret>,
    name: &str,
    from_credential: Option<Secret>,
) -> Result<Option<Secret>, ConfigError> {
    match (from_env, from_credential) {
        (Some(a), Some(b)) if a != b => Err(err(
            var,
            format!(
                "differs from the systemd credential {name}; give it one way (remove it from the environment or the env file)"
            ),
        )),
        (a, b) => Ok(b.or(a)),
    }
}
