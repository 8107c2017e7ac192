//! The egress guard: an HTTP proxy on 127.0.0.1 that downloads from `other`
//! sites go through. It resolves every host itself, refuses forbidden
//! addresses (loopback, private, link-local such as the cloud metadata
//! service 169.254.169.254), and connects to the very address it checked.
//!
//! Checking a link's host before the download is not enough for sites we
//! know nothing about: yt-dlp follows redirects and embedded URLs, and
//! resolves names again, so a page could send it to the VM's own network,
//! or a DNS server could answer differently the second time. Every request
//! yt-dlp makes passes here instead, including each redirect and fragment.
//!
//! Each download gets its own pass (a proxy password); a request without
//! one is refused, so no other local program can use the guard as an open
//! proxy, and a refusal is recorded on the pass of the job it belongs to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// Decides which addresses downloads may reach.
pub type AddressRule = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The user name of every pass (the password is the pass).
const PASS_USER: &str = "xtract";

type Body = BoxBody<Bytes, hyper::Error>;

pub struct EgressGuard {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    allowed: AddressRule,
    /// Open passes and the first refusal each has met.
    passes: Mutex<HashMap<String, Option<String>>>,
}

impl Shared {
    fn passes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        crate::sync::lock(&self.passes)
    }
}

impl EgressGuard {
    /// Starts the guard on a free port of 127.0.0.1, letting through the
    /// addresses `allowed` accepts. Call from within the tokio runtime.
    pub fn start(allowed: AddressRule) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            allowed,
            passes: Mutex::default(),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(EgressGuard { addr, shared, task })
    }

    /// A pass for one download: its proxy URL goes to yt-dlp's `--proxy`.
    pub fn pass(&self) -> Pass {
        let secret = Uuid::new_v4().simple().to_string();
        self.shared.passes().insert(secret.clone(), None);
        Pass {
            url: format!("http://{PASS_USER}:{secret}@{}", self.addr),
            secret,
            shared: self.shared.clone(),
        }
    }
}

impl Drop for EgressGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Valid until dropped.
pub struct Pass {
    url: String,
    secret: String,
    shared: Arc<Shared>,
}

impl Pass {
    pub fn proxy_url(&self) -> &str {
        &self.url
    }

    /// What the guard refused for this download, if anything: "host
    /// (address)", for the log and the job's technical detail.
    pub fn refused(&self) -> Option<String> {
        self.shared.passes().get(&self.secret).cloned().flatten()
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.shared.passes().remove(&self.secret);
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: the next accept may work.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .preserve_header_case(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, hyper::Error> {
    let Some(secret) = pass_of(&req).filter(|s| shared.passes().contains_key(s)) else {
        let mut reply = text(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "no valid pass");
        reply.headers_mut().insert(
            PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"xtract\""),
        );
        return Ok(reply);
    };
    let Some((host, port)) = target(&req) else {
        return Ok(text(StatusCode::BAD_REQUEST, "not a proxy request"));
    };
    let addr = match resolve(&host, port, &shared.allowed).await {
        Ok(addr) => addr,
        Err(Refusal::Forbidden(ip)) => {
            let what = format!("{host} ({ip})");
            tracing::warn!("egress guard: refused a request to {what}, a private or local address");
            if let Some(slot) = shared.passes().get_mut(&secret) {
                slot.get_or_insert(what);
            }
            return Ok(text(
                StatusCode::FORBIDDEN,
                "xtract refuses private and local network addresses",
            ));
        }
        Err(Refusal::NotFound) => {
            return Ok(text(
                StatusCode::BAD_GATEWAY,
                "the host could not be resolved",
            ));
        }
    };
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => return Ok(text(StatusCode::BAD_GATEWAY, "cannot connect")),
    };
    if req.method() == Method::CONNECT {
        // A tunnel (https): the bytes are the client's business from here.
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut client = TokioIo::new(upgraded);
                let mut server = server;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        return Ok(Response::new(empty()));
    }
    forward(req, server).await
}

/// A plain-HTTP request in absolute form, sent on to the checked address.
/// Each request is checked on its own: a kept-alive client connection may
/// ask for another host next.
async fn forward(
    mut req: Request<Incoming>,
    server: TcpStream,
) -> Result<Response<Body>, hyper::Error> {
    let (mut sender, conn) = match hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(server))
        .await
    {
        Ok(pair) => pair,
        Err(_) => return Ok(text(StatusCode::BAD_GATEWAY, "cannot talk to the server")),
    };
    tokio::spawn(conn);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *req.uri_mut() = path.parse().expect("a path is a valid URI");
    req.headers_mut().remove(PROXY_AUTHORIZATION);
    req.headers_mut().remove("proxy-connection");
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(|b| b.boxed())),
        Err(_) => Ok(text(
            StatusCode::BAD_GATEWAY,
            "the server closed the connection",
        )),
    }
}

