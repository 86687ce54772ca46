-- Usage: the model price catalog (global, with per-tenant overrides and history) and the
-- daily rollups, kept by the message trigger in the same statement as each message.
--
--   * A message with tokens and no cost_usd is costed from the catalog at its time; a
--     provided cost always wins; tokens of a model without a price cost 0 and are marked
--     'unpriced' (messages.cost_source), so they can be found and re-priced.
--   * app.usage_daily holds one row per (tenant, day in the tenant's time zone, user,
--     assistant, provider, model); NULLS NOT DISTINCT, so a null user or assistant never
--     makes a second row. total_tokens is generated: prompt + completion, always.

-- ---------------------------------------------------------------------------------------
-- Prices, in USD per million tokens. A price applies from effective_from until the next
-- row of the same provider and model; rows are never changed, only added (the history).

create table app.model_prices (
    provider                  text not null,
    model                     text not null,
    effective_from            timestamptz not null,
    input_usd_per_mtok        numeric(20, 10) not null,
    output_usd_per_mtok       numeric(20, 10) not null,
    cached_input_usd_per_mtok numeric(20, 10),
    source                    text,
    created_at                timestamptz not null default now(),
    constraint model_prices_pkey primary key (provider, model, effective_from),
    constraint model_prices_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint model_prices_model_check check (length(model) between 1 and 200),
    constraint model_prices_price_check check (input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0
                                               and cached_input_usd_per_mtok >= 0)
);
comment on table app.model_prices is 'global catalog: public list prices; written by migrations and the operator';
grant select on app.model_prices to frontdesk_user, frontdesk_service;
grant select, insert, delete on app.model_prices to frontdesk_operator;

-- Public list prices (standard tier, text tokens, prompts within each model's base context
-- tier), as the providers published them; effective from 2025-01-01 for this catalog.
insert into app.model_prices (provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok,
                              cached_input_usd_per_mtok, source) values
('openai', 'gpt-4o',            '2025-01-01', 2.50,  10.00, 1.25,  'openai.com/api/pricing'),
('openai', 'gpt-4o-mini',       '2025-01-01', 0.15,  0.60,  0.075, 'openai.com/api/pricing'),
('openai', 'gpt-4.1',           '2025-01-01', 2.00,  8.00,  0.50,  'openai.com/api/pricing'),
('openai', 'gpt-4.1-mini',      '2025-01-01', 0.40,  1.60,  0.10,  'openai.com/api/pricing'),
('openai', 'gpt-4.1-nano',      '2025-01-01', 0.10,  0.40,  0.025, 'openai.com/api/pricing'),
('openai', 'o3',                '2025-01-01', 2.00,  8.00,  0.50,  'openai.com/api/pricing'),
('openai', 'o4-mini',           '2025-01-01', 1.10,  4.40,  0.275, 'openai.com/api/pricing'),
('openai', 'gpt-3.5-turbo',     '2025-01-01', 0.50,  1.50,  null,  'openai.com/api/pricing'),
('openai', 'text-embedding-3-small', '2025-01-01', 0.02, 0, null,  'openai.com/api/pricing'),
('openai', 'text-embedding-3-large', '2025-01-01', 0.13, 0, null,  'openai.com/api/pricing'),
('anthropic', 'claude-opus-4',     '2025-01-01', 15.00, 75.00, 1.50, 'anthropic.com/pricing'),
('anthropic', 'claude-sonnet-4',   '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-7-sonnet', '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-5-sonnet', '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-5-haiku',  '2025-01-01', 0.80,  4.00,  0.08, 'anthropic.com/pricing'),
('anthropic', 'claude-3-haiku',    '2025-01-01', 0.25,  1.25,  0.03, 'anthropic.com/pricing'),
('anthropic', 'claude-3-opus',     '2025-01-01', 15.00, 75.00, 1.50, 'anthropic.com/pricing'),
('google', 'gemini-2.5-pro',        '2025-01-01', 1.25,  10.00, 0.31,   'ai.google.dev/pricing'),
('google', 'gemini-2.5-flash',      '2025-01-01', 0.30,  2.50,  0.075,  'ai.google.dev/pricing'),
('google', 'gemini-2.0-flash',      '2025-01-01', 0.10,  0.40,  0.025,  'ai.google.dev/pricing'),
('google', 'gemini-2.0-flash-lite', '2025-01-01', 0.075, 0.30,  null,   'ai.google.dev/pricing'),
('google', 'gemini-1.5-pro',        '2025-01-01', 1.25,  5.00,  0.3125, 'ai.google.dev/pricing'),
('google', 'gemini-1.5-flash',      '2025-01-01', 0.075, 0.30,  0.01875, 'ai.google.dev/pricing'),
('mistral', 'mistral-large-latest',  '2025-01-01', 2.00, 6.00, null, 'mistral.ai/pricing'),
('mistral', 'mistral-medium-latest', '2025-01-01', 0.40, 2.00, null, 'mistral.ai/pricing'),
('mistral', 'mistral-small-latest',  '2025-01-01', 0.10, 0.30, null, 'mistral.ai/pricing'),
('mistral', 'codestral-latest',      '2025-01-01', 0.30, 0.90, null, 'mistral.ai/pricing'),
('mistral', 'open-mistral-nemo',     '2025-01-01', 0.15, 0.15, null, 'mistral.ai/pricing');

