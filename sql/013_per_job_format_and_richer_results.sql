-- Per-job choices, and what comes back to the app.
--
-- A user may choose, at insert, the audio format and (for the encoded
-- formats) the bitrate of their job; null means the daemon's default
-- (XTRACT_AUDIO_FORMAT, and copying the source's audio when it fits). A
-- choice the daemon cannot honour is refused by the insert with a sentence
-- the app can show, like a bad link.
alter table public.processing_jobs
    add column if not exists audio_format        text,
    add column if not exists audio_bitrate_kbps  integer;

comment on column public.processing_jobs.audio_format is
    'm4a, mp3, opus or original (the source''s audio unchanged); null: the daemon''s default.';
comment on column public.processing_jobs.audio_bitrate_kbps is
    '32-320 kb/s for m4a, mp3 or opus (the audio is then encoded at this rate); null: the default (the source''s audio copied when the format takes it).';

-- The audio row says what it is and where it came from.
alter table public.audio_files
    add column if not exists audio_bitrate_kbps  integer,
    add column if not exists title               text,
    add column if not exists uploader            text,
    add column if not exists platform            text,
    add column if not exists source_url          text,
    add column if not exists thumbnail_url       text;

comment on column public.audio_files.audio_bitrate_kbps is 'The bitrate the job asked for; null when it asked for none.';
comment on column public.audio_files.title is 'The video''s title, as the platform gives it (also tagged in the file).';
comment on column public.audio_files.uploader is 'Who posted the video (tagged as the artist).';
comment on column public.audio_files.platform is 'instagram, tiktok, youtube or other.';
comment on column public.audio_files.source_url is 'The link the job was made from.';
comment on column public.audio_files.thumbnail_url is 'The video''s thumbnail at the platform (also the file''s cover art where its format holds one).';

-- The choice, checked when the job is added.
create or replace function xtract.check_audio_choice(format text, bitrate integer) returns void
language plpgsql immutable set search_path = ''
as $$
begin
    if format is not null and format not in ('m4a', 'mp3', 'opus', 'original') then
        raise exception 'Unknown audio format "%".', format using errcode = '22023',
            hint = 'Choose m4a, mp3, opus or original, or leave it empty for the default.';
    elsif bitrate is not null and (bitrate < 32 or bitrate > 320) then
        raise exception 'The bitrate must be between 32 and 320 kb/s.' using errcode = '22023';
    elsif bitrate is not null and format = 'original' then
        raise exception 'A bitrate applies to m4a, mp3 and opus; "original" keeps the source''s audio as it is.'
            using errcode = '22023';
    end if;
end $$;

create or replace function xtract.processing_jobs_check_choice() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    perform xtract.check_audio_choice(new.audio_format, new.audio_bitrate_kbps);
    return new;
end $$;

drop trigger if exists processing_jobs_check_choice on public.processing_jobs;
create trigger processing_jobs_check_choice
    before insert or update of audio_format, audio_bitrate_kbps on public.processing_jobs
    for each row execute function xtract.processing_jobs_check_choice();
