//! Every state transition of a job, one statement each. Parameters are
//! numbered; nothing here is built from strings but the claim's limit, a
//! number (see `claim_up_to`).

/// Columns a worker needs from a claimed row, named for `job_from_row`.
macro_rules! job_columns {
    () => {
        "j.id, j.user_id, j.original_url, j.attempts, j.platform,
         coalesce(j.created_at, j.run_after) AS created_at,
         extract(epoch FROM now() - greatest(j.created_at, j.run_after))::float8 AS waited_secs,
         j.pauses, j.audio_format, j.audio_bitrate_kbps, j.audio_source, j.ytdlp_canary"
    };
}

/// pending → processing, for up to `limit` ready jobs (`claim_up_to`):
/// each user's earliest first (`user_queue_position`, see
/// sql/003_fairness.sql), then oldest first. A pending job still held by a
/// worker (set back to pending by an operator while it ran, see sql/008)
/// waits until that worker lets go, so one job never runs twice at once.
/// SKIP LOCKED lets any number of daemons run this at once without waiting
/// on each other or taking the same row; the statement is its own short
/// transaction.
///
/// `$2`/`$3` are this daemon's routes (`EgressRoutes`: platform and egress
/// key, pair by pair): a platform's jobs are taken while at least one
/// egress it may use here is not paused, and not at all when it has none
/// here (another daemon's egresses serve them). The usable platforms are
/// worked out once per statement, not per row.
///
/// The limit is written into the text, not a parameter: with `LIMIT $n`
/// PostgreSQL cannot tell a plan for a few rows from one for many, so it
/// planned this statement afresh on every claim (0.2-0.5 ms, more than
/// running it); with the number in the text, the prepared statement keeps
/// one plan per limit after its fifth run, and a claim costs its execution
/// alone (see docs/benchmarks.md). A daemon uses at most its concurrency
/// of these texts, one prepared statement each per connection.
const CLAIM: &str = concat!(
    "
WITH usable AS (
    SELECT e.platform
    FROM unnest($2::text[], $3::text[]) AS e(platform, egress_key)
    WHERE NOT EXISTS (
        SELECT 1
        FROM xtract.platform_pacing AS p
        WHERE p.platform = e.platform
          AND p.egress_key = e.egress_key
          AND p.paused_until > now()
    )
), ready AS (
    SELECT id
    FROM processing_jobs AS pj
    WHERE status = 'pending'
      AND locked_by IS NULL
      AND run_after <= now()
      -- No platform yet (the worker reads the link): any daemon may.
      AND (pj.platform IS NULL OR pj.platform = ANY (ARRAY(SELECT platform FROM usable)))
    ORDER BY user_queue_position, run_after, created_at
    LIMIT {limit}
    FOR UPDATE SKIP LOCKED
)
UPDATE processing_jobs AS j
SET status = 'processing',
    attempts = j.attempts + 1,
    locked_by = $1,
    heartbeat_at = now(),
    started_at = coalesce(j.started_at, now())
FROM ready
WHERE j.id = ready.id
RETURNING ",
    job_columns!()
);

/// The claim's transaction does not wait for its commit record to reach
/// the disk (`synchronous_commit` off for it alone): a pickup is mostly
/// that wait otherwise (a WAL flush, 1-5 ms on a VM's disk, against
/// 0.1 ms for the statement). What a crash of the database can undo is the
/// claims of its last moment (PostgreSQL flushes within 3 x
/// wal_writer_delay, 0.6 s by default); a clean shutdown or restart undoes
/// nothing. Such a job is pending again, as if never claimed: another
/// worker may take it, and the worker that had it finds at its next
/// heartbeat that the job is no longer its own and stops it, as when a job
/// was taken over (its late result is never written). Every other write of
/// a job (its completion, its audio row, a failure) waits for the disk as
/// before.
pub const CLAIM_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit TO off";

/// CLAIM for up to `limit` jobs (a count of free slots, never text from
/// outside).
pub fn claim_up_to(limit: usize) -> String {
    CLAIM.replace("{limit}", &limit.max(1).to_string())
}

