//! A held horizon: another session of the same database keeps a snapshot
//! open (idle in a REPEATABLE READ transaction, as a forgotten dashboard
//! query or an app's long transaction does), so no row version a job's
//! claim and completion leave behind can be removed meanwhile.

use xtract::db::DbTarget;

pub struct Holder {
    client: tokio_postgres::Client,
}

impl Holder {
    /// Opens the transaction and takes its snapshot, then stays idle.
    pub async fn start(target: &DbTarget, reads: &str) -> Holder {
        let mut config = target.config.clone();
        config.application_name("forgotten dashboard query");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM {reads};"
            ))
            .await
            .unwrap();
        Holder { client }
    }

    pub async fn end(self) {
        self.client.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// Dead row versions of a table, as the statistics count them.
pub async fn dead_rows(client: &tokio_postgres::Client, table: &str) -> i64 {
    // The statistics are flushed by each backend now and then: ask for a
    // fresh snapshot of them.
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    client
        .query_one(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}
