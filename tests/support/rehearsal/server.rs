//! The HTTPS server behind every platform name: TLS with the run's
//! certificate, HTTP/1.1 (a browser fingerprint offering h2 settles for
//! it, as with any server that does not offer h2), one handler per site.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{Seen, Shared, Site, Tls};

/// A request as the site handlers read it.
pub(crate) struct Req {
    pub method: String,
    pub host: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub body: Bytes,
    pub client: IpAddr,
    /// Which TCP connection carried it (a process's requests share one).
    pub conn: u64,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn user_agent(&self) -> &str {
        self.header("user-agent").unwrap_or("")
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// A query parameter (not percent-decoded: our values need none).
    pub fn query(&self, name: &str) -> Option<&str> {
        let q = self.path.split_once('?')?.1;
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A field of a form-encoded body (percent-decoded).
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn is_phone(&self) -> bool {
        let ua = self.user_agent();
        ua.contains("iPhone") || ua.contains("iPad")
    }
}

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A handler's answer, with what the record says about it.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The video the request was about.
    pub video: Option<String>,
    /// Which response this was (the extractor path it feeds).
    pub answer: String,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Full::new(body.into())
                .map_err(|e: Infallible| match e {})
                .boxed(),
            video: None,
            answer: String::new(),
        }
    }

    pub fn html(body: impl Into<String>) -> Reply {
        Reply::new(200, "text/html; charset=utf-8", body.into())
    }

    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::new(200, "application/json; charset=utf-8", value.to_string())
    }

    pub fn status(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", text.to_string())
    }

    pub fn redirect(location: &str) -> Reply {
        let mut r = Reply::status(302, "");
        r.headers.push(("location".into(), location.into()));
        r
    }

    pub fn streaming(mut self, body: Body) -> Reply {
        self.body = body;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn about(mut self, video: &str, answer: &str) -> Reply {
        self.video = Some(video.to_string());
        self.answer = answer.to_string();
        self
    }

    pub fn answer(mut self, answer: &str) -> Reply {
        self.answer = answer.to_string();
        self
    }
}

const SESSION_COOKIE: &str = "rehearsal_session";
static SESSIONS: AtomicU64 = AtomicU64::new(1);

/// Names of headers worth keeping in the record: what a bot detector
/// reads beside the User-Agent.
const TELLING: &[&str] = &[
    "accept",
    "accept-language",
    "accept-encoding",
    "referer",
    "origin",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-mode",
    "sec-fetch-site",
    "x-ig-app-id",
    "x-asbd-id",
    "x-csrftoken",
    "x-fb-lsd",
    "x-fb-friendly-name",
    "x-requested-with",
    "x-youtube-client-name",
    "x-youtube-client-version",
    "x-goog-visitor-id",
    "x-forwarded-for",
    "authorization",
    "apikey",
    "range",
];

pub(crate) async fn serve(listener: std::net::TcpListener, tls: Tls, shared: Arc<Shared>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let identity = native_tls::Identity::from_pkcs8(&tls.cert, &tls.key).expect("identity");
    let acceptor: tokio_native_tls::TlsAcceptor = native_tls::TlsAcceptor::new(identity)
        .expect("TLS acceptor")
        .into();
    let acceptor = Arc::new(acceptor);
    let conns = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let connected = Instant::now();
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        let conn = conns.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(req, peer, (conn, connected), &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    (conn, connected): (u64, Instant),
    shared: &Shared,
) -> Response<Body> {
    let at = Instant::now();
    let wall = SystemTime::now();
    let (parts, body) = req.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or(parts.uri.host())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let cookies: Vec<(String, String)> = parts
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let req = Req {
        method: parts.method.to_string(),
        host: host.clone(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers,
        cookies,
        body,
        client: peer.ip(),
        conn,
    };
    // A cookie of the stand-in's own ties a process's requests together
    // (yt-dlp keeps its cookie jar for the run; curl_cffi opens a new
    // connection per request, so connections do not).
    let (session, new_session) = match req.cookie(SESSION_COOKIE) {
        Some(s) => (s.to_string(), false),
        None => (
            format!("s{}", SESSIONS.fetch_add(1, Ordering::SeqCst)),
            true,
        ),
    };
    let site = Site::of_host(&host);
    let mut reply = match site {
        Some(Site::TikTok) => super::tiktok::handle(&req, shared),
        Some(Site::Instagram) => super::instagram::handle(&req, shared),
        Some(Site::YouTube) => super::youtube::handle(&req, shared),
        None => Reply::status(404, "no such host here").answer("unknown host"),
    };
    shared.record(Seen {
        at,
        connected,
        wall,
        site,
        client: req.client,
        method: req.method.clone(),
        host: req.host.clone(),
        path: req.path.clone(),
        user_agent: req.user_agent().to_string(),
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| TELLING.contains(&k.as_str()))
            .cloned()
            .collect(),
        cookies: req.cookies.iter().map(|(k, _)| k.clone()).collect(),
        video: reply.video.clone(),
        answer: reply.answer.clone(),
        status: reply.status,
        conn: req.conn,
        session: session.clone(),
    });
    if new_session {
        let domain: Vec<&str> = host.rsplitn(3, '.').take(2).collect();
        reply.headers.push((
            "set-cookie".into(),
            format!(
                "{SESSION_COOKIE}={session}; Domain=.{}.{}; Path=/",
                domain.get(1).unwrap_or(&""),
                domain.first().unwrap_or(&"")
            ),
        ));
    }
    let mut response = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response.body(reply.body).expect("response")
}
