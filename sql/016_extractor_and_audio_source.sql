-- Which of yt-dlp's extractors read the job's link (its `extractor_key`:
-- `TikTok`, `Instagram`, `Youtube`, `Generic`…). A link that a platform's own
-- extractor should read but `Generic` did is a sign of a changed link form;
-- a platform's failures gathered by extractor tell an operator which part
-- of yt-dlp broke.
alter table public.processing_jobs
    add column if not exists media_extractor text;

comment on column public.processing_jobs.media_extractor is
    'The yt-dlp extractor that read the link (TikTok, Instagram, Youtube, Generic…); null until the download started.';

-- When the latest request of each platform through each egress really went
-- out (yt-dlp's first request of a run, held until then: pipeline/warm.rs).
-- Turns are booked ahead (`next_request_at`), but a run's set-up between
-- its turn and its first request varies with the machine's load; spacing
-- the requests themselves by `min_interval_secs` keeps what the platform
-- sees at the interval, not at the interval less that variance.
alter table xtract.platform_pacing
    add column if not exists last_request_at timestamptz;

comment on column xtract.platform_pacing.last_request_at is
    'When the latest request to the platform through this egress went out (the first request of a download).';

-- Which audio of a post the job keeps. A TikTok post names a "sound" beside
-- its video (the song it is set to); yt-dlp offers that song as a format of
-- its own. `post` (the default) is what the post sounds like: the video's
-- own track, the creator's voice over the song. `sound` is the song alone,
-- with its title and artist in the audio row. Only TikTok has one: the
-- insert refuses `sound` for other links, with the reason.
alter table public.processing_jobs
    add column if not exists audio_source text not null default 'post';

comment on column public.processing_jobs.audio_source is
    'post: the audio as heard in the post (default); sound: the song the TikTok post names (its "sound"), with its title and artist.';

create or replace function xtract.check_audio_source(source text, url text) returns void
language plpgsql immutable set search_path = ''
as $$
begin
    if source is null or source not in ('post', 'sound') then
        raise exception 'Unknown audio source "%".', source using errcode = '22023',
            hint = 'Choose post (the audio as heard in the post) or sound (the song a TikTok post names).';
    elsif source = 'sound' and xtract.detect_platform(url) <> 'tiktok' then
        raise exception 'Only TikTok posts have a separate sound to download; for this link, ask for the post''s audio.'
            using errcode = '22023',
            hint = 'Instagram and YouTube give no separate sound: leave audio_source as post.';
    end if;
end $$;

create or replace function xtract.processing_jobs_check_choice() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    perform xtract.check_audio_choice(new.audio_format, new.audio_bitrate_kbps);
    perform xtract.check_audio_source(new.audio_source, new.original_url);
    return new;
end $$;

drop trigger if exists processing_jobs_check_choice on public.processing_jobs;
create trigger processing_jobs_check_choice
    before insert or update of audio_format, audio_bitrate_kbps, audio_source, original_url
    on public.processing_jobs
    for each row execute function xtract.processing_jobs_check_choice();
