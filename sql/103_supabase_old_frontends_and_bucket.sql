-- Frontends written for the old service insert `status = 'pending'`
-- themselves (the old table had no default). 100 granted users only
-- `user_id` and `original_url`, so their inserts were refused. They may name
-- the status too, and the policy holds it to 'pending': a user still cannot
-- insert a job in any other state.
grant insert (user_id, original_url, status) on public.processing_jobs to authenticated;

drop policy if exists "users add jobs for themselves" on public.processing_jobs;
create policy "users add jobs for themselves" on public.processing_jobs
    for insert to authenticated
    with check (user_id = auth.uid()
                and status = 'pending'
                and xtract.may_enqueue(user_id));

-- The users' read policy on storage named the bucket `audio-files`; with
-- XTRACT_STORAGE_BUCKET set to another bucket, users could not read their
-- own audio. It now follows the bucket the daemon uses (xtract.settings,
-- written by the daemon at start and by `xtract migrate`).
grant execute on function xtract.storage_bucket() to authenticated;

do $$
begin
    if to_regclass('storage.objects') is not null then
        drop policy if exists "users read their own audio objects" on storage.objects;
        create policy "users read their own audio objects" on storage.objects
            for select to authenticated
            using (bucket_id = xtract.storage_bucket()
                   and (storage.foldername(name))[1] = auth.uid()::text);
    end if;
end $$;
