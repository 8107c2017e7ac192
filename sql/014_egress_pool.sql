-- The egress pool (`[egress.NAME]` tables in the platforms file): requests
-- to a platform leave through proxies or this machine, each (platform,
-- egress) pair paced and paused on its own in xtract.platform_pacing, as
-- before. What is new in the database is only what operators read.

-- Which egress served the job.
alter table public.processing_jobs
    add column if not exists egress text;

comment on column public.processing_jobs.egress is
    'The egress the job''s latest download request went out through: a proxy''s name in the platforms file, or the daemon''s XTRACT_EGRESS_KEY for its own address. Null until a request left (audio reused from another job, local links).';

comment on column xtract.platform_pacing.egress_key is
    'A proxy''s name ([egress.NAME] in the platforms file; every daemon naming it shares this row), or a daemon''s XTRACT_EGRESS_KEY for its own address.';

-- Per platform and egress, as before; the hint says what a pause of one
-- egress means with a pool, and last_change tells a row in use from one of
-- an egress no daemon names any more (rows are never deleted by xtract).
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
        then 'Paused after the platform pushed back through this egress; its jobs go out through the platform''s other egresses meanwhile, and wait only while all are paused. Clear paused_until in xtract.platform_pacing to resume early.'
    end as hint,
    p.updated_at as last_change
from xtract.platform_pacing as p;

comment on view xtract.platform_status is
    'Per platform and egress: the pause (until, why), the next free request slot, and the last change (a row of an egress nobody uses any more stops changing). jobs_waiting counts the platform''s waiting jobs, whatever egress serves them.';
