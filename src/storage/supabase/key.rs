//! The kinds of Supabase API key, as of late 2026, and how each is sent.
//!
//! - Secret keys (`sb_secret_…`) are not JWTs: they go in the `apikey`
//!   header only, and the gateway turns them into a service-role identity.
//! - Legacy service role keys are JWTs whose `role` claim is
//!   `service_role`: sent as `apikey` and as a bearer token.
//! - The public keys (`sb_publishable_…`, or a legacy JWT whose role is
//!   `anon`) belong in browsers. With one, Storage's row level security
//!   hides the bucket, and every request looks like "bucket not found": we
//!   recognise them before asking, and say which key to use instead.

use base64::Engine;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// `sb_secret_…`
    Secret,
    /// A JWT with `role: service_role`.
    LegacyServiceRole,
    /// `sb_publishable_…`
    Publishable,
    /// A JWT with `role: anon`.
    LegacyAnon,
    /// A JWT with another role (e.g. `authenticated`: a user's token).
    LegacyOtherRole(String),
    /// Not a format Supabase issues (self-hosted setups may use their own):
    /// sent like a legacy key.
    Unrecognised,
}

impl KeyKind {
    pub fn of(key: &str) -> KeyKind {
        if key.starts_with("sb_secret_") {
            return KeyKind::Secret;
        }
        if key.starts_with("sb_publishable_") {
            return KeyKind::Publishable;
        }
        match jwt_role(key).as_deref() {
            Some("service_role") => KeyKind::LegacyServiceRole,
            Some("anon") => KeyKind::LegacyAnon,
            Some(role) => KeyKind::LegacyOtherRole(role.to_string()),
            None => KeyKind::Unrecognised,
        }
    }

    /// For messages: never any part of the key itself.
    pub fn describe(&self) -> String {
        match self {
            KeyKind::Secret => "secret key (sb_secret_…)".into(),
            KeyKind::LegacyServiceRole => "legacy service role key (JWT)".into(),
            KeyKind::Publishable => "publishable key (sb_publishable_…)".into(),
            KeyKind::LegacyAnon => "legacy anon key (JWT, role anon)".into(),
            KeyKind::LegacyOtherRole(role) => format!("JWT with role '{role}'"),
            KeyKind::Unrecognised => "key of an unrecognised format".into(),
        }
    }

    /// A key a browser may hold: it cannot write to a private bucket.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            KeyKind::Publishable | KeyKind::LegacyAnon | KeyKind::LegacyOtherRole(_)
        )
    }

    /// Secret keys travel in `apikey` alone; a bearer token beside one is
    /// refused by the gateway (it is not a JWT).
    pub fn sends_bearer(&self) -> bool {
        !matches!(self, KeyKind::Secret)
    }
}

/// The `role` claim of a JWT, read without checking the signature (we only
/// need to tell the kinds apart; the server checks the rest).
fn jwt_role(key: &str) -> Option<String> {
    let mut parts = key.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["role"].as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(role: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"iss":"supabase","ref":"abc","role":"{role}"}}"#
            ))
        )
    }

    #[test]
    fn each_kind_of_key_is_recognised() {
        assert_eq!(KeyKind::of("sb_secret_abc123"), KeyKind::Secret);
        assert_eq!(KeyKind::of("sb_publishable_abc"), KeyKind::Publishable);
        assert_eq!(
            KeyKind::of(&jwt("service_role")),
            KeyKind::LegacyServiceRole
        );
        assert_eq!(KeyKind::of(&jwt("anon")), KeyKind::LegacyAnon);
        assert_eq!(
            KeyKind::of(&jwt("authenticated")),
            KeyKind::LegacyOtherRole("authenticated".into())
        );
        assert_eq!(KeyKind::of("hunter2"), KeyKind::Unrecognised);
        assert_eq!(KeyKind::of("a.b.c"), KeyKind::Unrecognised);
    }

    #[test]
    fn only_the_server_keys_may_write_and_secret_keys_travel_alone() {
        assert!(KeyKind::Publishable.is_public());
        assert!(KeyKind::LegacyAnon.is_public());
        assert!(!KeyKind::Secret.is_public());
        assert!(!KeyKind::LegacyServiceRole.is_public());
        assert!(!KeyKind::Secret.sends_bearer());
        assert!(KeyKind::LegacyServiceRole.sends_bearer());
    }

    #[test]
    fn descriptions_never_contain_the_key() {
        for key in ["sb_secret_topsecret", "sb_publishable_xyz"] {
            assert!(!KeyKind::of(key).describe().contains(&key[10..]));
        }
    }
}