-- A tenant's own prices (negotiated rates, self-hosted models) take precedence.
create table app.tenant_model_prices (
    tenant_id                 uuid not null references app.tenants (id) on delete cascade,
    provider                  text not null,
    model                     text not null,
    effective_from            timestamptz not null,
    input_usd_per_mtok        numeric(20, 10) not null,
    output_usd_per_mtok       numeric(20, 10) not null,
    cached_input_usd_per_mtok numeric(20, 10),
    created_by                uuid,
    created_at                timestamptz not null default now(),
    constraint tenant_model_prices_pkey primary key (tenant_id, provider, model, effective_from),
    constraint tenant_model_prices_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint tenant_model_prices_model_check check (length(model) between 1 and 200),
    constraint tenant_model_prices_price_check check (input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0
                                                      and cached_input_usd_per_mtok >= 0)
);

alter table app.tenant_model_prices enable row level security;
alter table app.tenant_model_prices force row level security;
create policy tenant_model_prices_select on app.tenant_model_prices for select
    to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy tenant_model_prices_insert on app.tenant_model_prices for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
-- The message trigger (SECURITY DEFINER) looks prices up as the owner.
create policy tenant_model_prices_owner on app.tenant_model_prices for select to frontdesk_owner
    using (tenant_id = app.current_tenant());
grant select on app.tenant_model_prices to frontdesk_user, frontdesk_service;
grant insert on app.tenant_model_prices to frontdesk_user;
grant select, insert, delete on app.tenant_model_prices to frontdesk_operator;

-- The price of a model at a time: the tenant's own, else the catalog's; no row = unpriced.
create function app.price_at(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                             out input_usd_per_mtok numeric, out output_usd_per_mtok numeric,
                             out cached_input_usd_per_mtok numeric)
    language sql stable
    as $$
    select p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok from (
        (select t.input_usd_per_mtok, t.output_usd_per_mtok, t.cached_input_usd_per_mtok, 1 as rank
         from app.tenant_model_prices t
         where t.tenant_id = p_tenant and t.provider = p_provider and t.model = p_model
           and t.effective_from <= p_at
         order by t.effective_from desc limit 1)
        union all
        (select g.input_usd_per_mtok, g.output_usd_per_mtok, g.cached_input_usd_per_mtok, 2
         from app.model_prices g
         where g.provider = p_provider and g.model = p_model and g.effective_from <= p_at
         order by g.effective_from desc limit 1)) p
    order by p.rank limit 1
$$;
grant execute on function app.price_at(uuid, text, text, timestamptz)
    to frontdesk_user, frontdesk_service, frontdesk_operator;

-- The cost of tokens from the price catalog at a time: 'catalog', or 'unpriced' and 0 when
-- the model (or its price) is unknown. Used by the message and usage event triggers.
create function app.token_cost(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                               p_prompt integer, p_completion integer,
                               out cost_usd numeric, out cost_source text)
    language sql stable
    as $$
    select coalesce(round((coalesce(p_prompt, 0) * p.input_usd_per_mtok
                           + coalesce(p_completion, 0) * p.output_usd_per_mtok) / 1000000, 10), 0),
           case when p.input_usd_per_mtok is null then 'unpriced' else 'catalog' end
    from (select 1) one
    left join app.price_at(p_tenant, coalesce(p_provider, ''), p_model, p_at) p on true
