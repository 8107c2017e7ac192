-- What an operator in the Supabase table editor needs at a glance (schema
-- `xtract`): what is waiting and for how long, what failed lately and what
-- to do about it, and which platforms are paused. Readable by the
-- dashboard's roles (the table owner, service_role), not by the app's.
-- And retention: finished jobs (and, if asked, their audio) deleted after
-- XTRACT_RETENTION_DAYS, by the daemon, in batches.

-- What to do about each error code, in a sentence for operators (the
-- README's troubleshooting table, short).
create or replace function xtract.operator_advice(code text) returns text
language sql immutable set search_path = ''
as $$
    select case code
        when 'rate_limited' then 'The platform is limiting this server: it pauses itself; add egresses or wait.'
        when 'bot_check' then 'The platform wants proof of a person: add cookies or a proof-of-origin token provider, or another egress.'
        when 'login_required' then 'Only signed-in viewers may see it: add a cookie file for the platform (XTRACT_COOKIES_DIR).'
        when 'private' then 'Private or deleted: nothing to do.'
        when 'unavailable' then 'Deleted or unavailable: nothing to do.'
        when 'copyright' then 'Blocked for copyright: nothing to do.'
        when 'geo_blocked' then 'Not available where this server is: an egress in another country could get it.'
        when 'age_restricted' then 'Age-restricted: needs cookies of an adult account.'
        when 'live_not_started' then 'A live stream or premiere: retry after it ends.'
        when 'unsupported_url' then 'Not a link xtract takes: nothing to do.'
        when 'invalid_url' then 'The link is wrong: nothing to do.'
        when 'no_formats' then 'No downloadable format: upgrade yt-dlp (xtract tools upgrade) if this repeats.'
        when 'no_audio' then 'The video has no sound: nothing to do.'
        when 'too_long' then 'Over XTRACT_MAX_DURATION_SECS: raise it if it should pass.'
        when 'too_large' then 'Over XTRACT_MAX_FILESIZE_MB or the bucket''s size limit.'
        when 'http_forbidden' then 'The platform refused the download: retried; upgrade yt-dlp if it repeats.'
        when 'not_found' then 'The video is gone or the link is wrong: nothing to do.'
        when 'network' then 'The platform could not be reached: check this server''s network.'
        when 'storage' then 'Storage refused or failed: run xtract doctor (key, bucket, limits).'
        when 'internal' then 'An unexpected fault: read error_detail and the daemon''s log.'
        when 'worker_lost' then 'The daemon running it stopped: check the service (journalctl -u xtract).'
        when 'timeout' then 'It ran past its time limit (XTRACT_JOB_TIMEOUT_SECS): check the platform and the network.'
        when 'extractor_outdated' then 'yt-dlp no longer understands the site: upgrade it (xtract tools upgrade).'
        when 'drm_protected' then 'DRM-protected: nothing to do.'
        else 'See error_detail.'
    end
$$;

-- Jobs by status and platform. For waiting jobs: how long the oldest has
-- waited and when the next may start; a hint when something looks stuck.
create or replace view xtract.queue_summary as
select
    status,
    coalesce(platform, 'unknown') as platform,
    count(*) as jobs,
    case when status = 'pending' then date_trunc('second', now() - min(created_at)) end
        as oldest_waiting,
    case when status = 'pending' then min(run_after) end as next_start,
    case when status = 'processing' then date_trunc('second', now() - min(heartbeat_at)) end
        as oldest_heartbeat,
    case
        when status = 'pending' and min(run_after) < now() - interval '5 minutes'
            then 'Ready jobs have waited over 5 minutes: is a daemon running (xtract doctor)? Is the platform paused (xtract.platform_status)?'
        when status = 'processing' and min(heartbeat_at) < now() - interval '5 minutes'
            then 'A running job has not heart-beaten for 5 minutes: its daemon may be gone; it is taken back after the lease.'
    end as hint
from public.processing_jobs
group by status, coalesce(platform, 'unknown');

comment on view xtract.queue_summary is
    'Jobs by status and platform; for waiting jobs the age of the oldest and the next start; hint says what looks stuck.';

-- The last 100 failed jobs, newest first, with what to do.
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
order by coalesce(finished_at, updated_at) desc nulls last
limit 100;

comment on view xtract.recent_failures is
    'The last 100 failed jobs, newest first. Retry one by setting its status to pending in processing_jobs.';

-- Per platform and egress: paused until when and why, and the next free
-- request slot; with the jobs waiting for that platform.
create or replace view xtract.platform_status as
select
    p.platform,
    p.egress_key as egress,
    case when p.paused_until > now() then p.paused_until end as paused_until,
    case when p.paused_until > now() then p.pause_reason end as pause_reason,
    greatest(p.next_request_at, coalesce(p.paused_until, now()), now()) as next_free_slot,
    (select count(*) from public.processing_jobs as j
     where j.platform = p.platform and j.status = 'pending') as jobs_waiting,
    case when p.paused_until > now()
        then 'Paused after the platform pushed back. Clear paused_until in xtract.platform_pacing to resume early.'
    end as hint
from xtract.platform_pacing as p;

comment on view xtract.platform_status is
    'Per platform and egress: the pause (until, why) and the next free request slot.';

-- Only the dashboard's roles read them.
revoke all on xtract.queue_summary, xtract.recent_failures, xtract.platform_status from public;
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on xtract.queue_summary, xtract.recent_failures, xtract.platform_status from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant usage on schema xtract to service_role;
        grant select on xtract.queue_summary, xtract.recent_failures, xtract.platform_status to service_role;
    end if;
end $$;

-- Retention (XTRACT_RETENTION_DAYS): the daemon deletes finished jobs, and
-- with XTRACT_RETENTION_AUDIO their audio rows, oldest first. Rows the old
-- service wrote have no finished_at: their last change counts.
grant delete on public.processing_jobs, public.audio_files to xtract_worker;

create index if not exists processing_jobs_finished_idx
    on public.processing_jobs ((coalesce(finished_at, updated_at, created_at)))
    where status in ('completed', 'failed', 'cancelled');
