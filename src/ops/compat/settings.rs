//! The old-API endpoint's settings (XTRACT_COMPAT_*), read here and
//! gathered by ops/config.rs. None of them is read unless
//! XTRACT_COMPAT_ADDR is set.

use std::net::SocketAddr;
use std::time::Duration;

use crate::settings::{err, parse, parse_opt, ConfigError, Secret};

/// Where Supabase publishes a project's signing keys, under SUPABASE_URL.
const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

#[derive(Debug, Clone)]
pub struct CompatSettings {
    /// XTRACT_COMPAT_ADDR: the endpoint's own listener.
    pub addr: SocketAddr,
    /// XTRACT_COMPAT_WAIT_SECS: how long a request waits for its job before
    /// it is answered 504 (the job goes on).
    pub wait: Duration,
    /// XTRACT_COMPAT_MAX_WAITING: requests waiting at once; one more is
    /// answered 503 before anything is inserted.
    pub max_waiting: usize,
    /// The JWKS of the project (ES256/RS256 access tokens): XTRACT_COMPAT_JWKS_URL,
    /// else `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`; None when neither is set.
    pub jwks_url: Option<url::Url>,
    /// SUPABASE_JWT_SECRET: the legacy shared secret (HS256 access tokens).
    pub jwt_secret: Option<Secret>,
    /// XTRACT_COMPAT_TRUST_BODY_USER: take `user_id` from the body without a
    /// token (an endpoint only the app's own backend can reach).
    pub trust_body_user: bool,
    /// XTRACT_COMPAT_CLIENT_TIMEOUT_SECS: a request's headers, and then its
    /// body, must arrive within this; an idle kept-alive connection is
    /// closed after it.
    pub client_timeout: Duration,
}

impl CompatSettings {
    /// None when XTRACT_COMPAT_ADDR is not set: the endpoint is off and
    /// nothing else here is read.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<CompatSettings>, ConfigError> {
        let Some(addr) = parse_opt(
            get,
            "XTRACT_COMPAT_ADDR",
            |_: &SocketAddr| true,
            "an address like 127.0.0.1:8000",
        )?
        else {
            return Ok(None);
        };
        let wait = parse(
            get,
            "XTRACT_COMPAT_WAIT_SECS",
            90.0,
            |s: &f64| s.is_finite() && (1.0..=3600.0).contains(s),
            "a number of seconds from 1 to 3600",
        )?;
        let max_waiting = parse(
            get,
            "XTRACT_COMPAT_MAX_WAITING",
            256usize,
            |n| (1..=100_000).contains(n),
            "a whole number from 1 to 100000",
        )?;
        let client_timeout = parse(
            get,
            "XTRACT_COMPAT_CLIENT_TIMEOUT_SECS",
            10.0,
            |s: &f64| s.is_finite() && (0.1..=300.0).contains(s),
            "a number of seconds from 0.1 to 300",
        )?;
        let trust_body_user = match get("XTRACT_COMPAT_TRUST_BODY_USER")
            .as_deref()
            .map(str::trim)
        {
            None | Some("" | "0" | "false" | "no" | "off") => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some(v) => {
                return Err(err(
                    "XTRACT_COMPAT_TRUST_BODY_USER",
                    format!("'{v}' is not true or false"),
                ))
            }
        };
        let jwks_url = match get("XTRACT_COMPAT_JWKS_URL") {
            Some(raw) => Some(http_url(&raw).ok_or_else(|| {
                err(
                    "XTRACT_COMPAT_JWKS_URL",
                    format!("'{raw}' is not an http(s) URL"),
                )
            })?),
            // Storage's settings check SUPABASE_URL itself; here it only
            // names where the keys are.
            None => get("SUPABASE_URL")
                .as_deref()
                .and_then(http_url)
                .and_then(|u| u.join(JWKS_PATH).ok()),
        };
        let jwt_secret = get("SUPABASE_JWT_SECRET")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        if jwks_url.is_none() && jwt_secret.is_none() && !trust_body_user {
            return Err(err(
                "XTRACT_COMPAT_ADDR",
                "the endpoint checks each caller's Supabase access token, and nothing says how: \
                 set SUPABASE_URL (its signing keys are read from the project), \
                 XTRACT_COMPAT_JWKS_URL or SUPABASE_JWT_SECRET",
            ));
        }
        Ok(Some(CompatSettings {
            addr,
            wait: Duration::from_secs_f64(wait),
            max_waiting,
            jwks_url,
            jwt_secret,
            trust_body_user,
            client_timeout: Duration::from_secs_f64(client_timeout),
        }))
    }
}

fn http_url(raw: &str) -> Option<url::Url> {
    url::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<CompatSettings>, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CompatSettings::from_lookup(&|k: &str| env.get(k).cloned())
    }

    #[test]
    fn off_unless_an_address_is_given_whatever_else_is_set() {
        assert!(read(&[]).unwrap().is_none());
        // Nothing else is read, so nothing else can stop the daemon.
        assert!(read(&[("XTRACT_COMPAT_WAIT_SECS", "forever")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_keys_come_from_the_project_unless_a_url_is_named() {
        let s = read(&[
            ("XTRACT_COMPAT_ADDR", "127.0.0.1:8000"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            s.jwks_url.unwrap().as_str(),
            "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
        );
        assert_eq!(s.wait, Duration::from_secs(90));
        assert_eq!(s.max_waiting, 256);
        assert_eq!(s.client_timeout, Duration::from_secs(10));
        assert!(!s.trust_body_user);
        let s = read(&[
            ("XTRACT_COMPAT_ADDR", "127.0.0.1:8000"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("XTRACT_COMPAT_JWKS_URL", "http://127.0.0.1:9/keys"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.jwks_url.unwrap().as_str(), "http://127.0.0.1:9/keys");
    }

    #[test]
    fn each_mistake_names_its_variable_and_the_secret_never_prints() {
        for (var, value) in [
            ("XTRACT_COMPAT_ADDR", "port 8000"),
            ("XTRACT_COMPAT_WAIT_SECS", "0"),
            ("XTRACT_COMPAT_WAIT_SECS", "NaN"),
            ("XTRACT_COMPAT_MAX_WAITING", "0"),
            ("XTRACT_COMPAT_CLIENT_TIMEOUT_SECS", "0"),
            ("XTRACT_COMPAT_TRUST_BODY_USER", "maybe"),
            ("XTRACT_COMPAT_JWKS_URL", "ftp://x/keys"),
        ] {
            let mut pairs = vec![
                ("XTRACT_COMPAT_ADDR", "127.0.0.1:8000"),
                ("SUPABASE_JWT_SECRET", "hunter2"),
            ];
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let e = read(&pairs).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
        // No way to check a token: said at start.
        let e = read(&[("XTRACT_COMPAT_ADDR", "127.0.0.1:8000")]).unwrap_err();
        assert_eq!(e.var, "XTRACT_COMPAT_ADDR");
        let s = read(&[
            ("XTRACT_COMPAT_ADDR", "127.0.0.1:8000"),
            ("SUPABASE_JWT_SECRET", "hunter2"),
        ])
        .unwrap()
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        // Trusting the body needs no keys.
        assert!(
            read(&[
                ("XTRACT_COMPAT_ADDR", "127.0.0.1:8000"),
                ("XTRACT_COMPAT_TRUST_BODY_USER", "true"),
            ])
            .unwrap()
            .unwrap()
            .trust_body_user
        );
    }
}
