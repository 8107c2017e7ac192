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
