-- The old service's HTTP API (issue 25). Apps still in users' hands call
-- `POST /extract-audio`; with XTRACT_COMPAT_ADDR set, the daemon answers it
-- by inserting the job as the app would and waiting for its outcome. Such
-- jobs are marked, so operators can count them and see when the last old
-- client called, and the endpoint hears when each one finishes.

alter table public.processing_jobs
    add column if not exists submitted_via text;

comment on column public.processing_jobs.submitted_via is
    'How the job arrived: null for a row an app inserted; ''old_api'' for POST /extract-audio, the old service''s HTTP API (xtract''s XTRACT_COMPAT_ADDR endpoint).';

-- "When did an old client last call?" reads one end of this index.
create index if not exists processing_jobs_old_api_idx
    on public.processing_jobs (created_at) where submitted_via = 'old_api';

-- The endpoint holds the old client's request open until its job finishes:
-- one notification per finished old-API job, naming it. Every other job's
-- status change is filtered out by the trigger's WHEN, in C, without
-- running the function: an endpoint that is off costs nothing here.
create or replace function xtract.processing_jobs_notify_finished() returns trigger
language plpgsql
security definer set search_path = ''
as $$
begin
    perform pg_notify('xtract_finished', new.id::text);
    return null;
end $$;

drop trigger if exists processing_jobs_notify_finished on public.processing_jobs;
create trigger processing_jobs_notify_finished
    after update of status on public.processing_jobs
    for each row
    when (new.submitted_via = 'old_api'
          and new.status is distinct from old.status
          and new.status in ('completed', 'failed', 'cancelled'))
    execute function xtract.processing_jobs_notify_finished();

-- Old-API jobs per day, newest first: the day the count reaches zero and
-- stays there, the last old app version is gone. For the dashboard only.
create or replace view xtract.old_api_usage as
select
    date_trunc('day', created_at) as day,
    count(*) as jobs,
    count(distinct user_id) as users,
    count(*) filter (where status = 'completed') as completed,
    count(*) filter (where status = 'failed') as failed,
    max(created_at) as last_call
from public.processing_jobs
where submitted_via = 'old_api'
group by 1
order by 1 desc;

comment on view xtract.old_api_usage is
    'Jobs that arrived through the old service''s POST /extract-audio, per day: when the count stays at zero, the old apps are gone and XTRACT_COMPAT_ADDR can be turned off.';

revoke all on xtract.old_api_usage from public;
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on xtract.old_api_usage from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant select on xtract.old_api_usage to service_role;
    end if;
end $$;
