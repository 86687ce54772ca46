-- The conversation store: flows, assistants, contacts, conversations with their state
-- history, append-only messages, feedback, the event log, and idempotency keys.
--
-- Invariants held here rather than in the server:
--   * a conversation's state is a state of its flow, and changes only along the flow's
--     transitions (triggers on conversations; flows are immutable once created);
--   * every reference between tenant tables is a composite (tenant_id, …) foreign key;
--   * a message updates its conversation's counters and last_activity_at in the same
--     statement, and messages, transitions and events are append-only;
--   * events are written by the same triggers, so no change is ever without its event;
--   * counters, state history and events are written only by SECURITY DEFINER triggers
--     (as frontdesk_owner, whose policies admit exactly the transaction's tenant): the
--     request roles can read them but never write them directly.

-- ---------------------------------------------------------------------------------------
-- Helpers

-- A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, then randomness taken
-- from a v4 UUID (whose variant bits are already right). PostgreSQL 15 has no uuidv7().
create function app.uuid_v7() returns uuid
    language sql volatile parallel safe
    as $$
    select (lpad(to_hex(floor(extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(r, 14, 3) || substr(r, 17, 16))::uuid
    from (select replace(gen_random_uuid()::text, '-', '') as r) s
$$;

-- The document of a message for full-text search. Declared immutable so an index can
-- use it: the configurations it accepts are PostgreSQL's built-in ones (checked by
-- app.is_search_language on tenants), which do not change under a running database.
create function app.message_document(lang text, content text) returns tsvector
    language sql immutable parallel safe
    as $$ select to_tsvector(('pg_catalog.' || lang)::regconfig, content) $$;

grant execute on function app.uuid_v7(), app.message_document(text, text)
    to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Flows: conversation state machines. The built-in ones are a global catalog; a tenant's
-- own flows live in app.flows. Both have the same shape, checked by app.flow_is_valid:
-- `transitions` maps each state to the states it may move to.

create function app.flow_is_valid(states text[], initial_state text, terminal_states text[],
                                  transitions jsonb) returns boolean
    language sql immutable parallel safe
    as $$
    select cardinality(states) between 1 and 100
       and cardinality(states) = (select count(distinct s) from unnest(states) s)
       and (select bool_and(s ~ '^[a-z][a-z0-9_]{0,62}$') from unnest(states) s)
       and initial_state = any (states)
       and terminal_states <@ states
       and jsonb_typeof(transitions) = 'object'
       and (select coalesce(bool_and(k = any (states)
                                     and jsonb_typeof(v) = 'array'
                                     and (select coalesce(bool_and(jsonb_typeof(t) = 'string'
                                                                   and t #>> '{}' = any (states)
                                                                   and t #>> '{}' <> k), true)
                                          from jsonb_array_elements(v) t)), true)
            from jsonb_each(transitions) e(k, v))
$$;

create table app.builtin_flows (
    key             text primary key,
    name            text not null,
    description     text not null,
    initial_state   text not null,
    states          text[] not null,
    terminal_states text[] not null,
    transitions     jsonb not null,
    constraint builtin_flows_valid check (app.flow_is_valid(states, initial_state, terminal_states, transitions))
);
comment on table app.builtin_flows is 'global catalog: the flows every tenant has; written only by migrations';

insert into app.builtin_flows (key, name, description, initial_state, states, terminal_states, transitions) values
('assistant', 'Assistant', 'A plain chat: open until closed; a closed conversation can be reopened.',
 'open', array['open', 'closed'], array['closed'],
 '{"open": ["closed"], "closed": ["open"]}'),
('ari_sales', 'ARI sales', 'A WhatsApp sales conversation: greet, qualify, score the lead, book, take payment, schedule; a human can take over at any point and hand it back.',
 'greeting',
 array['greeting', 'qualifying', 'scoring', 'booking', 'payment', 'scheduling', 'handoff', 'completed'],
 array['completed'],
 '{"greeting":   ["qualifying", "handoff", "completed"],
   "qualifying": ["scoring", "handoff", "completed"],
   "scoring":    ["qualifying", "booking", "handoff", "completed"],
   "booking":    ["scoring", "payment", "scheduling", "handoff", "completed"],
   "payment":    ["booking", "scheduling", "handoff", "completed"],
   "scheduling": ["booking", "completed", "handoff"],
   "handoff":    ["greeting", "qualifying", "scoring", "booking", "payment", "scheduling", "completed"]}'),
('creative_brief', 'Creative brief', 'A Creative Director session: gather and clarify the brief, plan, confirm with the client, produce, verify, deliver; cancellable until delivered.',
 'initial',
 array['initial', 'gathering', 'clarifying', 'planning', 'confirming', 'processing', 'verifying', 'delivered', 'cancelled'],
 array['delivered', 'cancelled'],
 '{"initial":    ["gathering", "cancelled"],
   "gathering":  ["clarifying", "planning", "cancelled"],
   "clarifying": ["gathering", "planning", "cancelled"],
   "planning":   ["confirming", "clarifying", "cancelled"],
   "confirming": ["processing", "planning", "cancelled"],
   "processing": ["verifying", "cancelled"],
   "verifying":  ["delivered", "processing", "cancelled"]}');

grant select on app.builtin_flows to frontdesk_user, frontdesk_service, frontdesk_operator;

create table app.flows (
    tenant_id       uuid not null references app.tenants (id) on delete cascade,
    key             text not null,
    name            text not null,
    description     text,
    initial_state   text not null,
    states          text[] not null,
    terminal_states text[] not null,
    transitions     jsonb not null,
    created_at      timestamptz not null default now(),
    constraint flows_pkey primary key (tenant_id, key),
    constraint flows_key_check check (key ~ '^[a-z][a-z0-9_]{1,62}$'),
    constraint flows_name_check check (length(btrim(name)) between 1 and 200),
    constraint flows_description_check check (length(description) <= 2000),
    constraint flows_valid check (app.flow_is_valid(states, initial_state, terminal_states, transitions))
);
comment on table app.flows is 'a tenant''s own flows; immutable once created, so every conversation stays in a state of its flow';

-- A tenant flow may not shadow a built-in one.
create function app.flows_not_builtin() returns trigger
    language plpgsql
    as $$
begin
    if exists (select 1 from app.builtin_flows b where b.key = new.key) then
        raise exception 'flow % is built in', new.key
            using errcode = 'unique_violation', constraint = 'flows_pkey', table = 'flows', schema = 'app';
    end if;
    return new;
end
$$;
create trigger flows_not_builtin before insert on app.flows
    for each row execute function app.flows_not_builtin();

alter table app.flows enable row level security;
alter table app.flows force row level security;
create policy flows_select on app.flows for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant());
create policy flows_insert on app.flows for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
grant select on app.flows to frontdesk_user, frontdesk_service;
grant insert on app.flows to frontdesk_user;
grant select, insert, update, delete on app.flows to frontdesk_operator;

-- A flow by key as the current context sees it: the tenant's own, else a built-in one.
create function app.flow_definition(p_tenant uuid, p_key text,
                                    out initial_state text, out states text[],
                                    out terminal_states text[], out transitions jsonb)
    language sql stable
    as $$
    select initial_state, states, terminal_states, transitions from (
        select f.initial_state, f.states, f.terminal_states, f.transitions, 1 as rank
        from app.flows f where f.tenant_id = p_tenant and f.key = p_key
        union all
        select b.initial_state, b.states, b.terminal_states, b.transitions, 2
        from app.builtin_flows b where b.key = p_key) d
    order by rank limit 1
$$;
grant execute on function app.flow_definition(uuid, text) to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Assistants: a bot with its channel, model settings (null = the tenant's) and flow.

create table app.assistants (
    tenant_id                   uuid not null references app.tenants (id) on delete cascade,
    id                          uuid not null,
    name                        text not null,
    description                 text,
    channel                     text not null default 'web',
    llm_provider                text,
    llm_model                   text,
    llm_temperature             numeric(3, 2),
    llm_max_tokens              integer,
    system_prompt               text,
    persona                     jsonb not null default '{}',
    settings                    jsonb not null default '{}',
    flow_key                    text not null default 'assistant',
    one_open_conversation_per_contact boolean not null default false,
    is_active                   boolean not null default true,
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now(),
    constraint assistants_pkey primary key (tenant_id, id),
    constraint assistants_name_check check (length(btrim(name)) between 1 and 200),
    constraint assistants_description_check check (length(description) <= 2000),
    constraint assistants_channel_check check (channel in ('web', 'whatsapp', 'voice', 'sms', 'api')),
    constraint assistants_llm_temperature_check check (llm_temperature between 0 and 2),
    constraint assistants_llm_max_tokens_check check (llm_max_tokens > 0),
    constraint assistants_system_prompt_check check (length(system_prompt) <= 100000),
    constraint assistants_persona_check check (jsonb_typeof(persona) = 'object'),
    constraint assistants_settings_check check (jsonb_typeof(settings) = 'object')
);
comment on column app.assistants.one_open_conversation_per_contact is 'ARI''s rule: a contact has at most one conversation with this assistant that is not in a terminal state';

create trigger assistants_touch before update on app.assistants
    for each row execute function app.touch_updated_at();

-- The flow must exist (a tenant flow or a built-in one).
create function app.assistants_check_flow() returns trigger
    language plpgsql
    as $$
begin
    if (app.flow_definition(new.tenant_id, new.flow_key)).initial_state is null then
        raise exception 'no flow %', new.flow_key
            using errcode = 'foreign_key_violation', constraint = 'assistants_flow_key_fkey',
                  table = 'assistants', schema = 'app';
    end if;
    return new;
end
$$;
create trigger assistants_check_flow before insert or update of flow_key on app.assistants
    for each row execute function app.assistants_check_flow();

alter table app.assistants enable row level security;
alter table app.assistants force row level security;
create policy assistants_select on app.assistants for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant());
create policy assistants_insert on app.assistants for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy assistants_update on app.assistants for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin())
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy assistants_delete on app.assistants for delete to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
grant select on app.assistants to frontdesk_user, frontdesk_service;
grant insert, update, delete on app.assistants to frontdesk_user;
grant select, insert, update, delete on app.assistants to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Contacts: the business's end customers. Staff only: members never see them.

create table app.contacts (
    tenant_id        uuid not null references app.tenants (id) on delete cascade,
    id               uuid not null,
    name             text,
    phone            text,
    email            text,
    channel_ids      jsonb not null default '{}',
    lead_score       smallint,
    lead_temperature text,
    attributes       jsonb not null default '{}',
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint contacts_pkey primary key (tenant_id, id),
    constraint contacts_phone_key unique (tenant_id, phone),
    constraint contacts_name_check check (length(btrim(name)) between 1 and 200),
    constraint contacts_phone_check check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    constraint contacts_email_check check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    constraint contacts_channel_ids_check check (jsonb_typeof(channel_ids) = 'object'),
    constraint contacts_lead_score_check check (lead_score between 0 and 100),
    constraint contacts_lead_temperature_check check (lead_temperature in ('hot', 'warm', 'cold')),
    constraint contacts_attributes_check check (jsonb_typeof(attributes) = 'object')
);
comment on column app.contacts.channel_ids is 'the contact''s ids on each channel, e.g. {"whatsapp": "628111234567"}';
create index contacts_name_idx on app.contacts (tenant_id, lower(name) text_pattern_ops);

create trigger contacts_touch before update on app.contacts
    for each row execute function app.touch_updated_at();

alter table app.contacts enable row level security;
alter table app.contacts force row level security;
create policy contacts_select on app.contacts for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy contacts_insert on app.contacts for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
create policy contacts_update on app.contacts for update to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write())
    with check (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
create policy contacts_delete on app.contacts for delete to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
grant select, insert, update, delete on app.contacts to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Conversations. A member sees and writes only the conversations they own (user_id);
-- staff and keys see all of the tenant's. assistant_id, user_id and flow_key never change.

create table app.conversations (
    tenant_id           uuid not null references app.tenants (id) on delete cascade,
    id                  uuid not null,
    assistant_id        uuid not null,
    user_id             uuid,
    contact_id          uuid,
    channel             text not null,
    title               text,
    flow_key            text not null,
    state               text not null,
    context             jsonb not null default '{}',
    parsed_intent       jsonb,
    answered_questions  jsonb not null default '[]',
    pending_questions   jsonb not null default '[]',
    selected_kb_ids     uuid[] not null default '{}',
    active_task_plan_id uuid,
    assignee_id         uuid,
    handoff_reason      text,
    handoff_at          timestamptz,
    archived            boolean not null default false,
    one_open_per_contact boolean not null default false,
    metadata            jsonb not null default '{}',
    message_count       bigint not null default 0,
    prompt_tokens       bigint not null default 0,
    completion_tokens   bigint not null default 0,
    cost_usd            numeric(20, 10) not null default 0,
    last_activity_at    timestamptz not null default now(),
    completed_at        timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint conversations_pkey primary key (tenant_id, id),
    constraint conversations_assistant_id_fkey foreign key (tenant_id, assistant_id)
        references app.assistants (tenant_id, id) on delete restrict,
    constraint conversations_contact_id_fkey foreign key (tenant_id, contact_id)
        references app.contacts (tenant_id, id) on delete set null (contact_id),
    constraint conversations_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id) on delete set null (user_id),
    constraint conversations_assignee_id_fkey foreign key (tenant_id, assignee_id)
        references app.memberships (tenant_id, user_id) on delete set null (assignee_id),
    constraint conversations_channel_check check (channel in ('web', 'whatsapp', 'voice', 'sms', 'api')),
    constraint conversations_title_check check (length(title) <= 500),
    constraint conversations_context_check check (jsonb_typeof(context) = 'object'),
    constraint conversations_answered_questions_check check (jsonb_typeof(answered_questions) = 'array'),
    constraint conversations_pending_questions_check check (jsonb_typeof(pending_questions) = 'array'),
    constraint conversations_handoff_reason_check check (length(handoff_reason) <= 2000),
    constraint conversations_metadata_check check (jsonb_typeof(metadata) = 'object'),
    constraint conversations_counters_check check (message_count >= 0 and prompt_tokens >= 0
                                                   and completion_tokens >= 0 and cost_usd >= 0)
);
comment on column app.conversations.user_id is 'the member who owns the conversation (members see only their own); null for a contact''s conversation started by staff or a key, or when the owner left the tenant';
comment on column app.conversations.one_open_per_contact is 'copied from the assistant at creation: makes conversations_one_open_per_contact apply';
comment on column app.conversations.message_count is 'maintained by the messages trigger in the same statement as each message';

create index conversations_activity_idx on app.conversations (tenant_id, last_activity_at desc, id desc);
create index conversations_owner_idx on app.conversations (tenant_id, user_id, last_activity_at desc, id desc);
create index conversations_assistant_idx on app.conversations (tenant_id, assistant_id);
create index conversations_contact_idx on app.conversations (tenant_id, contact_id) where contact_id is not null;
create index conversations_assignee_idx on app.conversations (tenant_id, assignee_id) where assignee_id is not null;
create unique index conversations_one_open_per_contact on app.conversations (tenant_id, assistant_id, contact_id)
    where one_open_per_contact and completed_at is null and contact_id is not null;

-- A message moves the counters and updated_at itself (messages_20_conversation), so
-- the touch is skipped for those updates: they are the only ones that change
-- message_count.
create trigger conversations_touch before update on app.conversations
    for each row when (new.message_count = old.message_count)
    execute function app.touch_updated_at();

-- On insert: take flow, channel and the one-open rule from the assistant, start in the
-- flow's initial state unless told otherwise, and check the state belongs to the flow.
-- On a state change: the flow must allow it. completed_at follows terminal states.
create function app.conversations_follow_flow() returns trigger
    language plpgsql
    as $$
declare
    flow record;
    assistant_channel text;
    allowed jsonb;
begin
    if tg_op = 'INSERT' then
        select a.flow_key, a.channel, a.one_open_conversation_per_contact
          into new.flow_key, assistant_channel, new.one_open_per_contact
          from app.assistants a where a.tenant_id = new.tenant_id and a.id = new.assistant_id;
        if not found then
            raise exception 'no assistant %', new.assistant_id
                using errcode = 'foreign_key_violation', constraint = 'conversations_assistant_id_fkey',
                      table = 'conversations', schema = 'app';
        end if;
        if not (select a.is_active from app.assistants a
                where a.tenant_id = new.tenant_id and a.id = new.assistant_id) then
            raise exception 'assistant % is inactive', new.assistant_id
                using errcode = 'check_violation', constraint = 'conversations_assistant_active',
                      table = 'conversations', schema = 'app';
        end if;
        new.channel := coalesce(new.channel, assistant_channel);
    elsif new.flow_key is distinct from old.flow_key then
        raise exception 'a conversation keeps its flow'
            using errcode = 'check_violation', constraint = 'conversations_state_in_flow',
                  table = 'conversations', schema = 'app';
    end if;
    select * into flow from app.flow_definition(new.tenant_id, new.flow_key);
    if tg_op = 'INSERT' then
        new.state := coalesce(new.state, flow.initial_state);
    end if;
    if flow.states is null or not new.state = any (flow.states) then
        raise exception 'state % is not a state of flow %', new.state, new.flow_key
            using errcode = 'check_violation', constraint = 'conversations_state_in_flow',
                  table = 'conversations', schema = 'app';
    end if;
    if tg_op = 'UPDATE' and new.state is distinct from old.state then
        allowed := coalesce(flow.transitions -> old.state, '[]');
        if not allowed ? new.state then
            raise exception 'flow % does not allow % -> %', new.flow_key, old.state, new.state
                using errcode = 'check_violation', constraint = 'conversations_transition',
                      table = 'conversations', schema = 'app',
                      detail = 'allowed: ' || allowed::text;
        end if;
    end if;
    if tg_op = 'INSERT' or new.state is distinct from old.state then
        new.completed_at := case when new.state = any (flow.terminal_states) then now() end;
    end if;
    return new;
end
$$;
create trigger conversations_follow_flow before insert or update of state, flow_key on app.conversations
    for each row execute function app.conversations_follow_flow();

alter table app.conversations enable row level security;
alter table app.conversations force row level security;
create policy conversations_select on app.conversations for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy conversations_insert on app.conversations for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.can_write()
                and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy conversations_update on app.conversations for update to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.can_write()
           and (app.is_tenant_staff() or user_id = app.current_user_id()))
    with check (tenant_id = app.current_tenant() and app.can_write()
                and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy conversations_delete on app.conversations for delete to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
-- The messages trigger (SECURITY DEFINER) moves the counters as the owner.
create policy conversations_owner on app.conversations for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select, insert, delete on app.conversations to frontdesk_user, frontdesk_service;
grant update (contact_id, channel, title, state, context, parsed_intent, answered_questions,
              pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason,
              handoff_at, archived, metadata)
    on app.conversations to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.conversations to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- The event log: what happened, written in the same transaction as the change. The
-- webhook worker (a later migration) delivers from it. Append-only: rows leave only
-- with their tenant.

create table app.events (
    tenant_id     uuid not null references app.tenants (id) on delete cascade,
    id            uuid not null,
    type          text not null,
    subject_id    uuid,
    data          jsonb not null,
    actor_user_id uuid,
    actor_key_id  uuid,
    created_at    timestamptz not null default now(),
    constraint events_pkey primary key (tenant_id, id),
    constraint events_type_check check (type ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    constraint events_data_check check (jsonb_typeof(data) = 'object')
);
comment on table app.events is 'transactional outbox: one row per event, newest id last (UUIDv7)';
comment on column app.events.subject_id is 'the id of the thing the event is about (conversation, message, feedback…)';
create index events_type_idx on app.events (tenant_id, type, id);

-- Emit an event in the current transaction. Every feature emits its events this way,
-- from a SECURITY DEFINER trigger function (events are written as the owner only, so no
-- request can forge one):
--     perform app.emit_event(new.tenant_id, 'thing.happened', new.id, jsonb_build_object(…));
create function app.emit_event(p_tenant uuid, p_type text, p_subject uuid, p_data jsonb) returns uuid
    language plpgsql volatile
    as $$
declare
    event_id uuid := app.uuid_v7();
begin
    insert into app.events (tenant_id, id, type, subject_id, data, actor_user_id, actor_key_id)
    values (p_tenant, event_id, p_type, p_subject, p_data, app.current_user_id(), app.current_key_id());
    return event_id;
end
$$;
revoke execute on function app.emit_event(uuid, text, uuid, jsonb) from public;
grant execute on function app.emit_event(uuid, text, uuid, jsonb) to frontdesk_operator;

-- Append-only tables: no UPDATE; DELETE only by cascade from a parent row (trigger depth
-- above 1 means a foreign key's action is deleting, not a statement of its own).
create function app.refuse_change() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
        return old;
    end if;
    raise exception 'app.% is append-only', tg_table_name
        using errcode = 'insufficient_privilege', hint = 'append-only';
end
$$;
create trigger events_append_only before update or delete on app.events
    for each row execute function app.refuse_change();

alter table app.events enable row level security;
alter table app.events force row level security;
create policy events_select on app.events for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy events_owner on app.events for insert to frontdesk_owner
    with check (tenant_id = app.current_tenant());
grant select on app.events to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.events to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- State history: every state a conversation entered, who moved it, and when.

create table app.conversation_transitions (
    tenant_id       uuid not null,
    id              uuid not null,
    conversation_id uuid not null,
    owner_user_id   uuid,
    from_state      text,
    to_state        text not null,
    actor_user_id   uuid,
    actor_key_id    uuid,
    created_at      timestamptz not null default now(),
    constraint conversation_transitions_pkey primary key (tenant_id, id),
    constraint conversation_transitions_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete cascade
);
comment on column app.conversation_transitions.from_state is 'null for the state a conversation started in';
comment on column app.conversation_transitions.owner_user_id is 'the conversation''s owner, for the row policy (as on messages)';
create index conversation_transitions_conversation_idx on app.conversation_transitions (tenant_id, conversation_id, id);
create trigger conversation_transitions_append_only before update or delete on app.conversation_transitions
    for each row execute function app.refuse_change();

create function app.conversations_record() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    moved uuid := app.uuid_v7();
begin
    if tg_op = 'INSERT' or new.state is distinct from old.state then
        insert into app.conversation_transitions
            (tenant_id, id, conversation_id, owner_user_id, from_state, to_state, actor_user_id, actor_key_id)
        values (new.tenant_id, moved, new.id, new.user_id, case when tg_op = 'UPDATE' then old.state end, new.state,
                app.current_user_id(), app.current_key_id());
    end if;
    if tg_op = 'INSERT' then
        perform app.emit_event(new.tenant_id, 'conversation.created', new.id, jsonb_build_object(
            'id', new.id, 'assistant_id', new.assistant_id, 'user_id', new.user_id,
            'contact_id', new.contact_id, 'channel', new.channel, 'title', new.title,
            'flow', new.flow_key, 'state', new.state, 'created_at', new.created_at));
    elsif new.state is distinct from old.state then
        perform app.emit_event(new.tenant_id, 'conversation.state_changed', new.id, jsonb_build_object(
            'conversation_id', new.id, 'flow', new.flow_key, 'from', old.state, 'to', new.state,
            'completed_at', new.completed_at, 'transition_id', moved));
    end if;
    if tg_op = 'UPDATE' and new.handoff_at is distinct from old.handoff_at and new.handoff_at is not null then
        perform app.emit_event(new.tenant_id, 'conversation.handoff_requested', new.id, jsonb_build_object(
            'conversation_id', new.id, 'assignee_id', new.assignee_id, 'reason', new.handoff_reason,
            'state', new.state, 'handoff_at', new.handoff_at));
    end if;
    return null;
end
$$;
create trigger conversations_record after insert on app.conversations
    for each row execute function app.conversations_record();
-- Only the changes it records (not, e.g., every message's counter update).
create trigger conversations_record_change after update on app.conversations
    for each row
    when (new.state is distinct from old.state
          or (new.handoff_at is distinct from old.handoff_at and new.handoff_at is not null))
    execute function app.conversations_record();

alter table app.conversation_transitions enable row level security;
alter table app.conversation_transitions force row level security;
create policy conversation_transitions_select on app.conversation_transitions for select
    to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or owner_user_id = app.current_user_id()));
create policy conversation_transitions_owner on app.conversation_transitions for insert
    to frontdesk_owner
    with check (tenant_id = app.current_tenant());
grant select on app.conversation_transitions to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.conversation_transitions to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Messages: append-only. The insert triggers move the conversation's counters and
-- last_activity_at in the same statement (locking the conversation row, so parallel
-- messages to one conversation add up exactly), copy the conversation's owner for the
-- row policy, and emit message.created. An admin may redact a message's content once.

create table app.messages (
    tenant_id         uuid not null,
    id                uuid not null,
    conversation_id   uuid not null,
    owner_user_id     uuid,
    role              text not null,
    content           text not null,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer generated always as (coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) stored,
    model             text,
    provider          text,
    cost_usd          numeric(20, 10),
    latency_ms        integer,
    action_taken      text,
    questions_asked   jsonb,
    delegation_plan   jsonb,
    metadata          jsonb not null default '{}',
    search_language   text not null default 'simple',
    created_at        timestamptz not null default now(),
    redacted_at       timestamptz,
    redacted_by       uuid,
    cost_source       text,
    constraint messages_pkey primary key (tenant_id, id),
    constraint messages_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete cascade,
    constraint messages_role_check check (role in ('user', 'assistant', 'system', 'tool', 'agent')),
    constraint messages_content_check check (content ~ '\S' and octet_length(content) <= 1048576),
    constraint messages_prompt_tokens_check check (prompt_tokens >= 0),
    constraint messages_completion_tokens_check check (completion_tokens >= 0),
    constraint messages_cost_usd_check check (cost_usd >= 0),
    constraint messages_latency_ms_check check (latency_ms >= 0),
    constraint messages_model_check check (length(model) <= 200),
    constraint messages_provider_check check (length(provider) <= 100),
    constraint messages_action_taken_check check (length(action_taken) <= 200),
    constraint messages_questions_asked_check check (jsonb_typeof(questions_asked) = 'array'),
    constraint messages_metadata_check check (jsonb_typeof(metadata) = 'object'),
    constraint messages_redaction_check check ((redacted_at is null) = (redacted_by is null)),
    constraint messages_cost_source_check check (cost_source in ('provided', 'catalog', 'unpriced'))
);
comment on column app.messages.owner_user_id is 'the conversation''s owner, copied by the insert trigger: lets the row policy show members their own messages without a subquery';
comment on column app.messages.cost_source is 'provided by the client, computed from the price catalog, or unpriced (tokens of a model without a price: costed 0)';
comment on column app.messages.search_language is 'the tenant''s search language when the message was written (its search document uses it)';
create index messages_conversation_idx on app.messages (tenant_id, conversation_id, id);
create index messages_search_idx on app.messages using gin (app.message_document(search_language, content));

-- The write path of a message is a row of BEFORE INSERT triggers, each doing one job,
-- fired in name order (PostgreSQL fires same-event triggers by name). A later feature
-- adds its own trigger at the number that fits instead of rewriting one of these:
--   messages_10_cost          (0003) price the tokens from the catalog
--   messages_20_conversation  count the message in its conversation
--   messages_30_limits        (0003) charge the tenant's limits, settle a reservation
--   messages_40_usage         (0003) add the message to the daily usage rollup
--   messages_90_event         emit message.created (last: sees what the others set)

-- Move the conversation's counters and last_activity_at (locking its row, so parallel
-- messages to one conversation add up exactly) and copy its owner and the tenant's
-- search language onto the message. As the owner: only the transaction's tenant is
-- reachable (conversations_owner), and the caller's own visibility is checked here, as
-- the select policy would.
create function app.messages_count_in_conversation() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    update app.conversations c
       set message_count = c.message_count + 1,
           prompt_tokens = c.prompt_tokens + coalesce(new.prompt_tokens, 0),
           completion_tokens = c.completion_tokens + coalesce(new.completion_tokens, 0),
           cost_usd = c.cost_usd + coalesce(new.cost_usd, 0),
           last_activity_at = greatest(c.last_activity_at, new.created_at),
           updated_at = now()
      from app.tenants t
     where c.tenant_id = new.tenant_id and c.id = new.conversation_id and t.id = c.tenant_id
       and (app.is_tenant_staff() or c.user_id = app.current_user_id()
            or current_setting('role') = 'frontdesk_operator')
    returning c.user_id, t.search_language into new.owner_user_id, new.search_language;
    if not found then
        raise exception 'no conversation %', new.conversation_id
            using errcode = 'foreign_key_violation', constraint = 'messages_conversation_id_fkey',
                  table = 'messages', schema = 'app';
    end if;
    new.redacted_at := null;
    new.redacted_by := null;
    return new;
end
$$;
create trigger messages_20_conversation before insert on app.messages
    for each row execute function app.messages_count_in_conversation();

-- message.created, without the content (a redaction leaves no copy behind).
create function app.messages_event() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    perform app.emit_event(new.tenant_id, 'message.created', new.id, jsonb_build_object(
        'id', new.id, 'conversation_id', new.conversation_id, 'role', new.role,
        'content_length', length(new.content),
        'prompt_tokens', new.prompt_tokens, 'completion_tokens', new.completion_tokens,
        'total_tokens', coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
        'model', new.model, 'provider', new.provider, 'cost_usd', trim_scale(new.cost_usd)::text,
        'cost_source', new.cost_source, 'latency_ms', new.latency_ms,
        'action_taken', new.action_taken, 'metadata', new.metadata, 'created_at', new.created_at));
    return new;
end
$$;
create trigger messages_90_event before insert on app.messages
    for each row execute function app.messages_event();

-- Only a redaction changes a message: content replaced once, who and when recorded.
create function app.messages_append_only() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' then
        if pg_trigger_depth() > 1 then
            return old;
        end if;
    elsif old.redacted_at is null and new.redacted_at is not null and new.redacted_by is not null
          -- (a BEFORE trigger sees generated columns as null in NEW, so total_tokens is left out)
          and to_jsonb(new) - array['content', 'redacted_at', 'redacted_by', 'total_tokens']
              = to_jsonb(old) - array['content', 'redacted_at', 'redacted_by', 'total_tokens'] then
        return new;
    end if;
    raise exception 'messages are append-only; an admin may redact one'
        using errcode = 'insufficient_privilege', hint = 'append-only';
end
$$;
create trigger messages_append_only before update or delete on app.messages
    for each row execute function app.messages_append_only();

alter table app.messages enable row level security;
alter table app.messages force row level security;
create policy messages_select on app.messages for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or owner_user_id = app.current_user_id()));
create policy messages_insert on app.messages for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.can_write()
                and (app.is_tenant_staff() or owner_user_id = app.current_user_id()));
