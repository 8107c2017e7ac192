-- When a platform breaks (issue 21): xtract watches how yt-dlp does on each
-- platform, upgrades it when a platform's extractor stops working, tries
-- the new build on a job that failed before switching the platform to it,
-- and goes back when a new build does worse than the old one. Platforms
-- may run different builds (src/ops/heal). What the database holds:
--
-- - `xtract.ytdlp_runs`: one row per yt-dlp run of a job (its last
--   strategy's outcome), with the build that ran it: what the daemons judge
--   a platform's health and a build's success rate by;
-- - `xtract.platform_health`: what each machine's daemons concluded and
--   did, per platform, for the dashboard (`xtract.platform_status`);
-- - on the job: the build its latest run used, and the build it is to be
--   re-run on as a canary.

alter table public.processing_jobs
    add column if not exists ytdlp_build text,
    add column if not exists ytdlp_canary text;

comment on column public.processing_jobs.ytdlp_build is
    'The yt-dlp build (a virtualenv under the tools folder, e.g. 2026.10.26-1a2b3c4d) its latest download ran on.';
comment on column public.processing_jobs.ytdlp_canary is
    'Set by xtract when this job (which failed on the platform''s build) is re-run on a new yt-dlp build before the platform switches to it.';

create table if not exists xtract.ytdlp_runs (
    id          bigint generated always as identity primary key,
    at          timestamptz not null default now(),
    platform    text not null,
    build       text not null,
    job_id      uuid,
    ok          boolean not null,
    -- The job error's code when the run failed.
    error_code  text
);

comment on table xtract.ytdlp_runs is
    'One row per yt-dlp run of a job: platform, build, success or the error code. Kept 30 days.';

create index if not exists ytdlp_runs_platform_build_idx
    on xtract.ytdlp_runs (platform, build, id desc);
create index if not exists ytdlp_runs_at_idx on xtract.ytdlp_runs (at);

create table if not exists xtract.platform_health (
    platform     text not null,
    -- The machine (its daemons share one tools folder and one set of builds).
    host         text not null,
    -- healthy, broken, canary (a new build is being tried on a failed
    -- job), probation (a new build serves, compared with the old one),
    -- pinned (an operator chose the build).
    state        text not null,
    since        timestamptz not null default now(),
    build        text,
    auto_heal    boolean not null default true,
    pinned       text,
    -- What was tried last, and why, in a sentence.
    tried        text,
    tried_at     timestamptz,
    bad_builds   text[] not null default '{}',
    updated_at   timestamptz not null default now(),
    primary key (platform, host)
);

comment on table xtract.platform_health is
    'Per platform and machine: healthy or broken since when, the yt-dlp build it runs, what xtract tried last and why (written by the daemons).';

grant select, insert, delete on xtract.ytdlp_runs to xtract_worker;
grant select, insert, update on xtract.platform_health to xtract_worker;

-- Per platform and egress, as before (017: the waiting jobs counted once per
-- platform), and now per platform: healthy or broken since when, which
-- yt-dlp build serves it, what was tried. With several machines, the row of
-- a machine that finds it broken comes first.
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
    case
        when p.paused_until > now()
            then 'Paused after the platform pushed back through this egress; its jobs go out through the platform''s other egresses meanwhile, and wait only while all are paused. Clear paused_until in xtract.platform_pacing to resume early.'
        when h.state = 'broken'
            then 'yt-dlp no longer reads this platform: xtract upgrades it on its own (heal_tried says how far it got; XTRACT_AUTO_HEAL=off only reports). By hand: xtract tools upgrade, xtract tools pin.'
        when h.state in ('canary', 'probation')
            then 'A new yt-dlp build is being tried on this platform (heal_tried); the old one takes over again if it does worse.'
    end as hint,
    p.updated_at as last_change,
    h.state as health,
    h.since as health_since,
    h.build as ytdlp_build,
    h.tried as heal_tried,
    h.tried_at as heal_tried_at,
    h.pinned as ytdlp_pinned,
    h.bad_builds as ytdlp_bad_builds,
    h.host as health_host
from xtract.platform_pacing as p
left join waiting as w on w.platform = p.platform
left join lateral (
    select *
    from xtract.platform_health as ph
    where ph.platform = p.platform
    -- A broken report comes first while its machine keeps reporting (each
    -- daemon rewrites its row every minute); a machine that stopped or was
    -- renamed is shown only when no other reports.
    order by (ph.state = 'broken' and ph.updated_at > now() - interval '10 minutes') desc,
             ph.updated_at desc
    limit 1
) as h on true;

comment on view xtract.platform_status is
    'Per platform and egress: the pause (until, why), the next free request slot, and the last change (a row of an egress nobody uses any more stops changing). jobs_waiting counts the platform''s waiting jobs, whatever egress serves them. Per platform: health (healthy, broken, canary, probation, pinned) since health_since, the yt-dlp build, what xtract tried last and why (heal_tried).';

-- Only the dashboard's roles read them.
revoke all on xtract.platform_status, xtract.ytdlp_runs, xtract.platform_health from public;
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on xtract.platform_status, xtract.ytdlp_runs, xtract.platform_health from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant select on xtract.platform_status, xtract.platform_health to service_role;
    end if;
end $$;
