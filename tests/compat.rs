//! The old service's HTTP API (issue 25), through real daemons on a
//! database set up like a Supabase project: the old request and answers
//! byte for byte (shared/reference/old-service.md, FastAPI's shapes),
//! tokens signed with ES256 and RS256 keys served as a JWKS by a local
//! server (rotated mid-test) and with the legacy HS256 secret, and every
//! bad input. One database and three daemons: the endpoint on, the
//! endpoint trusting the body, and the endpoint off.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::Client;
use uuid::Uuid;

const SECS: fn(u64) -> Duration = Duration::from_secs;
const SECRET: &str = "legacy-jwt-secret-of-a-supabase-project-0123456789";
const EC_A: &str = include_str!("data/jwt-test-keys/ec_a.pem");
const EC_B: &str = include_str!("data/jwt-test-keys/ec_b.pem");
const EC_C: &str = include_str!("data/jwt-test-keys/ec_c.pem");
const RSA: &str = include_str!("data/jwt-test-keys/rsa.pem");
/// How long the endpoint holds a request (XTRACT_COMPAT_WAIT_SECS).
const WAIT_SECS: u64 = 6;
/// A link the daemon refuses before any job exists: a request that gets
/// its 400 got past the token check.
const REFUSED_LINK: &str = "ftp://example.com/video";
const REFUSED_SAYS: &str = r#"{"detail":"Only http and https links are supported."}"#;

/// A signing key of the project, and its key id.
struct SigningKey {
    kid: &'static str,
    alg: Algorithm,
    pem: &'static str,
}

const KEY_A: SigningKey = SigningKey {
    kid: "key-a",
    alg: Algorithm::ES256,
    pem: EC_A,
};
const KEY_B: SigningKey = SigningKey {
    kid: "key-b",
    alg: Algorithm::ES256,
    pem: EC_B,
};
const KEY_RSA: SigningKey = SigningKey {
    kid: "key-rsa",
    alg: Algorithm::RS256,
    pem: RSA,
};

impl SigningKey {
    fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(self.pem.as_bytes()).unwrap(),
        }
    }

    /// The public half, as Supabase publishes it.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding()).unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a signed-in user's access token, as Supabase issues them.
fn user_claims(user: Uuid) -> serde_json::Value {
    serde_json::json!({
        "iss": "http://127.0.0.1/auth/v1", "sub": user, "aud": "authenticated",
        "exp": now() + 3600, "iat": now(), "role": "authenticated",
        "aal": "aal1", "session_id": Uuid::new_v4(), "is_anonymous": false
    })
}