/// When the next pending job may run here (for sleeping until a retry): its
/// own time, or the first end of a pause among the egresses its platform
/// may use here (`$1`/`$2`, the routes as in CLAIM), whichever is later;
/// never a job of a platform with no egress here. Without the pauses, a
/// paused platform's backlog would look ready and keep the worker polling
/// until the pause ends.
pub const NEXT_RUN_AFTER: &str = "
WITH usable_at AS (
    SELECT e.platform, min(coalesce(p.paused_until, '-infinity')) AS at
    FROM unnest($1::text[], $2::text[]) AS e(platform, egress_key)
    LEFT JOIN xtract.platform_pacing AS p
           ON p.platform = e.platform
          AND p.egress_key = e.egress_key
          AND p.paused_until > now()
    GROUP BY e.platform
), waiting AS (
    -- Per platform first: one row each to join, not one per job.
    SELECT platform, min(run_after) AS run_after
    FROM processing_jobs
    WHERE status = 'pending'
      AND locked_by IS NULL
    GROUP BY platform
)
SELECT min(greatest(w.run_after, u.at))
FROM waiting AS w
LEFT JOIN usable_at AS u ON u.platform = w.platform
WHERE w.platform IS NULL OR u.platform IS NOT NULL";

/// Still ours? Returns the job's status while this worker holds it: not
/// `processing` once someone cancelled it, set it back to pending or marked
/// it by hand (the worker stops the run and keeps beating until it lets go);
/// no row once it was handed to another worker or finished.
pub const HEARTBEAT: &str = "
UPDATE processing_jobs
SET heartbeat_at = now()
WHERE id = $1 AND locked_by = $2
RETURNING status";

/// Upsert of the job's audio row: a retried job replaces its own row (its
/// `updated_at` says when). `file_size` is INTEGER in the old service's
/// table: the size goes in as int8 and the assignment cast checks it fits
/// (the pipeline never stores a file that would not).
pub const UPSERT_AUDIO_FILE: &str = "
INSERT INTO audio_files
    (user_id, job_id, filename, file_url, file_size, duration, storage_path, content_type,
     audio_format, reused_from_job_id, audio_bitrate_kbps, title, uploader, platform,
     source_url, thumbnail_url)
