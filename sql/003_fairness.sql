-- Fair claiming between users. Each job records how many of its user's jobs
-- were already waiting or running when it was added; the claim takes lower
-- positions first. One user's 500 queued jobs get positions 0..499, another
-- user's single job gets 0 and runs next: round-robin by arrival, at the
-- cost of one count per insert, and claims stay an index scan.

alter table public.processing_jobs
    add column if not exists user_queue_position integer not null default 0;

comment on column public.processing_jobs.user_queue_position is
    'How many of this user''s jobs were waiting or running when this one was added. Lower numbers run first, so one user''s many jobs do not hold up other users.';

create index if not exists processing_jobs_user_active_idx
    on public.processing_jobs (user_id) where status in ('pending', 'processing');

create index if not exists processing_jobs_fair_ready_idx
    on public.processing_jobs (user_queue_position, run_after, created_at) where status = 'pending';

-- The plain ready index is superseded by the fair one.
drop index if exists public.processing_jobs_ready_idx;

create or replace function xtract.processing_jobs_before_insert() returns trigger
language plpgsql
-- Runs as the owner: the app's roles (anon, authenticated) insert and
-- cancel jobs but have no business in schema xtract.
security definer set search_path = ''
as $$
begin
    new.platform := xtract.detect_platform(new.original_url);
    -- Rows inserted earlier by the same statement are counted too.
    new.user_queue_position := (
        select count(*)
        from public.processing_jobs
        where user_id = new.user_id
          and status in ('pending', 'processing')
    );
    return new;
end $$;