$$;

-- ---------------------------------------------------------------------------------------
-- Messages say where their cost came from.

alter table app.messages add column cost_source text;
alter table app.messages add constraint messages_cost_source_check
    check (cost_source in ('provided', 'catalog', 'unpriced'));
comment on column app.messages.cost_source is 'provided by the client, computed from the price catalog, or unpriced (tokens of a model without a price: costed 0)';

-- ---------------------------------------------------------------------------------------
-- Daily rollups.

create table app.usage_daily (
    tenant_id          uuid not null references app.tenants (id) on delete cascade,
    id                 uuid not null,
    day                date not null,
    user_id            uuid,
    assistant_id       uuid,
    provider           text,
    model              text,
    request_count      bigint not null default 0,
    message_count      bigint not null default 0,
    user_messages      bigint not null default 0,
    assistant_messages bigint not null default 0,
    prompt_tokens      bigint not null default 0,
    completion_tokens  bigint not null default 0,
    total_tokens       bigint generated always as (prompt_tokens + completion_tokens) stored,
    cost_usd           numeric(24, 10) not null default 0,
    unpriced_count     bigint not null default 0,
    latency_ms_sum     bigint not null default 0,
    latency_count      bigint not null default 0,
    first_at           timestamptz not null,
    last_at            timestamptz not null,
    constraint usage_daily_pkey primary key (tenant_id, id),
    constraint usage_daily_key unique nulls not distinct (tenant_id, day, user_id, assistant_id, provider, model),
    constraint usage_daily_counts_check check (request_count >= 0 and message_count >= 0 and prompt_tokens >= 0
                                               and completion_tokens >= 0 and cost_usd >= 0)
);
comment on table app.usage_daily is 'per tenant, day (tenant time zone), user, assistant, provider, model: kept in the same statement as each message';
comment on column app.usage_daily.request_count is 'LLM calls: messages with tokens or a cost';
comment on column app.usage_daily.user_id is 'the conversation''s owner (null for contacts'' conversations)';

alter table app.usage_daily enable row level security;
alter table app.usage_daily force row level security;
create policy usage_daily_select on app.usage_daily for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy usage_daily_owner on app.usage_daily for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.usage_daily to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.usage_daily to frontdesk_operator;

-- Add one fact (a message or a usage event) to its rollup row. Called by the SECURITY
-- DEFINER triggers of messages and usage events, as the owner (usage_daily_owner).
create function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
                              p_assistant uuid, p_provider text, p_model text, p_request boolean,
                              p_messages int, p_user_messages int, p_assistant_messages int,
                              p_prompt bigint, p_completion bigint, p_cost numeric,
                              p_unpriced boolean, p_latency_ms int) returns void
    language sql volatile
    as $$
    insert into app.usage_daily as u (tenant_id, id, day, user_id, assistant_id, provider, model,
                                      request_count, message_count, user_messages, assistant_messages,
                                      prompt_tokens, completion_tokens, cost_usd, unpriced_count,
                                      latency_ms_sum, latency_count, first_at, last_at)
    values (p_tenant, app.uuid_v7(), (p_at at time zone p_zone)::date, p_user, p_assistant,
            p_provider, p_model, p_request::int, p_messages, p_user_messages, p_assistant_messages,
            coalesce(p_prompt, 0), coalesce(p_completion, 0), coalesce(p_cost, 0),
            coalesce(p_unpriced, false)::int, coalesce(p_latency_ms, 0),
            (p_latency_ms is not null)::int, p_at, p_at)
    on conflict on constraint usage_daily_key do update
       set request_count = u.request_count + excluded.request_count,
           message_count = u.message_count + excluded.message_count,
           user_messages = u.user_messages + excluded.user_messages,
           assistant_messages = u.assistant_messages + excluded.assistant_messages,
           prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
           completion_tokens = u.completion_tokens + excluded.completion_tokens,
           cost_usd = u.cost_usd + excluded.cost_usd,
           unpriced_count = u.unpriced_count + excluded.unpriced_count,
           latency_ms_sum = u.latency_ms_sum + excluded.latency_ms_sum,
           latency_count = u.latency_count + excluded.latency_count,
           first_at = least(u.first_at, excluded.first_at),
           last_at = greatest(u.last_at, excluded.last_at)