VALUES ($1, $2, $3, $4, $5::int8, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (job_id) DO UPDATE
SET filename = excluded.filename,
    file_url = excluded.file_url,
    file_size = excluded.file_size,
    duration = excluded.duration,
    storage_path = excluded.storage_path,
    content_type = excluded.content_type,
    audio_format = excluded.audio_format,
    reused_from_job_id = excluded.reused_from_job_id,
    audio_bitrate_kbps = excluded.audio_bitrate_kbps,
    title = excluded.title,
    uploader = excluded.uploader,
    platform = excluded.platform,
    source_url = excluded.source_url,
    thumbnail_url = excluded.thumbnail_url
RETURNING id";

/// processing → completed. Also accepts a job the reaper put back to pending
/// while we could not reach the database, and nobody has claimed since: the
/// work is done, so it is ours to finish. Never a pending job someone holds
/// (an operator's retry of our run: that run is void), and never a job the
/// reaper failed: its reaper has removed its objects (see REAP), so a late
/// result must not point at them; the late worker removes its own. `$3` may
/// be null (a job body that stores nothing).
pub const COMPLETE: &str = "
UPDATE processing_jobs
SET status = 'completed',
    result_audio_file_id = $3,
    locked_by = NULL,
    heartbeat_at = NULL,
    finished_at = now(),
    error_code = NULL,
    error_message = NULL,
    error_detail = NULL
WHERE id = $1
  AND ((status = 'processing' AND locked_by = $2)
       OR (status = 'pending' AND locked_by IS NULL))
RETURNING id";

/// COMPLETE for many jobs at once, none with an audio row (the completer).
pub const COMPLETE_MANY: &str = "
UPDATE processing_jobs
SET status = 'completed',
    result_audio_file_id = NULL,
    locked_by = NULL,
    heartbeat_at = NULL,
    finished_at = now(),
    error_code = NULL,
    error_message = NULL,
    error_detail = NULL
WHERE id = ANY($1)
  AND ((status = 'processing' AND locked_by = $2)
       OR (status = 'pending' AND locked_by IS NULL))
RETURNING id";

/// processing → failed, for good.
pub const FAIL: &str = "
UPDATE processing_jobs
SET status = 'failed',
    locked_by = NULL,
    heartbeat_at = NULL,
    error_code = $3,
    error_message = $4,
    error_detail = $5
WHERE id = $1 AND status = 'processing' AND locked_by = $2
RETURNING id";

/// processing → pending, to run again after `$3` seconds. The last error stays
/// visible beside the time the job will run again. `$7` is 1 to give the attempt back (platform pause), 0 when it
/// counts.
pub const RETRY_LATER: &str = "
UPDATE processing_jobs
SET status = 'pending',
    locked_by = NULL,
    heartbeat_at = NULL,
    run_after = now() + make_interval(secs => $3),
    error_code = $4,
    error_message = $5,
    error_detail = $6,
    attempts = attempts - $7,
    pauses = pauses + $7
WHERE id = $1 AND status = 'processing' AND locked_by = $2
RETURNING id";

/// processing → pending until `$3` seconds from now: the platform's turn is
/// far away. Not a failure: the attempt is given back, errors left alone.
pub const DEFER: &str = "
UPDATE processing_jobs
SET status = 'pending',
    locked_by = NULL,
    heartbeat_at = NULL,
    run_after = now() + make_interval(secs => $3),
    attempts = greatest(attempts - 1, 0)
WHERE id = $1 AND status = 'processing' AND locked_by = $2
RETURNING id";

/// processing → pending at once, without counting the attempt (shutdown).
pub const RELEASE: &str = "
UPDATE processing_jobs
SET status = 'pending',
    locked_by = NULL,
    heartbeat_at = NULL,
    run_after = now(),
    attempts = greatest(attempts - 1, 0)
WHERE id = $1 AND status = 'processing' AND locked_by = $2
RETURNING id";

/// Where a job this worker held stands now: its status, and whether this
/// worker still holds it. No row: the job was deleted.
pub const HOLD_STATE: &str = "
SELECT status, locked_by IS NOT DISTINCT FROM $2
FROM processing_jobs
WHERE id = $1";

/// A job this worker was told to stop (cancelled, set back to pending,
/// marked done or failed by hand), once its run is over and what it stored
/// is removed: the worker lets go, and a pending job may be claimed again
/// (the update trigger wakes the daemons).
pub const LET_GO: &str = "
UPDATE processing_jobs
SET locked_by = NULL,
    heartbeat_at = NULL
WHERE id = $1 AND locked_by = $2 AND status <> 'processing'
RETURNING id";

/// Jobs whose worker has been silent for `$1` seconds: a running one goes
/// back to pending, or fails when its attempts are used up (`$2` maps
/// platform → attempts); one its silent worker was told to stop is let go.
/// Returns the jobs (the claim's columns) and their new status: the reaper
/// removes the objects of the ones it failed.
///
/// Never the jobs in `$4`: the reaping worker holds them itself, running or
/// with a finished result waiting to be written back. And the lease counts
/// from the later of the last heartbeat and the database server's start
/// (`pg_postmaster_start_time()`): no worker can beat while the database is
/// down, so after a restart every worker gets a full lease to reach it
/// again before anyone judges it.
pub const REAP: &str = concat!(
    "
WITH lost AS (
    SELECT id
    FROM processing_jobs
    WHERE status = 'processing'
      AND heartbeat_at < now() - make_interval(secs => $1)
      AND pg_postmaster_start_time() < now() - make_interval(secs => $1)
      AND id <> ALL ($4::uuid[])
    FOR UPDATE SKIP LOCKED
), taken_back AS (
    UPDATE processing_jobs AS j
    SET status = CASE
            WHEN j.attempts >= coalesce(($2::jsonb ->> coalesce(j.platform, 'other'))::int, 3)
            THEN 'failed' ELSE 'pending' END,
        locked_by = NULL,
        heartbeat_at = NULL,
        run_after = now(),
        error_code = 'worker_lost',
        error_message = $3,
        error_detail = 'worker ' || coalesce(j.locked_by, '?') || ' stopped heart-beating'
    FROM lost
    WHERE j.id = lost.id
    RETURNING j.status, ",
    job_columns!(),
    "
), abandoned AS (
    SELECT id
    FROM processing_jobs
    WHERE locked_by IS NOT NULL
      AND status <> 'processing'
      AND coalesce(heartbeat_at, '-infinity') < now() - make_interval(secs => $1)
      AND pg_postmaster_start_time() < now() - make_interval(secs => $1)
      AND id <> ALL ($4::uuid[])
    FOR UPDATE SKIP LOCKED
), let_go AS (
    UPDATE processing_jobs AS j
    SET locked_by = NULL,
        heartbeat_at = NULL
    FROM abandoned
    WHERE j.id = abandoned.id
    RETURNING j.status, ",
    job_columns!(),
    "
)
SELECT * FROM taken_back
UNION ALL
SELECT * FROM let_go"
);

/// Records what the URL rules found, once the worker has parsed the link;
/// only while the job is still this worker's.
pub const SET_LINK: &str = "
UPDATE processing_jobs
SET platform = $3,
    canonical_url = $4
WHERE id = $1 AND locked_by = $2";

/// The newest finished audio of the same video in the same format and
/// bitrate, made by another job: reusing it spares the platform a request.
pub const FIND_REUSABLE_AUDIO: &str = "
SELECT j.id, a.storage_path, a.filename, a.file_size::int8, a.duration, a.content_type,
       j.media_id, j.media_title, j.media_uploader, j.media_duration_secs, a.thumbnail_url,
       a.title, a.uploader
FROM processing_jobs AS j
JOIN audio_files AS a ON a.id = j.result_audio_file_id
WHERE j.canonical_url = $1
  AND j.status = 'completed'
  AND j.id <> $2
  AND a.audio_format = $3
  AND a.audio_bitrate_kbps IS NOT DISTINCT FROM $4
  AND j.audio_source = $5
  AND a.storage_path IS NOT NULL
ORDER BY j.finished_at DESC
LIMIT 1";

/// What yt-dlp said about the video; only while the job is still ours.
pub const SET_MEDIA: &str = "
UPDATE processing_jobs
SET media_id = $3,
    media_title = $4,
    media_uploader = $5,
    media_duration_secs = $6,
    media_extractor = $7
WHERE id = $1 AND locked_by = $2";

/// A yt-dlp run of job `$1` on platform `$2` with build `$3` ended, ok
/// (`$4`) or with error code `$5`: one row for the platform's health
/// (ops/heal), and the job's row names the build (while worker `$6` holds
/// it).
pub const RECORD_RUN: &str = "
WITH run AS (
    INSERT INTO xtract.ytdlp_runs (platform, build, job_id, ok, error_code)
    VALUES ($2, $3, $1, $4, $5)
)
UPDATE processing_jobs
SET ytdlp_build = $3
WHERE id = $1 AND locked_by = $6";

/// Job `$1`, a canary, starts a run on build `$2` (while worker `$3` holds
/// it): its row names the build before the run ends, so that a canary that
/// hangs and is stopped (no run recorded) is still known to have run on it.
pub const RUN_BUILD: &str = "
UPDATE processing_jobs
SET ytdlp_build = $2
WHERE id = $1 AND locked_by = $3";

/// A run's first request is about to go to platform `$1` through egress
/// `$2`: it goes at the later of now and `$3` seconds after the latest one
/// (`wait`, seconds from now), which becomes the latest. `paused`: the
/// egress was paused for the platform since the turn was taken.
pub const REQUEST_GOES: &str = "
UPDATE xtract.platform_pacing
SET last_request_at = CASE
        WHEN paused_until > clock_timestamp() THEN last_request_at
        ELSE greatest(clock_timestamp(), last_request_at + make_interval(secs => $3))
    END
WHERE platform = $1 AND egress_key = $2
RETURNING extract(epoch FROM last_request_at - clock_timestamp())::float8 AS wait,
          coalesce(paused_until > clock_timestamp(), false) AS paused,
          extract(epoch FROM paused_until - clock_timestamp())::float8 AS paused_for";

/// Download progress, at most once a second. It renews the lease too:
/// every write of this row is an event to the app's Realtime subscription,
/// so while progress flows the heartbeat need not write (executor.rs).
pub const SET_PROGRESS: &str = "
UPDATE processing_jobs
SET progress_percent = $3,
    heartbeat_at = now()
WHERE id = $1 AND locked_by = $2 AND status = 'processing'";

/// Chooses and reserves in one statement: of the egresses `$2` that
/// platform `$1` may use, the one whose next request slot comes first
/// (paused ones count from the end of their pause; on a tie, the one idle
/// longest), takes that slot and moves its next free slot `$3` seconds
/// after it, and records the egress on job `$5` while worker `$6` holds
/// it. One row comes back, always:
/// - `egress`: the egress chosen (null when none of them has a pacing row
///   yet); `first_free`: in how many seconds its slot starts;
/// - `wait`: set when the slot was taken; null when it is more than `$4`
///   seconds away (the job is deferred, and a slot nobody uses does not
///   push later requests back), or when a racing daemon took that very
///   slot between this statement's look and its update: the update takes
///   a row only while its slot is still the one chosen (a row being
///   updated is waited for and looked at again), so no slot is ever
///   booked twice, and the caller simply chooses again;
/// - `known`: how many of the egresses have a pacing row (a new egress
///   has none until ENSURE_PACING_ROWS).
pub const RESERVE_EGRESS_SLOT: &str = "
WITH pick AS (
    SELECT egress_key, greatest(next_request_at, paused_until, now()) AS free_at
    FROM xtract.platform_pacing
    WHERE platform = $1 AND egress_key = ANY ($2::text[])
    ORDER BY free_at, next_request_at, egress_key
    LIMIT 1
), taken AS (
    UPDATE xtract.platform_pacing AS p
    SET next_request_at = pick.free_at + make_interval(secs => $3::float8),
        updated_at = now()
    FROM pick
    WHERE p.platform = $1
      AND p.egress_key = pick.egress_key
      AND greatest(p.next_request_at, p.paused_until, now()) = pick.free_at
      AND pick.free_at <= now() + make_interval(secs => $4::float8)
    RETURNING p.egress_key
), served AS (
    UPDATE processing_jobs AS j
    SET egress = taken.egress_key
    FROM taken
    WHERE j.id = $5 AND j.locked_by = $6 AND j.egress IS DISTINCT FROM taken.egress_key
)
SELECT pick.egress_key AS egress,
       greatest(extract(epoch FROM pick.free_at - now()), 0)::float8 AS first_free,
       CASE WHEN taken.egress_key IS NOT NULL
            THEN greatest(extract(epoch FROM pick.free_at - now()), 0)::float8 END AS wait,
       (SELECT count(*)::int4
        FROM xtract.platform_pacing
        WHERE platform = $1 AND egress_key = ANY ($2::text[])) AS known
FROM (SELECT 1) AS one
LEFT JOIN pick ON true
LEFT JOIN taken ON true";

/// A row when platform `$1` is paused on egress `$2` now.
pub const EGRESS_PAUSED: &str = "
SELECT 1
FROM xtract.platform_pacing
WHERE platform = $1 AND egress_key = $2 AND paused_until > now()";

/// The pacing rows of platform `$1` on egresses `$2` that do not exist yet
/// (a new egress), free at once.
pub const ENSURE_PACING_ROWS: &str = "
INSERT INTO xtract.platform_pacing (platform, egress_key)
SELECT $1, k FROM unnest($2::text[]) AS k
ON CONFLICT (platform, egress_key) DO NOTHING";

/// The platform pushed back: no requests to it from this egress for `$3`
/// seconds.
pub const PAUSE_PLATFORM: &str = "
INSERT INTO xtract.platform_pacing AS p (platform, egress_key, paused_until, pause_reason)
VALUES ($1, $2, now() + make_interval(secs => $3), $4)
ON CONFLICT (platform, egress_key) DO UPDATE
SET paused_until = greatest(coalesce(p.paused_until, now()), now() + make_interval(secs => $3)),
    pause_reason = $4,
    updated_at = now()";

/// What `xtract enqueue` does: exactly what a frontend's insert does.
pub const ENQUEUE: &str = "
INSERT INTO processing_jobs (user_id, original_url, audio_format, audio_bitrate_kbps)
VALUES ($1, $2, $3, $4)
RETURNING id";

/// One job as operators and `enqueue --wait` see it.
pub const JOB_ROW: &str = "
SELECT to_jsonb(j) FROM processing_jobs AS j WHERE id = $1";

/// The audio row of a job.
pub const AUDIO_ROW_OF_JOB: &str = "
SELECT to_jsonb(a) FROM audio_files AS a WHERE job_id = $1";

/// Is any work left? (`run --exit-when-idle`)
pub const ACTIVE_COUNT: &str = "
SELECT count(*) FROM processing_jobs WHERE status IN ('pending', 'processing')";

/// The paused pairs among this daemon's routes (`$1`/`$2`, as in CLAIM):
/// platform, egress key, and until when (text, for display).
pub const PAUSED_ROUTES: &str = "
SELECT p.platform, p.egress_key,
       to_char(p.paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
FROM unnest($1::text[], $2::text[]) AS e(platform, egress_key)
JOIN xtract.platform_pacing AS p
  ON p.platform = e.platform AND p.egress_key = e.egress_key
WHERE p.paused_until > now()
ORDER BY p.platform, p.egress_key";

// ---- Operators: `xtract doctor` and `xtract jobs` ----

/// The LISTEN self-test's notification (the channel is the test's own).
pub const SELF_TEST_NOTIFY: &str = "
SELECT pg_notify($1, $2)";

/// Who and where we are, and whether this connection is encrypted (no
/// pg_stat_ssl row counts as unencrypted).
pub const CONNECTION_FACTS: &str = "
SELECT current_user::text,
       current_setting('server_version'),
       coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)";

/// Who keeps dead row versions from being removed, oldest snapshot first
/// (sql/018: a function running as the schema's owner, which may read
/// other sessions' state and age where the daemon's role may not).
pub const HORIZON_HOLDERS: &str = "
SELECT kind, pid, name, user_name, client_addr, state, xact_age_secs, state_age_secs,
       snapshot_xids, snapshot, details_visible, end_with
FROM xtract.horizon_holders()";

/// What a held horizon costs the queue: dead and live row versions of
/// processing_jobs, as the statistics count them (readable by any role).
pub const QUEUE_TABLE_ROWS: &str = "
SELECT n_dead_tup, n_live_tup
FROM pg_catalog.pg_stat_user_tables
WHERE relid = 'public.processing_jobs'::regclass";

/// Jobs whose last failure, in the last 24 hours, was yt-dlp no longer
/// reading a site it should (`extractor_outdated`), failed or waiting for a
/// retry, by platform (`xtract doctor`).
pub const RECENT_EXTRACTOR_OUTDATED: &str = "
SELECT coalesce(platform, 'other') AS platform, count(*) AS jobs
FROM processing_jobs
WHERE error_code = 'extractor_outdated'
  AND status IN ('failed', 'pending')
  AND updated_at > now() - interval '24 hours'
GROUP BY 1
ORDER BY 2 DESC, 1";

/// Recent jobs, newest first; each filter applies when its parameter is not
/// null. The age comes from the database clock, not this machine's. Rows the
/// old service wrote may lack `created_at` (its column is nullable): they
/// come last, with no age.
pub const LIST_JOBS: &str = "
SELECT id, status, platform, attempts, user_id, original_url, error_code, created_at,
       extract(epoch FROM now() - created_at)::float8 AS age_secs, egress
FROM processing_jobs
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR platform = $2)
  AND ($3::uuid IS NULL OR user_id = $3)
