//! A database set up like a Supabase project (shared/reference/
//! supabase-emulation.md): the roles, the broad default grants, auth.uid()
//! as Supabase defines it, Storage's objects table and the Realtime
//! publication. `xtract migrate` then applies the security layer (100-…).

use tokio_postgres::Client;

use super::TestDb;

/// Run as the owner before `xtract migrate` (also read by benches/old_api.rs).
pub const SUPABASE: &str = include_str!("supabase.sql");

/// A migrated Supabase-like project; daemons connect as `xtract_worker`
/// (`url`), tests as the owner (`client()`).
pub async fn project() -> (TestDb, Client) {
    let mut db = TestDb::start_unmigrated().await;
    let owner = db.client().await;
    owner
        .batch_execute(SUPABASE)
        .await
        .expect("Supabase's roles and schemas");
    xtract::ops::commands::migrate(&db.owner_url)
        .await
        .expect("migrate");
    owner
        .batch_execute("ALTER ROLE xtract_worker LOGIN")
        .await
        .expect("worker login");
    db.url = db.owner_url.replace("postgres@", "xtract_worker@");
    (db, owner)
}
