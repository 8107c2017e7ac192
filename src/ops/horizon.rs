//! A held horizon: a session idle in a transaction (a forgotten dashboard
//! query, an app's long transaction), a prepared transaction or a
//! replication slot whose snapshot keeps every row version the queue
//! leaves behind (one per claim, one per completion) from being removed.
//! They pile up in processing_jobs, and each claim steps over them.
//! `xtract doctor` names the holder; the daemon warns once per holder in
//! its log. Both say who (pid, application, user), how long, what it costs
//! and the statement that ends it; where the database does not let xtract
//! read how long, they say that instead of guessing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::queue::sql;

/// A holder whose age cannot be read in time is named once this many
/// transactions have begun after its snapshot.
pub const XIDS_WORTH_NAMING: i32 = 100;

/// The daemon looks this often (or as often as the limit, when shorter).
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// One row of `xtract.horizon_holders()` (sql/018).
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// `session`, `prepared transaction` or `replication slot`.
    pub kind: String,
    pub pid: Option<i32>,
    /// Application name, prepared transaction's gid, or slot name.
    pub name: Option<String>,
    pub user: Option<String>,
    pub client_addr: Option<String>,
    /// `idle in transaction`, `active`, …; None when it cannot be read.
    pub state: Option<String>,
    /// Since its transaction began (or it was prepared).
    pub held_for: Option<Duration>,
    /// Since its state last changed (idle for …).
    pub state_for: Option<Duration>,
    /// Transactions begun since its snapshot.
    pub snapshot_xids: Option<i32>,
    /// The snapshot's oldest transaction id: the same holder with a new
    /// snapshot is a new finding.
    pub snapshot: Option<String>,
    /// False when the schema's owner may not read this session's state and
    /// age (it lacks pg_read_all_stats).
    pub details_visible: bool,
    pub end_with: String,
}

/// The holders, oldest snapshot first, and the queue table's row versions.
#[derive(Debug, Clone, Default)]
pub struct Horizon {
    pub holders: Vec<Holder>,
    pub dead_rows: i64,
    pub live_rows: i64,
}

/// Reads who holds the horizon back.
pub async fn read(client: &tokio_postgres::Client) -> Result<Horizon, DbError> {
    let secs = |v: Option<f64>| v.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let holders = client
        .query(sql::HORIZON_HOLDERS, &[])
        .await?
        .iter()
        .map(|r| Holder {
            kind: r.get("kind"),
            pid: r.get("pid"),
            name: r.get("name"),
            user: r.get("user_name"),
            client_addr: r.get("client_addr"),
            state: r.get("state"),
            held_for: secs(r.get("xact_age_secs")),
            state_for: secs(r.get("state_age_secs")),
            snapshot_xids: r.get("snapshot_xids"),
            snapshot: r.get("snapshot"),
            details_visible: r.get("details_visible"),
            end_with: r.get("end_with"),
        })
        .collect();
    let (dead_rows, live_rows) = match client.query_opt(sql::QUEUE_TABLE_ROWS, &[]).await? {
        Some(r) => (r.get(0), r.get(1)),
        None => (0, 0),
    };
    Ok(Horizon {
        holders,
        dead_rows,
        live_rows,
    })
}

/// What to say about the horizon.
#[derive(Debug, PartialEq)]
pub enum Finding<'a> {
    /// Nothing has held a snapshot for `limit`.
    Clear,
    /// This one has (the oldest such snapshot).
    Held(&'a Holder),
    /// This one holds an old snapshot, and how long is not readable.
    Unreadable(&'a Holder),
}

/// The holder to name: the oldest snapshot held for at least `limit`;
/// where its age cannot be read in time, one that has seen
/// `XIDS_WORTH_NAMING` transactions begin since.
pub fn finding(h: &Horizon, limit: Duration) -> Finding<'_> {
    for holder in &h.holders {
        let old = match holder.held_for {
            Some(held) => held >= limit,
            None => holder.snapshot_xids.unwrap_or(0) >= XIDS_WORTH_NAMING,
        };
        if !old {
            continue;
        }
        return if holder.details_visible {
            Finding::Held(holder)
        } else {
            Finding::Unreadable(holder)
        };
    }
    Finding::Clear
}

