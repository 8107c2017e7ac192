-- The queue at a busy app's scale (issue 24): `processing_jobs` keeps
-- every job users ever made, and frontends insert in bursts. Nothing here
-- changes what a row means; what changes is what each statement reads.

-- 1. A burst is one statement. The insert trigger of 004 counted the
-- user's waiting and running jobs for every row, and that count includes
-- the rows the same statement inserted before: 10,000 rows of one user
-- read 50 million index entries (22 s where the rows alone take 0.6 s).
-- The count is now taken for a statement's first row of a user and carried
-- to the next rows of the same statement and user in a transaction-local
-- setting (PL/pgSQL has no other memory between rows): each further row is
-- one more, as the count would have said. A statement mixing users
-- interleaved counts again when the user changes, which is one index probe
-- of that user's few jobs.
create or replace function xtract.processing_jobs_before_insert() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
declare
    -- The statement (its start, the same for all its rows) and the user.
    this_run constant text := pg_catalog.statement_timestamp()::text || '/' || new.user_id::text;
    carried constant text := pg_catalog.current_setting('xtract.next_queue_position', true);
    place integer;
begin
    perform xtract.check_link(new.original_url);
    new.platform := xtract.detect_platform(new.original_url);
    if pg_catalog.split_part(carried, '=', 1) = this_run then
        place := pg_catalog.split_part(carried, '=', 2)::integer;
    else
        place := (
            select count(*)
            from public.processing_jobs
            where user_id = new.user_id
              and status in ('pending', 'processing')
        );
    end if;
    new.user_queue_position := place;
    if new.status in ('pending', 'processing') then
        place := place + 1;
    end if;
    -- Transaction-local: gone at commit or rollback (and undone with a
    -- rolled-back savepoint).
    perform pg_catalog.set_config('xtract.next_queue_position', this_run || '=' || place, true);
    return new;
end $$;

-- 2. One wake-up per inserting statement, decided once for the statement
-- (over its new rows) instead of a trigger call per row: pg_notify
-- collapses the repeats anyway.
create or replace function xtract.processing_jobs_notify_inserted() returns trigger
language plpgsql
security definer set search_path = ''
as $$
begin
    if exists (select 1 from inserted
               where status = 'pending' and locked_by is null and run_after <= now()) then
        perform pg_notify('xtract_jobs', '');
    end if;
    return null;
end $$;

drop trigger if exists processing_jobs_notify_insert on public.processing_jobs;
create trigger processing_jobs_notify_insert
    after insert on public.processing_jobs
    referencing new table as inserted
    for each statement
    execute function xtract.processing_jobs_notify_inserted();

-- 3. The dashboard views read what they show, not the whole history: on a
-- table of a million finished jobs, queue_summary and recent_failures took
-- 170-185 ms, and would take seconds at ten million.

-- The last failures, newest first: read from their own index, 100 entries.
-- Its upkeep is one index entry when a job fails.
create index if not exists processing_jobs_failed_idx
    on public.processing_jobs ((coalesce(finished_at, updated_at, created_at)) desc nulls last)
    where status = 'failed';

-- The planner's picture of "finished in the last 24 hours": the index of
-- 012 is partial, and PostgreSQL takes no statistics from a partial
-- index's expression, so it guessed a third of the table (333,000 of a
-- million rows for 2,700) and started parallel workers for the summary.
-- Statistics on the expression itself (PostgreSQL 14), kept by
-- autovacuum's ANALYZE like the others; gathered once here.
create statistics if not exists xtract.processing_jobs_finished_at
    on (coalesce(finished_at, updated_at, created_at))
    from public.processing_jobs;
analyze public.processing_jobs;

