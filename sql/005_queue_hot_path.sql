-- The queue's hot path: every job is claimed and finished by an UPDATE of
-- processing_jobs, so what runs per updated row, and how good the planner's
-- picture of the table is, sets the pace.

-- 1. The notify trigger of 001 ran its function for every status change,
-- claims and completions included, to decide in PL/pgSQL that most of them
-- wake nobody. The same decision as trigger conditions: the function now
-- runs only when there is someone to tell.

drop trigger if exists processing_jobs_notify on public.processing_jobs;

drop trigger if exists processing_jobs_notify_insert on public.processing_jobs;
create trigger processing_jobs_notify_insert
    after insert on public.processing_jobs
    for each row
    when (new.status = 'pending')
    execute function xtract.processing_jobs_notify();

drop trigger if exists processing_jobs_notify_update on public.processing_jobs;
create trigger processing_jobs_notify_update
    after update of status on public.processing_jobs
    for each row
    when (new.status is distinct from old.status
          and (new.status = 'pending'
               or (new.status = 'cancelled' and old.status = 'processing')))
    execute function xtract.processing_jobs_notify();

-- 2. Each claim and each finish leaves a dead row version behind, and the
-- planner must know when a burst of pending jobs arrives (with stale
-- statistics it may sort the whole backlog on every claim instead of
-- walking the fair-order index). Vacuum and analyze this table after 2% of
-- it changed rather than the default 20% and 10%, so a table of a million
-- finished jobs is looked at again after 20,000 changes, not 100,000.
alter table public.processing_jobs set (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
