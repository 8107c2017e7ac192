//! The egress pool: does each proxy answer, and where does it leave from?
//! Each proxy gets one request to a neutral page (`XTRACT_EGRESS_CHECK_URL`,
//! Cloudflare's trace, which also says the address it saw), with a time
//! limit; proxies are checked at once, not one after another. Passwords
//! are shown masked (`user:***@host`), and the report scrubs them from
//! whatever a library said.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Check;
use crate::domain::{Egress, EgressPool, Platform};

/// A neutral page that says which address asked (`ip=...`).
pub const DEFAULT_CHECK_URL: &str = "https://www.cloudflare.com/cdn-cgi/trace";

/// A proxy that has not answered in this long is as good as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request found.
struct Answer {
    elapsed: Duration,
    /// The `ip=` line of the trace page, when it has one.
    exit: Option<String>,
}

/// One line per proxy, a warning for egresses that leave from the same
/// address, and one for a platforms file others may read.
pub async fn checks(
    pool: &EgressPool,
    check_url: &str,
    platforms_file: Option<&Path>,
) -> Vec<Check> {
    let proxies: Vec<&Egress> = pool.all().iter().filter(|e| e.proxy.is_some()).collect();
    if proxies.is_empty() {
        return vec![Check::ok(
            "egress",
            "this machine's own address only (no proxies in the platforms file)",
        )];
    }
    let mut lines = Vec::new();
    let asked = futures::future::join_all(proxies.iter().map(|e| ask(Some(e), check_url))).await;
    // This machine's own address, to tell a proxy that does not hide it.
    let machine = ask(None, check_url).await.ok().and_then(|a| a.exit);
    let mut exits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(ip) = &machine {
        exits
            .entry(ip.clone())
            .or_default()
            .push("this machine".into());
    }
    for (egress, answer) in proxies.iter().zip(asked) {
        let proxy = egress.proxy.as_ref().expect("a proxy egress");
        let serves = serves(pool, egress);
        match answer {
            Ok(a) => {
                let exit = a
                    .exit
                    .as_deref()
                    .map(|ip| format!(", exit address {ip}"))
                    .unwrap_or_default();
                if let Some(ip) = a.exit {
                    exits.entry(ip).or_default().push(egress.name.clone());
                }
                lines.push(Check::ok(
                    "egress",
                    format!(
                        "{} {proxy} answers in {} ms{exit}; serves {serves}",
                        egress.name,
                        a.elapsed.as_millis()
                    ),
                ));
            }
            Err(why) => lines.push(Check::fail(
                "egress",
                format!("{} {proxy}: {}", egress.name, proxy.scrub(&why)),
                format!(
                    "check [egress.{}] in the platforms file (address, port, user and password) and that the proxy runs; its jobs would fail `network` or go out through the other egresses",
                    egress.name
                ),
            )),
        }
    }
    for (ip, names) in exits.iter().filter(|(_, n)| n.len() > 1) {
        lines.push(Check::warn(
            "egress",
            format!("{} leave from the same address {ip}", names.join(" and ")),
            "the platforms see one client paced as several: point each proxy at its own exit, or keep one",
        ));
    }
    let has_password = proxies
        .iter()
        .any(|e| e.proxy.as_ref().is_some_and(|p| !p.secrets().is_empty()));
    if let Some(file) = platforms_file.filter(|_| has_password) {
        lines.extend(file_check(file));
    }
    lines
}

/// The platforms an egress serves, for the check's line.
fn serves(pool: &EgressPool, egress: &Egress) -> String {
    let list: Vec<&str> = Platform::ALL
        .into_iter()
        .filter(|p| pool.get(*p, &egress.key).is_some())
        .map(Platform::as_str)
        .collect();
    list.join(", ")
}

/// A file holding proxy passwords should not be readable by every user.
fn file_check(file: &Path) -> Option<Check> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then(|| {
        Check::warn(
            "egress",
            format!(
                "{} holds proxy passwords and every local user may read it (mode {mode:o})",
                file.display()
            ),
            format!(
                "chmod 640 {} (owned by root, group xtract), as the env file",
                file.display()
            ),
        )
    })
}

/// One request to `url` through `egress`'s proxy (None: from this
/// machine), with a time limit.
async fn ask(egress: Option<&&Egress>, url: &str) -> Result<Answer, String> {
    let mut client = reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .connect_timeout(CHECK_TIMEOUT);
    client = match egress.and_then(|e| e.proxy.as_ref()) {
        Some(proxy) => client.proxy(
            reqwest::Proxy::all(proxy.expose()).map_err(|e| format!("not a proxy URL: {e}"))?,
        ),
        // The machine's own address: not whatever HTTP_PROXY says.
        None => client.no_proxy(),
    };
    let client = client.build().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let reply = client.get(url).send().await.map_err(|e| describe(&e))?;
    let elapsed = started.elapsed();
    let status = reply.status();
    if status == reqwest::StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        return Err("the proxy refused its user and password (407)".into());
    }
    // 502-504 from a proxy: it answers but cannot reach the page.
    if matches!(status.as_u16(), 502..=504) {
        return Err(format!(
            "the proxy answered {status}: it cannot reach {url}"
        ));
    }
    let body = reply.text().await.unwrap_or_default();
    let exit = body
        .lines()
        .find_map(|l| l.strip_prefix("ip="))
        .map(|ip| ip.trim().to_string());
    Ok(Answer { elapsed, exit })
}

/// A reqwest error in a few words, with its causes (where the reason is).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        format!("no answer within {}s", CHECK_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.last() {
        Some(cause) => format!("{what} ({cause})"),
        None => what,
    }
}
