-- The old service's HTTP API (019): the daemon inserts a job for the user
-- the access token names, under the same per-user limit as the app's own
-- inserts. That limit is the insert policy's `xtract.may_enqueue`, which
-- only `authenticated` may call (100, 101); the daemon's role calls it too,
-- with the user's claims set for the transaction as PostgREST sets them,
-- so that auth.uid() inside it is that user. The function counts and locks
-- only the caller's own jobs, and refuses any other user (101).
grant execute on function xtract.may_enqueue(uuid) to xtract_worker;
