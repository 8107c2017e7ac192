//! Who is asking: the caller's Supabase access token (`Authorization:
//! Bearer …`), checked against the project's signing keys. Projects on
//! asymmetric keys publish them as a JWKS (ES256, or RS256); older projects
//! sign with one shared secret (HS256, SUPABASE_JWT_SECRET). The crypto is
//! the `jsonwebtoken` crate's; this file only chooses the key and the rules.
//!
//! The JWKS is fetched when first needed and kept: a set older than
//! [`MAX_AGE`] is read again on the next request; a token naming a key id
//! the set does not have makes us read it again at once (a key that was
//! just rotated in), at most once per [`UNKNOWN_KID_EVERY`], so a flood of
//! made-up key ids costs the project one request per period; and after a
//! failed fetch nobody tries again for [`AFTER_FAILURE`]. A key that left
//! the set is refused from the next successful fetch on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::time::Instant;
use uuid::Uuid;

use super::settings::CompatSettings;

/// A fetched key set is read again after this long.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// Fetches caused by unknown key ids: at most one per this period.
pub const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(30);
/// After a failed fetch, nobody tries again before this.
pub const AFTER_FAILURE: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS is a few keys; anything bigger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Supabase's access tokens are for this audience.
const AUDIENCE: &str = "authenticated";
/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// The signed-in user a request speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: Uuid,
}

/// Why a request's token was not accepted. `Display` is the sentence the
/// caller reads (FastAPI's words where it has some); `why` is for the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated")]
    Missing,
    #[error("Invalid authentication credentials")]
    Invalid { why: String },
    #[error("Your sign-in has expired. Please sign in again.")]
    Expired,
    /// A valid token that is not a signed-in user's (the anon key, a
    /// service key).
    #[error("Sign in to use this.")]
    NotAUser { role: String },
    /// The project's keys could not be read: our problem, not the caller's.
    #[error("Sign-in cannot be checked right now. Please try again in a moment.")]
    KeysUnavailable { why: String },
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid { .. } | AuthError::Expired => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::NotAUser { .. } => StatusCode::FORBIDDEN,
            AuthError::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the log says (never the token).
    pub fn why(&self) -> String {
        match self {
            AuthError::Missing => "no bearer token".into(),
            AuthError::Invalid { why } => why.clone(),
            AuthError::Expired => "token expired".into(),
            AuthError::NotAUser { role } => format!("token of role '{role}', not a user's"),
            AuthError::KeysUnavailable { why } => why.clone(),
        }
    }

    fn invalid(why: impl Into<String>) -> Self {
        AuthError::Invalid { why: why.into() }
    }
}

/// The claims we read; the library checks `exp`, `nbf` and `aud`.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
}

/// Checks access tokens with the project's keys.
pub struct Verifier {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

impl Verifier {
    pub fn new(settings: &CompatSettings) -> Result<Verifier, String> {
        let secret = match &settings.jwt_secret {
            Some(s) => Some(
                DecodingKey::from_secret(s.expose().as_bytes())
                    .map_err(|e| format!("SUPABASE_JWT_SECRET: {e}"))?,
            ),
            None => None,
        };
        let jwks = match &settings.jwks_url {
            Some(url) => Some(Jwks::new(url.clone())?),
            None => None,
        };
        Ok(Verifier { secret, jwks })
    }

    /// The project's key set, if tokens are checked against one.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_ref()
    }

    /// The user the `Authorization` header's token was issued to.
    pub async fn verify(&self, authorization: Option<&HeaderValue>) -> Result<Caller, AuthError> {
        let token = bearer(authorization)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::invalid(format!("not a JWT: {e}")))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.clone().ok_or_else(|| {
                AuthError::invalid("an HS256 token, and SUPABASE_JWT_SECRET is not set")
            })?,
            Algorithm::ES256 | Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AuthError::invalid("a token signed with a key pair, and no JWKS is configured")
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::invalid("no key id (kid) in the token"))?;
                let key = jwks.key(kid).await?;
                if key.alg != header.alg {
                    return Err(AuthError::invalid(format!(
                        "key {kid} is for {:?}, the token says {:?}",
                        key.alg, header.alg
                    )));
                }
                key.key.clone()
            }
            other => {
                return Err(AuthError::invalid(format!(
                    "{other:?} tokens are not accepted"
                )))
            }
        };
        let mut rules = Validation::new(header.alg);
        rules.set_audience(&[AUDIENCE]);
        rules.set_required_spec_claims(&["exp", "sub", "aud"]);
        rules.validate_nbf = true;
        rules.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &rules)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::invalid(e.to_string()),
            })?
            .claims;
        let role = claims.role.unwrap_or_default();
        if role != "authenticated" {
            return Err(AuthError::NotAUser { role });
        }
        let user = Uuid::parse_str(&claims.sub)
            .map_err(|_| AuthError::invalid("the token's sub is not a user id"))?;
        Ok(Caller { user })
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer(authorization: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let value = authorization
        .map(|v| {
            v.to_str()
                .map_err(|_| AuthError::invalid("header is not text"))
        })
        .transpose()?
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::invalid(format!("scheme '{scheme}', not Bearer")));
    }
    Ok(token)
}

