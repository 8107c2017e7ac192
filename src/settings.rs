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