ORDER BY created_at DESC NULLS LAST
LIMIT $4";

/// How many jobs are in each status (metrics, `xtract jobs`).
pub const COUNT_BY_STATUS: &str = "
SELECT status, count(*)
FROM processing_jobs
GROUP BY status";

/// The queue's depth for /metrics: waiting and running jobs only, read from
/// their partial index. Finished jobs pile up for ever; counting them on
/// every scrape would read the whole table (the completed and failed
/// counters say how many finish).
pub const ACTIVE_COUNT_BY_STATUS: &str = "
SELECT status, count(*)
FROM processing_jobs
WHERE status IN ('pending', 'processing')
GROUP BY status";

/// Platforms paused after a rate limit, per egress.
pub const PAUSED_PLATFORMS: &str = "
SELECT platform, egress_key, paused_until, pause_reason
FROM xtract.platform_pacing
WHERE paused_until > now()
ORDER BY platform, egress_key";

/// failed/cancelled → pending. The update trigger resets attempts and errors
/// and notifies the daemons.
pub const RETRY_JOBS: &str = "
UPDATE processing_jobs
SET status = 'pending'
WHERE id = ANY($1)
  AND status IN ('failed', 'cancelled')
RETURNING id";

/// Every failed job (of platform `$1` when not null) → pending.
pub const RETRY_ALL_FAILED: &str = "
UPDATE processing_jobs
SET status = 'pending'
WHERE status = 'failed'
  AND ($1::text IS NULL OR platform = $1)