$$;
revoke execute on function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int,
                                         int, int, bigint, bigint, numeric, boolean, int) from public;

-- ---------------------------------------------------------------------------------------
-- Limits: rate_limit_per_minute (message and usage writes), daily_token_limit (tokens per
-- day in the tenant's time zone), monthly_budget_usd (cost per calendar month, same zone).
-- Each write adds itself to the counter row of each configured limit's current window
-- with INSERT … ON CONFLICT DO UPDATE … RETURNING: the row lock makes concurrent writes of
-- a tenant (from any number of servers) take turns, each sees the total including all
-- committed before it, and a write that would pass the limit raises SQLSTATE FD429, which
-- rolls back its whole transaction (counter increment included). A window's counter row
-- starts from the rollups, so a limit set during a day or month counts what came before.

create table app.limit_counters (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    kind         text not null,
    window_start timestamptz not null,
    used         numeric(24, 10) not null,
    constraint limit_counters_pkey primary key (tenant_id, kind, window_start),
    constraint limit_counters_kind_check check (kind in ('minute', 'day', 'month'))
);
comment on table app.limit_counters is 'usage per limit window, kept only while the tenant has that limit; old windows are swept';

alter table app.limit_counters enable row level security;
alter table app.limit_counters force row level security;
create policy limit_counters_select on app.limit_counters for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_counters_owner on app.limit_counters for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_counters to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_counters to frontdesk_operator;

-- The first time each limit is hit in its window (so usage.limit_reached is sent once).
create table app.limit_hits (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    limit_name   text not null,
    window_start timestamptz not null,
    created_at   timestamptz not null default now(),
    constraint limit_hits_pkey primary key (tenant_id, limit_name, window_start),
    constraint limit_hits_limit_name_check
        check (limit_name in ('rate_limit_per_minute', 'daily_token_limit', 'monthly_budget_usd'))
);
alter table app.limit_hits enable row level security;
alter table app.limit_hits force row level security;
create policy limit_hits_select on app.limit_hits for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_hits_owner on app.limit_hits for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_hits to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_hits to frontdesk_operator;

-- Add `amount` to a window's counter and refuse (FD429) past `lim`. The detail carries
-- what the server needs for its 429: the limit, what was used, the window's end.
create function app.charge_window(p_tenant uuid, p_kind text, p_name text, p_start timestamptz,
                                  p_end timestamptz, p_amount numeric, p_lim numeric,
                                  p_initial numeric) returns void
    language plpgsql volatile
    as $$
declare
    total numeric;
begin
    insert into app.limit_counters as c (tenant_id, kind, window_start, used)
    values (p_tenant, p_kind, p_start, p_initial + p_amount)
    on conflict (tenant_id, kind, window_start) do update set used = c.used + excluded.used - p_initial
    returning c.used into total;
    if total > p_lim then
        raise exception 'limit % reached', p_name
            using errcode = 'FD429', constraint = p_name,
                  detail = json_build_object('limit', trim_scale(p_lim)::text,
                                             'used', trim_scale(total - p_amount)::text,
                                             'window_start', p_start, 'resets_at', p_end)::text;
    end if;
end
$$;

-- Charge one write against the tenant's limits (run by the SECURITY DEFINER triggers).
create function app.charge_limits(p_tenant uuid, p_zone text, p_rate integer, p_daily bigint,
                                  p_budget numeric, p_tokens bigint, p_cost numeric) returns void
    language plpgsql volatile
    as $$
declare
    minute timestamptz := date_trunc('minute', now());
    local_now timestamp := now() at time zone p_zone;
    day_start timestamptz := date_trunc('day', local_now) at time zone p_zone;
    month_start timestamptz := date_trunc('month', local_now) at time zone p_zone;
begin
    if p_rate is not null then
        perform app.charge_window(p_tenant, 'minute', 'rate_limit_per_minute', minute,
                                  minute + interval '1 minute', 1, p_rate, 0);
    end if;
    if p_daily is not null and p_tokens > 0 then
        perform app.charge_window(p_tenant, 'day', 'daily_token_limit', day_start,
            (date_trunc('day', local_now) + interval '1 day') at time zone p_zone, p_tokens, p_daily,
            coalesce((select sum(u.total_tokens) from app.usage_daily u
                      where u.tenant_id = p_tenant and u.day = local_now::date), 0));
    end if;
    if p_budget is not null and p_cost > 0 then
        perform app.charge_window(p_tenant, 'month', 'monthly_budget_usd', month_start,
            (date_trunc('month', local_now) + interval '1 month') at time zone p_zone, p_cost, p_budget,
            coalesce((select sum(u.cost_usd) from app.usage_daily u
                      where u.tenant_id = p_tenant and u.day >= date_trunc('month', local_now)::date
                        and u.day < (date_trunc('month', local_now) + interval '1 month')::date), 0));
    end if;
end
$$;
revoke execute on function app.charge_window(uuid, text, text, timestamptz, timestamptz, numeric, numeric, numeric) from public;
revoke execute on function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric) from public;

