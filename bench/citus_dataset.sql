-- The dataset of bench/citus.sh: the same rows on one PostgreSQL and on Citus. By default
-- 20 tenants, each with an owner, an assistant, an API key with a known secret and 20
-- conversations of 250 messages: 400 conversations, 100,000 messages.
--
-- Run as the superuser on a migrated, empty Frontdesk database (-v tenants=… conversations=…
-- messages=…). Every statement is its own transaction with
-- `set local session_replication_role = replica`, so no trigger fires (on Citus the SET
-- LOCAL reaches the workers' connections: citus.propagate_set_commands = local); what the
-- triggers would have written for the benchmarks is written here directly (the key's row in
-- app.api_key_hashes, each message's owner and search language), and the conversations'
-- counters are recomputed from their messages at the end. Not written: the history of
-- events, state transitions and daily usage rollups (neither request reads them; the
-- POSTs measured write their own).
--
-- API key secrets: 'fd_cbench' || tenant_n || 'k' || md5('citus-bench-' || tenant_n);
-- tenant n's slug is 'cbench-' || n.
\set ON_ERROR_STOP on
\if :{?tenants}
\else
    \set tenants 20
\endif
\if :{?conversations}
\else
    \set conversations 20
\endif
\if :{?messages}
\else
    \set messages 250
\endif
\timing on
select setseed(0.42);

-- A UUIDv7 for a given time (as app.uuid_v7() makes from the clock), session-local.
create function pg_temp.uuid_v7_at(ts timestamptz) returns uuid
    language sql volatile
    as $$
    select encode(int8send((floor(extract(epoch from ts) * 1000)::bigint << 16)
                           | 28672 | floor(random() * 4096)::bigint)
                  || substr(uuid_send(gen_random_uuid()), 9), 'hex')::uuid
$$;

create temp table t_tenants as
select n as tenant_n,
       pg_temp.uuid_v7_at(now() - interval '120 days' + n * interval '1 minute') as tenant_id,
       gen_random_uuid() as owner_id,
       pg_temp.uuid_v7_at(now() - interval '119 days' + n * interval '1 minute') as assistant_id,
       pg_temp.uuid_v7_at(now() - interval '118 days' + n * interval '1 minute') as key_id,
       'fd_cbench' || n || 'k' || md5('citus-bench-' || n) as secret
from generate_series(0, :tenants - 1) n;

create temp table t_conversations as
select t.tenant_id, t.tenant_n, t.assistant_id, t.owner_id, c_n, s.started,
       pg_temp.uuid_v7_at(s.started) as id, 20 + floor(random() * 581) as pace
from t_tenants t
cross join generate_series(0, :conversations - 1) c_n
cross join lateral (select now() - interval '90 days' + random() * interval '88 days' + c_n * interval '0 s' as started) s;

-- 500 texts of 100 to 400 characters of common words.
create temp table t_texts as
with words as (
    select string_to_array(
        'hello hi thanks thank you please could would can I we you our your the a an and or but '
        'to for with at on in from about this that these there here what when where which who how '
        'is are was be have has do does did will booking book table room reservation appointment '
        'tomorrow today tonight morning afternoon evening weekend price cost total payment card '
        'order delivery pickup address phone email confirm cancel change reschedule time open '
        'closed hours people guests two three four family coffee breakfast lunch dinner menu', ' ') as w
), lengths as (
    select i, 100 + floor(random() * 301)::int as len from generate_series(1, 500) i
)
select l.i, upper(left(t.body, 1)) || substr(t.body, 2) || '.' as content
from lengths l cross join words
cross join lateral (
    select regexp_replace(left(string_agg(p.word, ' '), l.len - 1), '\s+\S*$', '') as body
    from (select words.w[1 + floor(random() * cardinality(words.w))::int] as word
          from generate_series(1, l.len / 4 + 0 * l.i)) p
) t;

create temp table t_messages as
select c.tenant_id, c.id as conversation_id, c.owner_id, k,
       c.started + (k + random() * 0.8) * c.pace * interval '1 second' as created_at,
       1 + floor(random() * 500)::int as text_i
from t_conversations c cross join generate_series(0, :messages - 1) k;

begin;
set local session_replication_role = replica;
insert into app.users (id, email, name, created_at, updated_at, last_active_at)
select owner_id, format('owner-%s@cbench.example', tenant_n), format('Owner %s', tenant_n),
       now() - interval '120 days', now() - interval '120 days', now() - interval '120 days'
from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.tenants (id, slug, name, kind, timezone, locale, email, created_at, updated_at)
select tenant_id, 'cbench-' || tenant_n, format('Bench tenant %s', tenant_n), 'service',
       (array['UTC', 'Asia/Jakarta', 'Europe/Berlin', 'America/New_York'])[1 + tenant_n % 4],
       'en', format('hello-%s@cbench.example', tenant_n),
       now() - interval '120 days', now() - interval '120 days'
from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.memberships (tenant_id, user_id, role, created_at, updated_at)
select tenant_id, owner_id, 'owner', now() - interval '120 days', now() - interval '120 days'
from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.assistants (tenant_id, id, name, description, channel, llm_provider, llm_model,
                            system_prompt, flow_key, created_at, updated_at)
select tenant_id, assistant_id, format('Concierge %s', tenant_n), 'Answers customers', 'web',
       'openai', 'gpt-4o-mini', 'You are a friendly concierge.', 'assistant',
       now() - interval '119 days', now() - interval '119 days'
from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.api_keys (tenant_id, id, name, prefix, secret_hash, scopes, created_by, created_at)
select tenant_id, key_id, 'bench', left(secret, 11), sha256(convert_to(secret, 'UTF8')), array['full'],
       owner_id, now() - interval '118 days'
from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.api_key_hashes (secret_hash, tenant, key_id)
select sha256(convert_to(secret, 'UTF8')), tenant_id, key_id from t_tenants;
commit;

begin;
set local session_replication_role = replica;
insert into app.conversations (tenant_id, id, assistant_id, user_id, channel, title, flow_key, state,
                               last_activity_at, created_at, updated_at)
select tenant_id, id, assistant_id, owner_id, 'web', format('Conversation %s', c_n + 1),
       'assistant', 'open', started, started, started
from t_conversations order by started;
commit;

begin;
set local session_replication_role = replica;
insert into app.messages (tenant_id, id, conversation_id, owner_user_id, role, content,
                          prompt_tokens, completion_tokens, model, provider, cost_usd, cost_source,
                          latency_ms, metadata, search_language, created_at)
select m.tenant_id, pg_temp.uuid_v7_at(m.created_at), m.conversation_id, m.owner_id,
       case when m.k % 2 = 0 then 'user' else 'assistant' end, x.content,
       case when m.k % 2 = 1 then 120 + m.k * 45 end,
       case when m.k % 2 = 1 then greatest(1, length(x.content) / 4) end,
       case when m.k % 2 = 1 then 'gpt-4o-mini' end,
       case when m.k % 2 = 1 then 'openai' end,
       case when m.k % 2 = 1 then round((120 + m.k * 45) * 0.00000015 + greatest(1, length(x.content) / 4) * 0.0000006, 10) end,
       case when m.k % 2 = 1 then 'provided' end,
       case when m.k % 2 = 1 then 300 + floor(random() * 2700)::int end,
       '{}', 'simple', m.created_at
from t_messages m join t_texts x on x.i = m.text_i
order by m.created_at;
commit;

-- The conversations' counters from their messages (co-located on Citus: both by tenant).
begin;
set local session_replication_role = replica;
update app.conversations c
   set message_count = s.n, prompt_tokens = s.prompt, completion_tokens = s.completion,
       cost_usd = s.cost, last_activity_at = greatest(c.last_activity_at, s.last),
       updated_at = greatest(c.last_activity_at, s.last)
  from (select tenant_id, conversation_id, count(*) as n,
               sum(coalesce(prompt_tokens, 0)) as prompt, sum(coalesce(completion_tokens, 0)) as completion,
               sum(coalesce(cost_usd, 0)) as cost, max(created_at) as last
        from app.messages group by tenant_id, conversation_id) s
 where c.tenant_id = s.tenant_id and c.id = s.conversation_id;
commit;

select count(*) as messages from app.messages;
select sum(message_count) as counted from app.conversations;

vacuum (analyze) app.users, app.tenants, app.memberships, app.assistants, app.api_keys,
    app.api_key_hashes, app.conversations, app.messages;
checkpoint;
