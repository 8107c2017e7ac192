-- The link check every insert gets (see 004), in the order and the words of
-- the daemon's own URL rules, so that the app shows the same sentence the
-- daemon would have written: a pasted sentence ("check this https://…")
-- was told that only http and https are supported, and a word with no site
-- in it ("hello") was accepted, to fail later.

create or replace function xtract.check_link(url text) returns void
language plpgsql immutable set search_path = ''
as $$
declare
    link text := btrim(url);
    host text;
begin
    if link is null or link = '' then
        raise exception 'The link is empty.' using errcode = '22023', hint = 'Paste a link to one video.';
    elsif length(link) > 2048 then
        raise exception 'The link is too long (more than 2048 characters).' using errcode = '22023';
    elsif link like '-%' then
        raise exception 'Links may not start with ''-''.' using errcode = '22023';
    elsif link ~ '[[:space:][:cntrl:]]' then
        raise exception 'Links may not contain spaces or control characters.' using errcode = '22023',
            hint = 'Paste the link alone, without the text around it.';
    elsif link ~* '^[a-z][a-z0-9+.-]*:' and link !~* '^https?://' then
        raise exception 'Only http and https links are supported.' using errcode = '22023';
    elsif link ~* '^(https?://)?[^/?#]*@' then
        raise exception 'Links with a user name or password in them are not accepted.' using errcode = '22023';
    end if;
    -- The site: a name with a dot, an address, or localhost (tests, demos).
    host := substring(link from '^(?:[A-Za-z]+://)?([^/?#]*)');
    host := regexp_replace(host, ':[0-9]*$', '');
    if host = '' or (host !~ '\.' and host !~ '^\[' and lower(host) <> 'localhost') then
        raise exception 'This is not a valid link.' using errcode = '22023', hint = 'Paste a link to one video.';
    end if;
end $$;