-- Note that a limit was hit in its window, after the refused write rolled back (the
-- server calls it in a transaction of its own); emits usage.limit_reached the first time.
create function app.note_limit_reached(p_limit text, p_window timestamptz, p_detail jsonb) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
begin
    insert into app.limit_hits (tenant_id, limit_name, window_start) values (t, p_limit, p_window)
    on conflict do nothing;
    if not found then
        return false;
    end if;
    perform app.emit_event(t, 'usage.limit_reached', null, p_detail || jsonb_build_object('limit_name', p_limit));
    return true;
end
$$;
revoke execute on function app.note_limit_reached(text, timestamptz, jsonb) from public;
grant execute on function app.note_limit_reached(text, timestamptz, jsonb) to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- The message trigger, now costing from the catalog and keeping the rollup.

create or replace function app.messages_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    assistant uuid;
    zone text;
    rate integer;
    daily bigint;
    budget numeric;
begin
    new.provider := lower(new.provider);
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif coalesce(new.prompt_tokens, new.completion_tokens) is not null then
        select c.cost_usd, c.cost_source into new.cost_usd, new.cost_source
          from app.token_cost(new.tenant_id, new.provider, new.model, new.created_at,
                              new.prompt_tokens, new.completion_tokens) c;
    else
        new.cost_source := null;
    end if;
    -- As the owner: only the transaction's tenant is reachable (conversations_owner), and
    -- the caller's own visibility is checked here, as the select policy would.
    update app.conversations c
       set message_count = c.message_count + 1,
           prompt_tokens = c.prompt_tokens + coalesce(new.prompt_tokens, 0),
           completion_tokens = c.completion_tokens + coalesce(new.completion_tokens, 0),
           cost_usd = c.cost_usd + coalesce(new.cost_usd, 0),
           last_activity_at = greatest(c.last_activity_at, new.created_at)
      from app.tenants t
     where c.tenant_id = new.tenant_id and c.id = new.conversation_id and t.id = c.tenant_id
       and (app.is_tenant_staff() or c.user_id = app.current_user_id()
            or current_setting('role') = 'frontdesk_operator')
    returning c.user_id, t.search_language, c.assistant_id, t.timezone, t.rate_limit_per_minute,
              t.daily_token_limit, t.monthly_budget_usd
         into new.owner_user_id, new.search_language, assistant, zone, rate, daily, budget;
    if not found then
        raise exception 'no conversation %', new.conversation_id
            using errcode = 'foreign_key_violation', constraint = 'messages_conversation_id_fkey',
                  table = 'messages', schema = 'app';
    end if;
    new.redacted_at := null;
    new.redacted_by := null;
    if rate is not null or daily is not null or budget is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  coalesce(new.cost_usd, 0));
    end if;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.owner_user_id, assistant,
                          new.provider, new.model, new.cost_source is not null, 1,
                          (new.role = 'user')::int, (new.role = 'assistant')::int,
                          new.prompt_tokens, new.completion_tokens, new.cost_usd,
                          new.cost_source = 'unpriced', new.latency_ms);
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

