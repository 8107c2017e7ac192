-- Platforms: detected at insert so the claim can skip a paused platform,
-- paced through one table that every daemon shares, and the media facts and
-- progress an operator (and the app) can read.

alter table public.processing_jobs
    add column if not exists canonical_url        text,
    add column if not exists progress_percent     smallint,
    add column if not exists media_id             text,
    add column if not exists media_title          text,
    add column if not exists media_uploader       text,
    add column if not exists media_duration_secs  double precision,
    add column if not exists pauses               integer not null default 0;

comment on column public.processing_jobs.pauses is 'Times this job waited for its platform to stop rate-limiting us (not counted as attempts; capped by XTRACT_MAX_PAUSES).';

comment on column public.processing_jobs.platform is 'instagram, tiktok, youtube or other: from the link''s host.';
comment on column public.processing_jobs.canonical_url is 'The link in one standard form (tracking parameters removed), for finding repeats.';
comment on column public.processing_jobs.progress_percent is 'Download progress while processing, 0-100.';

alter table public.audio_files
    add column if not exists audio_format text,
    add column if not exists reused_from_job_id uuid;

comment on column public.audio_files.audio_format is 'm4a, mp3, opus or original: the XTRACT_AUDIO_FORMAT it was made with.';
comment on column public.audio_files.reused_from_job_id is 'Copied from this earlier job''s audio instead of downloading the video again.';

-- Finding an earlier job for the same video.
create index if not exists processing_jobs_canonical_idx
    on public.processing_jobs (canonical_url) where status = 'completed';

-- The host decides the platform. The daemon's URL rules are the authority
-- (and correct this at claim time); this early guess lets the claim query
-- respect platform pauses.
create or replace function xtract.detect_platform(url text) returns text
language sql immutable set search_path = ''
as $$
    select case
        when host ~ '(^|\.)(instagram\.com|instagr\.am)$' then 'instagram'
        when host ~ '(^|\.)tiktok\.com$' then 'tiktok'
        when host ~ '(^|\.)(youtube\.com|youtu\.be|youtube-nocookie\.com)$' then 'youtube'
        else 'other'
    end
    from (select lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)')) as host) as h
$$;

-- The insert trigger that sets it is in 004_worker_and_checks.sql. Rows
-- adopted from the old service are filled in without their `updated_at`
-- changing (the update trigger is off for this one statement): their old
-- columns stay as they were.
alter table public.processing_jobs disable trigger processing_jobs_before_update;
update public.processing_jobs
set platform = xtract.detect_platform(original_url)
where platform is null;
alter table public.processing_jobs enable trigger processing_jobs_before_update;

-- One row per platform and egress (the address requests leave from): the
-- next moment a request may go out, and a pause after the platform pushed
-- back. Shared by every daemon, so adding daemons never multiplies the rate
-- toward a platform, and a restart does not forget a pause.
create table if not exists xtract.platform_pacing (
    platform         text not null,
    egress_key       text not null,
    next_request_at  timestamptz not null default now(),
    paused_until     timestamptz,
    pause_reason     text,
    updated_at       timestamptz not null default now(),
    primary key (platform, egress_key)
);

comment on table xtract.platform_pacing is
    'Request pacing per platform and egress (host or proxy). paused_until: the platform rate-limited us; its jobs wait until then. Clear paused_until to resume early.';
