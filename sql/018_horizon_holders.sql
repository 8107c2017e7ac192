-- Who holds the horizon back (issue 24). Every claim and every completion
-- leaves a dead row version in processing_jobs; vacuum removes it only once
-- no snapshot can still see it. A session idle in a transaction (a
-- forgotten dashboard query, an app's long transaction), a prepared
-- transaction or a replication slot keeps every version made since its
-- snapshot: they pile up, and each claim steps over them. `xtract doctor`
-- and the daemon (a warning in its log) name the holder, with this.
--
-- The daemon logs in as xtract_worker, which sees only the pid, user,
-- application and snapshot of other roles' sessions in pg_stat_activity,
-- not their state or since when (those need pg_read_all_stats, which
-- would also show it every session's query text). This function runs as
-- its owner, the role that ran the migrations (on Supabase `postgres`,
-- which holds pg_read_all_stats; a superuser on plain PostgreSQL), and
-- returns only what naming the holder takes: never a query's text. When
-- the owner itself cannot see a session's details, `details_visible` is
-- false and the caller says so.

create or replace function xtract.horizon_holders()
returns table (
    kind text,                 -- session, prepared transaction, replication slot
    pid integer,
    name text,                 -- application_name, prepared transaction gid, or slot name
    user_name text,
    client_addr text,
    state text,                -- e.g. 'idle in transaction'; null when not visible
    xact_age_secs double precision,   -- since its transaction (or preparation) began
    state_age_secs double precision,  -- since its state last changed (idle for ...)
    snapshot_xids integer,     -- transactions begun since its snapshot
    snapshot text,             -- the snapshot's oldest transaction id (tells one snapshot from the next)
    details_visible boolean,
    end_with text              -- the statement that ends it
)
language sql stable security definer set search_path = ''
as $$
    select 'session',
           a.pid,
           a.application_name,
           a.usename::text,
           pg_catalog.host(a.client_addr),
           a.state,
           extract(epoch from pg_catalog.now() - a.xact_start)::float8,
           extract(epoch from pg_catalog.now() - a.state_change)::float8,
           greatest(pg_catalog.age(a.backend_xmin), pg_catalog.age(a.backend_xid)),
           coalesce(a.backend_xmin, a.backend_xid)::text,
           a.state is not null,
           pg_catalog.format('SELECT pg_terminate_backend(%s);', a.pid)
    from pg_catalog.pg_stat_activity as a
    where (a.backend_xmin is not null or a.backend_xid is not null)
      and a.pid <> pg_catalog.pg_backend_pid()
      -- Only sessions of this database hold back its tables' cleanup
      -- (a standby's feedback arrives through a walsender).
      and (a.datname = pg_catalog.current_database() or a.backend_type = 'walsender')
      -- VACUUM's own snapshot is ignored by the horizon.
      and a.backend_type is distinct from 'autovacuum worker'
    union all
    select 'prepared transaction',
           null,
           p.gid,
           p.owner::text,
           null,
           'prepared',
           extract(epoch from pg_catalog.now() - p.prepared)::float8,
           extract(epoch from pg_catalog.now() - p.prepared)::float8,
           pg_catalog.age(p.transaction),
           p.transaction::text,
           true,
           pg_catalog.format('ROLLBACK PREPARED %L;  -- or COMMIT PREPARED, if it should have happened', p.gid)
    from pg_catalog.pg_prepared_xacts as p
    where p.database = pg_catalog.current_database()
    union all
    select 'replication slot',
           s.active_pid,
           s.slot_name::text,
           null,
           null,
           case when s.active then 'active' else 'inactive' end,
           null,
           null,
           pg_catalog.age(s.xmin),
           s.xmin::text,
           true,
           pg_catalog.format('SELECT pg_drop_replication_slot(%L);  -- only if nothing reads from it any more', s.slot_name)
    from pg_catalog.pg_replication_slots as s
    where s.xmin is not null
    order by 9 desc nulls last
$$;

comment on function xtract.horizon_holders() is
    'Sessions, prepared transactions and replication slots whose snapshot keeps dead row versions from being removed, oldest snapshot first, with the statement that ends each (xtract doctor reads it).';

revoke all on function xtract.horizon_holders() from public;
grant execute on function xtract.horizon_holders() to xtract_worker;
