//! Connections to PostgreSQL: TLS the way libpq's `sslmode` means it, a pool
//! for short statements, and single connections for LISTEN.

pub mod migrate;
pub mod schema;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::config::SslMode;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("cannot read the CA certificate {path}: {reason}")]
    BadCaCert { path: String, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] native_tls::Error),
    #[error("database: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// Opening a connection failed: names where, never the password.
    #[error("cannot connect to the database at {target}: {}", describe(.source))]
    Connect {
        target: String,
        source: tokio_postgres::Error,
    },
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database: {0}")]
    Statement(String),
}

impl DbError {
    /// The server's SQLSTATE, when the server answered.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Postgres(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Why, without where (for a message that already names the target).
    pub fn cause(&self) -> String {
        match self {
            DbError::Connect { source, .. } => describe(source),
            // The server's own sentence (with its hint, when it gave one).
            DbError::Postgres(e) => match e.as_db_error() {
                Some(db) => match db.hint() {
                    Some(hint) => format!("{} ({hint})", db.message()),
                    None => db.message().to_string(),
                },
                None => describe(e),
            },
            other => other.to_string(),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => DbError::Postgres(e),
            other => DbError::Pool(other.to_string()),
        }
    }
}

/// tokio-postgres prints "db error" and keeps the server's words in the
/// source; operators need the words.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// A parsed DATABASE_URL: where to connect and how to secure it.
#[derive(Clone)]
pub struct DbTarget {
    pub config: tokio_postgres::Config,
    tls: MakeTlsConnector,
}

impl std::fmt::Debug for DbTarget {
    // Never print the config: it holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTarget")
            .field("host", &self.config.get_hosts())
            .field("port", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl DbTarget {
    /// Parses a URL. tokio-postgres knows `sslmode` disable/prefer/require;
    /// libpq's `verify-ca`/`verify-full` (and `sslrootcert`) are handled here.
    /// As in libpq, `require` encrypts without checking the certificate
    /// (Supabase's certificates are signed by Supabase's own CA), while
    /// `verify-full` checks it against `sslrootcert` or the system roots.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let (url, verify, root_cert) = split_libpq_tls_params(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| DbError::BadUrl(e.to_string()))?;
        if verify != Verify::No {
            config.ssl_mode(SslMode::Require);
        }
        if config.get_application_name().is_none() {
            config.application_name("xtract");
        }
        config.connect_timeout(Duration::from_secs(10));
        config.keepalives_idle(Duration::from_secs(30));
        let mut builder = TlsConnector::builder();
        if let Some(path) = root_cert {
            let pem = std::fs::read(&path).map_err(|e| DbError::BadCaCert {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| DbError::BadCaCert {
                path,
                reason: e.to_string(),
            })?;
            builder.add_root_certificate(cert);
        }
        match verify {
            Verify::No => {
                builder.danger_accept_invalid_certs(true);
            }
            Verify::Ca => {
                builder.danger_accept_invalid_hostnames(true);
            }
            Verify::Full => {}
        }
        Ok(DbTarget {
            config,
            tls: MakeTlsConnector::new(builder.build()?),
        })
    }

    /// One connection; the caller drives `connection` (for LISTEN it reads
    /// notifications from it).
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                postgres_native_tls::TlsStream<tokio_postgres::Socket>,
            >,
        ),
        DbError,
    > {
        self.config
            .connect(self.tls.clone())
            .await
            .map_err(|source| DbError::Connect {
                target: self.where_(),
                source,
            })
    }

    /// `host:port` (several when the URL lists several), for messages.
    pub fn where_(&self) -> String {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One connection driven in the background, for commands that run a few
    /// statements and exit.
    pub async fn connect_simple(&self) -> Result<tokio_postgres::Client, DbError> {
        let (client, connection) = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("database connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// A pool of connections for short statements. Broken connections are
    /// dropped and replaced when next taken, so the pool survives a database
    /// restart on its own.
    pub fn pool(&self, size: usize) -> Result<Pool, DbError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    No,
    Ca,
    Full,
}

/// Takes libpq's TLS parameters tokio-postgres does not know out of the URL.
fn split_libpq_tls_params(url: &str) -> Result<(String, Verify, Option<String>), DbError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Verify::No, None));
    };
    let mut verify = Verify::No;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("sslmode", "verify-full") => verify = Verify::Full,
            ("sslmode", "verify-ca") => verify = Verify::Ca,
            ("sslrootcert", path) => {
                root_cert = Some(
                    url::form_urlencoded::parse(format!("p={path}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default(),
                )
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, verify, root_cert))
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for
/// messages that must name the target without leaking the password.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable DATABASE_URL>".into(),
    }
}

/// True for errors that mean "the database is not reachable right now" rather
/// than "this statement is wrong".
/// The password of a postgres URL as the driver reads it (percent-decoded),
/// when it has a non-empty one. Read from the part before `?`: the query
/// may hold parameters only DbTarget knows, and never the password.
pub fn url_password(url: &str) -> Option<String> {
    url.trim()
        .split('?')
        .next()
        .and_then(|base| base.parse::<tokio_postgres::Config>().ok())
        .and_then(|c| {
            c.get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .filter(|p| !p.is_empty())
}

pub fn is_connection_error(e: &DbError) -> bool {
    match e {
        DbError::Pool(_) | DbError::Connect { .. } => true,
        DbError::Postgres(pg) => match pg.code() {
            // 08: connection exception; 57P: operator intervention
            // (shutdown, crash); 53: insufficient resources.
            Some(c) => {
                let c = c.code();
                c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
            }
            // No server error: the connection failed, or our own side did
            // (a value that does not convert). Only the first is worth
            // waiting out; tokio-postgres tells them apart only in words.
            None => {
                let text = pg.to_string();
                pg.is_closed()
                    || [
                        "error communicating with the server",
                        "error connecting to server",
                        "error performing TLS handshake",
                        "timeout waiting for server",
                        "unexpected message from server",
                    ]
                    .iter()
                    .any(|kind| text.starts_with(kind))
            }
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_full_is_taken_out_of_the_url() {
        let (url, verify, root) = split_libpq_tls_params(
            "postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(verify, Verify::Full);
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
    }

    #[test]
    fn require_is_left_to_tokio_postgres() {
        let t = DbTarget::parse("postgres://u:p@h:5432/db?sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert!(!format!("{t:?}").contains(":p@"));
    }

    #[test]
    fn redacted_url_hides_the_password() {
        let r = redact_url("postgres://postgres:hunter2@db.example.co:5432/postgres");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("***"));
    }
}