-- Waiting and running jobs counted in full (their partial index), finished
-- ones over the last 24 hours (the finished-jobs index of 012). Not
-- all-time totals kept by a trigger: that would be one more write to one
-- hot row on every claim and completion, which every daemon would queue
-- behind. `counted` (new, last) says which a row is.
create or replace view xtract.queue_summary as
with active as (
    select status,
           coalesce(platform, 'unknown') as platform,
           count(*) as jobs,
           min(created_at) as oldest_created,
           min(run_after) as first_run_after,
           min(heartbeat_at) as oldest_heartbeat
    from public.processing_jobs
    where status in ('pending', 'processing')
    group by status, coalesce(platform, 'unknown')
), finished as (
    select status,
           coalesce(platform, 'unknown') as platform,
           count(*) as jobs
    from public.processing_jobs
    where status in ('completed', 'failed', 'cancelled')
      and coalesce(finished_at, updated_at, created_at) > now() - interval '24 hours'
    group by status, coalesce(platform, 'unknown')
)
select
    status,
    platform,
    jobs,
    case when status = 'pending' then date_trunc('second', now() - oldest_created) end
        as oldest_waiting,
    case when status = 'pending' then first_run_after end as next_start,
    case when status = 'processing' then date_trunc('second', now() - oldest_heartbeat) end
        as oldest_heartbeat,
    case
        when status = 'pending' and first_run_after < now() - interval '5 minutes'
            then 'Ready jobs have waited over 5 minutes: is a daemon running (xtract doctor)? Is the platform paused (xtract.platform_status)?'
        when status = 'processing' and oldest_heartbeat < now() - interval '5 minutes'
            then 'A running job has not heart-beaten for 5 minutes: its daemon may be gone; it is taken back after the lease.'
    end as hint,
    'all'::text as counted
from active
union all
select status, platform, jobs, null, null, null, null, 'finished in the last 24 hours'
from finished;

comment on view xtract.queue_summary is
    'Jobs by status and platform: every waiting (pending) and running (processing) job; completed, failed and cancelled ones finished in the last 24 hours (counted over that window, from an index, so the view does not slow down as history grows; `counted` says which). For waiting jobs the age of the oldest and the next start; hint says what looks stuck.';

-- Same columns and order as 012; sorted by the failed-jobs index (rows the
-- old service left without finished_at or updated_at sort by created_at
-- instead of last).
create or replace view xtract.recent_failures as
select
    id,
    user_id,
    platform,
    error_code,
    error_message,
    xtract.operator_advice(error_code) as what_to_do,
    error_detail,
    attempts,
    original_url,
    coalesce(finished_at, updated_at) as finished_at
from public.processing_jobs
where status = 'failed'
order by coalesce(finished_at, updated_at, created_at) desc nulls last
limit 100;

comment on view xtract.recent_failures is
    'The last 100 failed jobs, newest first, read from their own index (the view does not slow down as history grows). Retry one by setting its status to pending in processing_jobs.';

-- The waiting jobs of each platform counted once, not once per egress row.
create or replace view xtract.platform_status as
with waiting as (
    select platform, count(*) as jobs
    from public.processing_jobs
    where status = 'pending'
    group by platform
)
select
    p.platform,
    p.egress_key as egress,
    case when p.paused_until > now() then p.paused_until end as paused_until,
    case when p.paused_until > now() then p.pause_reason end as pause_reason,
    greatest(p.next_request_at, coalesce(p.paused_until, now()), now()) as next_free_slot,
    coalesce(w.jobs, 0) as jobs_waiting,
    case when p.paused_until > now()
        then 'Paused after the platform pushed back through this egress; its jobs go out through the platform''s other egresses meanwhile, and wait only while all are paused. Clear paused_until in xtract.platform_pacing to resume early.'
    end as hint,
    p.updated_at as last_change
from xtract.platform_pacing as p
left join waiting as w on w.platform = p.platform;

comment on view xtract.platform_status is
    'Per platform and egress: the pause (until, why), the next free request slot, and the last change (a row of an egress nobody uses any more stops changing). jobs_waiting counts the platform''s waiting jobs, whatever egress serves them (all of them, read from the waiting jobs alone).';