create policy messages_redact on app.messages for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin())
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
grant select, insert on app.messages to frontdesk_user, frontdesk_service;
grant update (content, redacted_at, redacted_by) on app.messages to frontdesk_user;
grant select, insert, update, delete on app.messages to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Feedback: one rating per person (or per API key, for a bot relaying its user's rating)
-- per message.

create table app.feedback (
    tenant_id  uuid not null,
    id         uuid not null,
    message_id uuid not null,
    user_id    uuid references app.users (id) on delete cascade,
    key_id     uuid,
    rating     smallint not null,
    comment    text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint feedback_pkey primary key (tenant_id, id),
    constraint feedback_message_id_fkey foreign key (tenant_id, message_id)
        references app.messages (tenant_id, id) on delete cascade,
    constraint feedback_key_id_fkey foreign key (tenant_id, key_id)
        references app.api_keys (tenant_id, id) on delete cascade,
    constraint feedback_one_per_rater unique nulls not distinct (tenant_id, message_id, user_id, key_id),
    constraint feedback_rater_check check ((user_id is null) <> (key_id is null)),
    constraint feedback_rating_check check (rating in (-1, 1)),
    constraint feedback_comment_check check (length(comment) <= 5000)
);
create index feedback_user_idx on app.feedback (user_id);
create index feedback_key_idx on app.feedback (tenant_id, key_id) where key_id is not null;

create trigger feedback_touch before update on app.feedback
    for each row execute function app.touch_updated_at();

create function app.feedback_created() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    perform app.emit_event(new.tenant_id, 'feedback.created', new.id, jsonb_build_object(
        'id', new.id, 'message_id', new.message_id, 'user_id', new.user_id, 'key_id', new.key_id,
        'rating', new.rating, 'comment', new.comment, 'created_at', new.created_at));
    return null;
end
$$;
create trigger feedback_created after insert on app.feedback
    for each row execute function app.feedback_created();

alter table app.feedback enable row level security;
alter table app.feedback force row level security;
create policy feedback_select on app.feedback for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy feedback_insert on app.feedback for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.can_write()
                and (user_id = app.current_user_id() or key_id = app.current_key_id()));
