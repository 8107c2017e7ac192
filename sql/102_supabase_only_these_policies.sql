-- Policies of the same kind are OR'd: one left on the adopted tables by the
-- old service or an earlier experiment ("users update own rows", a select
-- `using (true)`) would quietly widen every rule of 100. The two tables get
-- exactly the policies 100 defines; any other is dropped, by name, with a
-- notice the migration prints. (Run once: a policy an operator adds later on
-- purpose stays.)

do $$
declare
    p record;
begin
    for p in
        select tablename, policyname
        from pg_catalog.pg_policies
        where schemaname = 'public'
          and tablename in ('processing_jobs', 'audio_files')
          and policyname not in (
              'users read their own jobs',
              'users add jobs for themselves',
              'users cancel their own pending jobs',
              'users read their own audio',
              'xtract worker'
          )
    loop
        raise notice 'dropping policy "%" on public.%: xtract defines these tables'' access rules', p.policyname, p.tablename;
        execute format('drop policy %I on public.%I', p.policyname, p.tablename);
    end loop;
end $$;
