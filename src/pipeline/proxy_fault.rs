//! Was it the proxy? A download through a proxy egress can fail because the
//! proxy itself is down or refuses us (wrong password, no route onward),
//! and then every job sent through it fails the same way until it is back.
//! Such an egress is paused like one a platform rate-limited, so jobs go
//! out through the others instead of spending their attempts on it.
//!
//! yt-dlp does not always say which it was: a proxy that is not listening
//! gives "[Errno 111] Connection refused (caused by TransportError(…))",
//! word for word what a site refusing the connection gives (seen with
//! yt-dlp 2026.10.26 and `--proxy http://127.0.0.1:1`). A proxy that
//! answered with a refusal is named: "Tunnel connection failed: 407 Proxy
//! Authentication Required" or "…: 502 Bad Gateway", inside a
//! `ProxyError(…)` (and, being unexpected, with yt-dlp's "please report
//! this issue" trailer). So: the words first; after any other network
//! failure, one connection to the proxy decides.

use std::time::Duration;

use crate::domain::{ErrorCode, JobError, ProxyUrl};

/// How long an egress whose proxy failed is left alone for the platform
/// (its other platforms find out on their own next request). Short: a
/// restarted proxy should be back in use within a minute.
pub const PROXY_DOWN_COOLDOWN: Duration = Duration::from_secs(60);

/// A proxy that does not accept a connection in this long is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How yt-dlp's networking (urllib, requests, curl_cffi; yt_dlp/socks.py)
/// reports a proxy that answered but would not carry the request.
const PROXY_REFUSALS: &[&str] = &[
    "proxyerror",
    "tunnel connection failed",
    "proxy authentication required",
    "http error 407",
    "sockserror",
    "socks4error",
    "socks5error",
    "unable to connect to proxy",
];

/// Why `proxy` is to blame for the failure `e`, if it is.
pub async fn proxy_fault(proxy: &ProxyUrl, e: &JobError) -> Option<String> {
    let said = e.detail.to_lowercase();
    if let Some(words) = PROXY_REFUSALS.iter().find(|w| said.contains(**w)) {
        return Some(format!("the proxy refused the request ({words})"));
    }
    if e.code != ErrorCode::Network {
        return None;
    }
    let (host, port) = proxy.address();
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(format!("the proxy does not answer at {host}:{port}: {err}")),
        Err(_) => Some(format!(
            "the proxy did not answer at {host}:{port} within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    fn network(detail: &str) -> JobError {
        JobError::new(ErrorCode::Network, Some(Platform::TikTok), detail)
    }

    #[tokio::test]
    async fn a_proxy_that_refused_is_named_by_yt_dlp() {
        // Real yt-dlp 2026.10.26 output through a proxy answering 407.
        let proxy = ProxyUrl::parse("http://u:p@127.0.0.1:9").unwrap();
        let e = network("Unable to download webpage: <urlopen error Tunnel connection failed: 407 Proxy Authentication Required X> (caused by ProxyError('<urlopen error Tunnel connection failed: 407 Proxy Authentication Required X>'))");
        let why = proxy_fault(&proxy, &e).await.unwrap();
        assert!(why.contains("refused"), "{why}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_the_proxys_only_when_the_proxy_is_down() {
        let refused = network("Unable to download webpage: [Errno 111] Connection refused (caused by TransportError('[Errno 111] Connection refused'))");
        let down = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let proxy = ProxyUrl::parse(&format!("http://127.0.0.1:{down}")).unwrap();
        let why = proxy_fault(&proxy, &refused).await.unwrap();
        assert!(why.contains(&format!("127.0.0.1:{down}")), "{why}");

        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = up.local_addr().unwrap().port();
        let proxy = ProxyUrl::parse(&format!("socks5://127.0.0.1:{port}")).unwrap();
        assert_eq!(proxy_fault(&proxy, &refused).await, None);
        // Not a network failure: the site answered, through the proxy.
        let private = JobError::new(ErrorCode::Private, Some(Platform::TikTok), "private");
        let proxy = ProxyUrl::parse(&format!("http://127.0.0.1:{down}")).unwrap();
        assert_eq!(proxy_fault(&proxy, &private).await, None);
    }
}