enum Refusal {
    Forbidden(IpAddr),
    NotFound,
}

/// One address to connect to, from a lookup of our own. A name with any
/// forbidden address is refused as a whole.
async fn resolve(host: &str, port: u16, allowed: &AddressRule) -> Result<SocketAddr, Refusal> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Refusal::NotFound)?
        .collect();
    if let Some(bad) = addrs.iter().find(|a| !allowed(a.ip())) {
        return Err(Refusal::Forbidden(bad.ip()));
    }
    addrs.first().copied().ok_or(Refusal::NotFound)
}

/// Host and port of a CONNECT (`host:port`) or absolute-form request.
fn target(req: &Request<Incoming>) -> Option<(String, u16)> {
    let uri = req.uri();
    if req.method() == Method::CONNECT {
        let authority = uri.authority()?;
        return Some((authority.host().to_string(), authority.port_u16()?));
    }
    if uri.scheme_str() != Some("http") {
        return None;
    }
    Some((uri.host()?.to_string(), uri.port_u16().unwrap_or(80)))
}

/// The password of `Proxy-Authorization: Basic base64(xtract:<pass>)`.
fn pass_of(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(PROXY_AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, secret) = decoded.split_once(':')?;
    (user == PASS_USER).then(|| secret.to_string())
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut reply = Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every request with its own name.
    async fn origin(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(move || async move { name });
            axum::serve(listener, app).await.unwrap();
        });
        addr
    }

    fn public_only() -> AddressRule {
        Arc::new(|ip| !crate::pipeline::url_rules::is_forbidden_ip(ip))
    }

    fn client(proxy: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(proxy).unwrap())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn forwards_allowed_addresses_and_refuses_the_rest_per_request() {
        let allowed = origin("allowed").await;
        // Only the first origin's port is allowed: everything is on loopback.
        let guard = EgressGuard::start(Arc::new(|ip: IpAddr| ip.is_loopback())).unwrap();
        let pass = guard.pass();
        let c = client(pass.proxy_url());
        let body = c
            .get(format!("http://{allowed}/x"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "allowed");
        assert_eq!(pass.refused(), None);

        // The same client (a kept-alive connection) asks for a forbidden
        // address next: refused, and recorded on the pass.
        let refused = c
            .get("http://169.254.169.254/latest/meta-data/")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            pass.refused().as_deref(),
            Some("169.254.169.254 (169.254.169.254)")
        );
    }

    #[tokio::test]
    async fn a_name_is_resolved_by_the_guard_and_refused_when_it_is_local() {
        let guard = EgressGuard::start(public_only()).unwrap();
        let pass = guard.pass();
        let addr = origin("secret").await;
        let url = format!("http://localhost:{}/", addr.port());
        let reply = client(pass.proxy_url()).get(url).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN);
        assert!(pass.refused().unwrap().starts_with("localhost ("));
    }

    #[tokio::test]
    async fn tunnels_are_checked_too() {
        let guard = EgressGuard::start(public_only()).unwrap();
        let pass = guard.pass();
        let err = client(pass.proxy_url())
            .get("https://127.0.0.1:9/")
            .send()
            .await
            .unwrap_err();
        // reqwest reports the refused CONNECT as a connection error.
        assert!(err.is_connect() || err.is_request(), "{err:?}");
        assert_eq!(pass.refused().as_deref(), Some("127.0.0.1 (127.0.0.1)"));
    }

    #[tokio::test]
    async fn without_a_valid_pass_nothing_goes_through() {
        let addr = origin("open").await;
        let guard = EgressGuard::start(Arc::new(|_| true)).unwrap();
        let stale = guard.pass();
        let url = stale.proxy_url().to_string();
        drop(stale);
        let reply = client(&url)
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        let no_pass = format!("http://{}", guard.addr);
        let reply = client(&no_pass)
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    }
}