RETURNING id";

/// pending/processing → cancelled. For a processing job the trigger sends
/// `xtract_cancel`, and its daemon stops the job's processes.
pub const CANCEL_JOBS: &str = "
UPDATE processing_jobs
SET status = 'cancelled'
WHERE id = ANY($1)
  AND status IN ('pending', 'processing')
RETURNING id";

/// The status of each of the given jobs that exists (to explain the ones a
/// transition skipped).
pub const STATUS_OF_JOBS: &str = "
SELECT id, status
FROM processing_jobs
WHERE id = ANY($1)";

/// The per-user limit the database enforces on inserts by users.
pub const SET_MAX_PENDING: &str = "
UPDATE xtract.settings
SET max_pending_per_user = $1
WHERE max_pending_per_user IS DISTINCT FROM $1";

/// The bucket the users' storage read policy names (sql/103).
pub const SET_STORAGE_BUCKET: &str = "
UPDATE xtract.settings
SET storage_bucket = $1
WHERE storage_bucket IS DISTINCT FROM $1";

// ---- Retention (XTRACT_RETENTION_DAYS) ----

/// Finished jobs whose last change is older than `$1` days, oldest first, at
/// most `$2`, with their audio row and its object. Locked for the deleting
/// transaction; SKIP LOCKED lets every daemon run retention at once.
pub const SELECT_EXPIRED_JOBS: &str = "
SELECT j.id, a.id, a.storage_path
FROM processing_jobs AS j
LEFT JOIN audio_files AS a ON a.id = j.result_audio_file_id
WHERE j.status IN ('completed', 'failed', 'cancelled')
  AND coalesce(j.finished_at, j.updated_at, j.created_at) < now() - make_interval(days => $1)
