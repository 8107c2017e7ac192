-- The old service's tables are the contract (shared reference: old-service.md).
-- Frontends written for it read `audio_files.filename`, `file_size INTEGER`
-- and `updated_at` on both tables; 001 created `file_name` and a bigint
-- size on a fresh database. After this migration an adopted project and a
-- fresh install have one schema: the old service's names and types, plus
-- what xtract added.

-- 1. `filename`, one word. A database that xtract created itself has
-- `file_name`: rename it (a catalog change, no rewrite). An adopted table
-- already has `filename` and is left alone.
do $$
begin
    if exists (select 1 from information_schema.columns
               where table_schema = 'public' and table_name = 'audio_files'
                 and column_name = 'file_name')
       and not exists (select 1 from information_schema.columns
                       where table_schema = 'public' and table_name = 'audio_files'
                         and column_name = 'filename') then
        alter table public.audio_files rename column file_name to filename;
    end if;
end $$;

-- 2. `file_size INTEGER`, as frontends (and the types generated for them)
-- read it. xtract keeps every stored file under 2 GiB (XTRACT_MAX_FILESIZE_MB
-- is capped at 2047, and the daemon checks each file before storing it), so
-- the old type holds every size it writes. A table xtract created with bigint
-- goes back to integer when every size fits; otherwise it stays bigint and
-- the notice says why (nothing is cut).
do $$
begin
    if (select data_type from information_schema.columns
        where table_schema = 'public' and table_name = 'audio_files'
          and column_name = 'file_size') = 'bigint' then
        if exists (select 1 from public.audio_files where file_size > 2147483647) then
            raise notice 'audio_files.file_size stays bigint: some rows hold sizes over 2 GiB';
        else
            alter table public.audio_files alter column file_size type integer;
        end if;
    end if;
end $$;

-- 3. `updated_at` on audio_files too, kept current on every change, whoever
-- makes it (the daemon, the dashboard, an app); and `duration`, which 001
-- put in the table it created but an adopted table never had.
alter table public.audio_files
    add column if not exists updated_at timestamptz default now(),
    add column if not exists duration double precision;

create or replace function xtract.touch_updated_at() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end $$;

drop trigger if exists audio_files_touch_updated_at on public.audio_files;
create trigger audio_files_touch_updated_at
    before update on public.audio_files
    for each row execute function xtract.touch_updated_at();

comment on column public.audio_files.filename is 'A name for the file a person recognises: the video''s title and the extension.';
comment on column public.audio_files.file_size is 'Bytes. INTEGER, as the old service defined it: xtract stores nothing of 2 GiB or more.';
comment on column public.audio_files.updated_at is 'When the row last changed (kept by a trigger).';
comment on column public.audio_files.duration is 'Length of the audio in seconds.';

-- 4. Rows the old service left `processing` when it stopped have no worker
-- and no heartbeat: give them one from their last change, so that the
-- reaper takes them back after the lease like any job whose worker died,
-- instead of leaving them processing for ever.
-- (The update trigger is off for this one statement: it would stamp
-- `updated_at`, and the old columns of existing rows stay as they were.)
alter table public.processing_jobs disable trigger processing_jobs_before_update;
update public.processing_jobs
set heartbeat_at = coalesce(updated_at, created_at, now())
where status = 'processing'
  and heartbeat_at is null;
alter table public.processing_jobs enable trigger processing_jobs_before_update;

-- 5. The bucket the daemon stores in, for the users' storage read policy
-- (sql/103): the daemon writes its XTRACT_STORAGE_BUCKET here at start,
-- `xtract migrate` too, so the policy follows the setting instead of naming
-- `audio-files`.
alter table xtract.settings
    add column if not exists storage_bucket text not null default 'audio-files';

create or replace function xtract.storage_bucket() returns text
language sql stable security definer set search_path = ''
as $$
    select storage_bucket from xtract.settings
$$;
revoke all on function xtract.storage_bucket() from public;
grant execute on function xtract.storage_bucket() to xtract_worker;
