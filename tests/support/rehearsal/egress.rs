//! Egress proxies for the rehearsal: real forwarding HTTP proxies (CONNECT
//! tunnels, as yt-dlp uses for https) whose connections to the platforms
//! leave from a loopback address of their own, so the platform stand-ins
//! see each egress as a different client, as real sites see proxies'
//! exit addresses. Platform names resolve to the rehearsal (the proxy runs
//! outside the namespace, as a remote proxy resolves names on its own).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::{Rehearsal, HOSTS};

pub struct EgressProxy {
    pub addr: SocketAddr,
    /// Where its connections to the platforms come from.
    pub exit: Ipv4Addr,
    credentials: (String, String),
    /// `host:port` of every tunnel asked for, in order.
    tunnels: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl EgressProxy {
    /// A proxy on 127.0.0.1 whose exit address is `exit` (any 127.x.y.z but
    /// the rehearsal's own), taking `user`/`password`.
    pub fn start(rehearsal: &Rehearsal, exit: Ipv4Addr, user: &str, password: &str) -> EgressProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = rehearsal.upstream();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let credentials = (user.to_string(), password.to_string());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (t, c) = (tunnels.clone(), credentials.clone());
        // Its own thread and runtime: it outlives the test's runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let serve = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let (t, c) = (t.clone(), c.clone());
                        tokio::spawn(async move {
                            let _ = tunnel(client, exit, upstream, &c, &t).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        EgressProxy {
            addr,
            exit,
            credentials,
            tunnels,
            stop,
        }
    }

    /// The proxy URL for a platforms file's `[egress.NAME]`.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}@{}",
            self.credentials.0, self.credentials.1, self.addr
        )
    }

    /// Every `host:port` a client asked to tunnel to.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

async fn tunnel(
    mut client: TcpStream,
    exit: Ipv4Addr,
    upstream: SocketAddr,
    credentials: &(String, String),
    tunnels: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.0, credentials.1))
    );
    let authorized = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("proxy-authorization") && v.trim() == expected
        })
    });
    if !authorized {
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"rehearsal\"\r\nContent-Length: 0\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let host = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(target);
    if method != "CONNECT" || !HOSTS.contains(&host) {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    tunnels.lock().unwrap().push(target.to_string());
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((exit, 0)))?;
    let mut server = socket.connect(upstream).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