impl Holder {
    /// `session pid 4711 (application 'psql', user postgres, from
    /// 10.0.0.5), idle in transaction`: who, and what it does.
    pub fn who(&self) -> String {
        let mut about = Vec::new();
        if self.kind == "session" {
            if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
                about.push(format!("application '{name}'"));
            } else {
                about.push("no application name".into());
            }
        }
        if let Some(user) = &self.user {
            about.push(format!("user {user}"));
        }
        if let Some(addr) = &self.client_addr {
            about.push(format!("from {addr}"));
        }
        let mut who = match (self.kind.as_str(), self.pid) {
            ("session", Some(pid)) => format!("session pid {pid}"),
            (kind, _) => format!("{kind} '{}'", self.name.as_deref().unwrap_or("?")),
        };
        if !about.is_empty() {
            who.push_str(&format!(" ({})", about.join(", ")));
        }
        if let Some(state) = &self.state {
            who.push_str(&format!(", {state}"));
            if let (Some(idle), true) = (self.state_for, state.starts_with("idle")) {
                who.push_str(&format!(" for {}", human(idle)));
            }
        }
        who
    }

    fn snapshot_age(&self) -> String {
        match self.snapshot_xids {
            Some(n) => format!("{n} transactions old"),
            None => "of unknown age".into(),
        }
    }
}

/// What an old snapshot costs the queue, in a clause.
fn cost(h: &Horizon) -> String {
    format!(
        "{} dead row versions in processing_jobs ({} live) cannot be removed meanwhile, and every claim steps over the ones still in its index",
        h.dead_rows, h.live_rows
    )
}

/// The sentence for a holder that has held for `held` (its own count, or
/// how long this daemon has seen it): who, how long, what it costs.
pub fn held_sentence(h: &Horizon, holder: &Holder, held: Duration, at_least: bool) -> String {
    format!(
        "{}, has held a snapshot for {}{} ({}): {}",
        holder.who(),
        if at_least { "at least " } else { "" },
        human(held),
        holder.snapshot_age(),
        cost(h)
    )
}

/// How to end it.
pub fn end_it(holder: &Holder) -> String {
    format!(
        "end it with {} (or finish the transaction in the tool that opened it)",
        holder.end_with
    )
}

/// What is missing when the age of sessions cannot be read, and how to
/// get it.
pub const UNREADABLE_FIX: &str = "the role that owns xtract's functions (the one that ran `xtract migrate`) needs pg_read_all_stats to read sessions' state and age: grant it (on Supabase: grant pg_read_all_stats to postgres;)";

/// The sentence for a holder whose age cannot be read.
pub fn unreadable_sentence(h: &Horizon, holder: &Holder) -> String {
    format!(
        "{} holds the oldest snapshot ({}); how long and in what state it is, xtract cannot read: {}",
        holder.who(),
        holder.snapshot_age(),
        cost(h)
    )
}

