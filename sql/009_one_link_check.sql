-- One link check (issue 11). The insert's check (006) and the daemon's URL
-- rules disagreed: the insert counted characters and the daemon bytes, the
-- insert trimmed only spaces and the daemon every Unicode blank, so a link
-- with a trailing newline was refused at insert and a no-break space inside
-- one passed it. This is `check_shape` of src/pipeline/url_rules.rs,
-- rule for rule and word for word; tests/link_cases.json is run through both.
--
-- Only the shape of the text is judged here. Whether a URL parser reads it,
-- which site it is for, whether the path is one video, and where its host
-- leads are the daemon's to say (the job then fails with the same kind of
-- sentence).
--
-- The character classes are code points, not the server's locale: blanks
-- are Unicode's White_Space plus the zero-width space and the byte-order
-- mark; control characters are Unicode's Cc. Letters are spelled out
-- ([A-Za-z], [Hh][Tt]...) so that no locale folds other characters into
-- them.

create or replace function xtract.link_problem(url text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
    blank constant text := E'\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200b\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff';
    control constant text := E'\\u0001-\\u001f\\u007f-\\u009f';
    link text;
    host text;
begin
    link := regexp_replace(coalesce(url, ''), '^[' || blank || ']+|[' || blank || ']+$', '', 'g');
    if link = '' then
        return 'The link is empty.';
    elsif length(link) > 2048 then
        return 'The link is too long (more than 2048 characters).';
    elsif link like '-%' then
        return 'Links may not start with ''-''.';
    elsif link ~ ('[' || blank || control || ']') then
        return 'Links may not contain spaces or control characters.';
    elsif link ~ '^[A-Za-z][A-Za-z0-9+.-]*:' and link !~ '^[Hh][Tt][Tt][Pp][Ss]?://' then
        return 'Only http and https links are supported.';
    elsif link ~ '^([Hh][Tt][Tt][Pp][Ss]?://)?[^/?#]*@' then
        return 'Links with a user name or password in them are not accepted.';
    end if;
    -- The site: a name with a dot, an address, or localhost (tests, demos).
    host := substring(link from '^(?:[Hh][Tt][Tt][Pp][Ss]?://)?([^/?#]*)');
    host := regexp_replace(host, ':[0-9]*$', '');
    if host = '' or (host !~ '\.' and host !~ '^\[' and host !~ '^[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]$') then
        return 'This is not a valid link.';
    end if;
    return null;
end $$;

comment on function xtract.link_problem(text) is
    'Why the insert refuses a link (the sentence the app shows), or null. The daemon''s check_shape in url_rules.rs says the same.';

-- What every insert runs (see 004): refuse with the sentence, and a hint.
create or replace function xtract.check_link(url text) returns void
language plpgsql immutable set search_path = ''
as $$
declare
    problem text := xtract.link_problem(url);
begin
    if problem is not null then
        raise exception '%', problem using errcode = '22023', hint = case problem
            when 'The link is empty.' then 'Paste a link to one video.'
            when 'This is not a valid link.' then 'Paste a link to one video.'
            when 'Links may not contain spaces or control characters.'
                then 'Paste the link alone, without the text around it.'
            else 'Check the link and paste it again.'
        end;
    end if;
end $$;
