//! Stand-in egress proxies: an HTTP forward proxy and a SOCKS5 proxy on
//! 127.0.0.1 that play "the platform, as seen through this egress". They
//! forward nothing: each answers every request itself, records when it came
//! and whether its credentials were right, and can answer 429 like a
//! platform rate-limiting this address. `/cdn-cgi/trace` answers
//! `ip=<exit address>`, as Cloudflare's page does (the doctor's check).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request that reached the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// `http://host/path` as asked (SOCKS: `host:port` + the path).
    pub target: String,
    pub authorized: bool,
    pub status: u16,
}

struct Shared {
    credentials: Option<(String, String)>,
    exit: String,
    limited: AtomicBool,
    seen: Mutex<Vec<Seen>>,
}

pub struct StandInProxy {
    pub addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandInProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandInProxy {
    /// An HTTP proxy (absolute-form requests; no CONNECT).
    pub async fn http(credentials: Option<(&str, &str)>, exit: &str) -> Self {
        Self::start("http", credentials, exit).await
    }

    /// A SOCKS5 proxy (RFC 1928; user and password per RFC 1929), whose
    /// connections end at itself.
    pub async fn socks5(credentials: Option<(&str, &str)>, exit: &str) -> Self {
        Self::start("socks5h", credentials, exit).await
    }

    async fn start(scheme: &'static str, credentials: Option<(&str, &str)>, exit: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            exit: exit.to_string(),
            limited: AtomicBool::new(false),
            seen: Mutex::default(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let _ = if scheme == "http" {
                        serve_http(stream, &shared).await
                    } else {
                        serve_socks(stream, &shared).await
                    };
                });
            }
        });
        StandInProxy {
            addr,
            scheme,
            shared,
            task,
        }
    }

    /// The URL for the platforms file, with its credentials.
    pub fn url(&self) -> String {
        match &self.shared.credentials {
            Some((u, p)) => format!("{}://{u}:{p}@{}", self.scheme, self.addr),
            None => format!("{}://{}", self.scheme, self.addr),
        }
    }

    /// The URL with other credentials than the ones it takes.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("{}://{user}:{password}@{}", self.scheme, self.addr)
    }

    /// From now on, answer platform requests with 429 Too Many Requests.
    pub fn rate_limit(&self) {
        self.shared.limited.store(true, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The platform requests it answered 200, in arrival order.
    pub fn served(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status == 200 && !s.target.ends_with("/cdn-cgi/trace"))
            .collect()
    }
}

/// The reply to a request that reached the "platform".
fn answer(shared: &Shared, target: &str, authorized: bool) -> (u16, String) {
    let (status, body) = if !authorized {
        (407, String::new())
    } else if target.ends_with("/cdn-cgi/trace") {
        (
            200,
            format!("fl=1\nip={}\nvisit_scheme=http\n", shared.exit),
        )
    } else if shared.limited.load(Ordering::SeqCst) {
        (429, "Too Many Requests".to_string())
    } else {
        (200, "ok".to_string())
    };
    shared.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        target: target.to_string(),
        authorized,
        status,
    });
    (status, body)
}

async fn write_reply(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        407 => "Proxy Authentication Required",
        429 => "Too Many Requests",
        _ => "Other",
    };
    let auth = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"stand-in\"\r\n"
    } else {
        ""
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// The request line and headers, up to the blank line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn serve_http(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let given = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    let authorized = match &shared.credentials {
        None => true,
        Some((u, p)) => {
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            given.as_deref() == Some(&format!("Basic {want}"))
        }
    };
    let (status, body) = answer(shared, &target, authorized);
    write_reply(&mut stream, status, &body).await
}

async fn serve_socks(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; greeting[1] as usize];
    stream.read_exact(&mut methods).await?;
    let wanted = if shared.credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        return stream.write_all(&[5, 0xff]).await;
    }
    stream.write_all(&[5, wanted]).await?;
    let mut authorized = true;
    if let Some((u, p)) = &shared.credentials {
        let mut version_and_len = [0u8; 2];
        stream.read_exact(&mut version_and_len).await?;
        let mut user = vec![0u8; version_and_len[1] as usize];
        stream.read_exact(&mut user).await?;
        let mut len = [0u8; 1];
        stream.read_exact(&mut len).await?;
        let mut password = vec![0u8; len[0] as usize];
        stream.read_exact(&mut password).await?;
        authorized = user == u.as_bytes() && password == p.as_bytes();
        stream
            .write_all(&[1, if authorized { 0 } else { 1 }])
            .await?;
        if !authorized {
            answer(shared, "(socks5 login)", false);
            return Ok(());
        }
    }
    let mut request = [0u8; 4];
    stream.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            stream.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            stream.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            let mut ip = [0u8; 16];
            stream.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await?;
    stream.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    // The connection ends here: the HTTP request is the "platform's".
    let head = read_head(&mut stream).await?;
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    let target = format!("{host}:{}{path}", u16::from_be_bytes(port));
    let (status, body) = answer(shared, &target, authorized);
    write_reply(&mut stream, status, &body).await
}