/// `12 min 5 s`, `3 h 2 min`, `45 s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The daemon's watch: looks every minute (or every `limit`, when
/// shorter) and warns once about each holder that has held a snapshot for
/// `limit`, then says when it is gone. A holder whose age is not readable
/// is timed from when this daemon first saw the same snapshot.
pub async fn watch(pool: deadpool_postgres::Pool, limit: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(limit.clamp(Duration::from_secs(1), CHECK_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<Identity, Instant> = HashMap::new();
    let mut warned: HashMap<Identity, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let horizon = match pool.get().await {
            Ok(client) => read(&client).await,
            Err(e) => Err(e.into()),
        };
        let horizon = match horizon {
            Ok(h) => h,
            // The database's absence is the claim loop's to report.
            Err(e) => {
                tracing::debug!("cannot read who holds the horizon: {e}");
                continue;
            }
        };
        let now = Instant::now();
        let current: Vec<Identity> = horizon.holders.iter().map(Identity::of).collect();
        seen.retain(|id, _| current.contains(id));
        warned.retain(|id, who| {
            let still = current.contains(id);
            if !still {
                tracing::info!("{who} no longer holds back the removal of dead row versions");
            }
            still
        });
        for (holder, id) in horizon.holders.iter().zip(current) {
            let first = *seen.entry(id.clone()).or_insert(now);
            if warned.contains_key(&id) {
                continue;
            }
            let (held, at_least) = match holder.held_for {
                Some(held) => (held, false),
                None => (now - first, true),
            };
            if held < limit {
                continue;
            }
            let mut text = held_sentence(&horizon, holder, held, at_least);
            if !holder.details_visible {
                text.push_str(&format!(" ({UNREADABLE_FIX})"));
            }
            tracing::warn!("{text}; {}", end_it(holder));
            warned.insert(id, holder.who());
        }
    }
}

/// One holder with one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    kind: String,
    pid: Option<i32>,
    name: Option<String>,
    snapshot: Option<String>,
}

impl Identity {
    fn of(h: &Holder) -> Self {
        Identity {
            kind: h.kind.clone(),
            pid: h.pid,
            name: h.name.clone(),
            snapshot: h.snapshot.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(held: Option<u64>, xids: i32, visible: bool) -> Holder {
        Holder {
            kind: "session".into(),
            pid: Some(4711),
            name: Some("forgotten dashboard query".into()),
            user: Some("postgres".into()),
            client_addr: None,
            state: visible.then(|| "idle in transaction".into()),
            held_for: held.map(Duration::from_secs),
            state_for: held.map(Duration::from_secs),
            snapshot_xids: Some(xids),
            snapshot: Some("1234".into()),
            details_visible: visible,
            end_with: "SELECT pg_terminate_backend(4711);".into(),
        }
    }

    #[test]
    fn a_snapshot_held_past_the_limit_is_named_with_its_cost_and_its_end() {
        let h = Horizon {
            holders: vec![session(Some(725), 9000, true)],
            dead_rows: 31_000,
            live_rows: 2_000,
        };
        assert_eq!(finding(&h, Duration::from_secs(900)), Finding::Clear);
        let Finding::Held(holder) = finding(&h, Duration::from_secs(300)) else {
            panic!("not named");
        };
        let text = held_sentence(&h, holder, holder.held_for.unwrap(), false);
        assert_eq!(
            text,
            "session pid 4711 (application 'forgotten dashboard query', user postgres), idle in transaction for 12 min 5 s, has held a snapshot for 12 min 5 s (9000 transactions old): 31000 dead row versions in processing_jobs (2000 live) cannot be removed meanwhile, and every claim steps over the ones still in its index"
        );
        assert!(end_it(holder).contains("pg_terminate_backend(4711)"));
    }

    #[test]
    fn a_holder_whose_age_cannot_be_read_is_named_by_its_snapshot_alone() {
        let young = Horizon {
            holders: vec![session(None, XIDS_WORTH_NAMING - 1, false)],
            ..Default::default()
        };
        assert_eq!(finding(&young, Duration::ZERO), Finding::Clear);
        let old = Horizon {
            holders: vec![session(None, 5000, false)],
            ..Default::default()
        };
        let Finding::Unreadable(holder) = finding(&old, Duration::from_secs(300)) else {
            panic!("not named");
        };
        let text = unreadable_sentence(&old, holder);
        assert!(text.starts_with("session pid 4711 (application 'forgotten dashboard query', user postgres) holds the oldest snapshot (5000 transactions old); how long and in what state it is, xtract cannot read"), "{text}");
    }
}
