-- The dataset of the message benchmarks (bench/messages.sh): by default 100 tenants, each
-- with an owner, an assistant and 100 conversations of 100 messages: 10,000 conversations
-- and 1,000,000 messages, with their state transitions and events.
--
-- Run it once, as the superuser, on a migrated and otherwise empty Frontdesk database:
--
--     psql -h <data>/run -U postgres -d frontdesk -v ON_ERROR_STOP=1 -f bench/messages_dataset.sql
--     frontdesk db psql -- -v ON_ERROR_STOP=1 -f bench/messages_dataset.sql
--
-- Sizes are psql variables: -v tenants=100 -v conversations=100 -v messages=100 (per tenant
-- and per conversation). -v seed=0.42 makes contents, times and counts repeatable (the
-- random bits of the ids are not). It takes about 95 s on 2 cores (1.6 GB database).
--
-- How it is fast: everything is set-based (INSERT … SELECT over generate_series), in one
-- transaction, with `session_replication_role = replica` so that no trigger fires (the
-- superuser may set it; it also skips the foreign-key checks, which hold by construction).
-- What the triggers would have done is done here in bulk instead:
--   * conversations: flow, state and channel are set directly; their first state
--     transition and their conversation.created event are inserted from the rows;
--   * messages: owner_user_id and search_language are copied from the conversation and
--     the tenant, cost_source is 'provided' where there is a cost; one message.created
--     event per message is inserted from the rows; the daily usage rollups are inserted
--     from the messages' aggregates by tenant day; and each conversation's counters
--     (message_count, prompt_tokens, completion_tokens, cost_usd, last_activity_at) are
--     set by ONE UPDATE from the messages' aggregates; counters and rollups are checked
--     against the messages before the transaction commits.
-- The full-text search index on messages is dropped during the load and built again
-- afterwards (one sorted build instead of a million GIN insertions).
--
-- Ids are UUIDv7 built from each row's own (past) timestamp, like app.uuid_v7() builds
-- them from the clock, so `order by id` is chronological. Messages are inserted in time
-- order, interleaved across conversations, so a conversation's messages are spread over
-- the table's pages as in a live system.
--
-- It also creates the schema `bench`, which only the benchmarks use:
--   bench.uuid_v7_at(ts)  the UUIDv7 of a timestamp (the pgbench POST script uses it with
--                         clock_timestamp() for the message id the server makes in Rust)
--   bench.tenants         (tenant_n, tenant_id, owner_id): owner_id is the `sub` of the
--                         JWT that creates the tenant's API key
--   bench.targets         (n, tenant_n, tenant_id, conversation_id), n = tenant_n *
--                         conversations + conversation number: the pgbench scripts pick a
--                         random n and read the tenant and conversation ids here
-- The request login may read it (pgbench logs in as frontdesk_app, like the server's requests).
-- messages.sh adds bench.contents (the POST benchmark's contents) on each run.

\set ON_ERROR_STOP on
\if :{?tenants}
\else
    \set tenants 100
\endif
\if :{?conversations}
\else
    \set conversations 100
\endif
\if :{?messages}
\else
    \set messages 100
\endif
\if :{?seed}
\else
    \set seed 0.42
\endif
\timing on

begin;
-- Memory for the sorts and the index build (this session only).
set local work_mem = '1GB';
set local maintenance_work_mem = '1GB';
set local session_replication_role = replica;
select setseed(:seed);
-- (for the check at the end)
select :tenants::bigint * :conversations * :messages as want_messages \gset
set local bench.want_messages = :want_messages;

-- The schema of the benchmarks.
create schema bench;
comment on schema bench is 'the message benchmarks'' lookup tables (bench/messages_dataset.sql); not part of the product';
grant usage on schema bench to frontdesk_app;

-- A UUIDv7 for a given time: 48 bits of Unix milliseconds, the version nibble 7 and 12
-- random bits, then the last 8 bytes of a v4 UUID (random, variant bits already set).
-- One SQL expression without FROM, so the planner inlines it.
create function bench.uuid_v7_at(ts timestamptz) returns uuid
    language sql volatile parallel safe
    as $$
    select encode(int8send((floor(extract(epoch from ts) * 1000)::bigint << 16)
                           | 28672 -- 0x7000: version 7
                           | floor(random() * 4096)::bigint)
                  || substr(uuid_send(gen_random_uuid()), 9), 'hex')::uuid
$$;
grant execute on function bench.uuid_v7_at(timestamptz) to frontdesk_app;

-- ---------------------------------------------------------------------------------------
-- Tenants, their owners and their assistants. The dataset's clock: tenants were created
-- 120 days ago, conversations started between 90 and 2 days ago.

create table bench.tenants (
    tenant_n  integer primary key,
    tenant_id uuid not null unique,
    owner_id  uuid not null
);

insert into bench.tenants (tenant_n, tenant_id, owner_id)
select n, bench.uuid_v7_at(now() - interval '120 days' + n * interval '1 minute'), gen_random_uuid()
from generate_series(0, :tenants - 1) n;

insert into app.users (id, email, name, created_at, updated_at, last_active_at)
select owner_id, format('owner-%s@bench.example', tenant_n), format('Owner %s', tenant_n),
       now() - interval '120 days', now() - interval '120 days', now() - interval '120 days'
from bench.tenants;

insert into app.tenants (id, slug, name, kind, timezone, locale, email, created_at, updated_at)
select tenant_id, format('bench-%s', lpad(tenant_n::text, 4, '0')), format('Bench tenant %s', tenant_n),
       (array['restaurant', 'retail', 'service', 'other'])[1 + tenant_n % 4],
       (array['UTC', 'Asia/Jakarta', 'Europe/Berlin', 'America/New_York'])[1 + tenant_n % 4],
       'en', format('hello-%s@bench.example', tenant_n),
       now() - interval '120 days' + tenant_n * interval '1 minute',
       now() - interval '120 days' + tenant_n * interval '1 minute'
from bench.tenants;

insert into app.memberships (tenant_id, user_id, role, created_at, updated_at)
select tenant_id, owner_id, 'owner', now() - interval '120 days', now() - interval '120 days'
from bench.tenants;

create temp table bench_assistants as
select t.tenant_n, t.tenant_id,
       bench.uuid_v7_at(now() - interval '119 days' + t.tenant_n * interval '1 minute') as id,
       (array['web', 'whatsapp'])[1 + t.tenant_n % 2] as channel
from bench.tenants t;

insert into app.assistants (tenant_id, id, name, description, channel, llm_provider, llm_model,
                            system_prompt, flow_key, created_at, updated_at)
select tenant_id, id, format('Concierge %s', tenant_n), 'Answers customers and books appointments',
       channel, 'openai', 'gpt-4o-mini',
       'You are a friendly concierge. Answer briefly and offer to book an appointment.',
       'assistant', now() - interval '119 days', now() - interval '119 days'
from bench_assistants;

-- ---------------------------------------------------------------------------------------
-- Conversations: started at a random time between 90 and 2 days ago; each has its own
-- pace (seconds between messages, 20 to 600), so its messages span minutes to hours.
-- Owned by the tenant's owner (as if started in the dashboard); flow `assistant`, open.

create temp table bench_conversations as
select c.*, bench.uuid_v7_at(c.started) as id, 20 + floor(random() * 581) as pace
from (select t.tenant_id, t.tenant_n, a.id as assistant_id, t.owner_id as user_id, a.channel, c_n,
             now() - interval '90 days' + random() * interval '88 days' as started
      from bench.tenants t
      join bench_assistants a using (tenant_n)
      cross join generate_series(0, :conversations - 1) c_n) c;

insert into app.conversations (tenant_id, id, assistant_id, user_id, channel, title, flow_key, state,
                               last_activity_at, created_at, updated_at)
select tenant_id, id, assistant_id, user_id, channel, format('Conversation %s', c_n + 1),
       'assistant', 'open', started, started, started
from bench_conversations
order by started;

-- What app.conversations_record would have written: the first transition and the event.
insert into app.conversation_transitions (tenant_id, id, conversation_id, from_state, to_state, created_at)
select tenant_id, bench.uuid_v7_at(started), id, null, 'open', started
from bench_conversations
order by started;

-- (sequence: a placeholder until every event is in; numbered below)
insert into app.events (tenant_id, id, type, subject_id, data, created_at, sequence)
select c.tenant_id, bench.uuid_v7_at(c.started), 'conversation.created', c.id,
       jsonb_build_object('id', c.id, 'assistant_id', c.assistant_id, 'user_id', c.user_id,
                          'contact_id', null, 'channel', c.channel,
                          'title', format('Conversation %s', c.c_n + 1),
                          'flow', 'assistant', 'state', 'open', 'created_at', c.started),
       c.started, -row_number() over (partition by c.tenant_id order by c.started)
from bench_conversations c
order by c.started;

-- The benchmarks' lookup table: conversation n of the whole dataset.
create table bench.targets (
    n               integer primary key,
    tenant_n        integer not null,
    tenant_id       uuid not null,
    conversation_id uuid not null
);
insert into bench.targets (n, tenant_n, tenant_id, conversation_id)
select tenant_n * :conversations + (row_number() over (partition by tenant_n order by id))::int - 1,
       tenant_n, tenant_id, id
from bench_conversations;
grant select on bench.tenants, bench.targets to frontdesk_app;

-- ---------------------------------------------------------------------------------------
-- Message contents: a pool of 5,000 texts of 100 to 400 characters made of common words,
-- each message taking one at random.

create temp table bench_texts as
with words as (
    select string_to_array(
        'hello hi thanks thank you please could would can I we you our your the a an and or but '
        'to for with at on in from about this that these there here what when where which who how '
        'is are was be have has do does did will booking book table room reservation appointment '
        'tomorrow today tonight morning afternoon evening weekend monday tuesday friday saturday '
        'price prices cost total payment pay card cash invoice receipt discount offer promo menu '
        'order delivery pickup address phone email confirm confirmed cancel change reschedule time '
        'available availability open closed hours people guests two three four family kids '
        'vegetarian allergy spicy coffee breakfast lunch dinner dessert parking location near '
        'airport hotel spa massage haircut dentist clinic doctor service help question answer '
        'sure great perfect okay sorry unfortunately already still just also more less only '
        'minutes hour days week month next last first new same different possible need want like',
        ' ') as w
),
lengths as (
    select i, 100 + floor(random() * 301)::int as len from generate_series(1, 5000) i
)
select l.i,
       upper(left(t.body, 1)) || substr(t.body, 2) || '.' as content
from lengths l
cross join words
cross join lateral (
    -- about len / 4 words of 5.5 characters on average: always longer than len, then cut
    -- at the last whole word before len.
    select regexp_replace(left(string_agg(picked.word, ' '), l.len - 1), '\s+\S*$', '') as body
    from (select words.w[1 + floor(random() * cardinality(words.w))::int] as word
          from generate_series(1, l.len / 4)) picked
) t;
create unique index on bench_texts (i);

-- Each message's time: message k of a conversation comes (k + up to 0.8) × pace seconds
-- after the conversation started, so a conversation's messages are strictly in order.
create temp table bench_timeline as
select c.tenant_id, c.id as conversation_id, c.user_id, k,
       c.started + (k + random() * 0.8) * c.pace * interval '1 second' as created_at,
       1 + floor(random() * 5000)::int as text_i
from bench_conversations c
cross join generate_series(0, :messages - 1) k;

-- The search index is built again after the load (its definition is kept from the catalog).
select pg_get_indexdef('app.messages_search_idx'::regclass) as search_index_def \gset
drop index app.messages_search_idx;

-- Users write the even messages, the assistant answers with the odd ones and is billed
-- for them: a prompt that grows with the conversation, a completion of about one token per
-- four characters, gpt-4o-mini prices ($0.15 / $0.60 per million tokens).
insert into app.messages (tenant_id, id, conversation_id, owner_user_id, role, content,
                          prompt_tokens, completion_tokens, model, provider, cost_usd, cost_source,
                          latency_ms, metadata, search_language, created_at)
select m.tenant_id, bench.uuid_v7_at(m.created_at), m.conversation_id, m.user_id,
       m.role, m.content, m.prompt_tokens, m.completion_tokens,
       case when m.role = 'assistant' then 'gpt-4o-mini' end,
       case when m.role = 'assistant' then 'openai' end,
       case when m.role = 'assistant'
            then round(m.prompt_tokens * 0.00000015 + m.completion_tokens * 0.0000006, 10) end,
       case when m.role = 'assistant' then 'provided' end,
       case when m.role = 'assistant' then 300 + floor(random() * 2700)::int end,
       '{}', 'simple', m.created_at
from (select t.*, x.content,
             case when t.k % 2 = 0 then 'user' else 'assistant' end as role,
             case when t.k % 2 = 1 then 120 + t.k * 45 + floor(random() * 60)::int end as prompt_tokens,
             case when t.k % 2 = 1 then greatest(1, length(x.content) / 4) end as completion_tokens
      from bench_timeline t
      join bench_texts x on x.i = t.text_i) m
order by m.created_at;

-- What messages_90_event would have written: one message.created event each,
-- with the trigger's payload.
insert into app.events (tenant_id, id, type, subject_id, data, created_at, sequence)
select m.tenant_id, bench.uuid_v7_at(m.created_at), 'message.created', m.id,
       jsonb_build_object(
           'id', m.id, 'conversation_id', m.conversation_id, 'role', m.role,
           'content_length', length(m.content),
           'prompt_tokens', m.prompt_tokens, 'completion_tokens', m.completion_tokens,
           'total_tokens', coalesce(m.prompt_tokens, 0) + coalesce(m.completion_tokens, 0),
           'model', m.model, 'provider', m.provider, 'cost_usd', trim_scale(m.cost_usd)::text,
           'cost_source', m.cost_source, 'latency_ms', m.latency_ms,
           'action_taken', m.action_taken, 'metadata', m.metadata, 'created_at', m.created_at),
       m.created_at, -1000000000 - row_number() over (partition by m.tenant_id order by m.created_at)
from app.messages m
order by m.created_at;

-- What app.events_prepare would have numbered: each tenant's events in the order they
-- were made, and the tenant's counter at the last one.
update app.events e set sequence = n.sequence
  from (select x.tenant_id, x.id, row_number() over (partition by x.tenant_id order by x.id) as sequence
          from app.events x) n
 where e.tenant_id = n.tenant_id and e.id = n.id;
insert into app.event_counters (tenant_id, last_sequence)
select tenant_id, max(sequence) from app.events group by tenant_id;

-- What app.add_usage would have kept: the daily rollups (per tenant, day in the tenant's
-- time zone, owner, assistant, provider, model), from the messages in one statement.
insert into app.usage_daily (tenant_id, id, day, user_id, assistant_id, provider, model, request_count,
                             message_count, user_messages, assistant_messages, prompt_tokens,
                             completion_tokens, cost_usd, unpriced_count, latency_ms_sum, latency_count,
                             first_at, last_at)
select r.tenant_id, bench.uuid_v7_at(r.first_at), r.day, r.user_id, r.assistant_id, r.provider, r.model,
       r.requests, r.n, r.from_users, r.from_assistants, r.prompt, r.completion, r.cost, 0, r.latency,
       r.latencies, r.first_at, r.last_at
from (select m.tenant_id, (m.created_at at time zone t.timezone)::date as day, m.owner_user_id as user_id,
             c.assistant_id, m.provider, m.model,
             count(*) filter (where m.cost_source is not null) as requests, count(*) as n,
             count(*) filter (where m.role = 'user') as from_users,
             count(*) filter (where m.role = 'assistant') as from_assistants,
             coalesce(sum(m.prompt_tokens), 0) as prompt, coalesce(sum(m.completion_tokens), 0) as completion,
             coalesce(sum(m.cost_usd), 0) as cost, coalesce(sum(m.latency_ms), 0) as latency,
             count(m.latency_ms) as latencies, min(m.created_at) as first_at, max(m.created_at) as last_at
      from app.messages m
      join app.conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
      join app.tenants t on t.id = m.tenant_id
      group by 1, 2, 3, 4, 5, 6) r
order by r.first_at;

-- The conversations' counters, from their messages, in one statement (with the trigger on,
-- each message would have moved them itself).
update app.conversations c
   set message_count = s.n, prompt_tokens = s.prompt, completion_tokens = s.completion,
       cost_usd = s.cost, last_activity_at = greatest(c.last_activity_at, s.last),
       updated_at = greatest(c.last_activity_at, s.last)
  from (select tenant_id, conversation_id, count(*) as n,
               sum(coalesce(prompt_tokens, 0)) as prompt, sum(coalesce(completion_tokens, 0)) as completion,
               sum(coalesce(cost_usd, 0)) as cost, max(created_at) as last
        from app.messages group by tenant_id, conversation_id) s
 where c.tenant_id = s.tenant_id and c.id = s.conversation_id;

:search_index_def;

-- Check before committing: the sizes asked for, and every counter equal to its sums.
do $$
declare
    want_messages bigint := current_setting('bench.want_messages')::bigint;
    got_messages bigint := (select count(*) from app.messages);
    got_conversations bigint := (select count(*) from app.conversations);
    wrong bigint;
begin
    if got_messages <> want_messages then
        raise exception 'expected % messages, found %', want_messages, got_messages;
    end if;
    select count(*) into wrong
    from app.conversations c
    left join (select tenant_id, conversation_id, count(*) as n,
                      sum(coalesce(prompt_tokens, 0)) as prompt,
                      sum(coalesce(completion_tokens, 0)) as completion,
                      sum(coalesce(cost_usd, 0)) as cost, max(created_at) as last
               from app.messages group by tenant_id, conversation_id) s
           on s.tenant_id = c.tenant_id and s.conversation_id = c.id
    where c.message_count <> coalesce(s.n, 0) or c.prompt_tokens <> coalesce(s.prompt, 0)
       or c.completion_tokens <> coalesce(s.completion, 0) or c.cost_usd <> coalesce(s.cost, 0)
       or c.last_activity_at < s.last;
    if wrong > 0 then
        raise exception '% conversations have counters that differ from their messages', wrong;
    end if;
    if (select sum(message_count) from app.usage_daily) <> got_messages
       or (select sum(cost_usd) from app.usage_daily) <> (select sum(cost_usd) from app.messages) then
        raise exception 'the rollups differ from the messages';
    end if;
    raise notice 'dataset: % tenants, % conversations, % messages',
        (select count(*) from app.tenants), got_conversations, got_messages;
end
$$;
commit;

-- Statistics, hint bits, the visibility map and frozen rows now, so that no vacuum of the
-- load runs during a measurement; then a checkpoint to write the load out.
vacuum (freeze, analyze) app.users, app.tenants, app.memberships, app.assistants,
    app.conversations, app.conversation_transitions, app.events, app.messages, app.usage_daily,
    bench.tenants, bench.targets;
checkpoint;
