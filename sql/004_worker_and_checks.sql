-- The daemon's own least-privileged role, the link check every insert gets,
-- and the settings the database enforces for the daemon.

-- Log in as xtract_worker after giving it a password:
--   alter role xtract_worker with login password '...';
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'xtract_worker') then
        create role xtract_worker nologin;
    end if;
end $$;

grant usage on schema public, xtract to xtract_worker;
grant select, insert, update on public.processing_jobs, public.audio_files to xtract_worker;
grant select, insert, update on xtract.platform_pacing to xtract_worker;
grant select on xtract.schema_migrations to xtract_worker;

-- Settings the database enforces (the daemon writes them at start).
create table if not exists xtract.settings (
    id                    boolean primary key default true check (id),
    max_pending_per_user  integer not null default 20
);
insert into xtract.settings (id) values (true) on conflict (id) do nothing;
comment on table xtract.settings is 'Limits enforced by the database; xtract writes XTRACT_MAX_PENDING_PER_USER here at start.';
grant select, update on xtract.settings to xtract_worker;

-- A link a frontend can be told about at once, instead of a job that fails
-- later. The daemon's URL rules stay the authority; this catches the plain
-- mistakes with a message the app can show.
create or replace function xtract.check_link(url text) returns void
language plpgsql immutable set search_path = ''
as $$
begin
    if url is null or btrim(url) = '' then
        raise exception 'The link is empty.' using errcode = '22023', hint = 'Paste a link to one video.';
    elsif length(url) > 2048 then
        raise exception 'The link is too long (more than 2048 characters).' using errcode = '22023';
    elsif btrim(url) like '-%' then
        raise exception 'Links may not start with ''-''.' using errcode = '22023';
    elsif btrim(url) !~* '^(https?://)?[^[:space:]]+$' or btrim(url) ~* '^[a-z][a-z0-9+.-]*:' and btrim(url) !~* '^https?://' then
        raise exception 'Only http and https links are supported.' using errcode = '22023';
    elsif btrim(url) ~* '^https?://[^/?#]*@' then
        raise exception 'Links with a user name or password in them are not accepted.' using errcode = '22023';
    end if;
end $$;

-- On every insert: refuse a plainly wrong link, detect the platform (002),
-- and record the job's place in its user's queue (003).
create or replace function xtract.processing_jobs_before_insert() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
begin
    perform xtract.check_link(new.original_url);
    new.platform := xtract.detect_platform(new.original_url);
    -- Rows inserted earlier by the same statement are counted too.
    new.user_queue_position := (
        select count(*)
        from public.processing_jobs
        where user_id = new.user_id
          and status in ('pending', 'processing')
    );
    return new;
end $$;

drop trigger if exists processing_jobs_before_insert on public.processing_jobs;
create trigger processing_jobs_before_insert
    before insert on public.processing_jobs
    for each row execute function xtract.processing_jobs_before_insert();
