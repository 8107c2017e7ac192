-- The pending limit (100) counts the jobs of the user an insert names. The
-- policy checks `user_id = auth.uid()` beside it, but SQL does not promise
-- which side of an AND runs first: an insert naming someone else could be
-- refused with *their* count ("You already have 17 videos waiting") and
-- take their lock. The check now counts only the caller's own jobs.

create or replace function xtract.may_enqueue(uid uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
    waiting integer;
    allowed integer;
begin
    if uid is distinct from auth.uid() then
        return false; -- the policy refuses it; say nothing about that user
    end if;
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
