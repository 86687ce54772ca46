-- The PostgreSQL CPU of the message write path alone, per insert: 4,000 messages with
-- tokens and a model (so the catalog prices them) inserted in one transaction by the
-- operator's login (frontdesk_operator, which bypasses RLS, like the server's workers)
-- with the operator caller kind and one tenant's context, spread over its conversations,
-- and the backend's user+system CPU read from /proc before and after. Used to compare two schemas (e.g.
-- the one monolithic insert trigger against the ordered single-purpose triggers) on the
-- same cluster: interleave runs, the spread between runs is ±5 % here.
--
--   psql -X -q -U frontdesk_operator -d <database> -v tenant=<uuid> -f bench/message_triggers.sql
--
-- The tenant needs conversations; nothing is kept (the transaction is rolled back).
-- Prints "before <ticks>" and "after <ticks>" (clock ticks of 10 ms).
begin;
select set_config('frontdesk.caller_kind', 'operator', true),
       set_config('frontdesk.tenant_id', :'tenant', true) \g /dev/null
create temp table convs on commit drop as
    select id, row_number() over () - 1 as n from app.conversations where tenant_id = :'tenant'::uuid;
select pg_backend_pid() as pid \gset
\setenv PID :pid
\! awk '{print "before", $14+$15}' /proc/$PID/stat
do $$
declare
    c uuid[] := (select array_agg(id order by n) from convs);
    t uuid := current_setting('frontdesk.tenant_id')::uuid;
begin
    for i in 1..4000 loop
        insert into app.messages (tenant_id, id, conversation_id, role, content, prompt_tokens,
                                  completion_tokens, model, provider)
        values (t, app.uuid_v7(), c[1 + i % cardinality(c)], 'assistant', 'hello there', 12, 7,
                'gpt-4o-mini', 'openai');
    end loop;
end $$;
\! awk '{print "after", $14+$15}' /proc/$PID/stat
rollback;