ORDER BY coalesce(j.finished_at, j.updated_at, j.created_at)
LIMIT $2
FOR UPDATE OF j SKIP LOCKED";

pub const DELETE_JOBS: &str = "
DELETE FROM processing_jobs
WHERE id = ANY($1)";

pub const DELETE_AUDIO_ROWS: &str = "
DELETE FROM audio_files
WHERE id = ANY($1)";

// ---- Platform health (ops/heal) ----

/// The latest `$3` runs of each (platform, build) pair in `$1`/`$2`,
/// newest first: what a platform's health and a build's success rate are
/// judged by.
pub const HEAL_RUNS: &str = "
SELECT q.platform, q.build, r.ok, r.error_code, r.at
FROM unnest($1::text[], $2::text[]) AS q(platform, build)
CROSS JOIN LATERAL (
    SELECT id, ok, error_code, at
    FROM xtract.ytdlp_runs AS r
    WHERE r.platform = q.platform AND r.build = q.build
    ORDER BY r.id DESC
    LIMIT $3
) AS r
ORDER BY r.id DESC";

/// Jobs of platform `$1` whose last run failed by the extractor's fault
/// (codes `$2`) within the last `$3` seconds, waiting for a retry or
/// failed, and held by nobody: newest first, what a canary runs on.
/// Two branches, so that each reads its own index (017's of failed jobs by
/// when they finished, 003's of pending ones), not the whole history.
pub const HEAL_FAILED_JOBS: &str = "
SELECT id
FROM (
    SELECT id, updated_at
    FROM processing_jobs
    WHERE status = 'failed'
      AND coalesce(finished_at, updated_at, created_at) > now() - make_interval(secs => $3)
      AND platform = $1
      AND locked_by IS NULL
      AND error_code = ANY($2)
    UNION ALL
    SELECT id, updated_at
    FROM processing_jobs
    WHERE status = 'pending'
      AND updated_at > now() - make_interval(secs => $3)
      AND platform = $1
      AND locked_by IS NULL
      AND error_code = ANY($2)
) AS failed
ORDER BY updated_at DESC
LIMIT 5";

