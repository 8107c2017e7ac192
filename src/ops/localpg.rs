//! A throwaway PostgreSQL cluster from the system's `initdb`/`pg_ctl`: for
//! `xtract dev` (a project-local folder that survives restarts) and for the
//! test suite (a temporary folder per test). As root, the server runs as the
//! `postgres` user through `runuser`, since PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::pipeline::child_env;

#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error("PostgreSQL server programs (initdb, pg_ctl) were not found: install the `postgresql` package (Debian: apt-get install postgresql) or set XTRACT_PG_BIN to their folder")]
    NotInstalled,
    #[error("running as root, but there is no `postgres` user to run the server as: install the `postgresql` package or create the user")]
    NoPostgresUser,
    #[error("{step} failed: {detail}")]
    Failed { step: &'static str, detail: String },
}

/// An identifier as SQL text (identifiers cannot be parameters; the names
/// are ours).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace("\"", "\"\""))
}

fn failed(step: &'static str, detail: impl Into<String>) -> LocalPgError {
    LocalPgError::Failed {
        step,
        detail: detail.into(),
    }
}

pub struct LocalPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `Some("postgres")` when we are root.
    run_as: Option<&'static str>,
    running: bool,
    /// Stop the server when dropped (tests), or leave it (never: dev mode
    /// stops it explicitly at exit too).
    pub stop_on_drop: bool,
}

/// Finds the folder holding initdb and pg_ctl.
pub fn find_bin() -> Result<PathBuf, LocalPgError> {
    for var in ["XTRACT_PG_BIN", "XTRACT_TEST_PG_BIN"] {
        if let Some(dir) = std::env::var_os(var) {
            let dir = PathBuf::from(dir);
            if dir.join("initdb").is_file() {
                return Ok(dir);
            }
        }
    }
    if let Some(initdb) = crate::ops::config::find_program("initdb") {
        let real = initdb.canonicalize().unwrap_or(initdb);
        if let Some(dir) = real.parent() {
            if dir.join("pg_ctl").is_file() {
                return Ok(dir.to_path_buf());
            }
        }
    }
    // Debian keeps server programs off PATH, one folder per major version.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.into_iter()
        .rev()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .ok_or(LocalPgError::NotInstalled)
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalPostgres {
    /// Prepares (initdb, once) a cluster in `dir`, which is created if needed.
    pub fn init(dir: &Path) -> Result<Self, LocalPgError> {
        let bin = find_bin()?;
        let run_as = if unsafe { libc::geteuid() } == 0 {
            if child_env::std_command("id")
                .arg("-u")
                .arg("postgres")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                return Err(LocalPgError::NoPostgresUser);
            }
            Some("postgres")
        } else {
            None
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| failed("creating the cluster folder", e.to_string()))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| failed("creating the cluster folder", e.to_string()))?;
        let pg = LocalPostgres {
            bin,
            dir,
            port: 0,
            run_as,
            running: false,
            stop_on_drop: true,
        };
        if run_as.is_some() {
            pg.make_accessible()?;
        }
        if !pg.data_dir().join("PG_VERSION").exists() {
            let data = pg.data_dir();
            pg.run(
                "initdb",
                pg.command("initdb").arg("-D").arg(&data).args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]),
            )?;
        }
        Ok(pg)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts on `port` instead of a free one picked at start.
    pub fn use_port(&mut self, port: u16) {
        self.port = port;
    }

    /// Starts the server on a free port. `fast`: no fsync (tests).
    pub fn start(&mut self, fast: bool) -> Result<(), LocalPgError> {
        if self.port == 0 {
            self.port = free_port().map_err(|e| failed("finding a free port", e.to_string()))?;
        }
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        if fast {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let data = self.data_dir();
        let log = self.dir.join("postgres.log");
        self.run(
            "pg_ctl start",
            self.command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        )
        .map_err(|e| match e {
            LocalPgError::Failed { step, detail } => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                failed(
                    step,
                    format!(
                        "{detail}; server log: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    ),
                )
            }
            e => e,
        })?;
        self.running = true;
        Ok(())
    }

    /// Serves TLS with `cert`/`key` (PEM files) from the next start on; they
    /// are copied into the cluster folder, readable only by the server.
    pub fn enable_tls(&self, cert: &Path, key: &Path) -> Result<(), LocalPgError> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
            let to = data.join(name);
            std::fs::copy(from, &to).map_err(|e| failed("copying the TLS files", e.to_string()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| failed("copying the TLS files", e.to_string()))?;
        }
        let conf = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).map_err(|e| failed("enabling TLS", e.to_string()))?;
        if self.run_as.is_some() {
            self.make_accessible()?;
        }
        Ok(())
    }

    /// Stops the server: `immediate` is a crash-like stop.
    pub fn stop(&mut self, immediate: bool) -> Result<(), LocalPgError> {
        let data = self.data_dir();
        let mode = if immediate { "immediate" } else { "fast" };
        self.run(
            "pg_ctl stop",
            self.command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", mode, "-w", "stop"]),
        )?;
        self.running = false;
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database if it does not exist yet.
    pub async fn create_database(&self, name: &str) -> Result<(), LocalPgError> {
        let (client, exists) = self.database(name).await?;
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {}", quoted(name)))
                .await
                .map_err(|e| failed("creating the database", e.to_string()))?;
        }
        Ok(())
    }

    pub async fn drop_database(&self, name: &str) -> Result<(), LocalPgError> {
        // Asked first: `IF EXISTS` on a missing one sends a NOTICE ("does not
        // exist, skipping") that the demo's log shows as if it were a fault.
        let (client, exists) = self.database(name).await?;
        if !exists {
            return Ok(());
        }
        client
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quoted(name)))
            .await
            .map_err(|e| failed("dropping the database", e.to_string()))
    }

    /// A connection to the server's `postgres` database, and whether
    /// database `name` exists.
    async fn database(&self, name: &str) -> Result<(tokio_postgres::Client, bool), LocalPgError> {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .map_err(|e| failed("connecting to the local server", e.to_string()))?;
        tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| failed("listing databases", e.to_string()))?
            .is_some();
        Ok((client, exists))
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = child_env::std_command("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => child_env::std_command(path),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, step: &'static str, cmd: &mut Command) -> Result<(), LocalPgError> {
        let out = cmd.output().map_err(|e| failed(step, e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(
                step,
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// The `postgres` user must reach the folder and own the cluster.
    fn make_accessible(&self) -> Result<(), LocalPgError> {
        use std::os::unix::fs::PermissionsExt;
        // Every ancestor must be traversable by the postgres user.
        let mut p = Some(self.dir.as_path());
        while let Some(dir) = p {
            if let Ok(meta) = dir.metadata() {
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ = std::fs::set_permissions(
                        dir,
                        std::fs::Permissions::from_mode(mode | 0o711),
                    );
                }
            }
            p = dir.parent();
        }
        let status = child_env::std_command("chown")
            .args(["-R", "postgres:"])
            .arg(&self.dir)
            .status()
            .map_err(|e| failed("chown", e.to_string()))?;
        if !status.success() {
            return Err(failed(
                "chown",
                format!("chown -R postgres {} failed", self.dir.display()),
            ));
        }
        Ok(())
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.running && self.stop_on_drop {
            let _ = self.stop(true);
        }
    }
}
