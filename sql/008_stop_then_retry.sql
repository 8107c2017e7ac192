-- Operator edits of a job a worker holds (issue 11).
--
-- Setting a `processing` job back to `pending` in the dashboard used to let
-- the next claim start it while its first run went on: two runs of one job
-- at once. It now means "stop, then retry": the job is pending from a fresh
-- start, but keeps `locked_by` (the worker still holding it) until that
-- worker has stopped the run, removed what it stored and let go. The claim
-- skips pending rows with a holder. A holder that died is cleared by the
-- reaper once its heartbeat is older than the lease.
--
-- The daemon's own ways back to pending (retry later, defer, release on
-- shutdown, reap) clear `locked_by` and `heartbeat_at` in the same
-- statement; any other change of a processing row to pending is a person's.

create or replace function xtract.processing_jobs_before_update() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
begin
    new.updated_at := now();
    -- A completed job has its audio (an object and an audio_files row):
    -- "cancelled" would say otherwise and leave both behind.
    if new.status = 'cancelled' and old.status = 'completed' then
        raise exception 'This job has already completed, so it cannot be cancelled.'
            using errcode = '55000',
                  hint = 'To remove its audio, delete the file in Storage and its audio_files row. To make it again, set status to pending.';
    end if;
    -- A person sets a job back to pending: a fresh start, not one more
    -- attempt of the old run.
    if new.status = 'pending' and old.status <> 'pending'
       and not (old.status = 'processing' and new.locked_by is null and new.heartbeat_at is null) then
        new.attempts := 0;
        new.run_after := least(new.run_after, now());
        new.started_at := null;
        new.finished_at := null;
        new.error_code := null;
        new.error_message := null;
        new.error_detail := null;
        -- A worker that still holds the job (running it, or still stopping
        -- after a cancel) keeps it until it has let go: nobody claims it
        -- before.
        new.locked_by := old.locked_by;
        new.heartbeat_at := case when old.locked_by is null then null else old.heartbeat_at end;
    end if;
    if new.status in ('completed', 'failed', 'cancelled') and old.status <> new.status then
        new.finished_at := coalesce(new.finished_at, now());
    end if;
    return new;
end $$;

-- Who to tell. `xtract_jobs` (no payload): a pending job nobody holds may
-- be claimed. `xtract_cancel` (the job's id): the worker holding a job that
-- left `processing` by someone else's hand (cancelled, set back to pending,
-- or marked done or failed) must stop it.
create or replace function xtract.processing_jobs_notify() returns trigger
language plpgsql
security definer set search_path = ''
as $$
begin
    if new.status = 'pending' and new.locked_by is null and new.run_after <= now() then
        perform pg_notify('xtract_jobs', '');
    elsif tg_op = 'UPDATE' and old.status = 'processing' and new.status <> 'processing'
          and new.locked_by is not null then
        perform pg_notify('xtract_cancel', new.id::text);
    end if;
    return null;
end $$;

-- The conditions keep the function off the hot path: claims (pending to
-- processing) and the daemon's completions wake nobody.
drop trigger if exists processing_jobs_notify_update on public.processing_jobs;
create trigger processing_jobs_notify_update
    after update of status, locked_by on public.processing_jobs
    for each row
    when ((new.status is distinct from old.status or new.locked_by is distinct from old.locked_by)
          and ((new.status = 'pending' and new.locked_by is null)
               or (old.status = 'processing' and new.status <> 'processing'
                   and new.locked_by is not null)))
    execute function xtract.processing_jobs_notify();

-- Jobs a worker still holds outside `processing` (stopping after an
-- operator's edit): few, and the reaper looks for the stale ones.
create index if not exists processing_jobs_held_idx
    on public.processing_jobs (heartbeat_at)
    where locked_by is not null and status <> 'processing';

comment on column public.processing_jobs.locked_by is
    'The worker (host:pid/id) holding the job: running it, or, on a pending or cancelled job, still stopping the run it was told to stop. Nobody claims a job while it is held.';
