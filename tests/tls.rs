//! TLS to PostgreSQL as libpq's sslmode means it (Supabase requires TLS).

mod support;

use std::path::Path;
use std::process::Command;

use support::*;
use xtract::db::DbTarget;

/// A self-signed certificate for localhost / 127.0.0.1.
fn make_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

async fn encrypted(url: &str) -> Result<bool, String> {
    let target = DbTarget::parse(url).map_err(|e| e.to_string())?;
    let client = target.connect_simple().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_and_verify_full_work_over_native_tls() {
    let mut db = TestDb::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "server");
    let (other_ca, _) = make_cert(dir.path(), "other");
    db.pg.stop(false).unwrap();
    db.pg.enable_tls(&cert, &key).unwrap();
    db.pg.start(true).unwrap();

    // require: encrypted, the certificate is not checked (as in libpq).
    assert_eq!(
        encrypted(&format!("{}?sslmode=require", db.url)).await,
        Ok(true)
    );
    // prefer (tokio-postgres's default) also encrypts when the server can.
    assert_eq!(encrypted(&db.url).await, Ok(true));
    // verify-full with the right CA: encrypted and checked.
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url,
        cert.display()
    );
    assert_eq!(encrypted(&verified).await, Ok(true));
    // verify-full with another CA: refused.
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url,
        other_ca.display()
    );
    let refused = encrypted(&wrong).await;
    assert!(refused.is_err(), "{refused:?}");
    // disable: plain.
    assert_eq!(
        encrypted(&format!("{}?sslmode=disable", db.url)).await,
        Ok(false)
    );
}
