-- The platform guess reads a link's host as the daemon's URL parser does
-- (issue 23). Generated links showed the insert guessing `other` for links
-- the daemon then ran as YouTube or Instagram: the parser reads hosts by
-- IDNA's rules (UTS 46), which turn fullwidth letters into ASCII, drop
-- characters such as the soft hyphen and the word joiner, read the
-- ideographic full stops as dots, and the daemon ignores the root's
-- trailing dot. Such a job waited as `other`: the claim took it while its
-- platform was paused. The guess now does the same to the host: NFKC,
-- lower case, the characters IDNA ignores removed, the other full stops
-- read as dots, trailing dots dropped.

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
        select rtrim(
            translate(
                lower(normalize(raw_host, NFKC)),
                -- IDNA's full stops, then what it ignores (soft hyphen,
                -- combining grapheme joiner, Mongolian selectors, word
                -- joiner, invisible plus, variation selectors).
                E'\u3002\uff61\u00ad\u034f\u180b\u180c\u180d\u180f\u2060\u2064\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f',
                '..'),
            '.') as host
        from (
            select substring(
                regexp_replace(
                    coalesce(url, ''),
                    -- The blanks of link_problem (009).
                    E'^[\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200b\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+',
                    ''),
                '^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:[^/?#@]*@)?([^/?#:]+)') as raw_host
        ) as r
    ) as h
$$;

-- Jobs still waiting get the right guess now (finished ones keep theirs:
-- the worker wrote the platform it found).
update public.processing_jobs
set platform = xtract.detect_platform(original_url)
where status = 'pending'
  and locked_by is null
  and platform is distinct from xtract.detect_platform(original_url);