create policy feedback_update on app.feedback for update to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.can_write()
           and (user_id = app.current_user_id() or key_id = app.current_key_id()))
    with check (tenant_id = app.current_tenant() and app.can_write()
                and (user_id = app.current_user_id() or key_id = app.current_key_id()));
create policy feedback_delete on app.feedback for delete to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.can_write()
           and (user_id = app.current_user_id() or key_id = app.current_key_id()));
grant select, insert, delete on app.feedback to frontdesk_user, frontdesk_service;
grant update (rating, comment) on app.feedback to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.feedback to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Idempotency keys: a creating POST's key with the request's digest and the stored
-- response, per tenant and principal, kept at least 24 hours (the server deletes older).

create table app.idempotency_keys (
    tenant_id      uuid not null references app.tenants (id) on delete cascade,
    id             uuid not null,
    user_id        uuid,
    key_id         uuid,
    key            text not null,
    request_digest bytea not null,
    status         smallint not null,
    response       bytea not null,
    created_at     timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (tenant_id, id),
    constraint idempotency_keys_unique unique nulls not distinct (tenant_id, user_id, key_id, key),
    constraint idempotency_keys_key_check check (length(key) between 1 and 255),
    constraint idempotency_keys_digest_check check (length(request_digest) = 32)
);
comment on column app.idempotency_keys.request_digest is 'SHA-256 of the method, path and JSON body';
create index idempotency_keys_created_idx on app.idempotency_keys (created_at);

alter table app.idempotency_keys enable row level security;
alter table app.idempotency_keys force row level security;
create policy idempotency_keys_own on app.idempotency_keys for all to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and user_id is not distinct from app.current_user_id()
           and key_id is not distinct from app.current_key_id())
    with check (tenant_id = app.current_tenant()
                and user_id is not distinct from app.current_user_id()
                and key_id is not distinct from app.current_key_id());
grant select, insert, delete on app.idempotency_keys to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.idempotency_keys to frontdesk_operator;
