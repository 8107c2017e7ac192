-- Users choose their job's audio format and bitrate at insert (013 checks
-- the values); they still cannot name anything else of the daemon's.
grant insert (user_id, original_url, status, audio_format, audio_bitrate_kbps)
    on public.processing_jobs to authenticated;
