//! What rows went through, recorded by triggers with the database's clock:
//! where the code takes its turn, not when a process got round to it. Gaps
//! measured here do not grow with the machine's load (a stand-in's own
//! clock reading comes after its process started, which on two busy cores
//! can take a second).

use tokio_postgres::Client;
use uuid::Uuid;

/// Records every slot a pacing reservation takes and every turn a run's
/// first request is let go at (`Pacer::go`), in `public.pacing_log`.
pub async fn record_pacing(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE public.pacing_log (
                 seq bigserial, platform text, egress text, kind text,
                 at timestamptz, asked timestamptz);
             -- A reservation moves next_request_at past the slot it takes:
             -- the slot is what the row said was free, as the reservation
             -- itself reads it (RESERVE_EGRESS_SLOT); now() is its own.
             CREATE FUNCTION public.log_pacing() RETURNS trigger
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
             BEGIN
                 IF new.next_request_at IS DISTINCT FROM old.next_request_at THEN
                     INSERT INTO public.pacing_log (platform, egress, kind, at, asked)
                     VALUES (new.platform, new.egress_key, 'slot',
                             greatest(old.next_request_at, old.paused_until, now()), now());
                 END IF;
                 IF new.last_request_at IS DISTINCT FROM old.last_request_at THEN
                     INSERT INTO public.pacing_log (platform, egress, kind, at, asked)
                     VALUES (new.platform, new.egress_key, 'turn', new.last_request_at, now());
                 END IF;
                 RETURN new;
             END $$;
             CREATE TRIGGER log_pacing AFTER UPDATE ON xtract.platform_pacing
                 FOR EACH ROW EXECUTE FUNCTION public.log_pacing();",
        )
        .await
        .expect("record pacing");
}

/// One slot or turn: its egress, when it is (seconds since the epoch), and
/// when it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Paced {
    pub egress: String,
    pub at: f64,
    pub asked: f64,
}

impl Paced {
    /// How long the job waited for it, from the reservation.
    pub fn wait(&self) -> f64 {
        self.at - self.asked
    }
}

async fn paced(client: &Client, platform: &str, kind: &str) -> Vec<Paced> {
    client
        .query(
            "SELECT egress, extract(epoch FROM at)::float8, extract(epoch FROM asked)::float8
             FROM public.pacing_log WHERE platform = $1 AND kind = $2 ORDER BY at, seq",
            &[&platform, &kind],
        )
        .await
        .expect("read the pacing log")
        .iter()
        .map(|r| Paced {
            egress: r.get(0),
            at: r.get(1),
            asked: r.get(2),
        })
        .collect()
}

/// The slots reserved toward `platform`, in time order.
pub async fn slots(client: &Client, platform: &str) -> Vec<Paced> {
    paced(client, platform, "slot").await
}

/// The turns taken toward `platform` (first requests let go), in time order.
pub async fn turns(client: &Client, platform: &str) -> Vec<Paced> {
    paced(client, platform, "turn").await
}

/// Seconds between consecutive times.
pub fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The times of `egress` among `paced`.
pub fn through(paced: &[Paced], egress: &str) -> Vec<f64> {
    paced
        .iter()
        .filter(|p| p.egress == egress)
        .map(|p| p.at)
        .collect()
}

/// Records every change of a job row (status, attempts, run_after,
/// progress, heartbeat) in `public.job_log`.
pub async fn record_jobs(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE public.job_log (
                 seq bigserial, job uuid, status text, attempts int, run_after timestamptz,
                 progress smallint, beat boolean, at timestamptz DEFAULT clock_timestamp());
             CREATE FUNCTION public.log_job() RETURNS trigger
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
             BEGIN
                 INSERT INTO public.job_log (job, status, attempts, run_after, progress, beat)
                 VALUES (new.id, new.status, new.attempts, new.run_after, new.progress_percent,
                         new.heartbeat_at IS DISTINCT FROM old.heartbeat_at);
                 RETURN new;
             END $$;
             CREATE TRIGGER log_job AFTER UPDATE ON public.processing_jobs
                 FOR EACH ROW EXECUTE FUNCTION public.log_job();",
        )
        .await
        .expect("record job changes");
}

/// One change of a job row, as `record_jobs` saw it.
#[derive(Debug, Clone)]
pub struct JobChange {
    pub status: String,
    pub attempts: i32,
    /// Seconds since the epoch.
    pub run_after: Option<f64>,
    pub progress: Option<i16>,
    /// The heartbeat (lease) was renewed by this write.
    pub beat: bool,
    /// When it was written, seconds since the epoch.
    pub at: f64,
}

/// Every change of job `id`, in order.
pub async fn job_changes(client: &Client, id: Uuid) -> Vec<JobChange> {
    client
        .query(
            "SELECT status, attempts, extract(epoch FROM run_after)::float8, progress, beat,
                    extract(epoch FROM at)::float8
             FROM public.job_log WHERE job = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .expect("read the job log")
        .iter()
        .map(|r| JobChange {
            status: r.get(0),
            attempts: r.get(1),
            run_after: r.get(2),
            progress: r.get(3),
            beat: r.get(4),
            at: r.get(5),
        })
        .collect()
}
