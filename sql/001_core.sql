-- Core schema: the two tables existing frontends use, plus what the queue
-- needs. Runs on plain PostgreSQL 14+ and on Supabase. Written to adopt
-- tables that already exist (created by the old service): every statement is
-- "if not exists", and columns are added, never renamed.

-- Internal objects live in their own schema: Supabase exposes `public` through
-- its REST API and grants anon/authenticated everything there by default.
create schema if not exists xtract;

create table if not exists public.audio_files (
    id          uuid primary key default gen_random_uuid(),
    user_id     uuid not null,
    file_name   text not null,
    file_url    text not null,
    file_size   bigint,
    duration    double precision,
    created_at  timestamptz not null default now()
);

create table if not exists public.processing_jobs (
    id                    uuid primary key default gen_random_uuid(),
    user_id               uuid not null,
    original_url          text not null,
    status                text not null default 'pending',
    result_audio_file_id  uuid references public.audio_files (id) on delete set null,
    error_message         text,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now()
);

-- What the queue needs, named for an operator reading the dashboard.
alter table public.processing_jobs
    alter column status set default 'pending',
    add column if not exists platform      text,
    add column if not exists attempts      integer not null default 0,
    add column if not exists run_after     timestamptz not null default now(),
    add column if not exists locked_by     text,
    add column if not exists heartbeat_at  timestamptz,
    add column if not exists started_at    timestamptz,
    add column if not exists finished_at   timestamptz,
    add column if not exists error_code    text,
    add column if not exists error_detail  text;

comment on column public.processing_jobs.status is
    'pending: waiting to run (see run_after); processing: a worker has it (locked_by); completed; failed (see error_message); cancelled. Set back to pending to retry.';
comment on column public.processing_jobs.attempts is 'How many times a worker has started this job.';
comment on column public.processing_jobs.run_after is 'The job will not start before this time (retry backoff, platform pause).';
comment on column public.processing_jobs.locked_by is 'The worker (host:pid/id) processing the job now.';
comment on column public.processing_jobs.heartbeat_at is 'Last sign of life from the worker; a stale one means the worker died and the job is handed to another.';
comment on column public.processing_jobs.error_code is 'Machine-readable reason of the last failure (see README: troubleshooting).';
comment on column public.processing_jobs.error_message is 'The last failure, in words a user understands.';
comment on column public.processing_jobs.error_detail is 'Technical detail of the last failure, for operators.';

do $$
begin
    if not exists (select 1 from pg_constraint
                   where conname = 'processing_jobs_status_check'
                     and conrelid = 'public.processing_jobs'::regclass) then
        alter table public.processing_jobs add constraint processing_jobs_status_check
            check (status in ('pending', 'processing', 'completed', 'failed', 'cancelled'));
    end if;
end $$;

alter table public.audio_files
    add column if not exists job_id        uuid,
    add column if not exists storage_path  text,
    add column if not exists content_type  text;

do $$
begin
    if not exists (select 1 from pg_constraint
                   where conname = 'audio_files_job_id_key'
                     and conrelid = 'public.audio_files'::regclass) then
        -- One audio file per job: a retried job overwrites its own row.
        alter table public.audio_files add constraint audio_files_job_id_key unique (job_id);
    end if;
    if not exists (select 1 from pg_constraint
                   where conname = 'audio_files_job_id_fkey'
                     and conrelid = 'public.audio_files'::regclass) then
        alter table public.audio_files add constraint audio_files_job_id_fkey
            foreign key (job_id) references public.processing_jobs (id) on delete set null;
    end if;
end $$;

-- The claim query reads only ready rows; the reaper only running ones.
create index if not exists processing_jobs_ready_idx
    on public.processing_jobs (run_after, created_at) where status = 'pending';
create index if not exists processing_jobs_running_idx
    on public.processing_jobs (heartbeat_at) where status = 'processing';
create index if not exists processing_jobs_user_idx
    on public.processing_jobs (user_id, created_at desc);
create index if not exists audio_files_user_idx on public.audio_files (user_id);

-- Bookkeeping on every change, wherever it comes from (daemon, dashboard, app).
create or replace function xtract.processing_jobs_before_update() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
begin
    new.updated_at := now();
    -- An operator (or the app) sets a finished job back to pending: that is a
    -- fresh start, not one more attempt of the old run.
    if new.status = 'pending' and old.status in ('failed', 'cancelled', 'completed') then
        new.attempts := 0;
        new.run_after := least(new.run_after, now());
        new.locked_by := null;
        new.heartbeat_at := null;
        new.started_at := null;
        new.finished_at := null;
        new.error_code := null;
        new.error_message := null;
        new.error_detail := null;
    end if;
    if new.status in ('completed', 'failed', 'cancelled') and old.status <> new.status then
        new.finished_at := coalesce(new.finished_at, now());
    end if;
    return new;
end $$;

drop trigger if exists processing_jobs_before_update on public.processing_jobs;
create trigger processing_jobs_before_update
    before update on public.processing_jobs
    for each row execute function xtract.processing_jobs_before_update();

-- Wake the daemons. `xtract_jobs` carries no payload so that a bulk insert
-- collapses into one notification per transaction; `xtract_cancel` names the
-- job a worker must stop.
create or replace function xtract.processing_jobs_notify() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
begin
    if new.status = 'pending' and new.run_after <= now()
       and (tg_op = 'INSERT' or old.status <> 'pending') then
        perform pg_notify('xtract_jobs', '');
    elsif tg_op = 'UPDATE' and new.status = 'cancelled' and old.status = 'processing' then
        perform pg_notify('xtract_cancel', new.id::text);
    end if;
    return null;
end $$;

drop trigger if exists processing_jobs_notify on public.processing_jobs;
create trigger processing_jobs_notify
    after insert or update of status on public.processing_jobs
    for each row execute function xtract.processing_jobs_notify();