-- ---------------------------------------------------------------------------------------
-- Usage events: usage not tied to a message (embeddings, voice minutes, tool calls), by
-- tokens (costed like messages) or by unit and quantity with a unit price. Append-only;
-- each is added to its rollup by its insert trigger, in the same statement.

create table app.usage_events (
    tenant_id       uuid not null references app.tenants (id) on delete cascade,
    id              uuid not null,
    user_id         uuid,
    assistant_id    uuid,
    conversation_id uuid,
    provider        text,
    model           text,
    prompt_tokens   integer,
    completion_tokens integer,
    unit            text,
    quantity        numeric(20, 6),
    unit_price_usd  numeric(20, 10),
    cost_usd        numeric(20, 10),
    cost_source     text,
    metadata        jsonb not null default '{}',
    actor_user_id   uuid,
    actor_key_id    uuid,
    created_at      timestamptz not null default now(),
    constraint usage_events_pkey primary key (tenant_id, id),
    constraint usage_events_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id) on delete set null (user_id),
    constraint usage_events_assistant_id_fkey foreign key (tenant_id, assistant_id)
        references app.assistants (tenant_id, id) on delete set null (assistant_id),
    constraint usage_events_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete set null (conversation_id),
    constraint usage_events_what_check check ((prompt_tokens is not null or completion_tokens is not null)
                                             <> (unit is not null)),
    constraint usage_events_tokens_check check (prompt_tokens >= 0 and completion_tokens >= 0),
    constraint usage_events_unit_check check (unit ~ '^[a-z][a-z0-9_]{0,31}$'),
    constraint usage_events_quantity_check check ((unit is null) = (quantity is null) and quantity >= 0),
    constraint usage_events_unit_price_check check (unit_price_usd >= 0 and (unit_price_usd is null or unit is not null)),
    constraint usage_events_cost_check check (cost_usd >= 0),
    constraint usage_events_cost_source_check check (cost_source in ('provided', 'catalog', 'unpriced')),
    constraint usage_events_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint usage_events_model_check check (length(model) between 1 and 200),
    constraint usage_events_metadata_check check (jsonb_typeof(metadata) = 'object')
);
comment on table app.usage_events is 'usage not tied to a message; append-only';
create index usage_events_user_idx on app.usage_events (tenant_id, user_id) where user_id is not null;
create index usage_events_assistant_idx on app.usage_events (tenant_id, assistant_id) where assistant_id is not null;
create index usage_events_conversation_idx on app.usage_events (tenant_id, conversation_id) where conversation_id is not null;

create function app.usage_events_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    zone text;
    rate integer;
    daily bigint;
    budget numeric;
begin
    new.provider := lower(new.provider);
    new.actor_user_id := app.current_user_id();
    new.actor_key_id := app.current_key_id();
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif new.unit is not null then
        new.cost_usd := case when new.unit_price_usd is null then 0
                             else round(new.quantity * new.unit_price_usd, 10) end;
        new.cost_source := case when new.unit_price_usd is null then 'unpriced' else 'provided' end;
    else
        select c.cost_usd, c.cost_source into new.cost_usd, new.cost_source
          from app.token_cost(new.tenant_id, new.provider, new.model, new.created_at,
                              new.prompt_tokens, new.completion_tokens) c;
    end if;
    select t.timezone, t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd
      into zone, rate, daily, budget
      from app.tenants t where t.id = new.tenant_id;
    if rate is not null or daily is not null or budget is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  new.cost_usd);
    end if;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.user_id, new.assistant_id,
                          new.provider, new.model, true, 0, 0, 0, new.prompt_tokens,
                          new.completion_tokens, new.cost_usd, new.cost_source = 'unpriced', null);
    return new;
end
$$;
create trigger usage_events_before_insert before insert on app.usage_events
    for each row execute function app.usage_events_before_insert();
create trigger usage_events_append_only before update or delete on app.usage_events
    for each row execute function app.refuse_change();

alter table app.usage_events enable row level security;
alter table app.usage_events force row level security;
create policy usage_events_select on app.usage_events for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy usage_events_insert on app.usage_events for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
grant select, insert on app.usage_events to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.usage_events to frontdesk_operator;