/// One verification key of the set.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, SigningKey>,
    /// When the set was read; None: never.
    fetched: Option<Instant>,
}

/// What the fetches remember, behind the lock that makes them one at a time.
#[derive(Default)]
struct Fetches {
    last_for_unknown_kid: Option<Instant>,
    last_failure: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Never read, or read too long ago.
    Stale,
    /// A token names a key id the set does not have.
    UnknownKid,
}

/// The project's published keys, cached.
pub struct Jwks {
    url: url::Url,
    http: reqwest::Client,
    current: Mutex<Arc<KeySet>>,
    fetches: tokio::sync::Mutex<Fetches>,
}

impl Jwks {
    fn new(url: url::Url) -> Result<Jwks, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("xtract/", env!("CARGO_PKG_VERSION")))
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Jwks {
            url,
            http,
            current: Mutex::new(Arc::new(KeySet::default())),
            fetches: tokio::sync::Mutex::new(Fetches::default()),
        })
    }

    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Reads the set now, as the first request would; says what it found.
    pub async fn warm_up(&self) -> Result<usize, String> {
        self.refresh(Why::Stale, None).await?;
        Ok(self.now().keys.len())
    }

    fn now(&self) -> Arc<KeySet> {
        crate::sync::lock(&self.current).clone()
    }

    async fn key(&self, kid: &str) -> Result<SigningKey, AuthError> {
        let set = self.now();
        let fresh = set.fetched.is_some_and(|t| t.elapsed() < MAX_AGE);
        if fresh {
            if let Some(key) = set.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        let why = if fresh { Why::UnknownKid } else { Why::Stale };
        let fetched = self.refresh(why, set.fetched).await;
        let set = self.now();
        match (set.keys.get(kid), fetched) {
            // A stale key whose refresh failed still counts: the project
            // did not say it is gone.
            (Some(key), _) => Ok(key.clone()),
            (None, Err(why)) if set.fetched.is_none() => Err(AuthError::KeysUnavailable { why }),
            (None, _) => Err(AuthError::invalid(format!(
                "key id {kid} is not among the project's signing keys"
            ))),
        }
    }

    /// Reads the set again unless someone just did, a recent failure says
    /// to wait, or (for an unknown key id) the period's one fetch is spent.
    async fn refresh(&self, why: Why, seen: Option<Instant>) -> Result<(), String> {
        let mut fetches = self.fetches.lock().await;
        if self.now().fetched != seen {
            return Ok(()); // another request fetched while this one waited
        }
        let now = Instant::now();
        if fetches
            .last_failure
            .is_some_and(|t| now.duration_since(t) < AFTER_FAILURE)
        {
            return Err(format!("the last fetch of {} failed moments ago", self.url));
        }
        if why == Why::UnknownKid {
            if fetches
                .last_for_unknown_kid
                .is_some_and(|t| now.duration_since(t) < UNKNOWN_KID_EVERY)
            {
                return Ok(());
            }
            fetches.last_for_unknown_kid = Some(now);
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "read the project's signing keys");
                *crate::sync::lock(&self.current) = Arc::new(KeySet {
                    keys,
                    fetched: Some(Instant::now()),
                });
                fetches.last_failure = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!("old API: cannot read the project's signing keys: {e}");
                fetches.last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, String> {
        let url = &self.url;
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("{url} sent more than {MAX_JWKS_BYTES} bytes"));
        }
        let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("{url} sent more than {MAX_JWKS_BYTES} bytes"));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("{url} did not send a JWKS: {e}"))?;
        Ok(usable_keys(&set))
    }
}

