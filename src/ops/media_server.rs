//! A minimal static file server on 127.0.0.1 (GET/HEAD, byte ranges), for
//! `xtract dev --demo` and the tests: it stands in for a video site's media
//! host so the real yt-dlp can download from it with no internet.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct MediaServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MediaServer {
    /// Serves the files of `root` until dropped.
    pub async fn start(root: &Path) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let root = root.to_path_buf();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, root.clone()));
            }
        });
        Ok(MediaServer { addr, task })
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://{}/{file}", self.addr)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "opus") => "audio/ogg",
        Some("mkv") => "video/x-matroska",
        _ => "application/octet-stream",
    }
}

async fn handle(mut stream: TcpStream, root: PathBuf) {
    // Requests are small; one read of the head is enough for our clients.
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("");
    let target = first.next().unwrap_or("/");
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    let name = target
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    if name.contains("..") || name.is_empty() {
        let _ = respond(&mut stream, "404 Not Found", "text/plain", 0, None, b"").await;
        return;
    }
    let path = root.join(name);
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        let _ = respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            9,
            None,
            b"not found",
        )
        .await;
        return;
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let (start, end) = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| {
            let start = a.parse::<u64>().unwrap_or(0);
            let end = b
                .parse::<u64>()
                .unwrap_or(size.saturating_sub(1))
                .min(size.saturating_sub(1));
            (start, end)
        })
        .unwrap_or((0, size.saturating_sub(1)));
    let partial = range.is_some();
    let count = if size == 0 {
        0
    } else {
        end + 1 - start.min(end + 1)
    };
    let status = if partial {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let content_range = partial.then(|| format!("bytes {start}-{end}/{size}"));
    if respond(
        &mut stream,
        status,
        content_type(&path),
        count,
        content_range.as_deref(),
        b"",
    )
    .await
    .is_err()
        || method == "HEAD"
    {
        return;
    }
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return;
    }
    let mut limited = file.take(count);
    let _ = tokio::io::copy(&mut limited, &mut stream).await;
    let _ = stream.shutdown().await;
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    length: u64,
    content_range: Option<&str>,
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n"
    );
    if let Some(r) = content_range {
        head.push_str(&format!("Content-Range: {r}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}
