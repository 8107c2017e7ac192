-- Supabase layer: row level security and grants for the app's roles.
-- Applied by `xtract migrate` when the `auth` schema exists; on a project
-- without it, paste it into the SQL editor. Idempotent.
--
-- Supabase grants anon and authenticated ALL on new public tables and
-- relies on RLS. Here every grant is taken back and given precisely.

alter table public.processing_jobs enable row level security;
alter table public.audio_files enable row level security;

revoke all on public.processing_jobs, public.audio_files from anon, authenticated;
-- A user chooses only the link (and names themself); status, attempts,
-- results and worker columns are the daemon's.
grant select on public.processing_jobs, public.audio_files to authenticated;
grant insert (user_id, original_url) on public.processing_jobs to authenticated;
grant update (status) on public.processing_jobs to authenticated;

-- At most xtract.settings.max_pending_per_user waiting or running jobs per
-- user. The advisory lock serialises one user's concurrent inserts, so two
-- at the limit cannot both pass.
create or replace function xtract.may_enqueue(uid uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
    waiting integer;
    allowed integer;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(uid::text, 7));
    select max_pending_per_user into allowed from xtract.settings;
    select count(*) into waiting
    from public.processing_jobs
    where user_id = uid and status in ('pending', 'processing');
    if waiting >= coalesce(allowed, 20) then
        raise exception 'You already have % videos waiting. Please wait for them to finish before adding more.', waiting
            using errcode = 'P0001', hint = 'The limit is ' || coalesce(allowed, 20) || ' at a time.';
    end if;
    return true;
end $$;
revoke all on function xtract.may_enqueue(uuid) from public;
grant usage on schema xtract to authenticated;
grant execute on function xtract.may_enqueue(uuid) to authenticated;

drop policy if exists "users read their own jobs" on public.processing_jobs;
create policy "users read their own jobs" on public.processing_jobs
    for select to authenticated using (user_id = auth.uid());

drop policy if exists "users add jobs for themselves" on public.processing_jobs;
create policy "users add jobs for themselves" on public.processing_jobs
    for insert to authenticated
    with check (user_id = auth.uid() and xtract.may_enqueue(user_id));

drop policy if exists "users cancel their own pending jobs" on public.processing_jobs;
create policy "users cancel their own pending jobs" on public.processing_jobs
    for update to authenticated
    using (user_id = auth.uid() and status = 'pending')
    with check (user_id = auth.uid() and status = 'cancelled');

drop policy if exists "users read their own audio" on public.audio_files;
create policy "users read their own audio" on public.audio_files
    for select to authenticated using (user_id = auth.uid());

-- The daemon's role works on every row.
drop policy if exists "xtract worker" on public.processing_jobs;
create policy "xtract worker" on public.processing_jobs
    to xtract_worker using (true) with check (true);
drop policy if exists "xtract worker" on public.audio_files;
create policy "xtract worker" on public.audio_files
    to xtract_worker using (true) with check (true);

do $$
begin
    -- Users read the objects in their own folder of the bucket.
    if to_regclass('storage.objects') is not null then
        drop policy if exists "users read their own audio objects" on storage.objects;
        create policy "users read their own audio objects" on storage.objects
            for select to authenticated
            using (bucket_id = 'audio-files' and (storage.foldername(name))[1] = auth.uid()::text);
    end if;
    -- Frontends watch their job go processing -> completed.
    if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        if not exists (select 1 from pg_publication_tables
                       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'processing_jobs') then
            alter publication supabase_realtime add table public.processing_jobs;
        end if;
        if not exists (select 1 from pg_publication_tables
                       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'audio_files') then
            alter publication supabase_realtime add table public.audio_files;
        end if;
    end if;
end $$;