fn hs256(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The project's JWKS endpoint (`/auth/v1/.well-known/jwks.json` under
/// SUPABASE_URL), serving the keys it is given and counting its fetches.
struct KeyServer {
    base: String,
    keys: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(keys: &[&SigningKey]) -> KeyServer {
        let body = Arc::new(Mutex::new(String::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/auth/v1/.well-known/jwks.json",
            axum::routing::get(move || {
                let (served, counted) = (served.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let server = KeyServer {
            base,
            keys: body,
            fetches,
        };
        server.publish(keys);
        server
    }

    /// Rotation: from now on the project publishes exactly these keys.
    fn publish(&self, keys: &[&SigningKey]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
        *self.keys.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// What the endpoint answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

/// An old client: `POST /extract-audio` with a JSON body, optionally a token.
#[derive(Clone)]
struct OldClient {
    base: String,
    http: reqwest::Client,
}

impl OldClient {
    fn new(addr: &str) -> Self {
        OldClient {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(SECS(60))
                .build()
                .unwrap(),
        }
    }

    async fn post(&self, token: Option<&str>, body: &str) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/extract-audio", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("the endpoint answers");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// The old request, as the old service's README writes it.
    async fn extract(&self, token: Option<&str>, url: &str, user: Option<Uuid>) -> Answer {
        let body = match user {
            Some(u) => format!(r#"{{"url": "{url}", "user_id": "{u}"}}"#),
            None => format!(r#"{{"url": "{url}"}}"#),
        };
        self.post(token, &body).await
    }

    async fn up(&self) {
        eventually("the old API to listen", SECS(60), || async {
            let r = self.http.get(format!("{}/health", self.base)).send().await;
            r.ok().filter(|r| r.status() == 200).map(|_| ())
        })
        .await;
    }
}

async fn jobs_for(client: &Client, url: &str) -> Vec<serde_json::Value> {
    client
        .query(
            "SELECT to_jsonb(j) FROM processing_jobs j WHERE original_url = $1 ORDER BY created_at",
            &[&url],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn addr() -> String {
    format!("127.0.0.1:{}", xtract::ops::localpg::free_port().unwrap())
}

/// The TCP sockets `pid` listens on.
fn listening_sockets(pid: i32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.display().to_string();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // State 0A is LISTEN; column 9 the inode.
            cols.get(3) == Some(&"0A") && cols.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
        })
        .count()
}

/// A daemon's options with these settings, and the per-user limit every
/// daemon of the test writes (2).
fn options(standin: &StandIn, env: &[(&str, &str)]) -> DaemonOptions {
    let mut options = DaemonOptions::new(&standin.script);
    options
        .extra_env
        .push(("XTRACT_MAX_PENDING_PER_USER".into(), "2".into()));
    for (k, v) in env {
        options.extra_env.push((k.to_string(), v.to_string()));
    }
    options
}

async fn metrics(health: &str) -> String {
    reqwest::get(format!("http://{health}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clients_get_their_audio_and_every_bad_request_its_old_answer() {
    let (db, owner) = supabase::project().await;
    let keys = KeyServer::start(&[&KEY_A, &KEY_RSA]).await;
    let standin = StandIn::new();
    let (api_addr, health_addr) = (addr(), addr());
    let (trusting_addr, off_health) = (addr(), addr());

    let mut on = options(
        &standin,
        &[
            ("XTRACT_COMPAT_ADDR", &api_addr),
            ("XTRACT_HEALTH_ADDR", &health_addr),
            // The JWKS is found under the project URL, as on Supabase.
            ("SUPABASE_URL", &keys.base),
            ("SUPABASE_JWT_SECRET", SECRET),
            ("XTRACT_COMPAT_WAIT_SECS", &WAIT_SECS.to_string()),
            ("XTRACT_COMPAT_MAX_WAITING", "3"),
            ("XTRACT_COMPAT_CLIENT_TIMEOUT_SECS", "1"),
        ],
    );
    on.concurrency = 4;
    on.grace_secs = 1.0;
    let daemon = Daemon::start(&db.url, &on);
    // The app's own backend, naming users itself.
    let trusting = options(
        &standin,
        &[
            ("XTRACT_COMPAT_ADDR", &trusting_addr),
            ("XTRACT_COMPAT_TRUST_BODY_USER", "true"),
        ],
    );
    let trusting_daemon = Daemon::start(&db.url, &trusting);
    // Off: everything it would need is there, except the address.
    let off = options(
        &standin,
        &[
            ("XTRACT_HEALTH_ADDR", &off_health),
            ("SUPABASE_URL", &keys.base),
            ("SUPABASE_JWT_SECRET", SECRET),
        ],
    );
    let off_daemon = Daemon::start(&db.url, &off);

    let api = OldClient::new(&api_addr);
    api.up().await;
    let alice = USER;
    let bob = Uuid::new_v4();
    let alice_es = KEY_A.sign(&user_claims(alice));

    // --- An unchanged old client, with the user's token, gets its audio:
    // the request exactly as the old service's README shows it.
    let first = "http://127.0.0.1:9/ok/first";
    let answer = api.extract(Some(&alice_es), first, Some(alice)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let row = &jobs_for(&owner, first).await[0];
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(
        answer.body,
        format!(
            r#"{{"job_id":"{}","audio_file_id":"{}"}}"#,
            row["id"].as_str().unwrap(),
            row["result_audio_file_id"].as_str().unwrap()
        )
    );
    // Inserted as the app inserts it, and marked.
    assert_eq!(row["user_id"], alice.to_string());
    assert_eq!(row["status"], "completed");
    assert_eq!(row["submitted_via"], "old_api");
    assert_eq!(row["platform"], "other");
    assert_eq!(row["user_queue_position"], 0);

    // The legacy secret (HS256); user_id left out; a field the old model
    // never had is ignored, as pydantic ignored it.
    let second = "http://127.0.0.1:9/ok/second";
    let answer = api
        .post(
            Some(&hs256(&user_claims(bob))),
            &format!(r#"{{"url": "{second}", "client": "ios 1.2"}}"#),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let row = &jobs_for(&owner, second).await[0];
    assert_eq!(answer.json()["job_id"], row["id"]);
    assert_eq!(row["user_id"], bob.to_string());

    // A job that fails: its user's sentence, with the status of its kind.
    standin.set_error(
        "private1",
        "ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is private\n",
    );
    let private = "http://127.0.0.1:9/fail/private1";
    let answer = api.extract(Some(&alice_es), private, Some(alice)).await;
    let row = &jobs_for(&owner, private).await[0];
    assert_eq!(row["error_code"], "private");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.body,
        serde_json::json!({"detail": row["error_message"]}).to_string()
    );

    // An RS256 key of the set is taken too (its 400 is the link's).
    let rsa = KEY_RSA.sign(&user_claims(alice));
    let answer = api.extract(Some(&rsa), REFUSED_LINK, Some(alice)).await;
    assert_eq!((answer.status, answer.body.as_str()), (400, REFUSED_SAYS));

    // --- Who is asking.
    let foreign = api
        .extract(Some(&alice_es), "http://127.0.0.1:9/ok/foreign", Some(bob))
        .await;
    assert_eq!(
        (foreign.status, foreign.body.as_str()),
        (403, r#"{"detail":"user_id is not the signed-in user."}"#)
    );
    assert!(jobs_for(&owner, "http://127.0.0.1:9/ok/foreign")
        .await
        .is_empty());
    let none = api.extract(None, first, Some(alice)).await;
    assert_eq!(
        (
            none.status,
            none.body.as_str(),
            none.header("www-authenticate")
        ),
        (401, r#"{"detail":"Not authenticated"}"#, "Bearer")
    );
    let mut expired = user_claims(alice);
    expired["exp"] = (now() - 600).into();
    let answer = api
        .extract(Some(&KEY_A.sign(&expired)), first, Some(alice))
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            401,
            r#"{"detail":"Your sign-in has expired. Please sign in again."}"#
        )
    );
    let mut anon = user_claims(alice);
    anon["role"] = "anon".into();
    let answer = api.extract(Some(&hs256(&anon)), first, None).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (403, r#"{"detail":"Sign in to use this."}"#)
    );
    // Signed by a key that is not the project's, under a key id that is.
    let forged = SigningKey { pem: EC_C, ..KEY_A }.sign(&user_claims(alice));
    let answer = api.extract(Some(&forged), first, None).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, r#"{"detail":"Invalid authentication credentials"}"#)
    );

    // --- Rotation: the project publishes key B and withdraws key A.
    keys.publish(&[&KEY_B]);
    let alice_b = KEY_B.sign(&user_claims(alice));
    let answer = api.extract(Some(&alice_b), REFUSED_LINK, None).await;
    assert_eq!((answer.status, answer.body.as_str()), (400, REFUSED_SAYS));
    let answer = api.extract(Some(&alice_es), REFUSED_LINK, None).await;
    assert_eq!(answer.status, 401, "a withdrawn key: {answer:?}");
    // Made-up key ids cost the project no fetch beyond the one per period.
    for kid in ["c1", "c2", "c3"] {
        let made_up = SigningKey { kid, ..KEY_B }.sign(&user_claims(alice));
        assert_eq!(
            api.extract(Some(&made_up), REFUSED_LINK, None).await.status,
            401
        );
    }

    // --- Bad bodies, each with FastAPI's answer. JSON first, before the
    // token, as FastAPI reads it.
    let answer = api.post(None, r#"{"url" "http://127.0.0.1:9/ok/x"}"#).await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body,
        r#"{"detail":[{"type":"json_invalid","loc":["body",7],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting ':' delimiter"}}]}"#
    );
    let answer = api
        .post(Some(&alice_b), &format!(r#"{{"user_id": "{alice}"}}"#))
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"detail":[{{"type":"missing","loc":["body","url"],"msg":"Field required","input":{{"user_id":"{alice}"}}}}]}}"#
        )
    );
    let answer = api.post(Some(&alice_b), r#"{"url": 42}"#).await;
    assert_eq!(
        answer.body,
        r#"{"detail":[{"type":"string_type","loc":["body","url"],"msg":"Input should be a valid string","input":42}]}"#
    );
    let answer = api.post(Some(&alice_b), "").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            422,
            r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#
        )
    );
    let huge = format!(
        r#"{{"url": "http://127.0.0.1:9/ok/{}"}}"#,
        "a".repeat(20_000)
    );
    let answer = api.post(Some(&alice_b), &huge).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (413, r#"{"detail":"The request is too large."}"#)
    );
    // A link the insert would refuse: the app's sentence, before any job.
    let answer = api.extract(Some(&alice_b), "  ", None).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, r#"{"detail":"The link is empty."}"#)
    );

    // Paths and methods the old service did not have: FastAPI's answers.
    let http = reqwest::Client::new();
    let get = http
        .get(format!("http://{api_addr}/extract-audio"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(
        get.text().await.unwrap(),
        r#"{"detail":"Method Not Allowed"}"#
    );
    let nope = http
        .post(format!("http://{api_addr}/extract"))
        .send()
        .await
        .unwrap();
    assert_eq!(nope.status(), 404);
    assert_eq!(nope.text().await.unwrap(), r#"{"detail":"Not Found"}"#);

    // --- Slow clients are let go: headers that never end (the connection
    // is closed), a body that never comes (408).
    let slow_headers = async {
        let mut s = tokio::net::TcpStream::connect(&api_addr).await.unwrap();
        s.write_all(b"POST /extract-audio HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(SECS(10), s.read_to_end(&mut reply))
            .await
            .expect("the connection is closed")
            .ok();
        reply
    };
    let slow_body = async {
        let mut s = tokio::net::TcpStream::connect(&api_addr).await.unwrap();
        s.write_all(
            format!("POST /extract-audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice_b}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"url\"").as_bytes(),
        )
        .await
        .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(SECS(10), s.read_to_end(&mut reply))
            .await
            .expect("an answer, then the connection is closed")
            .ok();
        String::from_utf8_lossy(&reply).to_string()
    };
    let (headers_reply, body_reply) = tokio::join!(slow_headers, slow_body);
    assert!(!String::from_utf8_lossy(&headers_reply).contains("200 OK"));
    assert!(body_reply.starts_with("HTTP/1.1 408"), "{body_reply}");
    assert!(
        body_reply.ends_with(r#"{"detail":"The request took too long to arrive."}"#),
        "{body_reply}"
    );

    // --- A flood: the per-user limit (2) answers the user's third job,
    // and the bound on waiting requests (3) the next request, before
    // anything is inserted.
    let carol = Uuid::new_v4();
    let dave = Uuid::new_v4();
    let hold = |token: String, url: &'static str| {
        let api = api.clone();
        tokio::spawn(async move { api.extract(Some(&token), url, None).await })
    };
    let carol_t = hs256(&user_claims(carol));
    let held1 = hold(carol_t.clone(), "http://127.0.0.1:9/block/held1");
    let held2 = hold(carol_t.clone(), "http://127.0.0.1:9/block/held2");
    for url in [
        "http://127.0.0.1:9/block/held1",
        "http://127.0.0.1:9/block/held2",
    ] {
        eventually("the held job", SECS(30), || async {
            (!jobs_for(&owner, url).await.is_empty()).then_some(())
        })
        .await;
    }
    let third = "http://127.0.0.1:9/ok/third";
    let answer = api.extract(Some(&carol_t), third, None).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            429,
            r#"{"detail":"You already have 2 videos waiting. Please wait for them to finish before adding more."}"#
        )
    );
    assert!(jobs_for(&owner, third).await.is_empty());
    let held3 = hold(hs256(&user_claims(dave)), "http://127.0.0.1:9/block/held3");
    eventually("three requests waiting", SECS(30), || async {
        metrics(&health_addr)
            .await
            .contains("xtract_old_api_waiting 3")
            .then_some(())
    })
    .await;
    let busy = "http://127.0.0.1:9/ok/busy";
    let answer = api.extract(Some(&alice_b), busy, None).await;
    assert_eq!(
        (
            answer.status,
            answer.body.as_str(),
            answer.header("retry-after")
        ),
        (
            503,
            r#"{"detail":"Too many requests are waiting. Please try again in a minute."}"#,
            "30"
        )
    );
    assert!(jobs_for(&owner, busy).await.is_empty());

    // --- Still running at the bound: 504 and Retry-After; the job goes on.
    for (held, url) in [
        (held1, "http://127.0.0.1:9/block/held1"),
        (held2, "http://127.0.0.1:9/block/held2"),
        (held3, "http://127.0.0.1:9/block/held3"),
    ] {
        let answer = held.await.unwrap();
        let job = &jobs_for(&owner, url).await[0];
        assert_eq!(
            (
                answer.status,
                answer.body.as_str(),
                answer.header("retry-after")
            ),
            (
                504,
                r#"{"detail":"The audio is still being prepared. Please try again in a minute."}"#,
                "30"
            ),
        );
        assert_eq!(answer.header("x-job-id"), job["id"].as_str().unwrap());
        assert!(
            matches!(job["status"].as_str(), Some("pending" | "processing")),
            "{job}"
        );
    }
    // The same request again waits for the same job, which then finishes.
    let again = hold(carol_t.clone(), "http://127.0.0.1:9/block/held1");
    eventually("the retry to wait", SECS(30), || async {
        metrics(&health_addr)
            .await
            .contains("xtract_old_api_waiting 1")
            .then_some(())
    })
    .await;
    for name in ["held1", "held2", "held3"] {
        standin.release(name);
    }
    let answer = again.await.unwrap();
    let jobs = jobs_for(&owner, "http://127.0.0.1:9/block/held1").await;
    assert_eq!(jobs.len(), 1, "one job for the request and its retry");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["job_id"], jobs[0]["id"]);

    // --- The JWKS was read twice: at start, and once for key B.
    assert_eq!(keys.fetches(), 2);

    // --- Operators: counted in /metrics, marked in the table.
    let text = metrics(&health_addr).await;
    for line in [
        "xtract_old_api_requests_total{status=\"200\"} 3",
        "xtract_old_api_requests_total{status=\"401\"} 7",
        "xtract_old_api_requests_total{status=\"429\"} 1",
        "xtract_old_api_requests_total{status=\"503\"} 1",
        "xtract_old_api_requests_total{status=\"504\"} 3",
        "xtract_old_api_jobs_created_total 6",
        "xtract_old_api_waiting 0",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let marked: i64 = owner
        .query_one(
            "SELECT count(*) FROM processing_jobs WHERE submitted_via = 'old_api'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(marked, 6);
    let usage: i64 = owner
        .query_one("SELECT jobs FROM xtract.old_api_usage", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(usage, 6);

    // --- Trusting the body: said loudly at start; the user must be named.
    let trusted = OldClient::new(&trusting_addr);
    trusted.up().await;
    assert!(
        trusting_daemon
            .log_text()
            .contains("XTRACT_COMPAT_TRUST_BODY_USER=true"),
        "{}",
        trusting_daemon.log_text()
    );
    let answer = trusted.extract(None, REFUSED_LINK, Some(alice)).await;
    assert_eq!((answer.status, answer.body.as_str()), (400, REFUSED_SAYS));
    let answer = trusted.extract(None, REFUSED_LINK, None).await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.json()["detail"][0]["loc"],
        serde_json::json!(["body", "user_id"])
    );
    let answer = trusted
        .post(
            None,
            r#"{"url": "http://127.0.0.1:9/ok/x", "user_id": "user-uuid"}"#,
        )
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["detail"][0]["type"], "uuid_parsing");

    // --- Off costs nothing: no listener beyond /health, no key fetch.
    eventually("the endpoint-less daemon to run", SECS(30), || async {
        reqwest::get(format!("http://{off_health}/health"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
    // The same daemon but for the old API's one socket (both have /health
    // and the pipeline's egress guard).
    assert_eq!(
        listening_sockets(daemon.pid()),
        listening_sockets(off_daemon.pid()) + 1
    );
    assert!(!off_daemon.log_text().contains("old service's API"));
    assert!(!metrics(&off_health).await.contains("old_api"));
    assert_eq!(keys.fetches(), 2);

    // --- Stopping: no new requests; a waiting one is answered once the
    // worker has drained, and its job stays for the next daemon.
    let last = "http://127.0.0.1:9/block/last";
    let waiting = hold(alice_b.clone(), last);
    eventually("the last job", SECS(30), || async {
        (!jobs_for(&owner, last).await.is_empty()).then_some(())
    })
    .await;
    let mut daemon = daemon;
    daemon.signal(libc::SIGTERM);
    let answer = waiting.await.unwrap();
    assert_eq!(
        (
            answer.status,
            answer.body.as_str(),
            answer.header("retry-after")
        ),
        (
            503,
            r#"{"detail":"The service is restarting. Please try again in a minute."}"#,
            "30"
        )
    );
    assert!(daemon.wait_exit(SECS(30)).await.success());
    assert!(tokio::net::TcpStream::connect(&api_addr).await.is_err());
    let job = &jobs_for(&owner, last).await[0];
    assert!(
        matches!(job["status"].as_str(), Some("pending" | "processing")),
        "{job}"
    );
    standin.release("last");

    // A database where the daemon may not insert under the users' limit:
    // the endpoint is not started, and the daemon says why.
    owner
        .batch_execute("REVOKE EXECUTE ON FUNCTION xtract.may_enqueue(uuid) FROM xtract_worker")
        .await
        .unwrap();
    let mut refused = Daemon::start(&db.url, &on);
    assert!(!refused.wait_exit(SECS(60)).await.success());
    let log = refused.log_text();
    assert!(
        log.contains("XTRACT_COMPAT_ADDR") && log.contains("xtract.may_enqueue"),
        "{log}"
    );
}