/// The set's signature keys we accept, by key id: EC P-256 (ES256) and RSA
/// (RS256). Never a symmetric (`oct`) key: published, it would let anyone
/// sign.
fn usable_keys(set: &JwkSet) -> HashMap<String, SigningKey> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, SigningKey { alg, key });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
    const USER: &str = "2f4cbd6e-4b1a-4b8c-9d7e-1a2b3c4d5e6f";

    fn verifier() -> Verifier {
        let settings = CompatSettings {
            addr: "127.0.0.1:0".parse().unwrap(),
            wait: Duration::from_secs(1),
            max_waiting: 1,
            jwks_url: None,
            jwt_secret: Some(Secret::new(SECRET)),
            trust_body_user: false,
            client_timeout: Duration::from_secs(1),
        };
        Verifier::new(&settings).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn token(claims: serde_json::Value) -> HeaderValue {
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
    }

    fn user_claims() -> serde_json::Value {
        serde_json::json!({"sub": USER, "aud": "authenticated", "role": "authenticated",
                           "exp": now() + 3600, "iat": now()})
    }

    async fn check(header: Option<&HeaderValue>) -> Result<Caller, AuthError> {
        verifier().verify(header).await
    }

    #[tokio::test]
    async fn a_users_token_names_the_user() {
        let caller = check(Some(&token(user_claims()))).await.unwrap();
        assert_eq!(caller.user.to_string(), USER);
        // The scheme in any case, as HTTP allows.
        let lower = token(user_claims())
            .to_str()
            .unwrap()
            .replacen("Bearer", "bearer", 1);
        let caller = check(Some(&HeaderValue::from_str(&lower).unwrap()))
            .await
            .unwrap();
        assert_eq!(caller.user.to_string(), USER);
    }

    #[tokio::test]
    async fn everything_but_a_valid_users_token_is_refused_with_its_reason() {
        let mut expired = user_claims();
        expired["exp"] = (now() - 3600).into();
        assert!(matches!(
            check(Some(&token(expired))).await,
            Err(AuthError::Expired)
        ));
        let mut early = user_claims();
        early["nbf"] = (now() + 3600).into();
        assert!(matches!(
            check(Some(&token(early))).await,
            Err(AuthError::Invalid { .. })
        ));
        // The type confusion of jsonwebtoken < 10.3: a string `nbf`.
        let mut text_nbf = user_claims();
        text_nbf["nbf"] = (now() + 3600).to_string().into();
        assert!(check(Some(&token(text_nbf))).await.is_err());
        let mut audience = user_claims();
        audience["aud"] = "someone-else".into();
        assert!(matches!(
            check(Some(&token(audience))).await,
            Err(AuthError::Invalid { .. })
        ));
        let anon = serde_json::json!({"aud": "authenticated", "role": "anon", "sub": USER, "exp": now() + 60});
        let e = check(Some(&token(anon))).await.unwrap_err();
        assert!(matches!(e, AuthError::NotAUser { .. }));
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let mut no_sub = user_claims();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert!(matches!(
            check(Some(&token(no_sub))).await,
            Err(AuthError::Invalid { .. })
        ));
        // Signed with another secret.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &user_claims(),
            &EncodingKey::from_secret(b"another-secret-of-at-least-32-characters!!").unwrap(),
        )
        .unwrap();
        let forged = HeaderValue::from_str(&format!("Bearer {forged}")).unwrap();
        assert!(matches!(
            check(Some(&forged)).await,
            Err(AuthError::Invalid { .. })
        ));
        // alg none: the token's own header must not choose "no signature".
        let unsigned = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "Bearer {}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(user_claims().to_string())
            )
        };
        let unsigned = HeaderValue::from_str(&unsigned).unwrap();
        assert!(matches!(
            check(Some(&unsigned)).await,
            Err(AuthError::Invalid { .. })
        ));
        // A token signed with a key pair, and no JWKS configured.
        let es256 = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "Bearer {}.{}.c2ln",
                b64.encode(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
                b64.encode(user_claims().to_string())
            )
        };
        let es256 = HeaderValue::from_str(&es256).unwrap();
        assert!(matches!(
            check(Some(&es256)).await,
            Err(AuthError::Invalid { .. })
        ));
        for (header, missing) in [
            (None, true),
            (Some("Bearer "), true),
            (Some("Basic dXNlcjpwYXNz"), false),
            (Some("Bearer not-a-jwt"), false),
        ] {
            let value = header.map(|h| HeaderValue::from_str(h).unwrap());
            let e = check(value.as_ref()).await.unwrap_err();
            assert_eq!(
                matches!(e, AuthError::Missing),
                missing,
                "{header:?}: {e:?}"
            );
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn only_signature_keys_of_the_two_algorithms_are_taken_from_a_jwks() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "alg": "ES256", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "enc", "crv": "P-256", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}))
        .unwrap();
        let keys = usable_keys(&set);
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["ec"]);
        assert_eq!(keys["ec"].alg, Algorithm::ES256);
    }
}