/// A canary job's row: status, last error, and the build it is to run on.
pub const HEAL_JOB: &str = "
SELECT status, error_code, ytdlp_canary, ytdlp_build
FROM processing_jobs
WHERE id = $1";

/// Job `$1` runs again, now, on build `$2`: a failed job goes back to
/// pending (the update trigger gives it a fresh start), a waiting one is
/// pulled forward; its old error goes, so that what it ends with is the new
/// build's. The daemons are told.
pub const HEAL_MARK_CANARY: &str = "
WITH marked AS (
    UPDATE processing_jobs
    SET ytdlp_canary = $2,
        status = 'pending',
        run_after = now(),
        error_code = NULL,
        error_message = NULL,
        error_detail = NULL
    WHERE id = $1
      AND status IN ('failed', 'pending')
      AND locked_by IS NULL
    RETURNING id
)
SELECT id, pg_notify('xtract_jobs', '') FROM marked";

/// Job `$1` is no longer a canary.
pub const HEAL_UNMARK_CANARY: &str = "
UPDATE processing_jobs
SET ytdlp_canary = NULL
WHERE id = $1 AND ytdlp_canary IS NOT NULL";

/// The platform `$1` works again: its jobs that the extractor failed
/// (codes `$2`), or that failed as a canary of a build that did not work
/// (still marked), within the last `$3` seconds run again, but `$4`.
/// Failed ones go back to pending (the update trigger gives them a fresh
/// start, and the app sees them pending again), waiting ones are pulled
/// forward. With `$5` and `$6`, only those whose latest run was on another
/// build than `$5` and that first started before `$6` (the switch): a job
/// that started on the old build just before the switch fails after it.
/// The daemons are told when something changed. Returns how many of each.
pub const HEAL_RETRY_FAILED: &str = "
WITH failed AS (
    UPDATE processing_jobs
    SET status = 'pending',
        ytdlp_canary = NULL
    WHERE status = 'failed'
      AND coalesce(finished_at, updated_at, created_at) > now() - make_interval(secs => $3)
      AND platform = $1
      AND (error_code = ANY($2) OR ytdlp_canary IS NOT NULL)
      AND id IS DISTINCT FROM $4
      AND ($5::text IS NULL OR ytdlp_build <> $5)
      AND ($6::timestamptz IS NULL OR started_at < $6)
    RETURNING id
), waiting AS (
    UPDATE processing_jobs
    SET run_after = now()
    WHERE platform = $1
      AND status = 'pending'
      AND locked_by IS NULL
      AND error_code = ANY($2)
      AND run_after > now()
      AND id IS DISTINCT FROM $4
      AND ($5::text IS NULL OR ytdlp_build <> $5)
      AND ($6::timestamptz IS NULL OR started_at < $6)
    RETURNING id
), told AS (
    SELECT pg_notify('xtract_jobs', '')
    WHERE EXISTS (SELECT FROM failed) OR EXISTS (SELECT FROM waiting)
)
SELECT (SELECT count(*) FROM failed), (SELECT count(*) FROM waiting), (SELECT count(*) FROM told)";

