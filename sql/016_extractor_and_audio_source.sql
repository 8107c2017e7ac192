-- Which of yt-dlp's extractors read the job's link (its `extractor_key`:
-- `TikTok`, `Instagram`, `Youtube`, `Generic`…). A link that a platform's own
-- extractor should read but `Generic` did is a sign of a changed link form;
-- a platform's failures gathered by extractor tell an operator which part
-- of yt-dlp broke.
alter table public.processing_jobs
    add column if not exists media_extractor text;

comment on column public.processing_jobs.media_extractor is
    'The yt-dlp extractor that read the link (TikTok, Instagram, Youtube, Generic…); null until the download started.';
