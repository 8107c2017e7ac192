-- Users choose, at insert, whether their job keeps the post's audio or its
-- sound (016 checks the value and the link); still nothing else of the
-- daemon's.
grant insert (user_id, original_url, status, audio_format, audio_bitrate_kbps, audio_source)
    on public.processing_jobs to authenticated;
