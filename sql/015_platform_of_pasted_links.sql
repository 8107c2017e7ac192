-- The platform guess reads a link as the link check does (009) and the
-- daemon's URL rules do: blanks around it trimmed, the scheme optional
-- (people paste `www.tiktok.com/@a/video/1` from a share sheet, often with
-- a newline). The guess of 002 wanted a scheme at the very start, so such a
-- job waited as `other`: the claim took it while TikTok was paused, and
-- `xtract.queue_summary` counted it under the wrong platform until a worker
-- corrected it.

create or replace function xtract.detect_platform(url text) returns text
language sql immutable set search_path = ''
as $$
    select case
        when host ~ '(^|\.)(instagram\.com|instagr\.am)$' then 'instagram'
        when host ~ '(^|\.)tiktok\.com$' then 'tiktok'
        when host ~ '(^|\.)(youtube\.com|youtu\.be|youtube-nocookie\.com)$' then 'youtube'
        else 'other'
    end
    from (
        select lower(substring(
            regexp_replace(
                coalesce(url, ''),
                -- The blanks of link_problem (009).
                E'^[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200b\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+',
                ''),
            '^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:[^/?#@]*@)?([^/?#:]+)')) as host
    ) as h
$$;

-- Jobs still waiting get the right guess now (finished ones keep theirs:
-- the worker wrote the platform it found).
update public.processing_jobs
set platform = xtract.detect_platform(original_url)
where status = 'pending'
  and locked_by is null
  and platform is distinct from xtract.detect_platform(original_url);
