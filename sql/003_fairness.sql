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

-- The insert trigger that sets it is in 004_worker_and_checks.sql.