/// What this machine's daemons concluded about platform `$1` (the
/// dashboard's `xtract.platform_status` reads it).
pub const HEAL_REPORT: &str = "
INSERT INTO xtract.platform_health AS h
    (platform, host, state, since, build, auto_heal, pinned, tried, tried_at, bad_builds, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
ON CONFLICT (platform, host) DO UPDATE
SET state = excluded.state,
    since = excluded.since,
    build = excluded.build,
    auto_heal = excluded.auto_heal,
    pinned = excluded.pinned,
    tried = excluded.tried,
    tried_at = excluded.tried_at,
    bad_builds = excluded.bad_builds,
    updated_at = now()";

/// Runs older than 30 days judge nothing any more.
pub const HEAL_PRUNE_RUNS: &str = "
DELETE FROM xtract.ytdlp_runs
WHERE at < now() - interval '30 days'";

// ---- the old service's HTTP API (ops/compat; sql/019, sql/107) ----

/// Whether the database lets the daemon insert under the app's per-user
/// limit: the insert policy's function exists (the Supabase layer, 100/101)
/// and the daemon's role may call it (107).
pub const OLD_API_SUPPORTED: &str = "
SELECT to_regprocedure('xtract.may_enqueue(uuid)') IS NOT NULL,
       coalesce(has_function_privilege(to_regprocedure('xtract.may_enqueue(uuid)'), 'EXECUTE'), false)";

/// The user's claims for this transaction, as PostgREST sets them for an
/// app's request: `auth.uid()` in the per-user limit is then that user.
pub const OLD_API_CLAIMS: &str = "
SELECT set_config('request.jwt.claims', $1, true)";

/// A job as the app inserts it (`user_id`, `original_url`, `status` =
/// pending) under the app's per-user limit, the insert policy's own check,
/// and marked as the old API's. The insert trigger checks the link and
/// sets the platform and the user's place in line, as for every insert.
pub const OLD_API_INSERT: &str = "
INSERT INTO processing_jobs (user_id, original_url, status, submitted_via)
SELECT $1, $2, 'pending', 'old_api'
WHERE xtract.may_enqueue($1)
RETURNING id";

/// The user's old-API job for this link that still waits or runs: the same
/// request again (a retry after a 504) waits for it instead of adding one.
pub const OLD_API_ACTIVE: &str = "
SELECT id
FROM processing_jobs
WHERE user_id = $1
  AND original_url = $2
  AND submitted_via = 'old_api'
  AND status IN ('pending', 'processing')
ORDER BY created_at DESC
LIMIT 1";

/// What the old API answers from: the job's status and result.
pub const OLD_API_OUTCOME: &str = "
SELECT status, result_audio_file_id, error_code, error_message
FROM processing_jobs
WHERE id = $1";
